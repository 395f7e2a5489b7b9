"""The options of ``ia reproduce`` and the shape of one part of the reproduction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..report import Claim
from ..training import RunDir
from .profiles import ProfileSettings

__all__ = ["Part", "ReproduceConfig"]


@dataclass
class ReproduceConfig:
    """Options of ``ia reproduce``.

    Attributes:
        profile: ``quick``, ``default`` or ``full``: how much of each experiment to run.
        out: Output directory.
        seed: Base seed of every part.
        parts: Names of the parts to run; empty runs every part.
        progress: Show the experiments' progress bars.
        settings: The profile's sizes; None takes ``PROFILES[profile]`` when the run starts.
    """

    profile: str = "default"
    out: str = "runs/reproduce"
    seed: int = 0
    parts: tuple[str, ...] = ()
    progress: bool = True
    settings: ProfileSettings | None = None


@dataclass(frozen=True)
class Part:
    """One part of the reproduction: what runs, and how its records are judged.

    Attributes:
        run: Runs the experiment into the given run directory and returns a short summary
            (stored in ``part.json``); it reads its sizes from ``config.settings``.
        claims: Computes the part's verdict rows from its directory (see
            :mod:`indirect_attention.report`); None for a part without claims.
        figures: (title, file name in the part's directory) of the figures it draws.
        shares_cpu: The part may run beside other such parts (one torch thread each) when the
            profile's ``part_jobs`` > 1. Parts that time things or start processes of their own
            (benchmarks, detection) always run alone.
    """

    run: Callable[[ReproduceConfig, RunDir], dict[str, Any]]
    claims: Callable[[Path], list[Claim]] | None = None
    figures: tuple[tuple[str, str], ...] = ()
    shares_cpu: bool = False
