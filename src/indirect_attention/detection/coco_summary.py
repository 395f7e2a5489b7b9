"""pycocotools' full COCO summary of a results file (``ia detr eval-json --metric coco``).

The twelve numbers ``COCOeval.summarize()`` prints, under the names of :data:`STATS`: AP averaged
over IoU 0.50:0.95, AP at IoU 0.50 and 0.75, AP of small / medium / large objects, and the
average recall with at most 1, 10 and 100 detections per image, then by object size. pycocotools
computes them on the user's ground-truth file as it is: object sizes come from each annotation's
``area`` (COCO's mask area; ``w * h`` of the box only where a file has no ``area``), crowd boxes
are ignored, ``difficult`` flags are not read. A number pycocotools cannot compute (no ground
truth of that size) is -1, as in its own output.
"""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

__all__ = ["STATS", "coco_eval", "coco_summary"]

#: Names of ``COCOeval.stats``, in its order.
STATS = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


def _ground_truth(document: dict[str, Any]):  # -> pycocotools COCO
    from pycocotools.coco import COCO

    dataset = copy.deepcopy(document)
    for annotation in dataset.get("annotations", []):
        _, _, w, h = annotation["bbox"]
        annotation.setdefault("area", float(w) * float(h))
        annotation.setdefault("iscrowd", 0)
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def _results(gt, predictions: list[dict[str, Any]]):  # -> pycocotools COCO
    from pycocotools.coco import COCO

    if predictions:
        return gt.loadRes(copy.deepcopy(predictions))
    empty = COCO()  # loadRes refuses an empty list; no detection still scores 0
    empty.dataset = {
        "images": gt.dataset["images"],
        "categories": gt.dataset["categories"],
        "annotations": [],
    }
    empty.createIndex()
    return empty


def coco_eval(gt_document: dict[str, Any], predictions: list[dict[str, Any]]):  # -> COCOeval
    """pycocotools' bbox evaluation of ``predictions`` (COCO results rows) on ``gt_document`` (a
    loaded COCO instances JSON), evaluated and accumulated, its printing silenced."""
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = _ground_truth(gt_document)
        evaluator = COCOeval(gt, _results(gt, predictions), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator


def coco_summary(gt_document: dict[str, Any], predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """Run pycocotools' bbox evaluation and return its summary.

    Args:
        gt_document: A COCO instances JSON, loaded (``images``, ``annotations``, ``categories``).
        predictions: COCO results rows (``image_id``, ``category_id``, ``bbox`` [x, y, w, h],
            ``score``), already checked against the ground truth.

    Returns:
        ``{"stats": {name: value for name in STATS}, "text": the printed summary}``.
    """
    evaluator = coco_eval(gt_document, predictions)
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()
    stats = {name: float(value) for name, value in zip(STATS, evaluator.stats, strict=True)}
    return {"stats": stats, "text": summary.getvalue().rstrip("\n")}
