"""AP50: VOC all-point against hand values and a brute-force reference, COCO against pycocotools
run directly on JSON files, and the authors' per-image AP50."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from indirect_attention.detection.data.records import BoxRecord, ImageRecord
from indirect_attention.detection.metrics import (
    Detection,
    box_iou,
    coco_ap50,
    mean_ap,
    per_image_ap50,
    score_coco_json,
    voc_ap,
    voc_ap50,
)


def test_box_iou_by_hand() -> None:
    iou = box_iou(
        np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 5]])
    )
    assert iou == pytest.approx(np.array([[50 / 150, 0.0, 0.0]]))


def test_voc_ap_by_hand() -> None:
    # recall 0.5 at precision 1, then recall 1 at precision 2/3: 0.5 * 1 + 0.5 * 2/3
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(5 / 6)
    assert voc_ap(np.array([]), np.array([])) == 0.0


def test_voc_difficult_is_ignored() -> None:
    gt = [
        ImageRecord(
            1,
            "",
            100,
            100,
            (BoxRecord((0, 0, 10, 10), "cat"), BoxRecord((50, 50, 70, 70), "cat", difficult=True)),
        )
    ]
    dets = [
        Detection(1, "cat", (50, 50, 70, 70), 0.9),  # on the difficult box: ignored
        Detection(1, "cat", (0, 0, 10, 10), 0.8),  # true positive
        Detection(1, "cat", (30, 30, 40, 40), 0.7),  # false positive
        Detection(1, "cat", (0, 0, 10, 10), 0.6),  # duplicate: false positive
    ]
    assert voc_ap50(gt, dets) == {"cat": pytest.approx(1.0)}
    # The same detections with the box no longer difficult: TP at rank 1 and 2 of 4 -> AP 1.0 too,
    # but with the difficult box dropped from the ground truth the first detection is a FP.
    gt_plain = [ImageRecord(1, "", 100, 100, gt[0].objects[:1])]
    assert voc_ap50(gt_plain, dets) == {"cat": pytest.approx(0.5)}


def _brute_force_voc_ap50(gt: list[ImageRecord], dets: list[Detection], category: str) -> float:
    """Reference: match in score order with a plain loop, then integrate the interpolated PR curve
    over every recall level reached (max precision at recall >= r)."""

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union

    truth = {im.image_id: [o for o in im.objects if o.category == category] for im in gt}
    npos = sum(1 for objs in truth.values() for o in objs if not o.difficult)
    used = set()
    outcomes = []
    for det in sorted((d for d in dets if d.category == category), key=lambda d: -d.score):
        objs = truth.get(det.image_id, [])
        best, best_j = 0.0, None
        for j, obj in enumerate(objs):
            value = iou(det.box, obj.box)
            if value > best:
                best, best_j = value, j
        if best > 0.5 and objs[best_j].difficult:
            continue
        if best > 0.5 and (det.image_id, best_j) not in used:
            used.add((det.image_id, best_j))
            outcomes.append(True)
        else:
            outcomes.append(False)
    points = []
    for k in range(1, len(outcomes) + 1):
        tp = sum(outcomes[:k])
        points.append((tp / npos, tp / k))
    ap, previous = 0.0, 0.0
    for r in sorted({r for r, _ in points}):
        ap += (r - previous) * max(p for rr, p in points if rr >= r)
        previous = r
    return ap


def _random_problem(seed: int, n_images: int = 12):
    rng = np.random.default_rng(seed)
    gt, dets = [], []
    for i in range(n_images):
        objects = []
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 150, size=2)
            w, h = rng.uniform(10, 50, size=2)
            objects.append(
                BoxRecord(
                    (x, y, x + w, y + h),
                    str(rng.choice(["a", "b"])),
                    difficult=bool(rng.random() < 0.15),
                )
            )
        gt.append(ImageRecord(i, f"{i}.png", 200, 200, tuple(objects)))
        for obj in objects:
            for _ in range(rng.integers(0, 3)):  # jittered hits, some too far to count
                box = tuple(float(v) for v in np.asarray(obj.box) + rng.normal(0, 6, size=4))
                if box[2] > box[0] and box[3] > box[1]:
                    dets.append(Detection(i, obj.category, box, float(rng.random())))
        for _ in range(rng.integers(0, 3)):  # pure false positives
            x, y = rng.uniform(0, 150, size=2)
            dets.append(
                Detection(
                    i, str(rng.choice(["a", "b"])), (x, y, x + 30, y + 30), float(rng.random())
                )
            )
    return gt, dets


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_voc_ap50_matches_brute_force(seed: int) -> None:
    gt, dets = _random_problem(seed)
    result = voc_ap50(gt, dets)
    assert set(result) == {"a", "b"}
    for category, value in result.items():
        assert value == pytest.approx(_brute_force_voc_ap50(gt, dets, category), abs=1e-12)


def _write_coco(tmp_path: Path, gt: list[ImageRecord], dets: list[Detection]) -> tuple[Path, Path]:
    cats = {"a": 3, "b": 7}
    anns = []
    for im in gt:
        for o in im.objects:
            x1, y1, x2, y2 = o.box
            anns.append({"id": len(anns) + 1, "image_id": im.image_id + 1, "category_id": cats[o.category],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})  # fmt: skip
    document = {
        "images": [
            {"id": im.image_id + 1, "file_name": im.file_name, "width": 200, "height": 200}
            for im in gt
        ],
        "annotations": anns,
        "categories": [{"id": i, "name": n} for n, i in cats.items()],
    }
    preds = [{"image_id": d.image_id + 1, "category_id": cats[d.category],
              "bbox": [d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]], "score": d.score} for d in dets]  # fmt: skip
    gt_file, pred_file = tmp_path / "gt.json", tmp_path / "pred.json"
    gt_file.write_text(json.dumps(document))
    pred_file.write_text(json.dumps(preds))
    return gt_file, pred_file


def _pycocotools_ap50(gt_file: Path, pred_file: Path, cat_ids: list[int] | None = None) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_file))
        evaluator = COCOeval(coco, coco.loadRes(str(pred_file)), "bbox")
        if cat_ids is not None:
            evaluator.params.catIds = cat_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[1])


@pytest.mark.parametrize("seed", [0, 5])
def test_coco_ap50_matches_pycocotools_on_json(tmp_path: Path, seed: int) -> None:
    gt, dets = _random_problem(seed)
    gt = [ImageRecord(im.image_id, im.file_name, im.width, im.height,
                      tuple(BoxRecord(o.box, o.category) for o in im.objects)) for im in gt]  # fmt: skip
    gt_file, pred_file = _write_coco(tmp_path, gt, dets)
    result = score_coco_json(gt_file, pred_file, metric="coco")
    assert result["ap50"] == pytest.approx(_pycocotools_ap50(gt_file, pred_file), abs=1e-9)
    assert result["per_class"]["a"] == pytest.approx(
        _pycocotools_ap50(gt_file, pred_file, [3]), abs=1e-9
    )
    assert result["per_class"]["b"] == pytest.approx(
        _pycocotools_ap50(gt_file, pred_file, [7]), abs=1e-9
    )
    direct = coco_ap50(gt, dets)
    assert mean_ap(direct) == pytest.approx(result["ap50"], abs=1e-9)
    voc = score_coco_json(gt_file, pred_file, metric="voc")
    assert voc["per_class"] == pytest.approx(voc_ap50(gt, dets))
    assert result["num_predictions"] == len(dets) and result["num_images"] == len(gt)


def test_perfect_and_empty_predictions() -> None:
    gt = [ImageRecord(1, "", 50, 50, (BoxRecord((1, 1, 20, 20), "x"),))]
    perfect = [Detection(1, "x", (1, 1, 20, 20), 0.9)]
    assert voc_ap50(gt, perfect) == {"x": 1.0}
    assert coco_ap50(gt, perfect)["x"] == pytest.approx(1.0)
    assert voc_ap50(gt, []) == {"x": 0.0} and coco_ap50(gt, []) == {"x": 0.0}


def test_per_image_ap50_is_a_mean_over_images() -> None:
    gt = [
        ImageRecord(
            1, "", 100, 100, (BoxRecord((0, 0, 10, 10), "x"), BoxRecord((50, 50, 60, 60), "x"))
        ),
        ImageRecord(2, "", 100, 100, (BoxRecord((0, 0, 10, 10), "x"),)),
    ]
    dets = [
        Detection(1, "x", (80, 80, 90, 90), 0.9),  # FP first
        Detection(1, "x", (0, 0, 10, 10), 0.8),
        Detection(1, "x", (50, 50, 60, 60), 0.7),
        Detection(2, "x", (0, 0, 10, 10), 0.1),  # a low score is harmless on its own image
    ]
    # image 1: envelope 2/3 over the whole recall range; image 2: 1. 101-point trapezoid rule.
    value = per_image_ap50(gt, dets)["x"]
    assert value == pytest.approx((2 / 3 + 1) / 2, abs=0.01)
    # dataset-level VOC AP differs: the low-scored hit of image 2 ranks behind the FP of image 1
    # hand: FP, TP, TP, TP over 3 boxes -> precision 3/4 reaches recall 1, so AP = 3/4
    assert voc_ap50(gt, dets)["x"] == pytest.approx(3 / 4)
    # draws are matched separately and pooled: a second perfect draw on image 2 keeps AP 1 there
    two = [*dets, Detection(2, "x", (0, 0, 10, 10), 0.5, draw=1)]
    assert per_image_ap50(gt, two)["x"] == pytest.approx(value, abs=1e-9)
    assert per_image_ap50(gt, [])["x"] == 0.0


def test_score_json_draws_and_errors(tmp_path: Path) -> None:
    gt = [ImageRecord(0, "0.png", 200, 200, (BoxRecord((10, 10, 40, 40), "a"),))]
    gt_file, pred_file = _write_coco(tmp_path, gt, [])
    preds = [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 30], "score": 0.9, "draw": 0},
             {"image_id": 1, "category_id": 3, "bbox": [100, 100, 30, 30], "score": 0.9, "draw": 1}]  # fmt: skip
    pred_file.write_text(json.dumps(preds))
    result = score_coco_json(gt_file, pred_file, metric="voc")
    assert result["per_draw"] == [1.0, 0.0] and result["ap50"] == 0.5 and result["ap50_std"] == 0.5
    pred_file.write_text(json.dumps([{"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]}]))
    with pytest.raises(
        ValueError, match=r"pred\.json \[0\]: needs image_id, category_id, bbox and score"
    ):
        score_coco_json(gt_file, pred_file)
    pred_file.write_text(
        json.dumps([{"image_id": 9, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 1}])
    )
    with pytest.raises(ValueError, match=r"image_id 9 is not in the ground truth"):
        score_coco_json(gt_file, pred_file)
    pred_file.write_text("[{")
    with pytest.raises(ValueError, match=r"pred\.json: broken JSON"):
        score_coco_json(gt_file, pred_file)
    with pytest.raises(ValueError, match="unknown metric"):
        score_coco_json(gt_file, pred_file, metric="f1")
