"""Turn IA-DETR outputs into scored pixel boxes (paper §6.2).

The last layer's sigmoid scores rank the object queries; boxes go from normalised (cx, cy, w, h)
on the canvas to (x1, y1, x2, y2) pixels of the original image.

Shapes:
    logits (B, Q), boxes (B, Q, 4) -> list of B (scores (k,), boxes (k, 4)).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_convert

__all__ = ["PostProcess"]


class PostProcess:
    """Top-k scoring of the last decoder layer.

    Args:
        top_k: Detections kept per image (at most Q).
    """

    def __init__(self, top_k: int = 100) -> None:
        self.top_k = top_k

    @torch.no_grad()
    def __call__(
        self, logits: Tensor, boxes: Tensor, canvas_pixels: tuple[float, float]
    ) -> list[tuple[Tensor, Tensor]]:
        """Scores and xyxy boxes in pixels; ``canvas_pixels`` = (width, height) of the canvas in
        the original image's pixels (the canvas size divided by the resize factor)."""
        width, height = canvas_pixels
        scale = boxes.new_tensor([width, height, width, height])
        scores = logits.sigmoid()
        xyxy = box_convert(boxes, "cxcywh", "xyxy") * scale
        results = []
        for b in range(scores.shape[0]):
            k = min(self.top_k, scores.shape[1])
            top, index = scores[b].topk(k)
            results.append((top, xyxy[b, index]))
        return results
