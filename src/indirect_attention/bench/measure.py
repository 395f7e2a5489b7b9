"""Timing, peak memory and one-process-per-variant plumbing for the benchmarks."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = [
    "machine_info",
    "peak_memory_mib",
    "release_memory",
    "reset_peak_memory",
    "run_in_subprocess",
    "synchronize",
    "time_call",
    "time_on_device",
]

_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in {_STATUS}")


def reset_peak_memory() -> int:
    """Reset the process's resident-memory high-water mark; return the current RSS in KiB.

    Writing 5 to ``/proc/self/clear_refs`` resets ``VmHWM`` (Linux); elsewhere the peak then
    includes whatever the process used before, which only overstates memory.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def peak_memory_mib(baseline_kib: int) -> float:
    """Peak resident memory since :func:`reset_peak_memory`, above ``baseline_kib``, in MiB."""
    return max(0, _status_kib("VmHWM") - baseline_kib) / 1024.0


def machine_info() -> dict:
    """What the numbers were measured on: platform, processor, cores, torch version and threads."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def time_call(function: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> dict:
    """Wall-clock time of ``function()`` in milliseconds: median and minimum over ``repeats``.

    Also the median CPU time of the process (``median_cpu_ms``, all threads): with one torch thread
    it is the work done, and barely moves when other processes load the machine (wall time does).
    """
    for _ in range(warmup):
        function()
    samples, cpu_samples = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        function()
        samples.append((time.perf_counter() - start) * 1000.0)
        cpu_samples.append((time.process_time() - cpu_start) * 1000.0)
    return {
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "median_cpu_ms": statistics.median(cpu_samples),
        "repeats": repeats,
    }


def run_in_subprocess(module: str, arguments: list[str], *, timeout: float = 900.0) -> dict:
    """Run ``python -m module arguments`` and parse the JSON object on its last output line."""
    process = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if process.returncode != 0:
        raise RuntimeError(
            f"benchmark worker {module} {' '.join(arguments)} failed with exit code "
            f"{process.returncode}:\n{process.stderr[-4000:]}"
        )
    lines = [line for line in process.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_memory(device: torch.device) -> None:
    """Collect garbage and hand ``device``'s cached blocks back, between measurements."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def time_on_device(
    function: Callable[[], object], *, repeats: int, warmup: int, device: torch.device
) -> dict:
    """:func:`time_call` of ``function()`` on ``device``, and its peak memory.

    ``warmup`` untimed calls come first (they pay any compilation); the device is synchronised
    after each timed call. Peak memory is over the timed calls: on CUDA
    ``torch.cuda.max_memory_allocated`` (what is held throughout, weights and inputs, included);
    on the CPU the resident memory above the level before them (:func:`peak_memory_mib`).
    """
    for _ in range(warmup):
        function()
    synchronize(device)
    gc.collect()
    baseline = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        baseline = reset_peak_memory()

    def synchronised() -> None:
        function()
        synchronize(device)

    timing = time_call(synchronised, repeats=repeats, warmup=0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = peak_memory_mib(baseline)
    return {**timing, "peak_mib": peak}
