"""``ia reproduce``: re-run the paper's experiments on embedded data and a CPU, resumably.

Parts (in order): ``core_check`` (§5), ``theory`` (§3-4, Figure 1), ``synthetic_sort`` and
``synthetic_retrieval`` (§6.1, Figures 2 and 4, three models and two ablations on the same seeds,
values with and without position codes), ``synthetic_lookup`` (marked lookup with offsets: where
misalignment matters) and ``synthetic_scaling`` (the paper's width/depth prediction),
``detection`` (§6.2, the Table 1 analogue on the emoji benchmark and a Figure 7-style picture),
``bench_attention`` and ``bench_train`` (§6.2, Figure 6: speed and memory against their targets).

Each part writes its own run directory ``out/<part>/`` (``config.json``, ``metrics.jsonl``,
``results.json``, figures) and its outcome to ``out/<part>/part.json``. A part whose ``part.json``
says it finished under the same profile is kept, so a stopped reproduction resumes from the
finished parts (a part recorded under another profile is deleted and run afresh; a failed part is
run again in place, so the detection part keeps the detectors it had finished). A part that fails
is recorded with its error and traceback and the others still run; the report lists it. After
the parts, ``report.md``, ``report.html`` (figures embedded) and ``headline.json`` are written:
every verdict in them is computed from the parts' records by :mod:`indirect_attention.report`.

With the profile's ``part_jobs`` > 1, the parts marked ``shares_cpu`` (theory and the synthetic
parts, single-threaded work) run side by side in that many worker processes, one torch thread
each, when the first of them is reached; the others run alone, in order.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..report import part_record, write_reports
from ..report.claims import (
    bench_attention_claims,
    bench_train_claims,
    core_check_claims,
    theory_claims,
)
from ..report.experiments import (
    alignment_claim,
    detection_claims,
    figure4_claim,
    figure7_claim,
    lookup_claims,
    scaling_claims,
    synthetic_claims,
)
from ..training import RunDir
from .config import Part, ReproduceConfig
from .detection_part import detection
from .parts import bench_attention, bench_train, core_check, theory
from .profiles import PROFILES, ProfileSettings
from .synthetic_parts import lookup, scaling, synthetic

__all__ = ["PARTS", "PROFILES", "Part", "ProfileSettings", "ReproduceConfig", "run", "write_report"]


def _retrieval_claims(part_dir: Path) -> list:
    return [*synthetic_claims(part_dir, task="retrieval"), figure4_claim(part_dir)]


def _detection_claims(part_dir: Path) -> list:
    others = sorted(p for p in part_dir.glob("recipe-*") if (p / "results.json").exists())
    recipes = [claim for path in others for claim in detection_claims(path)]
    alignment = alignment_claim(part_dir)
    rows = [*detection_claims(part_dir), *recipes, figure7_claim(part_dir)]
    return rows if alignment is None else [*rows, alignment]


PARTS: dict[str, Part] = {
    "core_check": Part(run=core_check, claims=core_check_claims),
    "theory": Part(
        run=theory,
        claims=theory_claims,
        shares_cpu=True,
        figures=(("Figure 1: SNR under value noise and under misalignment", "figure1.png"),),
    ),
    "synthetic_sort": Part(
        run=synthetic("sort"),
        claims=partial(synthetic_claims, task="sort"),
        shares_cpu=True,
        figures=(("Figure 2: sorting, test accuracy over epochs", "figure2.png"),),
    ),
    "synthetic_retrieval": Part(
        run=synthetic("retrieval"),
        claims=_retrieval_claims,
        shares_cpu=True,
        figures=(
            ("Figure 2: retrieval, test accuracy over epochs", "figure2.png"),
            ("Figure 4: the indirect model's bias per layer and head", "figure4.png"),
        ),
    ),
    "synthetic_lookup": Part(
        run=lookup,
        claims=lookup_claims,
        shares_cpu=True,
        figures=(
            ("Marked lookup: accuracy against the offset s", "lookup.png"),
            ("Marked lookup: references against the read position m + s", "references.png"),
        ),
    ),
    "synthetic_scaling": Part(
        run=scaling,
        claims=scaling_claims,
        shares_cpu=True,
        figures=(("Width and depth: naive against indirect", "scaling.png"),),
    ),
    "detection": Part(
        run=detection,
        claims=_detection_claims,
        figures=(
            ("Figure 7 analogue: top-ranked object queries, right vs wrong query", "figure7.png"),
            ("ia detections: ground truth, right query, wrong query", "predictions.png"),
            ("Validation AP50, wrong-query AP50 and matching AUC by training step", "curves.png"),
        ),
    ),
    "bench_attention": Part(run=bench_attention, claims=bench_attention_claims),
    "bench_train": Part(run=bench_train, claims=bench_train_claims),
}


def _read_part(part_dir: Path) -> dict[str, Any] | None:
    path = part_dir / "part.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _selected(config: ReproduceConfig) -> list[str]:
    unknown = [name for name in config.parts if name not in PARTS]
    if unknown:
        raise ValueError(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    return [name for name in PARTS if not config.parts or name in config.parts]


def _run_part(name: str, config: ReproduceConfig, part_dir: RunDir) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        result = {"status": "ok", "summary": PARTS[name].run(config, part_dir)}
    except Exception as error:  # a failed part is recorded, never dropped
        result = {"status": "failed", "error": repr(error), "trace": traceback.format_exc()}
    return _finish_part(result, start, config, part_dir)


def _finish_part(
    result: dict[str, Any], start: float, config: ReproduceConfig, part_dir: RunDir
) -> dict[str, Any]:
    result.update(
        seconds=time.perf_counter() - start,
        profile=config.profile,
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    part_dir.write_json("part.json", result)
    return result


def _run_part_in_worker(name: str, config: ReproduceConfig, part_dir: str) -> dict[str, Any]:
    """A worker process's entry: one torch thread, then the part as :func:`_run_part` runs it."""
    torch.set_num_threads(1)
    return _run_part(name, config, RunDir(part_dir))


