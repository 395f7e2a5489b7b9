"""Hungarian matching of predictions to ground-truth boxes (DETR; paper §6.2).

The cost of assigning prediction i to target j is the authors' (Deformable-DETR) focal cost
``c_cls · (α(1-p)^γ(-log p) - (1-α)p^γ(-log(1-p)))`` + ``c_L1 · |b_i - b_j|_1`` +
``c_GIoU · (-GIoU(b_i, b_j))`` with costs 2 / 5 / 2, solved per image by
:func:`scipy.optimize.linear_sum_assignment`.

Shapes:
    logits (B, Q), boxes (B, Q, 4) cxcywh; targets: list of B tensors (K_b, 4) cxcywh.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torchvision.ops import box_convert
from torchvision.ops import generalized_box_iou as _tv_generalized_box_iou

__all__ = ["HungarianMatcher", "generalized_box_iou", "matching_cost"]


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise GIoU of xyxy boxes (torchvision), with degenerate pairs (0/0) set to -1 - 0 = 0.

    Shapes:
        boxes1 (N, 4), boxes2 (M, 4) -> (N, M)
    """
    return torch.nan_to_num(_tv_generalized_box_iou(boxes1, boxes2), nan=0.0)


def matching_cost(
    logits: Tensor,
    boxes: Tensor,
    target_boxes: Tensor,
    *,
    cost_class: float = 2.0,
    cost_bbox: float = 5.0,
    cost_giou: float = 2.0,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> Tensor:
    """The (Q, K) cost matrix of one image.

    Shapes:
        logits (Q,), boxes (Q, 4) cxcywh, target_boxes (K, 4) cxcywh -> (Q, K)
    """
    prob = logits.sigmoid()[:, None]  # (Q, 1)
    positive = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
    negative = (1 - alpha) * prob**gamma * -(1 - prob + 1e-8).log()
    cls = (positive - negative).expand(-1, target_boxes.shape[0])
    l1 = torch.cdist(boxes, target_boxes, p=1)
    giou = generalized_box_iou(
        box_convert(boxes, "cxcywh", "xyxy"), box_convert(target_boxes, "cxcywh", "xyxy")
    )
    return cost_class * cls + cost_bbox * l1 - cost_giou * giou


class HungarianMatcher(nn.Module):
    """One-to-one assignment minimising :func:`matching_cost` (no gradient).

    Args:
        cost_class: Weight of the focal classification cost.
        cost_bbox: Weight of the L1 box cost.
        cost_giou: Weight of the GIoU cost.
        alpha: Focal α.
        gamma: Focal γ.

    Returns (forward):
        A list of B pairs ``(prediction indices, target indices)``, int64, of length min(Q, K_b).
    """

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        *,
        alpha: float = 0.25,
        gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.costs = {"cost_class": cost_class, "cost_bbox": cost_bbox, "cost_giou": cost_giou}
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def forward(
        self, logits: Tensor, boxes: Tensor, targets: list[Tensor]
    ) -> list[tuple[Tensor, Tensor]]:
        """Match each image's predictions to its targets (costs in float32, autocast off)."""
        matches = []
        for b, target_boxes in enumerate(targets):
            if target_boxes.shape[0] == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                matches.append((empty, empty.clone()))
                continue
            with torch.autocast(device_type=boxes.device.type, enabled=False):
                cost = matching_cost(
                    logits[b].float(),
                    boxes[b].float(),
                    target_boxes.to(device=boxes.device, dtype=torch.float32),
                    alpha=self.alpha,
                    gamma=self.gamma,
                    **self.costs,
                )
            rows, cols = linear_sum_assignment(torch.nan_to_num(cost, nan=1e6).cpu().numpy())
            matches.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return matches
