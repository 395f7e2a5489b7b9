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
from indirect_attention.detection.evaluate import build_eval_set, evaluate, prepare_images
from indirect_attention.detection.losses import SetCriterion
from indirect_attention.detection.matcher import HungarianMatcher
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.train import DetrTrainConfig, emoji_recipe, run
from indirect_attention.training.checkpoint import load_checkpoint, save_checkpoint

TINY = {"dim": 32, "heads": 2, "layers": 2, "ffn_dim": 64, "num_queries": 5, "bias_hidden": 16}


def test_tiny_model_overfits_one_episode() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    episode = build_eval_set("val", 1, draws=1)
    scale = 0.25
    targets = prepare_images(episode.targets, scale)
    queries = prepare_images(episode.queries[0], scale)
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
    result = evaluate(model, episode, scale=scale)
    assert result["ap50"]["mean"] == pytest.approx(1.0)


def _tiny_config(tmp_path: Path, variant: str, **kwargs) -> DetrTrainConfig:
    return DetrTrainConfig(
        out=str(tmp_path / variant),
        model=DetrModelConfig(variant=variant, **TINY),
        epochs=1,
        train_episodes=4,
        batch_size=2,
        scale=0.25,
        eval_episodes=2,
        cache_dir=str(tmp_path / "cache"),
        progress=False,
        **kwargs,
    )


@pytest.mark.parametrize("variant", ["ia", "misaligned", "double-cross"])
def test_three_models_train_end_to_end(tmp_path: Path, variant: str) -> None:
    result = run(_tiny_config(tmp_path, variant))
    assert result["steps"] == 2
    assert 0.0 <= result["ap50"]["mean"] <= 1.0 and 0.0 <= result["wrong_query"]["mean"] <= 1.0
    assert 0.0 < result["chance_floor"] <= 1.0
    rows = [
        json.loads(line)
        for line in (tmp_path / variant / "metrics.jsonl").read_text().split("\n")
        if line
    ]
    assert rows[-1]["epoch"] == 1 and "val_ap50" in rows[-1]
    assert (tmp_path / variant / "checkpoint.pt").exists()


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
    assert result["draws"] == 2 and result["variant"] == "misaligned"
    assert {"ap50", "wrong_query", "margin", "chance_floor"} <= result.keys()
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


@pytest.mark.parametrize("data", ["emoji", "voc"])
def test_cli_train_defaults_follow_the_emoji_recipe(data):
    """`ia detr train` takes emoji's defaults from emoji_recipe(); real data keeps the authors'."""
    argv = ["detr", "train", "--data", data, "--out", "unused"]
    if data == "voc":
        argv += ["--data-root", "unused"]
    config = _train_config(build_parser().parse_args(argv), out="unused", model="ia", seed=0)
    recipe = emoji_recipe()
    if data == "emoji":
        assert config.model.bias_unit == recipe.model.bias_unit == "cell"
        assert config.model.num_queries == recipe.model.num_queries
        assert config.pretrain_steps == recipe.pretrain_steps > 0
        assert config.lr_backbone == pytest.approx(recipe.lr_backbone)
    else:
        assert config.model.bias_unit == "pixel"
        assert config.pretrain_steps == 0
        assert config.model.num_queries == 100
