"""Releasing IA-DETR (paper §6.2): training checkpoints load with ``weights_only=True``, and
``ia detr export`` -> ``load_detector`` gives the original model's outputs exactly."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from indirect_attention.cli import main
from indirect_attention.detection.detect import detect
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.preprocess import InputSpec
from indirect_attention.detection.release import export_detector, load_detector
from indirect_attention.detection.sources import EmojiSource
from indirect_attention.detection.train import DetrTrainConfig, run
from indirect_attention.training.checkpoint import save_checkpoint

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=5, bias_hidden=16)


def _trained_like(kind: str = "ia", **config) -> IADETR:
    """A tiny model whose weights are all moved off their initial values."""
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(kind=kind, **TINY, **config), input_spec=InputSpec(64, 24))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


@pytest.mark.parametrize("kind", ["ia", "double-cross"])
def test_export_round_trip_gives_identical_outputs(tmp_path: Path, kind: str) -> None:
    torch.set_num_threads(1)
    model = _trained_like(kind, query_mode="pad")
    extra = {
        "model_config": asdict(model.config),
        "data": "coco",
        "max_size": 96,
        "query_size": 40,
    }
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", model, extra=extra)
    out = tmp_path / "export"
    argv = ["detr", "export", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt")]
    assert main([*argv, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    document = json.loads((out / "config.json").read_text())
    assert document["format"] == "ia-detr" and document["model"] == asdict(model.config)
    assert document["input"] == {"target_size": 96, "query_size": 40, "stride": 8}

    targets, queries = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 40, 40)
    padding = torch.zeros(2, 64, 96, dtype=torch.bool)
    padding[1, 48:] = True
    with torch.no_grad():
        reference = model(targets, queries, padding)
    image, query = torch.rand(3, 70, 50), torch.rand(3, 30, 30)
    expected = detect(model, image, query, threshold=0.0, input_spec=InputSpec(96, 40))
    for source in (
        tmp_path / "run" / "checkpoint.pt",
        tmp_path / "run",
        out,
        out / "model.safetensors",
    ):
        loaded = load_detector(source)
        assert not loaded.training and loaded.input_spec == InputSpec(96, 40)
        assert loaded.state_dict().keys() == model.state_dict().keys()
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
        with torch.no_grad():
            output = loaded(targets, queries, padding)
        assert torch.equal(output.logits, reference.logits)
        assert torch.equal(output.boxes, reference.boxes)
        found = detect(loaded, image, query, threshold=0.0)
        assert torch.equal(found.boxes, expected.boxes) and torch.equal(
            found.scores, expected.scores
        )


def test_training_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = DetrTrainConfig(
        out=str(tmp_path / "run"),
        model=DetrModelConfig(**TINY),
        data=EmojiSource(train_episodes=2, scale=0.25, cache_dir=str(tmp_path / "cache")),
        epochs=1,
        batch_size=2,
        eval_episodes=1,
        pretrain_steps=0,
        progress=False,
    )
    run(config)
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)  # plain data only
    assert state["extra"]["model_config"] == asdict(config.model)
    assert state["extra"]["input_spec"] == {"target_size": 64, "query_size": 24}
    model = load_detector(path)
    # Emoji runs feed the 256 px episodes (96 px queries) resized by the recipe's scale.
    assert model.input_spec == InputSpec(target_size=64, query_size=24)
    reference = IADETR(config.model)
    reference.load_state_dict(state["model"])
    targets, queries = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(model(targets, queries).logits, reference(targets, queries).logits)


class _NotWeights:
    """A pickled object: ``weights_only=True`` refuses to build it."""


def test_checkpoint_with_the_old_field_names_loads(tmp_path: Path) -> None:
    """Checkpoints written before ``heads`` / ``layers`` / ``variant`` became ``num_heads`` /
    ``num_layers`` / ``kind``."""
    model = _trained_like("double-cross")
    config = asdict(model.config)
    config["heads"], config["layers"] = config.pop("num_heads"), config.pop("num_layers")
    config["variant"] = config.pop("kind")
    extra = {"model_config": config, "data": "emoji", "scale": 0.25}
    save_checkpoint(tmp_path / "checkpoint.pt", model, extra=extra)
    loaded = load_detector(tmp_path / "checkpoint.pt")
    assert loaded.config == model.config and loaded.input_spec == InputSpec(64, 24)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    model = _trained_like()
    path = tmp_path / "checkpoint.pt"
    torch.save(
        {
            "model": model.state_dict(),
            "extra": {"model_config": asdict(model.config)},
            "x": _NotWeights(),
        },
        path,
    )
    with pytest.raises(ValueError, match=r"checkpoint\.pt: it holds Python objects") as error:
        load_detector(path)
    assert "weights_only=False" not in str(error.value)  # never advise running the file's code


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"missing\.pt does not exist; expected a checkpoint"
    ):
        load_detector(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors does not exist"):
        load_detector(tmp_path)  # an empty folder
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot load .*garbage\.pt: it is not a torch\.save"):
        load_detector(tmp_path / "garbage.pt")
    model = _trained_like()
    with pytest.raises(ValueError, match=r"records no input sizes"):
        export_detector(IADETR(model.config), tmp_path / "nothing")
    export_detector(model, tmp_path / "export")
    (tmp_path / "export" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match=r"cannot read weights .*model\.safetensors"):
        load_detector(tmp_path / "export")
    export_detector(model, tmp_path / "other")
    (tmp_path / "other" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing"):
        load_detector(tmp_path / "other")
    # Weights that do not fit the recorded architecture.
    export_detector(model, tmp_path / "mismatch")
    document = json.loads((tmp_path / "mismatch" / "config.json").read_text())
    document["model"]["dim"] = 64
    (tmp_path / "mismatch" / "config.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="weights do not match the model config"):
        load_detector(tmp_path / "mismatch")
