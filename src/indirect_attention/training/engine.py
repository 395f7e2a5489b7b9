"""One robust training epoch for any model: autocast, data parallel, resume, non-finite skip.

DETR's ``engine.train_one_epoch`` shape, task-agnostic. A caller gives two functions:

* ``forward(model, batch) -> output``, run under autocast (``32``, ``bf16`` or ``fp16``);
* ``loss(output, batch) -> dict[str, Tensor]``, run outside autocast (float32), with the key
  ``"loss"`` to minimise; the other entries are logged.

:func:`train_step` takes the optimizer step only when the loss and the gradient norm are finite;
otherwise the step is skipped and counted, never raised, and in data-parallel training every rank
takes the same decision. :func:`train_one_epoch` sets the learning rate of each step, counts steps
and sums the losses of the steps taken into an :class:`EpochState` that a checkpoint can hold, so
a resumed epoch continues where it stopped (the caller skips the batches already done):
:func:`save_progress` writes it into a checkpoint with the model, optimizer, scaler and RNG states,
:func:`load_progress` restores them all.

Example (a classifier; ``batches`` yields dicts of tensors)::

    state = EpochState(epoch=epoch, step=step)
    train_one_epoch(
        model, optimizer, grad_scaler("32", device), batches, state,
        forward=lambda model, batch: model(batch["inputs"]),
        loss=lambda logits, batch: {"loss": F.cross_entropy(logits, batch["labels"])},
        clip=1.0, precision="32", device=device,
        lr_factor=lambda step, epoch: warmup_cosine_factor(step, warmup_steps=100, total_steps=n),
        base_lrs=[group["lr"] for group in optimizer.param_groups],
    )
    state.means()["loss"]  # the epoch's mean loss over the steps taken

Shapes:
    whatever ``forward`` and ``loss`` read; logged losses are floats.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import all_ranks_agree, average_across_ranks
from .precision import autocast

__all__ = [
    "EpochState",
    "StepResult",
    "load_progress",
    "save_progress",
    "train_one_epoch",
    "train_step",
]

ForwardFn = Callable[[nn.Module, Any], Any]
LossFn = Callable[[Any, Any], dict[str, Tensor]]


@dataclass
class StepResult:
    """What one step did.

    Attributes:
        losses: Every entry of ``loss(...)`` averaged over ranks, as floats; may be non-finite
            when the step was skipped.
        stepped: False when the loss or the gradient norm was not finite and the optimizer step
            was skipped.
    """

    losses: dict[str, float]
    stepped: bool


@dataclass
class EpochState:
    """Progress of a run, updated after every step (what a mid-epoch checkpoint records).

    Attributes:
        epoch: The epoch (0-based).
        step: Steps so far in the run, skipped ones included (the schedule's clock).
        batch: Batches of this epoch done.
        sums: Sums over this epoch's taken steps of each logged loss.
        count: Steps taken this epoch.
        skipped: Non-finite steps skipped in the run.
    """

    epoch: int
    step: int
    batch: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    skipped: int = 0

    def means(self) -> dict[str, float]:
        """Mean of each logged loss over the epoch's taken steps."""
        return {key: value / max(1, self.count) for key, value in self.sums.items()}


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: Any,
    *,
    forward: ForwardFn,
    loss: LossFn,
    clip: float | None,
    precision: str,
    device: torch.device,
) -> StepResult:
    """Forward under autocast, float32 loss, backward (scaled for fp16), clip, step if finite.

    Args:
        model: The model, possibly in DistributedDataParallel.
        optimizer: Its step is skipped on a non-finite loss or gradient norm.
        scaler: The fp16 gradient scaler (a pass-through for ``32`` / ``bf16``).
        batch: This rank's batch, handed to ``forward`` and ``loss``.
        forward: ``forward(model, batch)``, run under autocast.
        loss: ``loss(output, batch)``, a dict of scalar tensors with ``"loss"``.
        clip: Gradient-norm clip (None: no clipping; the norm is still checked).
        precision: ``32``, ``bf16`` or ``fp16``.
        device: The model's device.

    Returns:
        The step's losses and whether the optimizer stepped.
    """
    with autocast(precision, device):
        output = forward(model, batch)
    losses = loss(output, batch)
    keys = list(losses)
    values = average_across_ranks(torch.stack([losses[k].detach().float() for k in keys]))
    logged = dict(zip(keys, values.tolist(), strict=True))  # (K,) -> floats
    optimizer.zero_grad(set_to_none=True)
    if not all_ranks_agree(bool(torch.isfinite(losses["loss"])), device=device):
        return StepResult(losses=logged, stepped=False)
    scaler.scale(losses["loss"]).backward()
    scaler.unscale_(optimizer)  # clip the true gradients (a no-op without fp16)
    limit = float("inf") if clip is None else clip
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), limit)
    # DDP has all-reduced the gradients, so every rank sees the same norm and agrees.
    stepped = bool(torch.isfinite(norm))
    if stepped:
        scaler.step(optimizer)
    scaler.update()  # fp16: an overflow halves the scale for the next step
    return StepResult(losses=logged, stepped=stepped)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batches: Iterable[Any],
    state: EpochState,
    *,
    forward: ForwardFn,
    loss: LossFn,
    clip: float | None,
    precision: str,
    device: torch.device,
    lr_factor: Callable[[int, int], float] | None = None,
    base_lrs: Sequence[float] | None = None,
    after_step: Callable[[EpochState, StepResult], None] | None = None,
) -> EpochState:
    """Train on ``batches``, updating ``state`` after every step.

    Args:
        model: The model (in train mode), possibly in DistributedDataParallel.
        optimizer: Group g's learning rate is ``base_lrs[g] * lr_factor(step, epoch)``.
        scaler: The fp16 gradient scaler.
        batches: This rank's batches, from ``state.batch`` on for a resumed epoch.
        state: The run's progress; ``state.batch`` batches of this epoch are already done.
        forward: See :func:`train_step`.
        loss: See :func:`train_step`.
        clip: Gradient-norm clip (None: none).
        precision: ``32``, ``bf16`` or ``fp16``.
        device: The model's device.
        lr_factor: ``lr_factor(step, epoch)`` scales ``base_lrs`` before each step (None: the
            learning rates are left as they are).
        base_lrs: Each group's learning rate before any scaling (taken before a resumed
            optimizer state is loaded); needed with ``lr_factor``.
        after_step: Called after every step (a progress bar, a mid-epoch checkpoint).

    Returns:
        ``state``, updated.
    """
    if lr_factor is not None and (base_lrs is None or len(base_lrs) != len(optimizer.param_groups)):
        raise ValueError(
            f"lr_factor needs one base learning rate per parameter group "
            f"({len(optimizer.param_groups)}), got {base_lrs}"
        )
    for batch in batches:
        if lr_factor is not None and base_lrs is not None:
            factor = lr_factor(state.step, state.epoch)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * factor
        result = train_step(
            model,
            optimizer,
            scaler,
            batch,
            forward=forward,
            loss=loss,
            clip=clip,
            precision=precision,
            device=device,
        )
        state.step += 1
        state.batch += 1
        if result.stepped:
            state.count += 1
            for key, value in result.losses.items():
                state.sums[key] = state.sums.get(key, 0.0) + value
        else:
            state.skipped += 1
        if after_step is not None:
            after_step(state, result)
    return state


