"""One-shot detection with a trained IA-DETR on the user's own images (paper §6.2).

A target image and a query image (a picture of the kind of object to find) go in; scored boxes in
the target's original pixels come out. The images are prepared by :mod:`.preprocess` at the sizes
the model was trained at (``model.input_spec``) and read back by :func:`.predict.predict`; boxes
are clipped to the original image.

Example:
    >>> model = load_detector("runs/detr/checkpoint.pt")
    >>> found = detect(model, "street.jpg", "bicycle.png", threshold=0.5)
    >>> found.boxes.shape, found.scores.shape   # (K, 4) xyxy pixels of street.jpg, (K,)

Shapes:
    image tensors (3, H, W) float in [0, 1]; :class:`~.predict.Detections` boxes (K, 4) xyxy,
    scores (K,).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torchvision.ops import clip_boxes_to_image

from .model import IADETR
from .predict import Detections, predict
from .preprocess import ImageLike, InputSpec, as_image, model_input

__all__ = ["detect", "detections_to_coco"]


@torch.no_grad()
def detect(
    model: IADETR,
    target: ImageLike,
    query: ImageLike,
    *,
    threshold: float = 0.5,
    max_detections: int = 100,
    input_spec: InputSpec | None = None,
) -> Detections:
    """Find instances of the query's class in ``target`` (paper §6.2).

    Args:
        model: A trained detector (put in eval mode for the call, then restored).
        target: Path, PIL image or (3, H, W) tensor (float in [0, 1] or uint8).
        query: Same kinds; any size (it is resized to the model's query square).
        threshold: Keep detections scoring at least this, in [0, 1].
        max_detections: Keep at most this many (the model proposes Q).
        input_spec: Input sizes; default ``model.input_spec`` (set by
            :func:`~.release.load_detector`).

    Returns:
        :class:`~.predict.Detections` on the CPU, boxes in the target's original pixels.

    Raises:
        ValueError: a bad threshold, image or size, or a model that records no input sizes.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if max_detections < 1:
        raise ValueError(f"max_detections must be >= 1, got {max_detections}")
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
    [found] = predict(model, batch, top_k=max_detections, threshold=threshold)
    model.train(was_training)
    return replace(found, boxes=clip_boxes_to_image(found.boxes, found.image_size))


def detections_to_coco(
    found: Detections, *, image_id: int, file_name: str, category_id: int | str = "query"
) -> list[dict[str, Any]]:
    """COCO results rows: ``image_id``, ``file_name``, ``category_id``, ``bbox`` [x, y, w, h]
    in original pixels and ``score``."""
    rows = []
    for box, score in zip(found.boxes.tolist(), found.scores.tolist(), strict=True):
        x0, y0, x1, y1 = box
        rows.append(
            {
                "image_id": image_id,
                "file_name": file_name,
                "category_id": category_id,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "score": score,
            }
        )
    return rows
