"""The one path from IA-DETR's output to scored boxes in original pixels (paper §6.2).

The last decoder layer's sigmoid scores rank the Q object queries; boxes go from (cx, cy, w, h)
normalised by the padded canvas to (x1, y1, x2, y2) in the original target's pixels (canvas size
divided by the per-axis resize factors of :class:`~.preprocess.ModelInput`). Evaluation, detect,
the drawings and the reproduction all read the model through :func:`predict`.

Shapes:
    :class:`Detections` boxes (K, 4) xyxy, scores (K,), queries (K,), K <= Q.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import box_convert

from .preprocess import ModelInput

__all__ = ["Detections", "model_output", "predict"]


@dataclass
class Detections:
    """Detections of the query's class in one target, best first.

    Attributes:
        boxes: (K, 4) xyxy in the target's original pixels (not clipped to the image).
        scores: (K,) sigmoid scores in [0, 1], descending.
        queries: (K,) long, the object query each detection comes from.
        image_size: (height, width) of the original target.
    """

    boxes: Tensor
    scores: Tensor
    queries: Tensor
    image_size: tuple[int, int]


def model_output(model: nn.Module, batch: ModelInput) -> Any:
    """``model`` on ``batch`` (moved to the model's device): its :class:`~.model.DetrOutput`."""
    device = next(model.parameters()).device
    padding = batch.target_padding
    return model(
        batch.targets.to(device),
        batch.queries.to(device),
        None if padding is None else padding.to(device),
        batch.query_offsets,
    )


@torch.no_grad()
def predict(
    model: nn.Module, batch: ModelInput, *, top_k: int = 100, threshold: float = 0.0
) -> list[Detections]:
    """Run ``model`` on ``batch`` and keep, per target, the ``top_k`` best boxes scoring at least
    ``threshold``; the caller sets train or eval mode.

    Args:
        model: An :class:`~.model.IADETR` (inputs follow its device).
        batch: Targets, queries and the factors that map boxes back (:func:`.model_input`).
        top_k: Detections kept per target (at most Q).
        threshold: Minimum score.

    Returns:
        B :class:`Detections` on the CPU, float32.
    """
    output = model_output(model, batch)
    scores = output.logits[-1].float().sigmoid().cpu()  # (B, Q)
    height, width = batch.targets.shape[-2:]
    canvas = torch.tensor([width, height, width, height], dtype=torch.float32)
    factors = batch.factors.repeat(1, 2)[:, None]  # (B, 1, 4) as (x, y, x, y)
    xyxy = box_convert(output.boxes[-1].float().cpu(), "cxcywh", "xyxy") * canvas / factors
    found = []
    for b, size in enumerate(batch.image_sizes):
        top, index = scores[b].topk(min(top_k, scores.shape[1]))
        keep = top >= threshold
        found.append(Detections(xyxy[b, index[keep]], top[keep], index[keep], size))
    return found
