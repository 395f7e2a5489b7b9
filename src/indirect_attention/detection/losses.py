"""The set loss of IA-DETR (paper §6.2): Hungarian matching, then focal + L1 + GIoU on matched
pairs, on every layer.

Matching (DETR): the cost of assigning prediction i to target j is the authors' (Deformable-DETR)
focal cost ``c_cls · (α(1-p)^γ(-log p) - (1-α)p^γ(-log(1-p)))`` + ``c_L1 · |b_i - b_j|_1`` +
``c_GIoU · (-GIoU(b_i, b_j))`` with costs 2 / 5 / 2, solved per image by
:func:`scipy.optimize.linear_sum_assignment`.

Loss weights follow the authors: focal 2, L1 5, GIoU 2, each summed over the batch and divided by
the number of ground-truth boxes (at least 1). Unmatched predictions are negatives of the focal
loss; an image without ground truth contributes only negatives. In data-parallel training the
caller passes ``num_boxes``, the global count divided by the number of processes
(:func:`~indirect_attention.training.distributed.mean_normaliser`). The losses and the matching
always run in float32 with autocast off, whatever precision produced the predictions.

Shapes:
    logits (Ly, B, Q) (one layer: (B, Q)), boxes (Ly, B, Q, 4) cxcywh; targets: list of B
    (K_b, 4) cxcywh.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss
from torchvision.ops import generalized_box_iou as _tv_generalized_box_iou

__all__ = ["HungarianMatcher", "SetCriterion", "generalized_box_iou", "matching_cost"]


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
        cost_class, cost_bbox, cost_giou: Weights of the focal, L1 and GIoU costs.
        alpha, gamma: Focal α and γ.

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


class SetCriterion(nn.Module):
    """Hungarian-matched set loss, summed over every decoder layer (auxiliary losses).

    Args:
        matcher: The assignment.
        weight_class, weight_bbox, weight_giou: Weights of the focal, L1 and GIoU losses.
        alpha, gamma: Focal α and γ.

    Returns (forward):
        A dict with ``loss`` (the weighted total) and the unweighted ``focal``, ``l1``, ``giou`` of
        the last layer (for logging), all scalars.
    """

    def __init__(
        self,
        matcher: HungarianMatcher,
        *,
        weight_class: float = 2.0,
        weight_bbox: float = 5.0,
        weight_giou: float = 2.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.matcher = matcher
        self.weights = (weight_class, weight_bbox, weight_giou)
        self.alpha, self.gamma = alpha, gamma

    def layer_losses(
        self,
        logits: Tensor,
        boxes: Tensor,
        targets: list[Tensor],
        *,
        num_boxes: float | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Unweighted (focal, L1, GIoU) of one layer (float32 inputs), each divided by
        ``num_boxes`` (default ``max(1, number of target boxes)``).

        Shapes:
            logits (B, Q), boxes (B, Q, 4), targets list of (K_b, 4)
        """
        matches = self.matcher(logits, boxes, targets)
        if num_boxes is None:
            num_boxes = max(1, sum(int(t.shape[0]) for t in targets))
        labels = torch.zeros_like(logits)
        matched_pred, matched_tgt = [], []
        for b, (rows, cols) in enumerate(matches):
            labels[b, rows] = 1.0
            matched_pred.append(boxes[b, rows])
            matched_tgt.append(targets[b][cols].to(boxes))
        focal = sigmoid_focal_loss(
            logits, labels, alpha=self.alpha, gamma=self.gamma, reduction="sum"
        )
        pred = torch.cat(matched_pred) if matched_pred else boxes.new_zeros(0, 4)
        tgt = torch.cat(matched_tgt) if matched_tgt else boxes.new_zeros(0, 4)
        l1 = (pred - tgt).abs().sum()
        giou = generalized_box_iou_loss(
            box_convert(pred, "cxcywh", "xyxy"),
            box_convert(tgt, "cxcywh", "xyxy"),
            reduction="sum",
            eps=1e-7,
        )
        if pred.shape[0] == 0:  # keep the graph connected to the box head
            l1 = l1 + boxes.sum() * 0.0
            giou = giou + boxes.sum() * 0.0
        return focal / num_boxes, l1 / num_boxes, giou / num_boxes

    def forward(
        self,
        logits: Tensor,
        boxes: Tensor,
        targets: list[Tensor],
        *,
        num_boxes: float | None = None,
    ) -> dict[str, Tensor]:
        """The total loss over all layers and the last layer's terms, computed in float32
        whatever the inputs' float dtype (``num_boxes`` as in :meth:`layer_losses`)."""
        wc, wb, wg = self.weights
        # Focal and GIoU lose their meaning in bf16/fp16: upcast and keep autocast away.
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits, boxes = logits.float(), boxes.float()
            targets = [t.float() for t in targets]
            total = logits.new_zeros(())
            for layer in range(logits.shape[0]):
                focal, l1, giou = self.layer_losses(
                    logits[layer], boxes[layer], targets, num_boxes=num_boxes
                )
                total = total + wc * focal + wb * l1 + wg * giou
        return {"loss": total, "focal": focal.detach(), "l1": l1.detach(), "giou": giou.detach()}
