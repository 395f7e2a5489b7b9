"""``ia bench gpu``: the GPU measurements of issue 20 in one command (``make gpu-check``).

Two parts, each a ratio against a baseline measured in the same run:

- ``attention``: box bias + indirect attention through the library's own path (paper §6.2:
  :class:`~..detection.decoder.BoxRelativeBias` -> :class:`~..core.GridBias` ->
  :func:`~..core.attend`, which on CUDA runs compiled FlexAttention with the bias as a score
  modification), forward+backward, against PyTorch SDPA without any bias (the floor), B=2, H=8,
  Dh=32, BoxRPB MLPs 512 wide, over S×S maps, Q queries and dtypes (``bf16`` runs the tensors in
  bfloat16; under autocast the library would upcast the biased softmax to float32, which is the
  ``fp32`` row). Before timing, each (S, Q) is checked in float32 on the device against the dense
  reference of ``ia bench attention`` (:func:`~.authors.authors_box_bias` materialised, plain
  softmax; the same inputs, functions and error measure as :mod:`.attention`): the output and the
  gradients of q, k, v and every MLP weight, to :data:`FLOAT32_LIMIT` relative.
- ``detector``: one training step of the paper-scale detector (:mod:`.gpu_detector`) under bf16
  autocast, ``ia`` against ``double-cross``: median time per step and peak memory.

Times are medians over ``repeats`` after ``warmup`` calls (which also pay the compilation), with
the device synchronised around each call. Peak memory on CUDA is ``torch.cuda.max_memory_allocated``
over the timed calls (weights, optimiser state and inputs included); on the CPU, resident memory
above the level before them.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch._dynamo

from ..training import RunDir
from . import attention
from .attention import _floor, _ours, _reference
from .gpu_detector import build_detector_step
from .measure import machine_info, release_memory, time_on_device

__all__ = ["DTYPES", "FLOAT32_LIMIT", "KINDS", "PARTS", "GpuBenchConfig", "run"]

PARTS = ("attention", "detector")
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
#: Detector kinds, the baseline first.
KINDS = ("double-cross", "ia")
#: Largest relative error (max |ours - reference| / max |reference| per tensor) of the float32
#: check. Float32 rounding gives about 1e-6 (more where a kernel rounds its products to TF32);
#: a wrong bias gives above 1e-2.
FLOAT32_LIMIT = 5e-3
# FlexAttention is compiled once per shape and dtype (dynamic=False); the sweep and the two
# detectors need more than torch.compile's default of 8 recompilations of one function.
_RECOMPILE_LIMIT = 64


@dataclass
class GpuBenchConfig:
    """Options of ``ia bench gpu``.

    Attributes:
        out: Run directory.
        device: ``cuda`` (or ``cuda:N``), or ``cpu`` to test the harness.
        parts: ``attention`` and/or ``detector``.
        sizes: Attention: target map sides S (Nv = S²).
        queries: Attention: numbers of queries Q.
        dtypes: Attention: ``bf16`` and/or ``fp32``.
        batch: Attention: batch size B.
        num_heads: Attention: heads H.
        head_dim: Attention: head dim Dh.
        hidden_dim: Attention: hidden width of each BoxRPB axis MLP.
        target_size: Detector: side of the target images in pixels.
        query_size: Detector: side of the query images in pixels.
        batch_size: Detector: pairs per step.
        num_layers: Detector: decoder layers.
        num_queries: Detector: object queries Q.
        repeats: Timed calls per measurement.
        warmup: Untimed calls before them (the first one compiles).
        seed: Seed of the inputs and weights.
    """

    out: str = "runs/bench-gpu"
    device: str = "cuda"
    parts: list[str] = field(default_factory=lambda: list(PARTS))
    sizes: list[int] = field(default_factory=lambda: [64, 100])
    queries: list[int] = field(default_factory=lambda: [300, 1800])
    dtypes: list[str] = field(default_factory=lambda: list(DTYPES))
    batch: int = 2
    num_heads: int = 8
    head_dim: int = 32
    hidden_dim: int = 512
    target_size: int = 800
    query_size: int = 192
    batch_size: int = 8
    num_layers: int = 6
    num_queries: int = 300
    repeats: int = 5
    warmup: int = 2
    seed: int = 0


def _settings(config: GpuBenchConfig) -> attention.AttentionBenchConfig:
    """``ia bench attention``'s set-up at this run's batch, heads and widths."""
    return attention.AttentionBenchConfig(
        batch=config.batch,
        num_heads=config.num_heads,
        head_dim=config.head_dim,
        hidden_dim=config.hidden_dim,
        seed=config.seed,
    )


def _bench_inputs(
    config: GpuBenchConfig, size: int, queries: int, dtype: torch.dtype, device: torch.device
) -> attention._Inputs:
    """``ia bench attention``'s inputs (q, k, v, boxes, BoxRPB) at this shape, on ``device``."""
    return attention._build(_settings(config), size, queries, fast=True, dtype=dtype, device=device)


