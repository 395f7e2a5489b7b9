"""Explicit randomness: generators for library code, global seeding for the command line only.

Library code takes ``generator=`` arguments built by :func:`make_generator`. Module initialisation
and dropout draw from PyTorch's global generator, so a run that must be reproducible wraps them in
:func:`isolated_rng`, which seeds a private copy of the global state and restores it afterwards.
Only the CLI calls :func:`seed_everything`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["isolated_rng", "make_generator", "seed_everything"]


def make_generator(seed: int, *, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``seed``."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return torch.Generator(device=device).manual_seed(seed)


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed PyTorch's global CPU generator inside the block and restore its state afterwards.

    Parameter initialisation (``nn.Linear``) and dropout have no ``generator=`` argument; running
    them inside this block makes them a function of ``seed`` without leaking global state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seed_everything(seed: int) -> None:
    """Seed Python's and PyTorch's global generators (for the command line only)."""
    random.seed(seed)
    torch.manual_seed(seed)
