"""AP50 for one-shot detection (paper §6.2, Tables 1-3): VOC, COCO (pycocotools), per-image AP.

In the one-shot setting a detection's class is the query's class, so standard per-class detection
AP applies unchanged: detections of class c in image i compete only with the ground truth of c in i.

* :func:`voc_ap50`: dataset-level AP50 per class with **all-point interpolation** (VOC2010+
  devkit) and **difficult objects ignored** (a detection matched to one is neither true nor false
  positive; they do not count in recall). Written from scratch. Boxes are continuous (no VOC
  "+1" pixel in the IoU); a match needs IoU > 0.5 as in the devkit.
* :func:`coco_ap50`: COCO AP at IoU 0.5 (101-point interpolation, at most 100 detections per image
  and class, crowd boxes ignored) through pycocotools.
* :func:`per_image_ap50`: **non-standard**, the IA-DETR authors' number: AP50 computed on each
  (image, class) alone with the query draws pooled (101-point interpolation, ``np.trapezoid``),
  then averaged over images. False positives never compete across images, so it is not
  comparable with VOC or COCO AP50; it exists only to compare with the paper's tables.

A class without (non-difficult) ground truth has no AP and is left out of ``per_class`` and of the
mean. :func:`score_coco_json` scores a COCO results file against a COCO ground-truth file.

:func:`coco_summary` (``ia detr eval-json --metric coco``): the twelve numbers
``COCOeval.summarize()`` prints, under the names of :data:`STATS`: AP averaged over IoU
0.50:0.95, AP at IoU 0.50 and 0.75, AP of small / medium / large objects, and the average recall
with at most 1, 10 and 100 detections per image, then by object size. pycocotools computes them on
the user's ground-truth file as it is: object sizes come from each annotation's ``area`` (COCO's
mask area; ``w * h`` of the box only where a file has no ``area``), crowd boxes are ignored,
``difficult`` flags are not read. A number pycocotools cannot compute (no ground truth of that
size) is -1, as in its own output.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data.coco import load_coco_json, read_coco
from .data.records import ImageRecord, xywh_to_xyxy, xyxy_to_xywh

__all__ = [
    "STATS",
    "Detection",
    "box_iou",
    "coco_ap50",
    "coco_eval",
    "coco_summary",
    "greedy_match",
    "mean_ap",
    "per_image_ap50",
    "score_coco_json",
    "voc_ap",
    "voc_ap50",
]


@dataclass(frozen=True)
class Detection:
    """One scored box: image, class (the query's class), ``(x1, y1, x2, y2)`` pixels, score, draw."""

    image_id: int | str
    category: str
    box: tuple[float, float, float, float]
    score: float
    draw: int = 0


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes, shape ``(N, M)``; empty boxes give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP: area under the monotone precision envelope (VOC2010+)."""
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _ground_truth(gt: Sequence[ImageRecord]) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """(image_id, class) -> (boxes (G, 4), difficult (G,)), crowd boxes counted as difficult."""
    grouped: dict[tuple, list] = defaultdict(list)
    for image in gt:
        for obj in image.objects:
            grouped[(image.image_id, obj.category)].append((obj.box, obj.difficult or obj.iscrowd))
    return {
        key: (
            np.asarray([b for b, _ in v], dtype=np.float64),
            np.asarray([d for _, d in v], dtype=bool),
        )
        for key, v in grouped.items()
    }


def greedy_match(
    dets: list[Detection], boxes: np.ndarray, difficult: np.ndarray, threshold: float
) -> list[int]:
    """Greedy matching in score order: 1 true positive, 0 false positive, -1 ignored (difficult)."""
    if len(boxes) == 0:
        return [0] * len(dets)
    taken = np.zeros(len(boxes), dtype=bool)
    out = []
    for ious in box_iou(np.asarray([d.box for d in dets]), boxes):
        j = int(np.argmax(ious))
        if ious[j] <= threshold:
            out.append(0)
        elif difficult[j]:
            out.append(-1)
        else:
            out.append(0 if taken[j] else 1)
            taken[j] = True
    return out


def voc_ap50(
    gt: Sequence[ImageRecord], detections: Sequence[Detection], *, iou_threshold: float = 0.5
) -> dict[str, float]:
    """Dataset-level VOC AP50 per class, difficult objects ignored (see the module docstring).

    Args:
        gt: ground-truth image records (difficult and crowd objects are ignored).
        detections: scored boxes; those on images absent from ``gt`` are false positives.
        iou_threshold: a match needs IoU strictly above this.

    Returns:
        Class name to AP50 in [0, 1], for every class with at least one non-difficult box.
    """
    truth = _ground_truth(gt)
    npos: dict[str, int] = defaultdict(int)
    for (_, category), (_, difficult) in truth.items():
        npos[category] += int((~difficult).sum())
    by_class: dict[str, list[Detection]] = defaultdict(list)
    for det in detections:
        by_class[det.category].append(det)
    results = {}
    for category in sorted(c for c, n in npos.items() if n > 0):
        dets = sorted(by_class.get(category, []), key=lambda d: -d.score)
        per_image: dict = defaultdict(list)
        for rank, det in enumerate(dets):
            per_image[det.image_id].append((rank, det))
        flags = np.zeros(len(dets), dtype=np.int64)
        for image_id, items in per_image.items():
            boxes, difficult = truth.get(
                (image_id, category), (np.zeros((0, 4)), np.zeros(0, bool))
            )
            for (rank, _), flag in zip(
                items,
                greedy_match([d for _, d in items], boxes, difficult, iou_threshold),
                strict=True,
            ):
                flags[rank] = flag
        kept = flags[flags >= 0]
        tp, fp = np.cumsum(kept == 1), np.cumsum(kept == 0)
        recall = tp / npos[category]
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        results[category] = voc_ap(recall, precision) if len(kept) else 0.0
    return results


def coco_ap50(gt: Sequence[ImageRecord], detections: Sequence[Detection]) -> dict[str, float]:
    """COCO AP50 per class through pycocotools (crowd boxes ignored; difficult flags not used)."""
    classes = sorted(
        {o.category for im in gt for o in im.objects} | {d.category for d in detections}
    )
    cat_ids = {name: k + 1 for k, name in enumerate(classes)}
    img_ids = {im.image_id: k + 1 for k, im in enumerate(gt)}
    if len(img_ids) != len(gt):
        raise ValueError(f"ground truth repeats image ids: {len(gt)} records, {len(img_ids)} ids")
    annotations = []
    for image in gt:
        for obj in image.objects:
            x, y, w, h = xyxy_to_xywh(obj.box)
            annotations.append({
                "id": len(annotations) + 1, "image_id": img_ids[image.image_id],
                "category_id": cat_ids[obj.category], "bbox": [x, y, w, h], "area": w * h,
                "iscrowd": int(obj.iscrowd),
            })  # fmt: skip
    results = []
    for det in detections:
        if det.image_id not in img_ids:
            raise ValueError(
                f"detection on image {det.image_id!r}, which is not in the ground truth"
            )
        results.append({
            "image_id": img_ids[det.image_id], "category_id": cat_ids[det.category],
            "bbox": list(xyxy_to_xywh(det.box)), "score": float(det.score),
        })  # fmt: skip
    with_gt = sorted({o.category for im in gt for o in im.objects if not o.iscrowd})
    if not results:
        return dict.fromkeys(with_gt, 0.0)
    document = {
        "images": [
            {"id": i, "width": im.width, "height": im.height}
            for im, i in zip(gt, img_ids.values(), strict=True)
        ],
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
    }
    evaluator = coco_eval(document, results)
    # precision is (T iou, R recall, K class, A area, M max-dets): IoU 0.5, area "all", 100 dets
    precision = evaluator.eval["precision"][0, :, :, 0, -1]
    out = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        values = precision[:, k]
        name = classes[cat_id - 1]
        if name in with_gt and (values > -1).any():
            out[name] = float(values[values > -1].mean())
    return out


def per_image_ap50(gt: Sequence[ImageRecord], detections: Sequence[Detection]) -> dict[str, float]:
    """The authors' non-standard AP50: mean over images of the AP50 of each (image, class).

    For each (image, class) with ground truth, each draw is matched on its own (a draw is one run
    of the detector with one query), the matches of all draws are pooled into one PR curve whose
    ground-truth count is boxes x draws, and AP uses 101-point interpolation of the precision
    envelope (``np.trapezoid``). Difficult and crowd boxes are removed, so detections on them are
    false positives, as in the authors' code.
    """
    truth = _ground_truth(gt)
    grouped: dict[tuple, list[Detection]] = defaultdict(list)
    for det in detections:
        grouped[(det.image_id, det.category)].append(det)
    per_class: dict[str, list[float]] = defaultdict(list)
    for key, (boxes, difficult) in truth.items():
        boxes = boxes[~difficult]
        if len(boxes) == 0:
            continue
        dets = grouped.get(key, [])
        if not dets:  # no detection: AP 0 (the envelope trick would otherwise give 0.5)
            per_class[key[1]].append(0.0)
            continue
        draws = sorted({d.draw for d in dets})
        scored = []
        for draw in draws:
            run = sorted((d for d in dets if d.draw == draw), key=lambda d: -d.score)
            flags = greedy_match(run, boxes, np.zeros(len(boxes), dtype=bool), 0.5)
            scored += [(d.score, f) for d, f in zip(run, flags, strict=True)]
        scored.sort(key=lambda item: -item[0])
        hits = np.asarray([f for _, f in scored], dtype=np.float64)
        tp = np.cumsum(hits)
        recall = tp / (len(boxes) * len(draws))
        precision = tp / np.arange(1, len(hits) + 1)
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[1.0], precision, [0.0]])
        mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
        grid = np.linspace(0, 1, 101)
        per_class[key[1]].append(float(np.trapezoid(np.interp(grid, mrec, mpre), grid)))
    return {c: float(np.mean(v)) for c, v in sorted(per_class.items())}


def mean_ap(per_class: dict[str, float]) -> float:
    """Mean over classes (NaN when there is none)."""
    return float(np.mean(list(per_class.values()))) if per_class else float("nan")


METRICS = {"voc": voc_ap50, "coco": coco_ap50, "per-image": per_image_ap50}


def _read_predictions(path: Path, names: dict[int, str], image_ids: set[int]) -> list[Detection]:
    data = load_coco_json(path)
    if not isinstance(data, list):
        raise ValueError(
            f"{path}: predictions must be a JSON list of objects, got {type(data).__name__}"
        )
    detections = []
    for k, pred in enumerate(data):
        where = f"{path} [{k}]"
        if not isinstance(pred, dict) or any(
            f not in pred for f in ("image_id", "category_id", "bbox", "score")
        ):
            raise ValueError(f"{where}: needs image_id, category_id, bbox and score, got {pred!r}")
        bbox = pred["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
        if int(pred["category_id"]) not in names:
            raise ValueError(
                f"{where}: category_id {pred['category_id']} is not in the ground truth"
            )
        if int(pred["image_id"]) not in image_ids:
            raise ValueError(f"{where}: image_id {pred['image_id']} is not in the ground truth")
        detections.append(
            Detection(
                image_id=int(pred["image_id"]),
                category=names[int(pred["category_id"])],
                box=xywh_to_xyxy(bbox),
                score=float(pred["score"]),
                draw=int(pred.get("draw", 0)),
            )
        )
    return detections


def score_coco_json(
    gt_file: str | Path, pred_file: str | Path, *, metric: str = "voc"
) -> dict[str, Any]:
    """Score COCO-format predictions against COCO-format ground truth.

    Predictions are a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` with
    ``category_id`` the query's class, optionally ``"draw"`` (the query draw, 0..4). With several
    draws, AP50 is computed per draw and reported as the mean, with ``ap50_std`` and ``per_draw``
    (the one-shot protocol's mean ± std); ``per-image`` pools the draws instead.

    Args:
        gt_file: COCO instances JSON (a ``difficult`` field per annotation is honoured by ``voc``).
        pred_file: COCO results JSON.
        metric: ``"voc"`` (all-point, difficult ignored), ``"coco"`` (pycocotools) or
            ``"per-image"`` (the authors' non-standard per-image AP50).

    Returns:
        ``{"ap50": float, "per_class": {name: ap50}, "metric": ..., "num_images": ...,
        "num_predictions": ...}`` plus ``ap50_std`` and ``per_draw`` when there are several draws;
        ``coco`` adds ``"summary"``: pycocotools' twelve numbers (:func:`coco_summary`; with
        several draws their mean, and ``per_draw``).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {sorted(METRICS)}")
    gt_path, pred_path = Path(gt_file), Path(pred_file)
    dataset = read_coco(gt_path, check_images=False)
    categories = load_coco_json(gt_path)["categories"]
    names = {int(c["id"]): str(c["name"]) for c in categories}
    detections = _read_predictions(pred_path, names, {int(im.image_id) for im in dataset.images})
    score = METRICS[metric]
    draws = sorted({d.draw for d in detections})
    result: dict[str, Any] = {"metric": metric}
    if metric == "per-image" or len(draws) <= 1:
        per_class = score(dataset.images, detections)
        result.update(ap50=mean_ap(per_class), per_class=per_class)
    else:
        runs = [score(dataset.images, [d for d in detections if d.draw == k]) for k in draws]
        means = [mean_ap(run) for run in runs]
        result.update(
            ap50=float(np.mean(means)),
            ap50_std=float(np.std(means)),
            per_draw=means,
            per_class={c: float(np.mean([run[c] for run in runs])) for c in runs[0]},
        )
    if metric == "coco":
        result["summary"] = _summary(load_coco_json(gt_path), load_coco_json(pred_path), draws)
    result.update(num_images=len(dataset.images), num_predictions=len(detections))
    return result


def _summary(gt: dict[str, Any], rows: list[dict[str, Any]], draws: list[int]) -> dict[str, Any]:
    """pycocotools' summary of the predictions, per draw and averaged over draws."""
    runs = [coco_summary(gt, [r for r in rows if int(r.get("draw", 0)) == k]) for k in draws or [0]]
    if len(runs) == 1:
        return runs[0]
    names = runs[0]["stats"]
    return {
        "stats": {name: float(np.mean([run["stats"][name] for run in runs])) for name in names},
        "per_draw": [run["stats"] for run in runs],
    }


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


def _coco_ground_truth(document: dict[str, Any]):  # -> pycocotools COCO
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


def _coco_results(gt, predictions: list[dict[str, Any]]):  # -> pycocotools COCO
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
        gt = _coco_ground_truth(gt_document)
        evaluator = COCOeval(gt, _coco_results(gt, predictions), iouType="bbox")
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
