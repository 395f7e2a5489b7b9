"""Figure 1 of the paper, redrawn from ``ia theory``'s ``results.json`` (paper §3.1 and §4).

Left: output SNR against the value-noise std sigma for several d (log-log), with the closed form
1/sigma² and sigma* = 1. Middle: SNR under misalignment against d, measured three ways (output
energy ratio, per component, and the paper's 1/gamma). Right: the misalignment energy gamma
against d for several mean shifts, with sigma* = 1 and the threshold as a total energy, d·sigma*².

matplotlib only (the Agg canvas, no pyplot and no global backend switch); never torch.

Shapes:
    results: the ``results.json`` dict (lists of row dicts); no arrays.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

__all__ = ["draw_figure1", "figure1", "figure1_png", "load_results"]

SIGMA_STAR = 1.0


def load_results(results: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """The results dict itself, or the dict read from a ``results.json`` path."""
    if isinstance(results, dict):
        return results
    return json.loads(Path(results).read_text(encoding="utf-8"))


def _middle(values: list[float], target: float = 1.0) -> float:
    """The value closest to ``target`` on a log scale (the 'standard' softmax temperature)."""
    return min(values, key=lambda v: abs(v - target) / max(v, target))


def _colors(count: int, name: str) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps[name]
    return [cmap(0.15 + 0.7 * i / max(count - 1, 1)) for i in range(count)]


def _ticks(ax: Any, values: list[float]) -> None:
    """Label the x axis at the grid values themselves (log axes label only decades otherwise)."""
    ax.set_xticks(values, [f"{v:g}" if float(v).is_integer() else f"{v:.3g}" for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _snr_vs_sigma(ax: Any, additive: list[dict[str, Any]], temperature: float) -> None:
    dims = sorted({r["dim"] for r in additive})
    for dim, color in zip(dims, _colors(len(dims), "viridis"), strict=True):
        for r_t in sorted({r["temperature"] for r in additive}):
            rows = sorted(
                (r for r in additive if r["dim"] == dim and r["temperature"] == r_t),
                key=lambda r: r["sigma"],
            )
            xs, ys = [r["sigma"] for r in rows], [r["snr_mc"] for r in rows]
            if r_t == temperature:
                ax.plot(xs, ys, "o-", color=color, ms=4, lw=1.2, label=f"d = {dim}")
            else:
                ax.plot(xs, ys, "x", color=color, ms=4, alpha=0.6)
    sigmas = sorted({r["sigma"] for r in additive})
    ax.plot(sigmas, [1 / s**2 for s in sigmas], "k--", lw=1, label="closed form 1/σ²")
    ax.plot([], [], "kx", ms=4, alpha=0.6, label="other temperatures")
    ax.axvline(SIGMA_STAR, color="tab:red", ls=":", lw=1.5, label="σ* = 1")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="value noise std σ", ylabel="output SNR")
    _ticks(ax, sigmas if len(sigmas) <= 9 else sigmas[::2])
    ax.set_title(f"Additive noise (§3.1), softmax temperature {temperature:g}", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")


def _snr_vs_dim(ax: Any, misaligned: list[dict[str, Any]], temperature: float) -> None:
    shifts = sorted({r["mean_shift"] for r in misaligned})
    styles = {
        "snr_mc": ("o-", "output energy ratio (measured)"),
        "snr_per_component_mc": ("s--", "per component (measured)"),
        "snr_total_energy": ("^:", "1/γ (paper: total energy vs σ*²)"),
    }
    for shift, color in zip(shifts, _colors(len(shifts), "plasma"), strict=True):
        rows = sorted(
            (r for r in misaligned if r["mean_shift"] == shift and r["temperature"] == temperature),
            key=lambda r: r["dim"],
        )
        for field, (style, _) in styles.items():
            ax.plot([r["dim"] for r in rows], [r[field] for r in rows], style, color=color, ms=4)
    handles = [Line2D([], [], color=c, lw=2) for c in _colors(len(shifts), "plasma")]
    labels = [f"δ = {s:g}" for s in shifts]
    handles += [Line2D([], [], color="k", ls=s[1:] or "-", marker=s[0]) for s, _ in styles.values()]
    labels += [label for _, label in styles.values()]
    handles.append(Line2D([], [], color="0.5", lw=0.8))
    labels.append("SNR = 1 (critical)")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="model dim d", ylabel="SNR under misalignment")
    _ticks(ax, sorted({r["dim"] for r in misaligned}))
    ax.set_title(f"Misaligned keys and values (§4), temperature {temperature:g}", fontsize=10)
    ax.legend(handles, labels, fontsize=7, loc="lower left")


def _gamma_vs_dim(ax: Any, misaligned: list[dict[str, Any]], temperature: float) -> None:
    shifts = sorted({r["mean_shift"] for r in misaligned})
    dims: list[int] = []
    for shift, color in zip(shifts, _colors(len(shifts), "plasma"), strict=True):
        rows = sorted(
            (r for r in misaligned if r["mean_shift"] == shift and r["temperature"] == temperature),
            key=lambda r: r["dim"],
        )
        dims = [r["dim"] for r in rows]
        ax.plot(
            dims, [r["gamma_mc"] for r in rows], "o", color=color, ms=5, label=f"δ = {shift:g} (MC)"
        )
        ax.plot(dims, [r["gamma_closed"] for r in rows], "-", color=color, lw=1)
    ax.plot([], [], "k-", lw=1, label="closed form 2d + d·δ²")
    ax.axhline(SIGMA_STAR**2, color="tab:red", ls=":", lw=1.5, label="σ*² = 1 (paper's threshold)")
    ax.plot(
        dims,
        [d * SIGMA_STAR**2 for d in dims],
        color="tab:red",
        ls="--",
        lw=1,
        label="d·σ*² (threshold as total energy)",
    )
    ax.set(xscale="log", yscale="log", xlabel="model dim d", ylabel="γ = E‖W_v(y − x)‖²")
    _ticks(ax, dims)
    ax.set_title("Misalignment noise energy γ (§4, A.3)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")


def figure1(results: dict[str, Any] | str | os.PathLike[str]) -> Figure:
    """The three-panel Figure 1 (an Agg-backed ``Figure``; nothing global is touched).

    Args:
        results: The ``results.json`` dict, or its path.
    """
    data = load_results(results)
    additive, misaligned = data["additive"], data["misaligned"]
    if not additive or not misaligned:
        raise ValueError(
            f"results need additive and misaligned rows, got {len(additive)} and {len(misaligned)}"
        )
    fig = Figure(figsize=(16, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    left, middle, right = fig.subplots(1, 3)
    _snr_vs_sigma(left, additive, _middle(sorted({r["temperature"] for r in additive})))
    temperature = _middle(sorted({r["temperature"] for r in misaligned}))
    _snr_vs_dim(middle, misaligned, temperature)
    _gamma_vs_dim(right, misaligned, temperature)
    fig.suptitle("Figure 1, reproduced by Monte Carlo (orthogonal W_v, float64)", fontsize=11)
    return fig


def figure1_png(results: dict[str, Any] | str | os.PathLike[str], *, dpi: int = 130) -> bytes:
    """Figure 1 as PNG bytes (for an atomic write by the caller).

    Args:
        results: The ``results.json`` dict, or its path.
        dpi: Resolution.
    """
    buffer = io.BytesIO()
    figure1(results).savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def draw_figure1(
    results: dict[str, Any] | str | os.PathLike[str], path: str | os.PathLike[str]
) -> Path:
    """Draw Figure 1 from ``results`` (dict or ``results.json`` path) into the PNG ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure1_png(results))
    return path
