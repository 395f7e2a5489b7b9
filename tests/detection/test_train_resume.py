"""Robust IA-DETR training: a run killed mid-epoch and resumed ends bitwise equal to an
uninterrupted one; checkpoints load with ``weights_only=True``; ``init_weights`` loads weights only;
a non-finite loss skips its step and is counted; bf16 autocast trains with float32 matching."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from indirect_attention.cli import main
from indirect_attention.detection import train as train_module
from indirect_attention.detection.checkpoint import load_model_weights
from indirect_attention.detection.losses import HungarianMatcher, SetCriterion
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.sources import EmojiSource
from indirect_attention.detection.train import DetrTrainConfig, run
from indirect_attention.training import engine, read_jsonl
from indirect_attention.training.checkpoint import load_checkpoint

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=5, bias_hidden=16)


class KilledError(Exception):
    """Stands for SIGKILL: the run stops between two steps, with nothing saved on the way out."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _config(tmp_path: Path, name: str, **kwargs) -> DetrTrainConfig:
    """Two epochs of three batches of two episodes; a checkpoint every two steps."""
    settings = {
        "out": str(tmp_path / name),
        "model": DetrModelConfig(**TINY),
        "data": EmojiSource(train_episodes=6, scale=0.25, cache_dir=str(tmp_path / "cache")),
        "epochs": 2,
        "batch_size": 2,
        "pretrain_steps": 0,
        "eval_every": 10,
        "eval_episodes": 2,
        "warmup_steps": 3,
        "checkpoint_every": 2,
        "progress": False,
        "threads": 1,
    }
    settings.update(kwargs)
    return DetrTrainConfig(**settings)


