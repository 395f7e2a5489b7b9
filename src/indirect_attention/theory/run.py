"""``ia theory``: the paper's noise and misalignment analysis against Monte Carlo (§3-4, Figure 1).

:func:`run` sweeps d over 16..1024 (noise levels, softmax temperatures, mean shifts), writes
``config.json``, one ``metrics.jsonl`` line per Monte Carlo cell, ``results.json`` (rows, verdicts)
and ``figure1.png`` into ``config.out``.

Shapes:
    no tensors cross this module's boundary; see :mod:`.monte_carlo` for the simulations.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from ..training import RunDir, atomic_write_bytes
from . import snr
from .monte_carlo import additive_sweep, misaligned_sweep
from .multi_head import multi_head_sweep
from .sampling import check_temperature, orthogonal_matrix, spectral_norm, xavier_matrix
from .verdicts import make_verdicts

__all__ = ["PRESETS", "TheoryConfig", "run"]

#: Sweep sizes; ``samples`` is trials x d per cell, so every cell has about the same precision
#: (the relative error of ||e||² over one trial is sqrt(2/d)) and about the same cost.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "dims": (16, 64, 256, 1024),
        "sigmas": (0.25, 0.5, 1.0, 2.0, 4.0),
        "temperatures": (0.1, 1.0, 10.0),
        "mean_shifts": (0.0, 1.0, 2.0),
        "num_tokens": 16,
        "samples": 2**17,
        "multi_head_dim": 64,
        "head_counts": (1, 4),
        "multi_head_sigmas": (1.0,),
        "xavier_dims": (16, 1024),
    },
    "default": {
        "dims": (16, 32, 64, 128, 256, 512, 1024),
        "sigmas": tuple(round(10 ** (k / 4), 4) for k in range(-4, 5)),
        "temperatures": (0.1, 1.0, 10.0),
        "mean_shifts": (0.0, 0.5, 1.0, 2.0),
        "num_tokens": 32,
        "samples": 2**18,
        "multi_head_dim": 256,
        "head_counts": (1, 2, 4, 8),
        "multi_head_sigmas": (0.5, 1.0, 2.0),
        "xavier_dims": (16, 64, 256, 1024),
    },
}

# Section ids for the per-(section, d) seeds: adding a d never changes another cell's draws.
_ADDITIVE, _MISALIGNED, _MULTI_HEAD, _XAVIER, _MATRICES = range(5)


@dataclass
class TheoryConfig:
    """Options of ``ia theory``; ``None`` fields take the ``quick`` or ``default`` preset.

    Attributes:
        out: Output directory.
        quick: Smaller sweep (4 dims, fewer cells, half the samples); under a minute.
        seed: Base seed; every (section, d) cell derives its own generator from it.
        dims: Model dims d (each >= 1).
        sigmas: Additive noise levels (each > 0).
        temperatures: Softmax temperatures, peaked (small) to diffuse (large).
        mean_shifts: Per-component mean shifts delta between the key and value sources.
        num_tokens: n tokens attended over.
        samples: trials x d per cell (trials = max(min_trials, samples // d)).
        min_trials: Fewest trials of a cell.
        key_mean: Per-component mean of the key source x.
        head_counts: Head counts H of the multi-head check.
        multi_head_dim: d of the multi-head check (divisible by every H).
        multi_head_sigmas: Noise levels of the multi-head check.
        xavier_dims: Dims repeated with a Xavier-initialised W_v.
        xavier_sigmas: Noise levels of the Xavier repeat.
        figure: Draw ``figure1.png``.
        threads: torch intra-op threads during the run (restored after): the cells are many
            medium-sized ops, and on a shared 2-core machine extra threads mostly contend.
    """

    out: str = "runs/theory"
    quick: bool = False
    seed: int = 0
    dims: tuple[int, ...] | None = None
    sigmas: tuple[float, ...] | None = None
    temperatures: tuple[float, ...] | None = None
    mean_shifts: tuple[float, ...] | None = None
    num_tokens: int | None = None
    samples: int | None = None
    min_trials: int = 64
    key_mean: float = 0.0
    head_counts: tuple[int, ...] | None = None
    multi_head_dim: int | None = None
    multi_head_sigmas: tuple[float, ...] | None = None
    xavier_dims: tuple[int, ...] | None = None
    xavier_sigmas: tuple[float, ...] = (0.5, 1.0, 2.0)
    figure: bool = True
    threads: int = 1

    _SEQUENCES = (
        "dims",
        "sigmas",
        "temperatures",
        "mean_shifts",
        "head_counts",
        "xavier_dims",
        "xavier_sigmas",
        "multi_head_sigmas",
    )

    def resolved(self) -> TheoryConfig:
        """A copy with every ``None`` field taken from the preset, validated."""
        preset = PRESETS["quick" if self.quick else "default"]
        filled = {k: v for k, v in preset.items() if getattr(self, k) is None}
        config = replace(self, **filled)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad option and its value."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in self._SEQUENCES:
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must not be empty, got {values!r}")
        for name in ("dims", "xavier_dims", "head_counts"):
            for value in getattr(self, name):
                snr.check_dim(value, name)
        for name in ("num_tokens", "samples", "min_trials", "multi_head_dim", "threads"):
            snr.check_dim(getattr(self, name), name)
        for name in ("sigmas", "xavier_sigmas", "multi_head_sigmas"):
            for sigma in getattr(self, name):
                if not (math.isfinite(sigma) and sigma > 0):
                    raise ValueError(f"{name} must be noise stds > 0, got {sigma!r}")
        for temperature in self.temperatures:
            check_temperature(temperature)
        for shift in self.mean_shifts:
            snr.check_mean_shift(shift, "mean_shifts")
        snr.check_mean_shift(self.key_mean, "key_mean")
        for heads in self.head_counts:
            if self.multi_head_dim % heads:
                raise ValueError(
                    f"every head count must divide multi_head_dim={self.multi_head_dim}, "
                    f"got head_counts={self.head_counts!r}"
                )

    def trials(self, dim: int) -> int:
        """Trials of a cell at dim d: about ``samples / d``, at least ``min_trials``."""
        return max(self.min_trials, -(-self.samples // dim))


def _generator(seed: int, *key: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, *key]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def _sigma_star(additive: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where the measured SNR crosses 1, by log-log interpolation between grid noise levels."""
    out = []
    for dim, temperature in sorted({(r["dim"], r["temperature"]) for r in additive}):
        cells = sorted(
            (r["sigma"], r["snr_mc"])
            for r in additive
            if r["dim"] == dim and r["temperature"] == temperature
        )
        star = None
        for (s0, r0), (s1, r1) in itertools.pairwise(cells):
            if (r0 - 1) * (r1 - 1) <= 0 and r0 != r1:
                t = math.log(r0) / (math.log(r0) - math.log(r1))
                star = math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0)))
                break
        out.append({"dim": dim, "temperature": temperature, "sigma_star_mc": star})
    return out