def check_attention(config: GpuBenchConfig, size: int, queries: int, device: torch.device) -> dict:
    """Ours against the dense reference in float32 on ``device``: output and every gradient."""
    settings = _settings(config)
    exact = attention._results(_reference, settings, size, queries, torch.float32, device)
    mine = attention._results(_ours, settings, size, queries, torch.float32, device)
    errors = attention._relative_errors(attention._tensor_names(settings), mine, exact)
    del exact, mine
    release_memory(device)
    worst = max(errors.values())
    return {"max_relative_error": worst, "per_tensor": errors, "passed": worst <= FLOAT32_LIMIT}


def _attention_row(
    config: GpuBenchConfig, size: int, queries: int, dtype: str, device: torch.device
) -> dict:
    """Time ours and the floor, forward+backward, at one shape and dtype."""
    inputs = _bench_inputs(config, size, queries, DTYPES[dtype], device)
    measured, fallbacks = {}, []
    for name, function in (("ours", _ours), ("floor", _floor)):

        def step(function=function, inputs=inputs) -> None:
            function(inputs).sum().backward()
            for leaf in inputs.leaves():
                leaf.grad = None

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            measured[name] = time_on_device(
                step, repeats=config.repeats, warmup=config.warmup, device=device
            )
        fallbacks += [str(w.message) for w in caught if "FlexAttention failed" in str(w.message)]
    del inputs, step
    release_memory(device)
    path = "flex" if device.type == "cuda" and not fallbacks else "chunked"
    row = {"path": path}
    for name, result in measured.items():
        row.update({f"{name}_{key}": value for key, value in result.items()})
    row["ours_vs_floor"] = row["ours_median_ms"] / row["floor_median_ms"]
    if fallbacks:
        row["flex_failure"] = fallbacks[0]
    return row


def _detector_row(config: GpuBenchConfig, kind: str, device: torch.device) -> dict:
    """Time one bf16 training step of the detector of ``kind`` (:mod:`.gpu_detector`)."""
    trainer = build_detector_step(
        kind=kind,
        target_size=config.target_size,
        query_size=config.query_size,
        batch_size=config.batch_size,
        num_layers=config.num_layers,
        num_queries=config.num_queries,
        device=device,
        seed=config.seed,
    )
    results = []

    def step() -> None:
        results.append(trainer.step())

    measured = time_on_device(step, repeats=config.repeats, warmup=config.warmup, device=device)
    model = trainer.model.config
    return {
        "part": "detector",
        "kind": kind,
        "backbone": model.backbone,
        "num_layers": model.num_layers,
        "num_queries": model.num_queries,
        "batch_size": config.batch_size,
        "target_size": config.target_size,
        "precision": "bf16",
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "steps_taken": sum(r.stepped for r in results),
        "last_loss": results[-1].losses["loss"],
        **measured,
    }


def _attempt(label: str, function: Callable[..., dict], *args: object) -> dict:
    """``function(*args)``, or ``{"error": ...}`` after printing the traceback: on a lent device
    one failing measurement must not cost the others. The error is recorded and fails the run."""
    try:
        return function(*args)
    except Exception as error:  # not hidden: printed, recorded, and the exit status says so
        traceback.print_exc()
        print(f"[gpu] {label}: FAILED ({type(error).__name__}: {error})", flush=True)
        return {"error": f"{type(error).__name__}: {error}"}


def _attention_part(config: GpuBenchConfig, device: torch.device, run_dir: RunDir) -> tuple:
    """The float32 check, then ours and the floor per dtype, at every (S, Q)."""
    rows, checks = [], {}
    for size in config.sizes:
        for queries in config.queries:
            key = f"S={size},Q={queries}"
            print(f"[gpu] attention {key}: float32 check against the dense reference", flush=True)
            check = _attempt(key, check_attention, config, size, queries, device)
            check.setdefault("passed", False)
            checks[key] = check
            if "max_relative_error" in check:
                state = "passed" if check["passed"] else "FAILED"
                print(f"[gpu]   max relative error {check['max_relative_error']:.1e}: {state}")
            for dtype in config.dtypes:
                print(f"[gpu] attention {key} {dtype}: timing ours and the floor", flush=True)
                shape = {"part": "attention", "size": size, "queries": queries, "dtype": dtype}
                row = {
                    **shape,
                    **_attempt(key, _attention_row, config, size, queries, dtype, device),
                }
                row["max_relative_error"] = check.get("max_relative_error")
                run_dir.log_metrics(row)
                rows.append(row)
            release_memory(device)
    return rows, checks


