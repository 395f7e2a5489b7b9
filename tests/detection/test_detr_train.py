"""IA-DETR training: one episode overfits to AP50 1, the three models train end to end (run + CLI),
checkpoints round-trip and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision.ops import box_convert

from indirect_attention.cli import build_parser, main
from indirect_attention.cli.detr import _train_config
from indirect_attention.detection.evaluate import evaluate
from indirect_attention.detection.losses import HungarianMatcher, SetCriterion
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.preprocess import InputSpec, resize
from indirect_attention.detection.sources import (
    EmojiSource,
    VocSource,
    build_eval_set,
    eval_set_pairs,
)
from indirect_attention.detection.train import DetrTrainConfig, recipe, run
from indirect_attention.training.checkpoint import load_checkpoint, save_checkpoint

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=5, bias_hidden=16)


def test_tiny_model_overfits_one_episode() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    episode = build_eval_set("val", 1, draws=1)
    spec = InputSpec(target_size=64, query_size=24)  # the 256 px episode at a quarter
    targets = resize(episode.targets.float() / 255.0, (64, 64))
    queries = resize(episode.queries[0].float() / 255.0, (24, 24))
    truth = [box_convert(episode.boxes[0] / 256.0, "xyxy", "cxcywh")]
    model = IADETR(DetrModelConfig(**{**TINY, "num_queries": 10}))
    criterion = SetCriterion(HungarianMatcher())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(150):
        output = model(targets, queries)
        loss = criterion(output.logits, output.boxes, truth)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    result = evaluate(model, eval_set_pairs(episode), input_spec=spec)
    assert result["ap50"]["mean"] == pytest.approx(1.0)


def _tiny_config(tmp_path: Path, kind: str, **kwargs) -> DetrTrainConfig:
    return DetrTrainConfig(
        out=str(tmp_path / kind),
        model=DetrModelConfig(kind=kind, **TINY),
        data=EmojiSource(train_episodes=4, scale=0.25, cache_dir=str(tmp_path / "cache")),
        epochs=1,
        batch_size=2,
        eval_episodes=2,
        pretrain_steps=0,
        progress=False,
        **kwargs,
    )


@pytest.mark.parametrize("kind", ["ia", "misaligned", "double-cross"])
def test_three_models_train_end_to_end(tmp_path: Path, kind: str) -> None:
    result = run(_tiny_config(tmp_path, kind))
    assert result["steps"] == 2
    assert 0.0 <= result["ap50"]["mean"] <= 1.0 and 0.0 <= result["wrong_query"]["mean"] <= 1.0
    assert 0.0 < result["oracle_boxes"] <= 1.0
    rows = [
        json.loads(line)
        for line in (tmp_path / kind / "metrics.jsonl").read_text().split("\n")
        if line
    ]
    assert rows[-1]["epoch"] == 1 and "val_ap50" in rows[-1]
    assert (tmp_path / kind / "checkpoint.pt").exists()


def test_resume_continues_from_checkpoint(tmp_path: Path) -> None:
    run(_tiny_config(tmp_path, "ia"))
    config = _tiny_config(tmp_path, "ia", resume=str(tmp_path / "ia"))
    config.epochs = 2
    result = run(config)
    assert result["steps"] == 4
    assert len((tmp_path / "ia" / "metrics.jsonl").read_text().strip().split("\n")) == 2


def test_cli_train_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    common = ["--epochs", "1", "--train-episodes", "2", "--batch-size", "2", "--dim", "32"]
    common += ["--layers", "1", "--queries", "4", "--eval-episodes", "2", "--pretrain-steps", "0"]
    common += ["--cache-dir", str(tmp_path / "cache")]
    assert main(["detr", "train", "--model", "misaligned", "--out", str(out), *common]) == 0
    code = main(
        [
            "detr",
            "eval",
            "--checkpoint",
            str(out / "checkpoint.pt"),
            "--split",
            "unseen",
            "--episodes",
            "2",
            "--draws",
            "2",
        ]
    )
    assert code == 0
    result = json.loads((out / "eval-unseen" / "results.json").read_text())
    assert result["draws"] == 2 and result["kind"] == "misaligned"
    assert {
        "ap50",
        "wrong_query",
        "margin",
        "matching_auc",
        "per_image_ap50",
        "oracle_boxes",
    } <= result.keys()
    assert "wrong query" in capsys.readouterr().out


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    path = save_checkpoint(
        tmp_path / "c.pt", model, optimizer, scheduler, epoch=3, step=7, extra={"note": "x"}
    )
    expected = torch.rand(3)
    fresh = torch.nn.Linear(3, 2)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, 1, gamma=0.5)
    state = load_checkpoint(path, fresh, fresh_opt, fresh_sched, restore_random=True)
    assert (state["epoch"], state["step"], state["extra"]) == (3, 7, {"note": "x"})
    assert torch.equal(torch.rand(3), expected)
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)
    assert fresh_opt.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert fresh_sched.get_last_lr() == scheduler.get_last_lr()
    assert torch.load(path, weights_only=True)["step"] == 7


def test_cli_train_trains_the_library_recipe(tmp_path, monkeypatch):
    """`ia detr train` only parses: with no flag it trains DetrTrainConfig() (the emoji recipe);
    --data voc takes the defaults the VOC source implies (the authors' real-data recipe)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root").mkdir()  # --data-root must exist
    parser = build_parser()
    config = _train_config(
        parser.parse_args(["detr", "train", "--out", "x"]), out="x", kind="ia", seed=0
    )
    assert config == DetrTrainConfig(out="x") == recipe(EmojiSource(), out="x")
    assert config.model.bias_unit == "cell" and config.pretrain_steps > 0
    assert config.lr_backbone == pytest.approx(config.lr / 10)
    argv = ["detr", "train", "--data", "voc", "--data-root", "root", "--out", "x", "--lr", "1e-3"]
    config = _train_config(parser.parse_args(argv), out="x", kind="ia", seed=0)
    assert config.data == VocSource(data_root="root")
    assert (config.model.backbone, config.model.bias_unit) == ("resnet50", "pixel")
    assert (config.pretrain_steps, config.model.num_queries) == (0, 100)
    assert config.lr_backbone == config.lr == 1e-3  # a backbone from scratch: the same rate


def test_cli_rejects_data_options_of_another_source(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "t.json").write_text("{}")
    argv = ["detr", "train", "--data", "voc", "--data-root", "r", "--train-json", "t.json"]
    assert main([*argv, "--out", "x"]) == 2
    assert "--train-json does not apply to --data voc" in capsys.readouterr().err
