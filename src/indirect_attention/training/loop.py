"""A small, task-agnostic training loop: minibatches, one epoch of training, evaluation.

Data is a mapping of tensors sharing their first dimension. A *step function* turns a model and a
batch into ``(loss, num_correct, num_items)``; the loop knows nothing else about the task.

Shapes:
    N items, B batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "EpochStats",
    "StepFn",
    "classification_step",
    "evaluate",
    "iterate_minibatches",
    "take",
]

StepFn = Callable[[nn.Module, dict[str, Tensor]], tuple[Tensor, Tensor, int]]


@dataclass
class EpochStats:
    """Mean loss, accuracy and wall time of one pass over a data set.

    Attributes:
        loss: Mean loss per item (items weighted by ``num_items`` of each step).
        accuracy: ``sum(num_correct) / sum(num_items)``.
        seconds: Wall-clock seconds of the pass.
        count: Total items.
    """

    loss: float
    accuracy: float
    seconds: float
    count: int


def iterate_minibatches(
    num_items: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
) -> Iterator[Tensor]:
    """Index tensors covering ``range(num_items)`` in batches (shuffled with ``generator``).

    Shapes:
        -> each (B,) long, the last possibly shorter.
    """
    if num_items <= 0 or batch_size <= 0:
        raise ValueError(
            f"num_items and batch_size must be positive, got {num_items}, {batch_size}"
        )
    order = torch.randperm(num_items, generator=generator) if shuffle else torch.arange(num_items)
    yield from order.split(batch_size)


def take(data: Mapping[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    """Rows ``index`` of every tensor of ``data``."""
    return {name: tensor[index] for name, tensor in data.items()}


def _num_items(data: Mapping[str, Tensor]) -> int:
    sizes = {name: tensor.shape[0] for name, tensor in data.items()}
    if not sizes or len(set(sizes.values())) != 1:
        raise ValueError(f"data tensors must share their first dimension, got {sizes}")
    return next(iter(sizes.values()))


def classification_step(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
    """Cross-entropy and correct count for class logits over any number of leading dims.

    Shapes:
        logits (..., C), labels (...) long -> loss (), num_correct (), num_items int
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"logits (..., C) must match labels (...): got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    flat = logits.reshape(-1, logits.shape[-1])  # (N, C)
    target = labels.reshape(-1)  # (N,)
    loss = F.cross_entropy(flat, target)
    correct = (flat.argmax(dim=-1) == target).sum()
    return loss, correct, target.numel()


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Mapping[str, Tensor], step_fn: StepFn, *, batch_size: int = 256
) -> EpochStats:
    """Mean loss and accuracy over ``data`` in eval mode, without gradients."""
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    total_loss, total_correct, total = 0.0, 0, 0
    for index in iterate_minibatches(_num_items(data), batch_size, shuffle=False):
        loss, correct, count = step_fn(model, take(data, index))
        total_loss += float(loss) * count
        total_correct += int(correct)
        total += count
    model.train(was_training)
    return EpochStats(total_loss / total, total_correct / total, time.perf_counter() - start, total)
