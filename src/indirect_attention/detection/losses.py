"""The set loss of IA-DETR (paper §6.2): focal + L1 + GIoU on matched pairs, on every layer.

Weights follow the authors: focal 2, L1 5, GIoU 2, each summed over the batch and divided by the
number of ground-truth boxes (at least 1). Unmatched predictions are negatives of the focal loss;
an image without ground truth contributes only negatives. In data-parallel training the caller
passes ``num_boxes``, the global count divided by the number of processes
(:func:`~indirect_attention.training.distributed.mean_normaliser`). The losses and the matching
always run in float32 with autocast off, whatever precision produced the predictions.

Shapes:
    logits (Ly, B, Q), boxes (Ly, B, Q, 4) cxcywh; targets: list of B (K_b, 4) cxcywh.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss

from .matcher import HungarianMatcher

__all__ = ["SetCriterion"]


class SetCriterion(nn.Module):
    """Hungarian-matched set loss, summed over every decoder layer (auxiliary losses).

    Args:
        matcher: The assignment.
        weight_class: Focal loss weight.
        weight_bbox: L1 weight.
        weight_giou: GIoU weight.
        alpha: Focal α.
        gamma: Focal γ.

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
        """Unweighted (focal, L1, GIoU) of one layer, each normalised by the box count.

        Args:
            logits: Score logits (float32).
            boxes: Predicted boxes (float32).
            targets: Ground truth per image.
            num_boxes: The normaliser; default ``max(1, number of target boxes)``.

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
        """The total loss over all layers and the last layer's terms, computed in float32.

        Args:
            logits: Score logits of every layer (any float dtype).
            boxes: Boxes of every layer (any float dtype).
            targets: Ground truth per image.
            num_boxes: The normaliser of every term; default ``max(1, number of target boxes)``.

        Shapes:
            logits (Ly, B, Q), boxes (Ly, B, Q, 4), targets list of B (K_b, 4)
        """
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
        return {
            "loss": total,
            "focal": focal.detach(),
            "l1": l1.detach(),
            "giou": giou.detach(),
        }
