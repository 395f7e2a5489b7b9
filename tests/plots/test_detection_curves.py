"""The detection learning curves read every run's validation rows and draw them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.image import imread

from indirect_attention.plots.detection_curves import draw_detection_curves, read_curves


def _run(root: Path, name: str, rows: list[dict]) -> None:
    (root / name).mkdir(parents=True)
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (root / name / "metrics.jsonl").write_text(text)


def test_curves_keep_validation_rows_in_step_order_per_kind_and_seed(tmp_path: Path) -> None:
    val = {"val_ap50": 0.5, "val_wrong": 0.2, "val_matching_auc": 0.7}
    _run(tmp_path, "ia-s0", [{"step": 20, **val}, {"step": 10, "loss": 1.0}, {"step": 5, **val}])
    _run(tmp_path, "ia-s1", [{"step": 7, **val, "val_matching_auc": None}])
    _run(tmp_path, "misaligned-s0", [{"step": 3, **val}])
    (tmp_path / "notes").mkdir()  # not a run
    curves = read_curves(tmp_path)
    assert sorted(curves) == ["ia", "misaligned"]
    assert [r["step"] for r in curves["ia"][0]] == [5, 20]
    assert [r["step"] for r in curves["ia"][1]] == [7]
    path = draw_detection_curves(tmp_path, tmp_path / "out" / "curves.png")
    assert imread(path).shape[0] > 100


def test_no_validation_row_is_an_error(tmp_path: Path) -> None:
    _run(tmp_path, "ia-s0", [{"step": 1, "loss": 2.0}])
    with pytest.raises(ValueError, match="no run with validation rows"):
        draw_detection_curves(tmp_path, tmp_path / "curves.png")
