"""The scaling figure of ``ia bench scaling``: time and memory against Nv·Q, Nv and Q.

Drawn from the run's ``results.json`` (rows with ``sweep``, ``variant``, ``size``, ``queries``,
``tokens``, ``median_cpu_ms``, ``peak_mib``). Three log-log panels: CPU time per forward+backward
against Nv·Q (both sweeps), peak memory against Nv (Q fixed) and against Q (Nv fixed); dashed
lines of slope 1 through ours' first point show what linear growth looks like. Matplotlib only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

__all__ = ["draw_bench_scaling", "loglog_slope"]

_STYLE = {"ours": ("tab:blue", "o"), "reference": ("tab:red", "s"), "floor": ("tab:gray", "^")}
_LABEL = {"ours": "ours", "reference": "authors' formulation", "floor": "SDPA, no bias (floor)"}


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x (1 means linear growth)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((x - mx) ** 2 for x in lx)
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True)) / den


def _series(rows: list[dict], variant: str, sweep: str | None, x: str, y: str):
    chosen = [r for r in rows if r["variant"] == variant and (sweep is None or r["sweep"] == sweep)]
    points = sorted({(_x(r, x), r[y]) for r in chosen if r[y] > 0})
    return [p[0] for p in points], [p[1] for p in points]


def _x(row: dict, x: str) -> float:
    return row["tokens"] * row["queries"] if x == "work" else row[x]


def draw_bench_scaling(results_json: Path, out: Path) -> Path:
    """Draw the three panels from the run's records; save to ``out``."""
    record = json.loads(Path(results_json).read_text(encoding="utf-8"))
    rows = record["rows"]
    variants = [v for v in _STYLE if any(r["variant"] == v for r in rows)]
    fixed_q = next((r["queries"] for r in rows if r["sweep"] == "size"), None)
    fixed_s = next((r["size"] for r in rows if r["sweep"] == "queries"), None)
    panels = (
        (None, "work", "median_cpu_ms", "Nv·Q", "CPU time per fwd+bwd (ms)", "time"),
        ("size", "tokens", "peak_mib", f"Nv = S² (Q = {fixed_q})", "peak memory (MiB)", "memory"),
        ("queries", "queries", "peak_mib", f"Q (S = {fixed_s})", "peak memory (MiB)", "memory"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (sweep, x, y, xlabel, ylabel, title) in zip(axes, panels, strict=True):
        for variant in variants:
            xs, ys = _series(rows, variant, sweep, x, y)
            if not xs:
                continue
            colour, marker = _STYLE[variant]
            slope = loglog_slope(xs, ys) if len(xs) > 1 else float("nan")
            label = f"{_LABEL[variant]} (slope {slope:.2f})"
            ax.plot(xs, ys, marker=marker, color=colour, label=label)
            if variant == "ours":
                ax.plot(xs, [ys[0] * v / xs[0] for v in xs], "--", color=colour, alpha=0.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: the minor labels overlap
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title} (log-log; dashed: slope 1 through ours)", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    machine = record.get("machine", {})
    fig.suptitle(
        f"box bias + indirect attention, B=2, H=8, Dh=32, BoxRPB 512 wide, float32, "
        f"{machine.get('threads', '?')} thread(s), torch {machine.get('torch', '?')}",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