def save_progress(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    state: EpochState,
    *,
    minutes: float,
    generator: torch.Generator | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a resumable checkpoint (atomically), mid-epoch or at the end of ``state.epoch``.

    Args:
        path: The checkpoint file.
        model: The model (not its DDP wrapper).
        optimizer: The optimizer.
        scaler: The gradient scaler.
        state: The run's progress.
        minutes: Wall time of the run so far.
        generator: Mid-epoch: the data-order generator, saved so that the epoch resumes with the
            same batches. None: the epoch is over and the next one starts afresh.
        extra: More plain data to store under ``extra`` (beside ``progress``).
    """
    progress: dict[str, Any] = {"skipped_steps": state.skipped, "minutes": minutes}
    if generator is not None:
        progress.update(sums=state.sums, count=state.count)
    save_checkpoint(
        path,
        model,
        optimizer,
        scaler=scaler,
        epoch=state.epoch if generator is not None else state.epoch + 1,
        step=state.step,
        batch=state.batch if generator is not None else 0,
        generators=None if generator is None else {"data_order": generator},
        extra={**(extra or {}), "progress": progress},
    )


def load_progress(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> tuple[EpochState, float, Tensor | None]:
    """Restore a checkpoint of :func:`save_progress`: weights, optimizer, scaler, RNG states.

    Returns:
        The progress (``state.batch`` batches of ``state.epoch`` are done), the run's minutes so
        far, and the data-order generator's state to set after redrawing the epoch's order
        (None at an epoch boundary).
    """
    saved = load_checkpoint(path, model, optimizer, scaler=scaler, restore_random=True)
    progress = saved["extra"].get("progress", {})
    batch = saved.get("batch", 0)
    state = EpochState(
        epoch=saved["epoch"],
        step=saved["step"],
        batch=batch,
        sums=dict(progress.get("sums", {})) if batch else {},
        count=int(progress.get("count", 0)) if batch else 0,
        skipped=int(progress.get("skipped_steps", 0)),
    )
    generator_state = saved.get("generators", {}).get("data_order")
    return state, float(progress.get("minutes", 0.0)), generator_state
