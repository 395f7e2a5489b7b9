"""Mixed precision: ``32`` (fp32), ``bf16`` or ``fp16`` autocast, and the fp16 gradient scaler.

Autocast runs matrix products in the low-precision type; numerically delicate code (losses,
matching, a masked softmax) casts its inputs to float32 and disables autocast locally. fp16 has a
narrow exponent range, so its gradients are computed on a scaled loss
(:class:`torch.amp.GradScaler`, saved with the checkpoint); bf16 has fp32's range and needs none.

Example:
    >>> scaler = grad_scaler("fp16", device)
    >>> with autocast("fp16", device):
    ...     loss = model(x).sum()
    >>> scaler.scale(loss).backward()
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

__all__ = ["PRECISIONS", "autocast", "check_precision", "grad_scaler"]

PRECISIONS = ("32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    return precision


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """``torch.autocast`` for ``device``'s type in the low-precision dtype (disabled for ``32``)."""
    check_precision(precision)
    device_type = torch.device(device).type
    if precision == "32":
        return torch.autocast(device_type=device_type, enabled=False)
    return torch.autocast(device_type=device_type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device | str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for ``fp16`` only (a pass-through otherwise)."""
    check_precision(precision)
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")
