"""``ia detr eval-json --metric coco``: pycocotools' full summary, against pycocotools' own
``COCOeval.stats`` computed directly on the JSON files."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from indirect_attention.cli import main
from indirect_attention.detection.metrics import STATS, score_coco_json


def _problem(seed: int, *, with_area: bool) -> tuple[dict, list[dict]]:
    """Ground truth with small, medium and large boxes (some crowd) on 640 x 480 images, and
    jittered hits, misses and false positives, with two draws."""
    rng = np.random.default_rng(seed)
    images, annotations, predictions = [], [], []
    for image_id in range(1, 16):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480})
        for _ in range(rng.integers(0, 5)):
            side = float(rng.choice([12.0, 50.0, 160.0])) * rng.uniform(0.8, 1.2)
            x, y = rng.uniform(0, 640 - side), rng.uniform(0, 480 - side)
            box = [x, y, side, side * rng.uniform(0.6, 1.0)]
            category = int(rng.choice([2, 5, 9]))
            annotation = {"id": len(annotations) + 1, "image_id": image_id, "bbox": box,
                          "category_id": category, "iscrowd": int(rng.random() < 0.05)}  # fmt: skip
            if with_area:
                annotation["area"] = box[2] * box[3] * 0.8  # a mask is smaller than its box
            annotations.append(annotation)
            for draw in (0, 1):
                for _ in range(rng.integers(0, 3)):
                    jitter = np.asarray(box) + rng.normal(0, 0.08 * side, size=4)
                    if jitter[2] > 1 and jitter[3] > 1:
                        predictions.append({"image_id": image_id, "category_id": category,
                                            "bbox": jitter.tolist(), "score": float(rng.random()),
                                            "draw": draw})  # fmt: skip
        for draw in (0, 1):
            x, y = rng.uniform(0, 500, size=2)
            predictions.append({"image_id": image_id, "category_id": int(rng.choice([2, 5, 9])),
                                "bbox": [x, y, 40.0, 30.0], "score": float(rng.random()),
                                "draw": draw})  # fmt: skip
    categories = [{"id": i, "name": n} for i, n in ((2, "cat"), (5, "dog"), (9, "owl"))]
    return {"images": images, "annotations": annotations, "categories": categories}, predictions


def _pycocotools_stats(gt: dict, predictions: list[dict], tmp_path: Path) -> np.ndarray:
    """COCOeval run on files, as its users do; a missing area is the box's."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = json.loads(json.dumps(gt))
    for annotation in gt["annotations"]:
        annotation.setdefault("area", annotation["bbox"][2] * annotation["bbox"][3])
    (tmp_path / "ref_gt.json").write_text(json.dumps(gt))
    (tmp_path / "ref_pred.json").write_text(json.dumps(predictions))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "ref_gt.json"))
        evaluator = COCOeval(coco, coco.loadRes(str(tmp_path / "ref_pred.json")), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize(("seed", "with_area"), [(0, True), (1, False)])
def test_summary_equals_pycocotools_stats(tmp_path: Path, seed: int, with_area: bool) -> None:
    gt, predictions = _problem(seed, with_area=with_area)
    gt_file, pred_file = tmp_path / "gt.json", tmp_path / "pred.json"
    gt_file.write_text(json.dumps(gt))
    pred_file.write_text(json.dumps(predictions))
    result = score_coco_json(gt_file, pred_file, metric="coco")
    per_draw = []
    for draw in (0, 1):
        mine = [p for p in predictions if p["draw"] == draw]
        per_draw.append(_pycocotools_stats(gt, mine, tmp_path))
        assert list(result["summary"]["per_draw"][draw].values()) == pytest.approx(per_draw[-1])
    assert list(result["summary"]["stats"]) == list(STATS)
    assert list(result["summary"]["stats"].values()) == pytest.approx(np.mean(per_draw, axis=0))
    assert result["ap50"] == pytest.approx(result["summary"]["stats"]["AP50"], abs=1e-9)
    assert all(-1 <= v <= 1 for v in result["summary"]["stats"].values())
    # One draw: the numbers and pycocotools' own printed table.
    pred_file.write_text(json.dumps([p for p in predictions if p["draw"] == 0]))
    out = tmp_path / "eval"
    argv = ["detr", "eval-json", "--gt", str(gt_file), "--pred", str(pred_file)]
    assert main([*argv, "--metric", "coco", "--out", str(out)]) == 0
    written = json.loads((out / "results.json").read_text())["summary"]
    assert list(written["stats"].values()) == pytest.approx(per_draw[0])
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all" in written["text"]
    assert written["text"].count("\n") == 11


def test_no_prediction_scores_zero_where_there_is_ground_truth(tmp_path: Path) -> None:
    gt, _ = _problem(2, with_area=True)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text("[]")
    stats = score_coco_json(tmp_path / "gt.json", tmp_path / "pred.json", metric="coco")
    assert set(stats["summary"]["stats"].values()) <= {0.0, -1.0}
    assert stats["summary"]["stats"]["AP"] == 0.0 and stats["summary"]["stats"]["AR100"] == 0.0