def _run_side_by_side(
    names: list[str], config: ReproduceConfig, root: Path, jobs: int
) -> dict[str, dict[str, Any]]:
    """Run parts in ``jobs`` spawned worker processes; a worker that dies fails its part."""
    results: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(names)), mp_context=context) as pool:
        futures = {
            pool.submit(_run_part_in_worker, name, config, str(root / name)): name for name in names
        }
        for future in as_completed(futures):
            name = futures[future]
            try:
                results[name] = future.result()
            except Exception as error:  # the worker died or could not start: say so
                failure = {"status": "failed", "error": f"worker process failed: {error!r}"}
                failure["trace"] = traceback.format_exc()
                results[name] = _finish_part(failure, start, config, RunDir(root / name))
    return results


def run(config: ReproduceConfig) -> dict[str, Any]:
    """Run every selected part not yet finished, then write the reports.

    Returns:
        ``{"profile", "parts": {name: {"status", "seconds", "resumed"}}, "report"}`` for the
        selected parts (also written to ``out/results.json``).
    """
    if config.profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {config.profile!r}")
    if config.settings is None:
        config = replace(config, settings=PROFILES[config.profile])
    names = _selected(config)
    root = RunDir(config.out)
    root.write_config(asdict(config))
    summary: dict[str, Any] = {"profile": config.profile, "parts": {}}
    started = time.perf_counter()
    print(f"[reproduce] profile {config.profile}: {len(names)} parts into {root.root}", flush=True)
    pending = []
    for number, name in enumerate(names, start=1):
        part_dir = root.root / name
        done = _read_part(part_dir)
        tag = f"[reproduce] ({number}/{len(names)}) {name}"
        if done and done.get("status") == "ok" and done.get("profile") == config.profile:
            print(f"{tag}: finished earlier, kept", flush=True)
            summary["parts"][name] = {"status": "ok", "seconds": done["seconds"], "resumed": True}
            continue
        if done and done.get("profile") != config.profile:
            # Its runs were sized for another profile; detection would otherwise reuse them.
            print(f"{tag}: ran under profile {done.get('profile')!r}, starting afresh", flush=True)
            shutil.rmtree(part_dir)
        pending.append((tag, name))
    jobs = config.settings.part_jobs
    shared = [name for _, name in pending if PARTS[name].shares_cpu]
    if jobs <= 1 or len(shared) <= 1:
        shared = []
    side_by_side: dict[str, dict[str, Any]] = {}
    for tag, name in pending:
        if name in shared:
            if not side_by_side:
                print(f"[reproduce] {', '.join(shared)}: running side by side ({jobs} processes)")
                side_by_side = _run_side_by_side(shared, config, root.root, jobs)
            result = side_by_side[name]
        else:
            print(f"{tag}: running", flush=True)
            result = _run_part(name, config, RunDir(root.root / name))
        root.log_metrics({"part": name, "status": result["status"], "seconds": result["seconds"]})
        summary["parts"][name] = {
            "status": result["status"],
            "seconds": result["seconds"],
            "resumed": False,
        }
        elapsed = (time.perf_counter() - started) / 60
        line = f"{tag}: {result['status']} in {result['seconds']:.1f} s ({elapsed:.1f} min so far)"
        print(line + (f": {result['error']}" if result["status"] != "ok" else ""), flush=True)
    resumed = {name for name, info in summary["parts"].items() if info["resumed"]}
    summary["report"] = str(write_report(root.root, profile=config.profile, resumed=resumed))
    root.write_results(summary)
    failed = [n for n, p in summary["parts"].items() if p["status"] != "ok"]
    print(
        f"[reproduce] done in {(time.perf_counter() - started) / 60:.1f} min; "
        f"failed: {', '.join(failed) or 'none'}; report: {summary['report']}",
        flush=True,
    )
    return summary


def write_report(out: str | Path, *, profile: str, resumed: set[str] | None = None) -> Path:
    """(Re)write ``report.md``, ``report.html`` and ``headline.json`` from the records in ``out``.

    Every part of :data:`PARTS` appears: its verdicts when it finished, its error when it failed,
    "not run" otherwise. Returns the path of ``report.html``.
    """
    out = Path(out)
    records = [
        part_record(
            name,
            out / name,
            claims=part.claims,
            figures=part.figures,
            resumed=name in (resumed or set()),
        )
        for name, part in PARTS.items()
    ]
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return write_reports(out, records, profile=profile, written=written)
