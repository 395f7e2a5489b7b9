"""The Table 1 analogue: every model and seed is trained and scored once, runs side by side give
the table of runs one after the other, and the summary is the mean/std of the runs' own records."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from indirect_attention.detection.model import DetrModelConfig
from indirect_attention.detection.sources import EmojiSource
from indirect_attention.detection.table1 import Table1Config, run
from indirect_attention.detection.train import DetrTrainConfig

TINY = dict(dim=32, num_heads=2, num_layers=1, ffn_dim=64, num_queries=4, bias_hidden=16)


def _config(root: Path, jobs: int) -> Table1Config:
    recipe = DetrTrainConfig(
        model=DetrModelConfig(object_queries="anchors", **TINY),
        data=EmojiSource(train_episodes=4, scale=0.25, cache_dir=str(root.parent / "cache")),
        epochs=1,
        batch_size=2,
        eval_episodes=2,
        pretrain_steps=0,
        progress=False,
    )
    return Table1Config(
        out=str(root),
        seeds=2,
        kinds=("ia", "misaligned"),
        train=recipe,
        episodes=2,
        draws=1,
        jobs=jobs,
    )


def test_table_summarises_each_run_and_side_by_side_runs_agree(tmp_path: Path) -> None:
    serial = run(_config(tmp_path / "serial", jobs=1))
    parallel = run(_config(tmp_path / "parallel", jobs=2))
    for kind in ("ia", "misaligned"):
        for split in ("seen", "unseen"):
            runs = [
                json.loads((tmp_path / "serial" / f"{kind}-s{s}" / "results.json").read_text())
                for s in range(2)
            ]
            margins = [r[split]["ap50"]["mean"] - r[split]["wrong_query"]["mean"] for r in runs]
            summary = serial["models"][kind][split]["margin"]
            assert summary["mean"] == pytest.approx(np.mean(margins), abs=1e-12)
            assert summary["std"] == pytest.approx(np.std(margins), abs=1e-12)
    # the written tables agree (compared as written: a NaN score, e.g. a matching AUC with no
    # distractor hit, is null there and equal to itself)
    written = [
        json.loads((tmp_path / n / "results.json").read_text()) for n in ("serial", "parallel")
    ]
    assert written[0]["models"] == written[1]["models"] and parallel["seeds"] == serial["seeds"]
    assert "| ia |" in (tmp_path / "serial" / "table1.md").read_text()


def test_finished_runs_are_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = replace(_config(tmp_path / "table", jobs=1), kinds=("ia",), seeds=1)
    first = run(config)

    def fail(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr("indirect_attention.detection.table1.train", fail)
    again = run(config)["models"]
    assert json.dumps(again, sort_keys=True) == json.dumps(first["models"], sort_keys=True)
