"""One robust optimisation step of IA-DETR, starting weights, and where a resumed run reads from.

:func:`train_step` runs the forward pass under autocast (``32``, ``bf16`` or ``fp16``), computes the
set loss in float32 with the box count of the *global* batch (so that W data-parallel processes
produce the gradients of one process on the same global batch), and takes the optimizer step only
when the loss and the gradient norm are finite; otherwise the step is skipped and reported, never
raised. In data-parallel training every rank takes the same decision.

Shapes:
    targets (B, 3, H, W) in [0, 1], padding (B, H, W) bool or None, queries (B, 3, h, w);
    ground truth: list of B (K_b, 4) cxcywh.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..training.distributed import all_ranks_agree, average_across_ranks, mean_normaliser
from ..training.precision import autocast
from .losses import SetCriterion

__all__ = [
    "CHECKPOINT_NAME",
    "LOSS_KEYS",
    "StepResult",
    "load_model_weights",
    "resume_source",
    "train_step",
]

CHECKPOINT_NAME = "checkpoint.pt"
LOSS_KEYS = ("loss", "focal", "l1", "giou")

Batch = tuple[Tensor, Tensor | None, Tensor, list[Tensor]]


@dataclass
class StepResult:
    """What one step did.

    Attributes:
        losses: ``loss``, ``focal``, ``l1``, ``giou`` of the global batch (mean over ranks of each
            rank's normalised terms), as floats; may be non-finite when the step was skipped.
        stepped: False when the loss or the gradient norm was not finite and the optimizer step
            was skipped.
    """

    losses: dict[str, float]
    stepped: bool


def train_step(
    model: nn.Module,
    criterion: SetCriterion,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: Batch,
    *,
    clip: float,
    precision: str,
    device: torch.device,
) -> StepResult:
    """Forward under autocast, float32 loss, backward (scaled for fp16), clip, step if finite.

    Args:
        model: The detector, possibly in DistributedDataParallel.
        criterion: The set loss (float32 inside, whatever the autocast dtype).
        optimizer: Its step is skipped on a non-finite loss or gradient norm.
        scaler: The fp16 gradient scaler (a pass-through for ``32`` / ``bf16``).
        batch: ``(targets, padding, queries, ground truth)`` of this rank (on any device).
        clip: Gradient-norm clip.
        precision: ``32``, ``bf16`` or ``fp16``.
        device: The model's device; the batch is moved there.

    Returns:
        The step's losses and whether the optimizer stepped.
    """
    targets, padding, queries, truth = batch
    targets, queries = targets.to(device), queries.to(device)
    padding = None if padding is None else padding.to(device)
    truth = [t.to(device) for t in truth]
    with autocast(precision, device):
        output = model(targets, queries, padding)
    # DDP averages gradients over ranks: divide by the global box count / world size.
    num_boxes = mean_normaliser(sum(int(t.shape[0]) for t in truth), device=device)
    losses = criterion(output.logits, output.boxes, truth, num_boxes=num_boxes)
    values = average_across_ranks(torch.stack([losses[k].detach().float() for k in LOSS_KEYS]))
    logged = dict(zip(LOSS_KEYS, values.tolist(), strict=True))  # (4,) -> floats
    optimizer.zero_grad(set_to_none=True)
    if not all_ranks_agree(bool(torch.isfinite(losses["loss"])), device=device):
        return StepResult(losses=logged, stepped=False)
    scaler.scale(losses["loss"]).backward()
    scaler.unscale_(optimizer)  # clip the true gradients (a no-op without fp16)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    # DDP has all-reduced the gradients, so every rank sees the same norm and agrees.
    stepped = bool(torch.isfinite(norm))
    if stepped:
        scaler.step(optimizer)
    scaler.update()  # fp16: an overflow halves the scale for the next step
    return StepResult(losses=logged, stepped=stepped)


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load only model weights into ``model`` (optimizer, schedule and progress start fresh).

    Args:
        model: The freshly built detector.
        path: A checkpoint of ``ia detr train`` (its ``model`` entry), a plain state dict saved
            with ``torch.save``, a ``.safetensors`` file, or a folder holding
            ``model.safetensors`` (``ia detr export``) or ``checkpoint.pt`` (a run). Every
            parameter and buffer of ``model`` must be present with its shape.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Keys or shapes do not match, with the differences.
    """
    path = Path(path)
    if path.is_dir():
        exported = path / "model.safetensors"
        path = exported if exported.is_file() else path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state dict")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f"weights in {path} do not fit the model: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), shape mismatches {shapes[:5]}"
        )
    model.load_state_dict(state)


def resume_source(resume: str | None, out: str | Path) -> Path | None:
    """The checkpoint a run resumes from, or None for a fresh start.

    Args:
        resume: A run directory (its ``checkpoint.pt``) or a checkpoint file; None: no resume.
        out: The run's own directory. Resuming from ``out`` when it holds no checkpoint yet is a
            fresh start, so one command can be relaunched until the run is done.

    Raises:
        FileNotFoundError: ``resume`` names another place without a checkpoint.
    """
    if resume is None:
        return None
    source = Path(resume)
    path = source if source.is_file() else source / CHECKPOINT_NAME
    if path.is_file():
        return path
    if path.parent.resolve() == Path(out).resolve():
        return None
    raise FileNotFoundError(f"cannot resume: no checkpoint at {path}")