def _detector_part(config: GpuBenchConfig, device: torch.device, run_dir: RunDir) -> list[dict]:
    """Each kind's training step; time and memory ratios against ``double-cross``."""
    rows = []
    for kind in KINDS:
        print(f"[gpu] detector {kind}: building and timing the training step", flush=True)
        row = {"part": "detector", "kind": kind}
        row.update(_attempt(kind, _detector_row, config, kind, device))
        release_memory(device)
        rows.append(row)
    baseline = rows[0]
    for row in rows:
        if "median_ms" in row and "median_ms" in baseline:
            row["time_vs_double_cross"] = row["median_ms"] / baseline["median_ms"]
            row["memory_vs_double_cross"] = row["peak_mib"] / max(baseline["peak_mib"], 1e-9)
        run_dir.log_metrics(row)
    return rows


def _machine(device: torch.device) -> dict:
    info = machine_info()
    if device.type == "cuda":
        info["device"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return info


def run(config: GpuBenchConfig) -> dict:
    """Check, time, print and record both parts; ``results["passed"]`` is the checks' verdict."""
    unknown = sorted(set(config.parts) - set(PARTS)) + sorted(set(config.dtypes) - set(DTYPES))
    if unknown:
        raise ValueError(f"parts/dtypes: unknown {unknown}; choose from {PARTS}, {tuple(DTYPES)}")
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {config.device}: no CUDA device is available here")
    run_dir = RunDir(config.out)
    run_dir.write_config(asdict(config))
    rows, checks = [], {}
    with torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT):
        if "attention" in config.parts:
            rows, checks = _attention_part(config, device, run_dir)
        if "detector" in config.parts:
            rows += _detector_part(config, device, run_dir)
    errors = [row for row in rows if "error" in row]
    results = {
        "machine": _machine(device),
        "equality": checks,
        "passed": all(check["passed"] for check in checks.values()) and not errors,
        "rows": rows,
    }
    run_dir.write_results(results)
    _print_table(config, rows)
    return results


def _cells(row: dict, columns: tuple[tuple[str, str, int], ...]) -> str:
    """``row``'s values as right-aligned table cells; a missing value (a failure) prints ``-``."""
    cells = []
    for key, spec, width in columns:
        value = row.get(key)
        cells.append(f"{'-' if value is None else format(value, spec):>{width}}")
    return "".join(cells) + ("  FAILED: see the log" if "error" in row else "")


_ATTENTION_COLUMNS = (
    ("size", "d", 5),
    ("queries", "d", 6),
    ("dtype", "s", 7),
    ("path", "s", 9),
    ("ours_median_ms", ".2f", 10),
    ("floor_median_ms", ".2f", 10),
    ("ours_vs_floor", ".2f", 12),
    ("max_relative_error", ".1e", 12),
)
_DETECTOR_COLUMNS = (
    ("kind", "s", 14),
    ("median_ms", ".1f", 10),
    ("peak_mib", ".0f", 10),
    ("time_vs_double_cross", ".2f", 12),
    ("memory_vs_double_cross", ".2f", 14),
)


def _print_table(config: GpuBenchConfig, rows: list[dict]) -> None:
    attention_rows = [r for r in rows if r["part"] == "attention"]
    if attention_rows:
        print(
            f"\nattention fwd+bwd, B={config.batch}, H={config.num_heads}, "
            f"Dh={config.head_dim}, BoxRPB {config.hidden_dim} wide: ours / SDPA without bias"
        )
        print(
            f"{'S':>5}{'Q':>6}{'dtype':>7}{'path':>9}{'ours ms':>10}{'floor ms':>10}"
            f"{'ours/floor':>12}{'rel. error':>12}"
        )
        for row in attention_rows:
            print(_cells(row, _ATTENTION_COLUMNS))
    detector_rows = [r for r in rows if r["part"] == "detector"]
    if detector_rows:
        print(
            f"\ndetector training step, bf16, ResNet-50, {config.target_size} px, "
            f"batch {config.batch_size}, {config.num_layers} layers, Q={config.num_queries}"
        )
        print(f"{'kind':>14}{'ms/step':>10}{'peak MiB':>10}{'time vs dc':>12}{'memory vs dc':>14}")
        for row in detector_rows:
            print(_cells(row, _DETECTOR_COLUMNS))