def _kill_at_call(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Make the ``call``-th training step raise before it changes anything."""
    real, calls = engine.train_step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KilledError
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_step", step)


def _checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def _without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "minutes"} for row in rows]


@pytest.mark.parametrize(
    ("kill_at", "expected_epoch", "expected_batch", "same_dir"),
    [(3, 0, 2, True), (6, 1, 1, False)],
)
def test_resume_after_a_mid_epoch_kill_matches_an_uninterrupted_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kill_at: int,
    expected_epoch: int,
    expected_batch: int,
    same_dir: bool,
) -> None:
    full = run(_config(tmp_path, "full"))
    _kill_at_call(monkeypatch, kill_at)
    with pytest.raises(KilledError):
        run(_config(tmp_path, "killed"))
    monkeypatch.undo()
    saved = _checkpoint(tmp_path / "killed")
    # the last checkpoint is mid-epoch: the step before the kill (if odd) is lost and redone
    assert (saved["epoch"], saved["batch"], saved["step"]) == (
        expected_epoch,
        expected_batch,
        2 * ((kill_at - 1) // 2),
    )
    out = "killed" if same_dir else "resumed"
    resumed = run(_config(tmp_path, out, resume=str(tmp_path / "killed")))
    assert resumed["steps"] == full["steps"] == 6
    assert resumed["ap50"] == full["ap50"]
    a, b = _checkpoint(tmp_path / "full"), _checkpoint(tmp_path / out)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][name]), (index, name)
    rows_full = read_jsonl(tmp_path / "full" / "metrics.jsonl")
    rows_resumed = read_jsonl(tmp_path / out / "metrics.jsonl")
    assert _without_time(rows_resumed) == _without_time(rows_full)
    assert [row["epoch"] for row in rows_resumed] == [1, 2]


def test_random_query_placement_moves_the_queries_and_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offsets = []
    real_forward = IADETR.forward

    def spy(self, targets, queries, target_padding=None, query_offsets=None):
        offsets.append(query_offsets)
        return real_forward(self, targets, queries, target_padding, query_offsets)

    monkeypatch.setattr(IADETR, "forward", spy)
    plain = run(_config(tmp_path, "plain", eval_every=10))
    assert offsets and all(o is None for o in offsets)  # the authors' top-left layout
    offsets.clear()
    moved = run(_config(tmp_path, "moved", random_query_placement=True))
    drawn = [o for o in offsets if o is not None]
    assert len(drawn) == moved["steps"] == plain["steps"]
    assert any(bool(o.any()) for o in drawn)
    a, b = _checkpoint(tmp_path / "plain"), _checkpoint(tmp_path / "moved")
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    monkeypatch.undo()
    _kill_at_call(monkeypatch, 4)
    with pytest.raises(KilledError):
        run(_config(tmp_path, "killed", random_query_placement=True))
    monkeypatch.undo()
    run(_config(tmp_path, "killed", random_query_placement=True, resume=str(tmp_path / "killed")))
    c = _checkpoint(tmp_path / "killed")
    for key in b["model"]:
        assert torch.equal(b["model"][key], c["model"][key]), key


def test_checkpoint_loads_weights_only_with_every_piece_of_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kill_at_call(monkeypatch, 2)
    with pytest.raises(KilledError):
        run(_config(tmp_path, "fp16", precision="fp16", checkpoint_every=1))
    path = tmp_path / "fp16" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    expected = {"model", "optimizer", "scaler", "epoch", "step", "batch", "rng", "generators"}
    assert expected | {"extra"} <= state.keys()
    assert (state["epoch"], state["step"], state["batch"]) == (0, 1, 1)
    assert {"torch", "python", "numpy"} <= state["rng"].keys()
    data_order = state["generators"]["data_order"]
    assert data_order.dtype == torch.uint8 and data_order.numel() > 0
    assert {"sums", "count", "skipped_steps", "minutes"} <= state["extra"]["progress"].keys()
    assert state["extra"]["model_config"]["dim"] == TINY["dim"]
    assert state["scaler"]["scale"] > 0
    scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    generator = torch.Generator()
    load_checkpoint(path, scaler=scaler, generators={"data_order": generator})
    assert scaler.get_scale() == state["scaler"]["scale"]
    assert torch.equal(generator.get_state(), data_order)


def test_init_weights_loads_weights_only_and_starts_a_fresh_schedule(tmp_path: Path) -> None:
    first = _config(tmp_path, "first", epochs=1)
    run(first)
    weights = _checkpoint(tmp_path / "first")["model"]
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in weights.items()}, tmp_path / "w.safetensors")
    for source in (tmp_path / "first" / "checkpoint.pt", tmp_path / "w.safetensors"):
        fresh = IADETR(DetrModelConfig(**TINY))
        load_model_weights(fresh, source)
        assert all(torch.equal(v, weights[k]) for k, v in fresh.state_dict().items())
    with pytest.raises(ValueError, match="do not fit"):
        load_model_weights(
            IADETR(DetrModelConfig(**{**TINY, "dim": 16})), tmp_path / "w.safetensors"
        )
    # lr 0: the weights stay the loaded ones, while step and optimizer state count from zero
    second = _config(
        tmp_path,
        "second",
        epochs=1,
        lr=0.0,
        lr_backbone=0.0,
        init_weights=str(tmp_path / "w.safetensors"),
    )
    assert run(second)["steps"] == 3
    state = _checkpoint(tmp_path / "second")
    assert all(torch.equal(v, weights[k]) for k, v in state["model"].items())
    assert {float(s["step"]) for s in state["optimizer"]["state"].values()} == {3.0}


def test_non_finite_loss_skips_the_step_and_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models: list[IADETR] = []
    before_bad_step: dict[str, torch.Tensor] = {}

    class Recorded(IADETR):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            models.append(self)

    class NaNOnLastCall(SetCriterion):
        calls = 0

        def forward(self, *args, **kwargs):
            losses = super().forward(*args, **kwargs)
            NaNOnLastCall.calls += 1
            if NaNOnLastCall.calls == 3:
                before_bad_step.update({k: v.clone() for k, v in models[0].state_dict().items()})
                losses["loss"] = losses["loss"] * float("nan")
            return losses

    monkeypatch.setattr(train_module, "IADETR", Recorded)
    monkeypatch.setattr(train_module, "SetCriterion", NaNOnLastCall)
    result = run(_config(tmp_path, "nan", epochs=1))
    assert result["steps"] == 3 and result["skipped_steps"] == 1
    rows = read_jsonl(tmp_path / "nan" / "metrics.jsonl")
    assert rows[-1]["skipped_steps"] == 1 and math.isfinite(rows[-1]["loss"])
    state = _checkpoint(tmp_path / "nan")
    for key, value in state["model"].items():
        assert torch.equal(value, before_bad_step[key]), key
    assert {float(s["step"]) for s in state["optimizer"]["state"].values()} == {2.0}
    assert json.loads((tmp_path / "nan" / "results.json").read_text())["skipped_steps"] == 1


def test_bf16_autocast_trains_with_float32_matching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, set[torch.dtype]] = {"criterion": set(), "matcher": set()}
    matcher_forward = HungarianMatcher.forward
    criterion_forward = SetCriterion.forward

    def spy_matcher(self, logits, boxes, targets):
        seen["matcher"].update({logits.dtype, boxes.dtype})
        return matcher_forward(self, logits, boxes, targets)

    def spy_criterion(self, logits, boxes, targets, **kwargs):
        seen["criterion"].update({logits.dtype, boxes.dtype})
        return criterion_forward(self, logits, boxes, targets, **kwargs)

    monkeypatch.setattr(HungarianMatcher, "forward", spy_matcher)
    monkeypatch.setattr(SetCriterion, "forward", spy_criterion)
    run(_config(tmp_path, "bf16", epochs=1, precision="bf16"))
    assert torch.bfloat16 in seen["criterion"]  # the model ran under autocast
    assert seen["matcher"] == {torch.float32}
    monkeypatch.undo()
    run(_config(tmp_path, "fp32", epochs=1))
    low = read_jsonl(tmp_path / "bf16" / "metrics.jsonl")[-1]
    full = read_jsonl(tmp_path / "fp32" / "metrics.jsonl")[-1]
    assert low["skipped_steps"] == 0 and math.isfinite(low["loss"])
    assert low["loss"] == pytest.approx(full["loss"], rel=0.05)
    fresh = IADETR(DetrModelConfig(**TINY)).state_dict()
    trained = _checkpoint(tmp_path / "bf16")["model"]
    assert any(not torch.equal(trained[k], fresh[k]) for k in fresh if fresh[k].is_floating_point())


def test_cli_resume_takes_a_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ["--train-episodes", "4", "--batch-size", "2", "--dim", "32", "--layers", "1"]
    common += ["--queries", "4", "--eval-episodes", "2", "--cache-dir", str(tmp_path / "cache")]
    common += ["--pretrain-steps", "0", "--quiet"]  # a display flag, not part of the recipe
    assert main(["detr", "train", "--out", str(out), "--epochs", "1", *common]) == 0
    assert main(["detr", "train", "--resume", str(out), "--epochs", "2", *common]) == 0
    assert json.loads((out / "results.json").read_text())["steps"] == 4
    assert json.loads((out / "config.json").read_text())["progress"] is False
    assert [row["epoch"] for row in read_jsonl(out / "metrics.jsonl")] == [1, 2]
    assert main(["detr", "train", "--resume", str(out), "--init-weights", "w.pt", *common]) == 2
    assert main(["detr", "train", "--resume", str(tmp_path / "nowhere"), *common]) == 2


def test_cli_resume_reads_the_recipe_from_the_run(tmp_path: Path) -> None:
    """`--resume RUN --epochs N` alone continues RUN with its own recipe (RUN/config.json)."""
    out = tmp_path / "run"
    recipe = ["--train-episodes", "4", "--batch-size", "2", "--dim", "32", "--layers", "1"]
    recipe += ["--queries", "4", "--eval-episodes", "2", "--cache-dir", str(tmp_path / "cache")]
    recipe += ["--pretrain-steps", "0", "--lr", "5e-4", "--kind", "misaligned"]
    assert main(["detr", "train", "--out", str(out), "--epochs", "1", *recipe]) == 0
    first = json.loads((out / "config.json").read_text())
    assert main(["detr", "train", "--resume", str(out), "--epochs", "2", "--threads", "1"]) == 0
    second = json.loads((out / "config.json").read_text())
    assert {k for k in first if first[k] != second[k]} == {"epochs", "resume"}
    assert second["model"]["kind"] == "misaligned" and second["lr"] == 5e-4
    assert json.loads((out / "results.json").read_text())["steps"] == 4
    # a flag that would change the recipe is refused before anything is written
    before = (out / "metrics.jsonl").read_text()
    assert main(["detr", "train", "--resume", str(out), "--epochs", "3", "--lr", "1e-3"]) == 2
    assert (out / "metrics.jsonl").read_text() == before
