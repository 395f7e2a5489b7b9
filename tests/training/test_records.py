"""Run directories: atomic writes, crash-tolerant metrics, plain JSON."""

from __future__ import annotations

import json
import os

import pytest
import torch

from indirect_attention.training import RunDir, atomic_write_text, read_jsonl
from indirect_attention.training.records import to_jsonable


def test_run_dir_writes_the_three_records(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config({"lr": 1e-3, "sizes": (1, 2), "path": tmp_path})
    run.log_metrics({"epoch": 0, "loss": torch.tensor(0.5)})
    run.log_metrics({"epoch": 1, "loss": float("nan")})
    run.write_results({"acc": 0.9})
    assert json.loads(run.config_path.read_text()) == {
        "lr": 1e-3,
        "sizes": [1, 2],
        "path": str(tmp_path),
    }
    assert run.read_metrics() == [{"epoch": 0, "loss": 0.5}, {"epoch": 1, "loss": None}]
    assert run.read_results() == {"acc": 0.9}


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    path = atomic_write_text(tmp_path / "a.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left


def test_truncated_last_metrics_line_is_ignored_but_corruption_inside_is_not(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_jsonl(path)


def test_to_jsonable_handles_numpy_like_scalars():
    assert to_jsonable({"x": torch.tensor(3), "y": [float("inf"), 1.5]}) == {
        "x": 3,
        "y": [None, 1.5],
    }