def _log(run_dir: RunDir, section: str, rows: list[Any]) -> list[dict[str, Any]]:
    dicts = [asdict(row) for row in rows]
    for row in dicts:
        run_dir.log_metrics({"section": section, **row})
    return dicts


def _simulate(config: TheoryConfig, run_dir: RunDir) -> dict[str, Any]:
    c = config
    results: dict[str, Any] = {"additive": [], "misaligned": [], "multi_head": []}
    xavier: dict[str, Any] = {"matrices": [], "additive": [], "misaligned": []}
    for dim in c.dims:
        w_v = orthogonal_matrix(dim, generator=_generator(c.seed, _MATRICES, dim))
        common = {"trials": c.trials(dim), "num_tokens": c.num_tokens, "w_v": w_v}
        rows = additive_sweep(
            dim, c.sigmas, c.temperatures, generator=_generator(c.seed, _ADDITIVE, dim), **common
        )
        results["additive"] += _log(run_dir, "additive", rows)
        rows = misaligned_sweep(
            dim,
            c.mean_shifts,
            c.temperatures,
            key_mean=c.key_mean,
            generator=_generator(c.seed, _MISALIGNED, dim),
            **common,
        )
        results["misaligned"] += _log(run_dir, "misaligned", rows)
        print(f"[theory] d={dim}: {common['trials']} trials per cell", flush=True)
    for dim in c.xavier_dims:
        gen = _generator(c.seed, _XAVIER, dim)
        w_v = xavier_matrix(dim, generator=gen)
        ones = torch.ones(dim, dtype=torch.float64)
        xavier["matrices"].append(
            {
                "dim": dim,
                "frobenius2_over_d": float(w_v.pow(2).sum()) / dim,
                "spectral_norm": spectral_norm(w_v),
                "shift_gain": float((w_v @ ones).pow(2).sum()) / dim,
            }
        )
        common = {"trials": c.trials(dim), "num_tokens": c.num_tokens, "w_v": w_v}
        rows = additive_sweep(
            dim, c.xavier_sigmas, c.temperatures, generator=gen, w_v_name="xavier", **common
        )
        xavier["additive"] += _log(run_dir, "xavier_additive", rows)
        rows = misaligned_sweep(
            dim,
            c.mean_shifts,
            c.temperatures,
            key_mean=c.key_mean,
            generator=gen,
            w_v_name="xavier",
            **common,
        )
        xavier["misaligned"] += _log(run_dir, "xavier_misaligned", rows)
    dim = c.multi_head_dim
    gen = _generator(c.seed, _MULTI_HEAD, dim)
    rows = multi_head_sweep(
        dim,
        c.head_counts,
        c.multi_head_sigmas,
        temperature=1.0,
        trials=c.trials(dim),
        num_tokens=c.num_tokens,
        w_v=orthogonal_matrix(dim, generator=gen),
        w_o=orthogonal_matrix(dim, generator=gen),
        generator=gen,
    )
    results["multi_head"] = _log(run_dir, "multi_head", rows)
    results["xavier"] = xavier
    return results


