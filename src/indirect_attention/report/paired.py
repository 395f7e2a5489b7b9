"""A paper-claim row from a paired comparison over seeds (DESIGN convention 12).

:func:`comparison_claim` turns two models' per-seed values into a :class:`~.rows.Claim` whose
verdict, interval and "seeds that would decide" come from :func:`.stats.paired_comparison`, and
whose ``why`` states the rule. :func:`per_seed_values` reads the per-seed values of one model
from a synthetic record (``models[kind]["per_seed"]``), for one metric of the curve.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from .rows import NOT_COMPARABLE, PAPER, Claim
from .stats import describe, paired_comparison

__all__ = ["METRICS", "comparison_claim", "early_epoch", "per_seed_values", "rule_text"]


def early_epoch(epochs: int) -> int:
    """The early epoch at which accuracy is compared: ⌈E/4⌉ (1-based) of ``epochs`` = E."""
    return max(1, math.ceil(epochs / 4))


def _final(row: dict[str, Any], epochs: int) -> float | None:
    return row.get("final_test_acc")


def _area(row: dict[str, Any], epochs: int) -> float | None:
    curve = row.get("curve")
    return statistics.fmean(curve) if curve else None


def _early(row: dict[str, Any], epochs: int) -> float | None:
    curve, epoch = row.get("curve") or [], early_epoch(epochs)
    return curve[epoch - 1] if len(curve) >= epoch else None


#: name -> (what it measures, for the claim text; how to read it from a per-seed row).
METRICS: dict[str, tuple[str, Callable[[dict[str, Any], int], float | None]]] = {
    "final": ("final test accuracy", _final),
    "area": ("area under the test-accuracy curve (mean over epochs)", _area),
    "early": ("test accuracy at an early epoch ⌈E/4⌉", _early),
}


def per_seed_values(model: dict[str, Any], metric: str, epochs: int) -> dict[int, float]:
    """seed -> the metric of one model's per-seed rows (seeds whose row lacks it are left out)."""
    read = METRICS[metric][1]
    values = {int(row["seed"]): read(row, epochs) for row in model.get("per_seed", [])}
    return {seed: float(v) for seed, v in values.items() if v is not None}


def rule_text(ours: str, theirs: str, direction: int, what: str) -> str:
    """The rule of a paired comparison, in words."""
    side, other = ("above", "below") if direction > 0 else ("below", "above")
    return (
        f"rule: paired per-seed difference {ours} − {theirs} in {what}, 95% t interval over the "
        f"seeds both have; confirmed when it lies {side} 0, contradicted when {other} 0, "
        "inconclusive when it contains 0 (or with one seed)"
    )


def comparison_claim(
    *,
    part: str,
    claim: str,
    paper: str,
    names: tuple[str, str],
    values: tuple[dict[int, float], dict[int, float]],
    direction: int = 1,
    what: str = "final test accuracy",
    effect_paper: str = "",
    headline: bool = True,
    scale: float = 100.0,
    unit: str = "points",
) -> Claim:
    """A paper-claim row comparing two models paired by seed.

    Args:
        part: The part's name.
        claim: The claim, with the paper's section.
        paper: What the paper states.
        names: (ours, theirs): the two models' names.
        values: (ours, theirs): seed -> value.
        direction: +1 when the claim is that ours is higher, -1 when lower.
        what: The compared quantity, in words.
        effect_paper: The paper's effect size, where it gives one.
        headline: Whether the row belongs in the headline tables.
        scale: Multiplies values for display (100: accuracy in points).
        unit: The displayed unit.
    """
    ours, theirs = values
    common = sorted(set(ours) & set(theirs))
    rule = rule_text(names[0], names[1], direction, what)
    base = dict(part=part, claim=claim, paper=paper, kind=PAPER, headline=headline)
    if not common:
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        return Claim(
            **base,
            ours=f"no common seeds ({', '.join(missing) or 'seeds differ'})",
            verdict=NOT_COMPARABLE,
            why=f"the records hold no {what} for "
            + (" and ".join(missing) if missing else "a seed both models ran"),
            effect_paper=effect_paper,
        )
    comparison = paired_comparison(ours, theirs, direction=direction)
    mean_ours = statistics.fmean(ours[s] for s in common) * scale
    mean_theirs = statistics.fmean(theirs[s] for s in common) * scale
    extra = len(set(ours) ^ set(theirs))
    note = f"; {extra} unpaired seed(s) left out" if extra else ""
    return Claim(
        **base,
        ours=f"{names[0]} {mean_ours:.1f} vs {names[1]} {mean_theirs:.1f} (mean {what}, "
        f"seeds {common}){note}",
        verdict=comparison.verdict,
        why=rule,
        effect_paper=effect_paper,
        effect_ours=describe(comparison, scale=scale, unit=unit),
    )
