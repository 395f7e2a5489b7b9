"""Hub-style save and load (detection/hub.py): huggingface_hub's mixin, the export format, no
network, and folders written before the card existed."""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from safetensors.torch import save_file

from indirect_attention.cli import main
from indirect_attention.detection import IADETR
from indirect_attention.detection.model import DetrModelConfig
from indirect_attention.detection.preprocess import InputSpec
from indirect_attention.detection.release import load_detector
from indirect_attention.training.checkpoint import save_checkpoint

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=5, bias_hidden=16)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt, or any Hub download call, fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr("huggingface_hub.hub_mixin.hf_hub_download", refuse)
    torch.set_num_threads(1)


def _model(kind: str = "ia") -> IADETR:
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(kind=kind, **TINY), input_spec=InputSpec(64, 24))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def _outputs(model: IADETR) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    targets = torch.rand(2, 3, 64, 48, generator=generator)
    queries = torch.rand(2, 3, 24, 24, generator=generator)
    with torch.no_grad():
        out = model(targets, queries)
    return out.logits, out.boxes


@pytest.mark.parametrize("kind", ["ia", "misaligned"])
def test_save_pretrained_round_trip_is_identical(tmp_path: Path, kind: str) -> None:
    model = _model(kind)
    assert isinstance(model, PyTorchModelHubMixin)
    model.save_pretrained(tmp_path / "detector")
    files = sorted(p.name for p in (tmp_path / "detector").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    document = json.loads((tmp_path / "detector" / "config.json").read_text())
    assert document["format"] == "ia-detr" and document["format_version"] == 1
    assert document["model"] == asdict(model.config)
    assert document["input"] == {"target_size": 64, "query_size": 24, "stride": 8}

    loaded = IADETR.from_pretrained(tmp_path / "detector")
    assert isinstance(loaded, IADETR) and not loaded.training
    assert loaded.config == model.config and loaded.input_spec == model.input_spec
    for mine, theirs in zip(_outputs(model), _outputs(loaded), strict=True):
        assert torch.equal(mine, theirs)
    # The folder is also what load_detector and `ia detr detect --checkpoint` read.
    assert torch.equal(_outputs(load_detector(tmp_path / "detector"))[0], _outputs(model)[0])


def test_model_card_is_a_hub_card_with_the_weights_hash(tmp_path: Path) -> None:
    model = _model()
    model.save_pretrained(tmp_path / "detector")
    card = ModelCard.load(tmp_path / "detector" / "README.md")  # a local path: no request
    assert card.data.library_name == "indirect-attention"
    assert card.data.pipeline_tag == "object-detection"
    digest = hashlib.sha256((tmp_path / "detector" / "model.safetensors").read_bytes()).hexdigest()
    assert digest in card.text
    assert "IADETR.from_pretrained" in card.text and "2 layers, dim 32" in card.text
    assert model.generate_model_card().text == card.text  # push_to_hub's card is the same


def test_cli_export_writes_what_save_pretrained_writes(tmp_path: Path) -> None:
    model = _model()
    extra = {"model_config": asdict(model.config), "input_spec": asdict(model.input_spec)}
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", model, extra=extra)
    argv = ["detr", "export", "--checkpoint", str(tmp_path / "run"), "--out"]
    assert main([*argv, str(tmp_path / "export")]) == 0
    model.save_pretrained(tmp_path / "saved")
    export, saved = tmp_path / "export", tmp_path / "saved"
    assert sorted(p.name for p in export.iterdir()) == sorted(p.name for p in saved.iterdir())
    assert (export / "model.safetensors").read_bytes() == (saved / "model.safetensors").read_bytes()
    # The CLI also records where the weights came from; nothing else differs.
    source = str(tmp_path / "run")
    exported = json.loads((export / "config.json").read_text())
    assert exported == {**json.loads((saved / "config.json").read_text()), "source": source}
    card = (export / "README.md").read_text()
    assert card == (saved / "README.md").read_text().replace("not recorded", f"`{source}`")
    loaded = IADETR.from_pretrained(tmp_path / "export")
    assert torch.equal(_outputs(loaded)[1], _outputs(model)[1])


def test_from_pretrained_reads_checkpoints_and_weights_files(tmp_path: Path) -> None:
    model = _model()
    extra = {"model_config": asdict(model.config), "input_spec": asdict(model.input_spec)}
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", model, extra=extra)
    model.save_pretrained(tmp_path / "saved")
    reference = _outputs(model)[0]
    for path in (
        tmp_path / "run",
        tmp_path / "run" / "checkpoint.pt",
        tmp_path / "saved" / "model.safetensors",
        str(tmp_path / "saved"),
    ):
        assert torch.equal(_outputs(IADETR.from_pretrained(path))[0], reference), path


def _legacy_export(model: IADETR, folder: Path, *, old_names: bool) -> None:
    """An export as `ia detr export` wrote it before the card: two files, format_version 1."""
    folder.mkdir(parents=True)
    tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    config = {**asdict(model.config), "backbone_weights": None}
    if old_names:
        config["heads"], config["variant"] = config.pop("num_heads"), config.pop("kind")
    document = {
        "format": "ia-detr",
        "format_version": 1,
        "model": config,
        "input": {"target_size": 64, "query_size": 24, "stride": 8},
        "source": "runs/old/checkpoint.pt",
    }
    (folder / "config.json").write_text(json.dumps(document, indent=2) + "\n")


@pytest.mark.parametrize("old_names", [False, True])
def test_exports_written_before_the_card_keep_loading(tmp_path: Path, old_names: bool) -> None:
    model = _model("double-cross")
    _legacy_export(model, tmp_path / "old", old_names=old_names)
    reference = _outputs(model)
    for loaded in (load_detector(tmp_path / "old"), IADETR.from_pretrained(tmp_path / "old")):
        assert loaded.config == model.config and loaded.input_spec == InputSpec(64, 24)
        for mine, theirs in zip(reference, _outputs(loaded), strict=True):
            assert torch.equal(mine, theirs)


def test_missing_folder_is_a_clear_error_without_a_request(tmp_path: Path) -> None:
    for path in (tmp_path / "nowhere", "someone/some-model"):
        with pytest.raises(FileNotFoundError, match=r"does not exist; from_pretrained reads a"):
            IADETR.from_pretrained(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors does not exist"):
        IADETR.from_pretrained(tmp_path / "empty")


def test_a_newer_format_is_refused_by_name(tmp_path: Path) -> None:
    _model().save_pretrained(tmp_path / "detector")
    config = tmp_path / "detector" / "config.json"
    document = json.loads(config.read_text())
    document["format_version"] = 99
    config.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"format_version 99, this version reads up to 1"):
        IADETR.from_pretrained(tmp_path / "detector")