def run(config: TheoryConfig) -> dict[str, Any]:
    """Run the sweeps; write config.json, metrics.jsonl, results.json and figure1.png.

    Returns:
        The ``results.json`` dict: ``additive``, ``misaligned`` (the paper's orthogonal W_v),
        ``multi_head``, ``xavier``, ``sigma_star``, ``lemma1``, ``verdicts``, ``seconds``.
    """
    config = config.resolved()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run(config)
    finally:
        torch.set_num_threads(threads)


def _run(config: TheoryConfig) -> dict[str, Any]:
    start = time.perf_counter()
    run_dir = RunDir(config.out)
    run_dir.metrics_path.unlink(missing_ok=True)  # a rerun replaces the records, never appends
    run_dir.write_config({f.name: getattr(config, f.name) for f in fields(config)})
    results = _simulate(config, run_dir)
    results["sigma_star"] = _sigma_star(results["additive"])
    results["lemma1"] = {
        "samples": sum(r["trials"] for r in results["additive"]),
        "violations": sum(r["lemma1_violations"] for r in results["additive"]),
        "max_ratio": max(r["lemma1_max_ratio"] for r in results["additive"]),
    }
    results["verdicts"] = make_verdicts(results)
    results["seconds"] = time.perf_counter() - start
    run_dir.write_results(results)
    if config.figure:
        from ..plots.figure1 import figure1_png  # matplotlib only when a figure is asked for

        atomic_write_bytes(run_dir.root / "figure1.png", figure1_png(results))
    for name, verdict in results["verdicts"].items():
        print(f"[theory] {name}: {verdict['verdict']}", flush=True)
    return results
