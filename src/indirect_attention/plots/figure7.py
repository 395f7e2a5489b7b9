"""Figure 7 analogue: which object queries the query image ranks highest, right vs wrong query.

Drawn from ``figure7.json`` (written by the detection part of ``ia reproduce``) and the episode's
PNG images beside it. One row per detector; for one unseen target, the columns are: the right
query, the target with the boxes of the top-k object queries (green, labelled by rank; ground
truth dashed white), every object query's score as a grid (ranks marked), then the same three
with a wrong-class query (red). The paper (Appendix B.2.1) reshapes its per-query ranking into a matrix
in the same way; a detector that matches lights up different object queries, or none, when the
query is wrong. Matplotlib only (Agg canvas), never torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.patches import Rectangle

__all__ = ["draw_figure7"]

_COLORS = {"right": "lime", "wrong": "red"}


def _boxes(
    ax: Any, image: np.ndarray, drawn: dict[str, list], truth: list, top_k: int, color: str
) -> None:
    ax.imshow(image)
    for x1, y1, x2, y2 in truth:
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white", ls="--", lw=1))
    scores = np.asarray(drawn["scores"])
    for rank, index in enumerate(np.argsort(scores)[::-1][:top_k]):
        x1, y1, x2, y2 = drawn["boxes"][index]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color, lw=1.5))
        ax.text(x1 + 2, y1 + 12, str(rank + 1), color=color, fontsize=8, fontweight="bold")


def _grid(ax: Any, scores: list[float], shape: tuple[int, int], top_k: int, vmax: float) -> Any:
    values = np.asarray(scores)
    image = ax.imshow(values.reshape(shape), cmap="magma", vmin=0.0, vmax=vmax)
    for rank, index in enumerate(np.argsort(values)[::-1][:top_k]):
        row, col = divmod(int(index), shape[1])
        ax.text(col, row, str(rank + 1), ha="center", va="center", color="cyan", fontsize=7)
    return image


def draw_figure7(record_json: str | Path, out: str | Path) -> Path:
    """Draw the object-query ranking of ``record_json``'s drawn episode; save a PNG to ``out``.

    Args:
        record_json: ``figure7.json``; its ``images`` paths are relative to its folder.
        out: The PNG to write.

    Returns:
        ``out``.
    """
    record_json = Path(record_json)
    record = json.loads(record_json.read_text(encoding="utf-8"))
    folder, top_k = record_json.parent, int(record["top_k"])
    images = {name: imread(folder / path) for name, path in record["images"].items()}
    shape = tuple(record["grid"])
    models = record["models"]
    fig = Figure(figsize=(14.0, 2.6 * len(models) + 0.6))
    FigureCanvasAgg(fig)
    ratios = [1.0, 1.7, 1.3] * 2
    axes = fig.subplots(len(models), 6, squeeze=False, gridspec_kw={"width_ratios": ratios})
    for row, (name, model) in enumerate(models.items()):
        drawn = model["drawn"]
        vmax = max(max(drawn["right"]["scores"]), max(drawn["wrong"]["scores"]), 1e-6)
        for half, which in enumerate(("right", "wrong")):
            ax_query, ax_target, ax_grid = axes[row][3 * half : 3 * half + 3]
            ax_query.imshow(images[which])
            ax_query.set_title(f"{name}: {which} query", fontsize=8)
            _boxes(
                ax_target, images["target"], drawn[which], record["truth"], top_k, _COLORS[which]
            )
            ax_target.set_title(f"top-{top_k} object queries", fontsize=8)
            colours = _grid(ax_grid, drawn[which]["scores"], shape, top_k, vmax)
            ax_grid.set_title(f"scores, {shape[0]}×{shape[1]} object queries", fontsize=8)
            fig.colorbar(colours, ax=ax_grid, fraction=0.046, pad=0.04)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        f"Which object queries the query image ranks highest (unseen class "
        f"'{record['category']}', episode {record['episode']}); ground truth dashed",
        fontsize=9,
    )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
