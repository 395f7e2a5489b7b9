"""Figures of the marked-lookup experiments, drawn from their run records (matplotlib, Agg).

* :func:`draw_lookup`: final test accuracy against the offset s (the misalignment), mean and
  every seed, one line per model; one panel per value setting.
* :func:`draw_references`: how far each layer's references sit from the read position m + s,
  per model with references, one line per offset.
* :func:`draw_scaling`: the paper's prediction: accuracy of naive and indirect against width d,
  one panel per depth.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .figure2 import COLORS

__all__ = ["draw_lookup", "draw_references", "draw_scaling"]

#: Sub-folder of the setting whose values carry position codes (as the reproduction writes it).
WITH_POSITIONS = "value-positions"
SETTINGS = ((False, "values without position codes (headline)"), (True, "values with positions"))


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _save(figure: plt.Figure, out: Path, title: str) -> Path:
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _color(model: str) -> str:
    return COLORS.get(model, "tab:gray")


def _offsets(root: Path) -> list[int]:
    found = [p.name.removeprefix("offset-") for p in root.glob("offset-*") if p.is_dir()]
    return sorted(int(name) for name in found if name.isdigit())


def draw_lookup(root: Path, out: Path) -> Path:
    """Final test accuracy (%) against the offset, every model, both value settings."""
    offsets = _offsets(root)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for axis, (value_positions, title) in zip(axes, SETTINGS, strict=True):
        per_model: dict[str, dict[int, list[float]]] = defaultdict(dict)
        for offset in offsets:
            folder = root / f"offset-{offset}"
            path = (folder / WITH_POSITIONS if value_positions else folder) / "results.json"
            if not path.exists():
                continue
            for model, summary in _read(path)["models"].items():
                per_model[model][offset] = [100 * r["final_test_acc"] for r in summary["per_seed"]]
        for model, by_offset in per_model.items():
            xs = sorted(by_offset)
            axis.plot(
                xs,
                [statistics.fmean(by_offset[x]) for x in xs],
                marker="o",
                color=_color(model),
                label=model,
            )
            for x in xs:
                axis.scatter([x] * len(by_offset[x]), by_offset[x], s=8, color=_color(model))
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("offset s (read the payload s places after the marker)")
        axis.set_xticks(offsets)
        axis.axhline(10, color="black", lw=0.6, ls=":")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("final test accuracy (%); chance = 10")
    axes[0].legend(fontsize=8)  # the headline panel has every model
    return _save(figure, out, "Marked lookup: relevance in one sequence, content in the other")


def draw_references(path: Path, out: Path) -> Path:
    """Mean distance (positions) from each layer's references to m + s, headline setting."""
    rows = [r for r in _read(path)["rows"] if not r["value_positions"]]
    models = sorted({r["model"] for r in rows})
    figure, axes = plt.subplots(
        1, max(len(models), 1), figsize=(4 * max(len(models), 1), 3.6), sharey=True
    )
    axes = [axes] if len(models) <= 1 else list(axes)
    for axis, model in zip(axes, models, strict=False):
        by_offset: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            if row["model"] == model:
                by_offset[row["offset"]][row["layer"]].append(row["mean_abs_error"])
        for offset, by_layer in sorted(by_offset.items()):
            layers = sorted(by_layer)
            axis.plot(
                layers,
                [statistics.fmean(by_layer[layer]) for layer in layers],
                marker="o",
                label=f"s = {offset}",
            )
        axis.axhline(0.5, color="black", lw=0.8, ls="--", label="at m + s (< 0.5)")
        axis.set_title(model, fontsize=10)
        axis.set_xlabel("layer (0 = P^0)")
        axis.set_xticks(sorted({row["layer"] for row in rows}))
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[0].set_ylabel("mean |reference - (m + s)| (positions)")
    return _save(
        figure, out, "Do the references move to the read position? (values without positions)"
    )


def draw_scaling(path: Path, out: Path) -> Path:
    """Final test accuracy (%) against width d for naive and indirect, one panel per depth."""
    record = _read(path)
    depths = record["depths"]
    figure, axes = plt.subplots(1, len(depths), figsize=(4 * len(depths), 3.6), sharey=True)
    axes = [axes] if len(depths) == 1 else list(axes)
    for axis, depth in zip(axes, depths, strict=True):
        for model in ("indirect", "naive"):
            cells: dict[int, list[float]] = defaultdict(list)
            for row in record["rows"]:
                if row["model"] == model and row["depth"] == depth:
                    cells[row["dim"]].append(100 * row["final_test_acc"])
            dims = sorted(cells)
            if not dims:
                continue
            axis.plot(
                dims,
                [statistics.fmean(cells[d]) for d in dims],
                marker="o",
                color=_color(model),
                label=model,
            )
        axis.set_xscale("log", base=2)
        axis.set_title(f"{depth} layers", fontsize=10)
        axis.set_xlabel("width d")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("final test accuracy (%)")
    axes[-1].legend(fontsize=8)
    return _save(
        figure, out, f"Lookup (offset {record['offset']}), values without positions: width, depth"
    )
