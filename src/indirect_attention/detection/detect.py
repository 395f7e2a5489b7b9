"""One-shot detection with a trained IA-DETR on the user's own images (paper §6.2).

A target image and a query image (a picture of the kind of object to find) go in; scored boxes in
the target's original pixels come out. The images are prepared by :mod:`.preprocess` at the sizes
the model was trained at (``model.input_spec``) and read back by :func:`.predict.predict`; boxes
are clipped to the original image.

Example:
    >>> model = load_detector("runs/detr/checkpoint.pt")
    >>> found = detect(model, "street.jpg", "bicycle.png", threshold=0.5)
    >>> found.boxes.shape, found.scores.shape   # (K, 4) xyxy pixels of street.jpg, (K,)

**Output format.** :func:`detections_to_coco` writes rows of a COCO *results* file (what
pycocotools' ``COCO.loadRes`` and ``ia detr eval-json --pred`` read): ``image_id`` (int),
``category_id`` (int; every detection has the query's class, :data:`QUERY_CATEGORY_ID` unless
the caller names the class's id in its ground truth), ``bbox`` ``[x, y, w, h]`` in original
pixels, ``score``, and ``file_name`` (the target), which COCO tools ignore. Image ids number the
targets 1, 2, ... in order, or come from a COCO ground-truth file (:func:`coco_image_ids`).

Shapes:
    image tensors (3, H, W) float in [0, 1]; :class:`~.predict.Detections` boxes (K, 4) xyxy,
    scores (K,).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torchvision.ops import clip_boxes_to_image, nms

from .model import IADETR
from .predict import Detections, predict
from .preprocess import ImageLike, InputSpec, as_image, model_input

__all__ = [
    "QUERY_CATEGORY_ID",
    "coco_image_ids",
    "coco_results_text",
    "default_threshold",
    "detect",
    "detections_to_coco",
]

#: ``category_id`` of every detection when the query's class has no id of its own.
QUERY_CATEGORY_ID = 1


@torch.no_grad()
def detect(
    model: IADETR,
    target: ImageLike,
    query: ImageLike,
    *,
    threshold: float | None = None,
    max_detections: int = 100,
    nms_iou: float | None = None,
    input_spec: InputSpec | None = None,
) -> Detections:
    """Find instances of the query's class in ``target`` (paper §6.2).

    Args:
        model: A trained detector (put in eval mode for the call, then restored).
        target: Path, PIL image or (3, H, W) tensor (float in [0, 1] or uint8).
        query: Same kinds; any size (it is resized to the model's query square).
        threshold: Keep detections scoring at least this, in [0, 1]. None: the model's
            recommended ``score_threshold`` (recorded in its export), else 0.5.
        max_detections: Keep at most this many (the model proposes Q).
        nms_iou: Class-agnostic non-maximum suppression (``torchvision.ops.nms``): drop a box
            overlapping a better one with IoU above this, in [0, 1]. None: no suppression
            (DETR's set prediction needs none; it helps an under-trained model).
        input_spec: Input sizes; default ``model.input_spec`` (set by
            :func:`~.release.load_detector`).

    Returns:
        :class:`~.predict.Detections` on the CPU, boxes in the target's original pixels.

    Raises:
        ValueError: a bad threshold, image or size, or a model that records no input sizes.
    """
    if threshold is None:
        threshold = default_threshold(model)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if max_detections < 1:
        raise ValueError(f"max_detections must be >= 1, got {max_detections}")
    if nms_iou is not None and not 0.0 <= nms_iou <= 1.0:
        raise ValueError(f"nms_iou must lie in [0, 1], got {nms_iou}")
    spec = input_spec or model.input_spec
    if spec is None:
        raise ValueError(
            "the model records no input sizes (model.input_spec is None): load it with "
            "load_detector, or pass input_spec=InputSpec(target_size, query_size)"
        )
    device = next(model.parameters()).device
    target_image = as_image(target, name="target").to(device)
    query_image = as_image(query, name="query").to(device)
    batch = model_input([target_image], [query_image], spec, stride=model.backbone.stride)
    was_training = model.training
    model.eval()
    top_k = max_detections if nms_iou is None else model.config.num_queries
    [found] = predict(model, batch, top_k=top_k, threshold=threshold)
    model.train(was_training)
    found = replace(found, boxes=clip_boxes_to_image(found.boxes, found.image_size))
    if nms_iou is None:
        return found
    keep = nms(found.boxes, found.scores, nms_iou)[:max_detections]  # best first
    return replace(
        found, boxes=found.boxes[keep], scores=found.scores[keep], queries=found.queries[keep]
    )


def default_threshold(model: IADETR) -> float:
    """The model's recommended score threshold (``model.score_threshold``), else 0.5."""
    recommended = getattr(model, "score_threshold", None)
    return 0.5 if recommended is None else float(recommended)


def detections_to_coco(
    found: Detections, *, image_id: int, file_name: str, category_id: int = QUERY_CATEGORY_ID
) -> list[dict[str, Any]]:
    """COCO results rows (module docstring): ``image_id``, ``category_id``, ``bbox``
    [x, y, w, h] in original pixels, ``score`` and ``file_name``."""
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "score": score,
            "file_name": file_name,
        }
        for (x0, y0, x1, y1), score in zip(found.boxes.tolist(), found.scores.tolist(), strict=True)
    ]


def coco_results_text(rows: Sequence[dict[str, Any]]) -> str:
    """The text of a COCO results file holding ``rows`` (of :func:`detections_to_coco`): a JSON
    list with one detection per line, what ``ia detr detect --out`` and ``ia demo`` write."""
    if not rows:
        return "[]\n"
    lines = ",\n".join(f"  {json.dumps(row)}" for row in rows)
    return f"[\n{lines}\n]\n"


def coco_image_ids(gt_file: str | Path, targets: Sequence[str | Path]) -> list[int]:
    """The ``id`` of each target in a COCO ground-truth file, so that detections on these
    targets score against it (``ia detr eval-json``, pycocotools).

    A target matches the image whose ``file_name`` (relative to the data root, e.g.
    ``images/000001.png``) is the end of the target's path; failing that, the one image with
    the same file name.

    Args:
        gt_file: COCO instances JSON.
        targets: The target image paths.

    Raises:
        ValueError: a target matches no image or several (names the target and the file).
    """
    from .data.coco import load_coco_json

    images = load_coco_json(gt_file).get("images")
    if not isinstance(images, list):
        raise ValueError(f"{gt_file}: no 'images' list; expected a COCO instances JSON")
    entries = [(Path(str(im["file_name"])).parts, int(im["id"])) for im in images]
    ids = []
    for target in targets:
        parts = Path(target).parts
        found = [i for name, i in entries if name and parts[-len(name) :] == name]
        if not found:
            found = [i for name, i in entries if name and name[-1] == parts[-1]]
        if len(found) != 1:
            where = "no image" if not found else f"{len(found)} images"
            raise ValueError(f"target {target}: {where} of {gt_file} has this file name")
        ids.append(found[0])
    return ids
