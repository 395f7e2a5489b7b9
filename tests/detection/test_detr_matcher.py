"""Hungarian matcher against brute force; set loss finite on empty targets and degenerate boxes."""

from __future__ import annotations

import itertools

import pytest
import torch

from indirect_attention.detection.losses import HungarianMatcher, SetCriterion, generalized_box_iou


def _cost(logit: float, box: torch.Tensor, target: torch.Tensor) -> float:
    """The matching cost of one pair, written out directly (focal 2, L1 5, GIoU 2)."""
    p = torch.sigmoid(torch.tensor(logit, dtype=torch.float64))
    pos = 0.25 * (1 - p) ** 2 * -torch.log(p + 1e-8)
    neg = 0.75 * p**2 * -torch.log(1 - p + 1e-8)

    def xyxy(b: torch.Tensor) -> torch.Tensor:
        return torch.stack([b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2])

    a, t = xyxy(box.double()), xyxy(target.double())
    inter = (torch.min(a[2], t[2]) - torch.max(a[0], t[0])).clamp(min=0) * (
        torch.min(a[3], t[3]) - torch.max(a[1], t[1])
    ).clamp(min=0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
    hull = (torch.max(a[2], t[2]) - torch.min(a[0], t[0])) * (
        torch.max(a[3], t[3]) - torch.min(a[1], t[1])
    )
    giou = inter / union - (hull - union) / hull
    l1 = (box.double() - target.double()).abs().sum()
    return float(2 * (pos - neg) + 5 * l1 - 2 * giou)


@pytest.mark.parametrize("num_queries,num_targets", [(3, 1), (4, 2), (5, 3), (3, 3), (2, 4)])
def test_matcher_equals_brute_force(num_queries: int, num_targets: int) -> None:
    for trial in range(5):
        g = torch.Generator().manual_seed(100 * num_queries + 10 * num_targets + trial)
        logits = torch.randn(1, num_queries, generator=g) * 2
        boxes = torch.rand(1, num_queries, 4, generator=g) * 0.4 + 0.2
        targets = [torch.rand(num_targets, 4, generator=g) * 0.4 + 0.2]
        rows, cols = HungarianMatcher()(logits, boxes, targets)[0]
        cost = [
            [_cost(float(logits[0, i]), boxes[0, i], targets[0][j]) for j in range(num_targets)]
            for i in range(num_queries)
        ]
        got = sum(cost[int(i)][int(j)] for i, j in zip(rows, cols, strict=True))
        assert len(rows) == min(num_queries, num_targets)
        if num_targets <= num_queries:  # every target gets a distinct prediction
            best = min(
                sum(cost[p][j] for j, p in enumerate(perm))
                for perm in itertools.permutations(range(num_queries), num_targets)
            )
        else:  # every prediction gets a distinct target
            best = min(
                sum(cost[i][t] for i, t in enumerate(perm))
                for perm in itertools.permutations(range(num_targets), num_queries)
            )
        assert got == pytest.approx(best, abs=1e-4)


def test_generalized_box_iou_degenerate_is_finite() -> None:
    point = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    box = torch.tensor([[0.2, 0.2, 0.6, 0.6], [0.5, 0.5, 0.5, 0.5]])
    assert torch.isfinite(generalized_box_iou(point, box)).all()


def test_set_loss_finite_with_empty_and_degenerate_targets() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 6, generator=g, requires_grad=True)
    raw = torch.randn(3, 2, 6, 4, generator=g, requires_grad=True)
    boxes = torch.sigmoid(raw)
    targets = [
        torch.zeros(0, 4),  # no ground truth
        torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.3, 0.3, 0.2, 0.0]]),  # zero-area boxes
    ]
    losses = SetCriterion(HungarianMatcher())(logits, boxes, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(raw.grad).all()
    empty = SetCriterion(HungarianMatcher())(logits, boxes, [torch.zeros(0, 4)] * 2)
    assert torch.isfinite(empty["loss"]) and empty["l1"] == 0
