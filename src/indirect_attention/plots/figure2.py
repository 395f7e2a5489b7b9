"""Figure 2: test accuracy over training, mean ± std over seeds, one curve per model.

Drawn from ``metrics.jsonl`` rows (``task``, ``model``, ``seed``, ``epoch``, ``test_acc``); one panel
per run directory. Matplotlib only (Agg backend).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["curves", "draw_figure2"]

TITLES = {
    "sort": "Sorting by an arbitrary ordering",
    "retrieval": "Sequence retrieval",
    "lookup": "Marked lookup",
}
COLORS = {
    "indirect": "tab:red",
    "naive": "tab:blue",
    "cross": "tab:green",
    "indirect-pointer": "tab:brown",
    "indirect-nobias-update": "tab:orange",
    "indirect-noenrich": "tab:purple",
}


def _rows(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def curves(rows: list[dict], *, key: str = "test_acc") -> dict[str, tuple[list, list, list]]:
    """Per model: epochs, mean and std over seeds of ``key`` (epochs every seed reached)."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        values[row["model"]][row["epoch"]].append(row[key])
    out = {}
    for model, by_epoch in values.items():
        seeds = max(len(v) for v in by_epoch.values())
        epochs = sorted(e for e, v in by_epoch.items() if len(v) == seeds)
        means = [statistics.fmean(by_epoch[e]) for e in epochs]
        stds = [statistics.pstdev(by_epoch[e]) for e in epochs]
        out[model] = (epochs, means, stds)
    return out


def draw_figure2(
    run_dirs: list[Path | list[Path]], out: Path, *, titles: list[str] | None = None
) -> Path:
    """One panel per run directory with every model's mean ± std test accuracy; save to ``out``.

    An item of ``run_dirs`` may be a list of directories of the same task (e.g. the main models and
    the ablations run apart); their metrics are drawn in one panel.
    """
    fig, axes = plt.subplots(1, len(run_dirs), figsize=(5.2 * len(run_dirs), 3.8), squeeze=False)
    for index, (ax, run_dir) in enumerate(zip(axes[0], run_dirs, strict=True)):
        group = run_dir if isinstance(run_dir, list) else [run_dir]
        rows = [row for one in group for row in _rows(Path(one) / "metrics.jsonl")]
        for model, (epochs, means, stds) in sorted(curves(rows).items()):
            pct = [100 * m for m in means]
            color = COLORS.get(model)
            ax.plot(epochs, pct, label=model, linewidth=1.6, color=color)
            low = [100 * (m - s) for m, s in zip(means, stds, strict=True)]
            high = [100 * (m + s) for m, s in zip(means, stds, strict=True)]
            ax.fill_between(epochs, low, high, alpha=0.2, color=color)
        task = rows[0]["task"] if rows else ""
        title = titles[index] if titles else TITLES.get(task, task)
        seeds = len({row["seed"] for row in rows})
        ax.set_title(f"{title} ({seeds} seeds)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
