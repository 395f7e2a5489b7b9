"""Validation AP50, wrong-query AP50 and matching AUC against the training step, per detector.

Drawn from each run's ``metrics.jsonl`` (rows with ``val_ap50``) under a Table 1 directory
(``<kind>-s<seed>/``). A gap between detectors at a fixed budget can be about how fast each
learns (the box bias may speed early localisation) or about where each ends; the curves tell the
two apart. One line per run, one colour per detector. Matplotlib only (Agg canvas), never torch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["draw_detection_curves", "read_curves"]

_PANELS = (
    ("val_ap50", "validation AP50 (right query)"),
    ("val_wrong", "validation AP50 (wrong-class query)"),
    ("val_matching_auc", "validation matching AUC"),
)
_COLORS = {"ia": "tab:green", "double-cross": "tab:blue", "misaligned": "tab:red"}
_RUN = re.compile(r"^(?P<kind>.+)-s(?P<seed>\d+)$")


def read_curves(table_dir: str | Path) -> dict[str, dict[int, list[dict]]]:
    """kind -> seed -> the validation rows of that run, in step order."""
    curves: dict[str, dict[int, list[dict]]] = {}
    for run in sorted(Path(table_dir).iterdir()):
        match = _RUN.match(run.name)
        metrics = run / "metrics.jsonl"
        if not (match and run.is_dir() and metrics.exists()):
            continue
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        rows = sorted((r for r in rows if "val_ap50" in r), key=lambda r: r["step"])
        curves.setdefault(match["kind"], {})[int(match["seed"])] = rows
    return curves


def draw_detection_curves(table_dir: str | Path, path: str | Path) -> Path:
    """Draw the curves of every run under ``table_dir`` into the PNG ``path``.

    Raises:
        ValueError: no run under ``table_dir`` has a validation row.
    """
    curves = read_curves(table_dir)
    if not any(rows for runs in curves.values() for rows in runs.values()):
        raise ValueError(f"{table_dir}: no run with validation rows (metrics.jsonl: val_ap50)")
    figure = Figure(figsize=(4.2 * len(_PANELS), 3.4))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(_PANELS))
    for ax, (key, title) in zip(axes, _PANELS, strict=True):
        for kind, runs in curves.items():
            color = _COLORS.get(kind)
            for seed, rows in sorted(runs.items()):
                points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
                if points:
                    steps, values = zip(*points, strict=True)
                    label = kind if seed == min(runs) else None
                    ax.plot(steps, values, marker="o", ms=3, color=color, label=label, alpha=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[-1].axhline(0.5, color="grey", ls=":", lw=1)  # the AUC of scores that ignore the query
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    return out
