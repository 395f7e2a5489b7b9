"""Training checkpoints: model, optimizer, scheduler, gradient scaler, RNG states (the global ones
and named data-order generators) and progress (epoch, step, batch within the epoch) in one plain
dict.

Files are written atomically (temporary file + rename, :func:`atomic_write_bytes`) and hold only
tensors, numbers, strings, lists and dicts, so ``torch.load(path, weights_only=True)`` reads them.

Example:
    >>> save_checkpoint(run.root / "checkpoint.pt", model, optimizer, scheduler, epoch=3, step=900)
    >>> state = load_checkpoint(run.root / "checkpoint.pt", model, optimizer, scheduler)
    >>> state["epoch"], state["step"]
"""

from __future__ import annotations

import io
import os
import pickle
import random
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .records import atomic_write_bytes

__all__ = [
    "atomic_save",
    "capture_rng",
    "load_checkpoint",
    "read_weights_only",
    "restore_rng",
    "save_checkpoint",
]


def read_weights_only(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    expected: str = "a checkpoint written by torch.save",
) -> Any:
    """``torch.load(path, weights_only=True)`` whose failures name the file and what was expected.

    A file that is not a ``torch.save`` archive (a text, an image, a truncated download) or one
    holding Python objects beyond tensors and plain data is refused with a one-line
    ``ValueError``; torch's own message is not passed on, since it advises loading with
    ``weights_only=False``, which would run code from the file.

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: ``path`` cannot be opened.
        ValueError: ``path`` is not a weights-only ``torch.save`` file.
    """
    path = Path(path)
    with open(path, "rb") as handle:  # missing, a folder, unreadable: the OSError names the file
        head = handle.read(4)
    saved = head == b"PK\x03\x04" or head[:1] == b"\x80"  # torch.save: a zip, or a pickle
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        reason = "it is not a torch.save file"
        if saved:
            reason = "it holds Python objects beyond tensors and plain data, which are not loaded"
    except EOFError:
        reason = "it is empty or cut short"
    except RuntimeError as error:
        truncated = "central directory" in str(error)
        reason = (
            "it is cut short (an incomplete copy?)" if truncated else "its archive is not torch's"
        )
    except (KeyError, ValueError, AttributeError, IndexError, TypeError, UnicodeDecodeError):
        reason = "it is not a torch.save file"
    raise ValueError(f"cannot load {path}: {reason}; expected {expected}")


def capture_rng() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), Python and numpy (when numpy is loaded; the
    training layer never imports it), as loadable plain data."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [int(version), torch.tensor(internal, dtype=torch.int64), gauss],
    }
    np = sys.modules.get("numpy")
    if np is not None:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        keys = torch.tensor([int(k) for k in keys], dtype=torch.int64)
        state["numpy"] = [str(kind), keys, int(pos), int(has_gauss), float(cached)]
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng` captured."""
    torch.set_rng_state(state["torch"])
    np = sys.modules.get("numpy")
    if np is not None and "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state(
            (kind, np.asarray(keys.tolist(), dtype=np.uint32), pos, has_gauss, cached)
        )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` through a temporary file and a rename, so that processes
    side by side that race to write the same cache file never read a partial one."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    scaler: torch.amp.GradScaler | None = None,
    epoch: int = 0,
    step: int = 0,
    batch: int = 0,
    generators: dict[str, torch.Generator] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically.

    Args:
        path: Destination file.
        model: Its ``state_dict`` is saved (pass the module inside a DDP wrapper).
        optimizer: Saved when given.
        scheduler: Saved when given.
        scaler: Saved when given and enabled (fp16).
        epoch: Completed epochs.
        step: Optimizer steps (batches) so far.
        batch: Batches already done of epoch ``epoch`` (0 at an epoch boundary).
        generators: Named generators (e.g. the data order) whose states are saved.
        extra: Plain data (config dicts, metrics, running sums).
    """
    state: dict[str, Any] = {
        "model": model.state_dict(),
        "epoch": int(epoch),
        "step": int(step),
        "batch": int(batch),
        "rng": capture_rng(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
        "extra": extra or {},
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    return atomic_save(path, state)


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    scaler: torch.amp.GradScaler | None = None,
    generators: dict[str, torch.Generator] | None = None,
    restore_random: bool = False,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``) and load whatever objects are given into it.

    A scaler is restored only when it is enabled and the checkpoint holds its state (a run that
    switches precision starts a fresh scale); a generator only when its name was saved.
    ``restore_random`` restores the global RNG states.
    """
    state = read_weights_only(path, map_location=map_location, expected="a training checkpoint")
    if not isinstance(state, dict) or not {"model", "epoch", "step"} <= state.keys():
        raise ValueError(
            f"{path} is not a training checkpoint (expected a dict with model, epoch and step)"
        )
    if model is not None:
        model.load_state_dict(state["model"])
    if optimizer is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and scaler.is_enabled() and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    saved = state.get("generators", {})
    for name, generator in (generators or {}).items():
        if name in saved:
            generator.set_state(saved[name])
    if restore_random:
        restore_rng(state["rng"])
    return state
