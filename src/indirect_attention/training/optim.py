"""AdamW with parameter groups and a warm-up + cosine learning-rate schedule.

Weight decay applies to matrices only: biases, norm scales and other 1-D parameters are left
undecayed, as in nanoGPT and DETR.
"""

from __future__ import annotations

import math

from torch import nn
from torch.optim import AdamW

__all__ = ["build_adamw", "param_groups", "warmup_cosine_factor"]


def param_groups(model: nn.Module, *, weight_decay: float) -> list[dict]:
    """Split trainable parameters into a decayed group (dim >= 2) and an undecayed one.

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0}]``
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_adamw(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
) -> AdamW:
    """AdamW over :func:`param_groups` of ``model``."""
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    return AdamW(param_groups(model, weight_decay=weight_decay), lr=lr, betas=betas)


def warmup_cosine_factor(
    step: int, *, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> float:
    """Multiplier of the base lr at ``step``: linear warm-up, then cosine decay to ``min_ratio``."""
    if total_steps <= 0 or warmup_steps < 0:
        raise ValueError(
            f"need total_steps > 0, warmup_steps >= 0; got {total_steps}, {warmup_steps}"
        )
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
