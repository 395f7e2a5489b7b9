"""``ia bench scaling``: box bias + indirect attention, time and memory against map size and Q.

The set-up of ``ia bench attention`` (B=2, H=8, Dh=32, BoxRPB per axis Linear(2→512)-ReLU-
Linear(512→8), float32, forward+backward), swept over the target map side S at a fixed Q and over
Q at a fixed S, for ``ours``, the authors' formulation (``reference``) and the bias-free SDPA
``floor``. Each measurement runs in its own process (so its peak memory is its own) with a fixed
number of torch threads, and records the median wall time, the median CPU time of the process
and the peak resident memory above the inputs. What to read: ours' time grows with Nv·Q (the
logits are computed once, chunk by chunk, never stored) and its memory with Q + Nv (no
(B, H, Q, Nv) buffer is kept for backward), while the reference stores several such buffers.

Shapes:
    B batch, H heads, Q object queries, S×S target map, Nv = S².
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from dataclasses import asdict, dataclass, field

import torch

from ..training import RunDir
from .attention import _FUNCTIONS, AttentionBenchConfig, _build
from .measure import machine_info, peak_memory_mib, reset_peak_memory, run_in_subprocess, time_call

__all__ = ["ScalingBenchConfig", "run"]

SCALING_VARIANTS = ("floor", "reference", "ours")


@dataclass
class ScalingBenchConfig:
    """Options of ``ia bench scaling``.

    Attributes:
        out: Run directory.
        sizes: Map sides S of the size sweep (at ``fixed_queries``).
        queries: Object query counts Q of the query sweep (at ``fixed_size``).
        fixed_queries: Q of the size sweep.
        fixed_size: S of the query sweep.
        variants: Which of ``floor``, ``reference``, ``ours`` to time.
        repeats: Timed repetitions per measurement (after one warm-up).
        threads: Torch threads of every measurement.
        seed: Seed of inputs and weights.
    """

    out: str = "runs/bench-scaling"
    sizes: list[int] = field(default_factory=lambda: [32, 48, 64, 96, 128])
    queries: list[int] = field(default_factory=lambda: [100, 300, 600, 1200, 1800])
    fixed_queries: int = 300
    fixed_size: int = 64
    variants: list[str] = field(default_factory=lambda: list(SCALING_VARIANTS))
    repeats: int = 2
    threads: int = 1
    seed: int = 0


def _measure(variant: str, size: int, queries: int, repeats: int, seed: int) -> dict:
    """One forward+backward measurement (in the worker process)."""
    config = AttentionBenchConfig(seed=seed)
    inputs = _build(config, size, queries, fast=True, dtype=torch.float32)
    function = _FUNCTIONS[variant]

    def step() -> None:
        function(inputs).sum().backward()
        for leaf in inputs.leaves():
            leaf.grad = None

    gc.collect()
    baseline = reset_peak_memory()
    step()  # the warm-up; its peak is the step's peak
    peak = peak_memory_mib(baseline)
    return {**time_call(step, repeats=repeats, warmup=0), "peak_mib": peak}


def _points(config: ScalingBenchConfig) -> list[tuple[str, int, int]]:
    """(sweep, S, Q) of every measurement; the shared point appears in both sweeps."""
    by_size = [("size", size, config.fixed_queries) for size in config.sizes]
    by_queries = [("queries", config.fixed_size, queries) for queries in config.queries]
    return by_size + by_queries


def run(config: ScalingBenchConfig) -> dict:
    """Time every variant at every point, each in its own process; write the records."""
    for variant in config.variants:
        if variant not in SCALING_VARIANTS:
            raise ValueError(f"variants: unknown {variant!r}; choose from {SCALING_VARIANTS}")
    run_dir = RunDir(config.out)
    run_dir.write_config(asdict(config))
    rows, done = [], {}
    for sweep, size, queries in _points(config):
        for variant in config.variants:
            key = (variant, size, queries)
            if key not in done:  # the point both sweeps share is measured once
                arguments = [variant, str(size), str(queries), str(config.repeats)]
                arguments += [str(config.seed), str(config.threads)]
                done[key] = run_in_subprocess("indirect_attention.bench.scaling", arguments)
            row = {"sweep": sweep, "variant": variant, "size": size, "queries": queries}
            row.update(tokens=size * size, **done[key])
            run_dir.log_metrics(row)
            rows.append(row)
            print(
                f"{sweep:<8} S={size:<4} Q={queries:<5} {variant:<10} "
                f"{row['median_ms']:>9.1f} ms  CPU {row['median_cpu_ms']:>9.1f} ms  "
                f"peak +{row['peak_mib']:.0f} MiB"
            )
    results = {"machine": {**machine_info(), "threads": config.threads}, "rows": rows}
    run_dir.write_results(results)
    return results


if __name__ == "__main__":  # worker of run: VARIANT SIZE QUERIES REPEATS SEED THREADS
    parser = argparse.ArgumentParser()
    for name in ("variant", "size", "queries", "repeats", "seed", "threads"):
        parser.add_argument(name, type=str if name == "variant" else int)
    args = parser.parse_args(sys.argv[1:])
    torch.set_num_threads(args.threads)
    print(json.dumps(_measure(args.variant, args.size, args.queries, args.repeats, args.seed)))
