"""Paired comparisons over seeds: mean difference, 95% t interval, verdict, seeds to decide.

Every model of a comparison sees the same data and batches for a given seed (DESIGN convention
12), so two models are compared on their per-seed differences d_s = ours_s - theirs_s. With n
seeds, mean m and sample standard deviation sd, the 95% interval is
m ± t_{0.975, n-1} · sd / √n (Student's t). A claim "ours is higher" (``direction=+1``) or
"ours is lower" (``direction=-1``) is

* ``confirmed`` when the interval excludes 0 on the claimed side,
* ``contradicted`` when it excludes 0 on the other side,
* ``inconclusive`` otherwise (including n < 2, where there is no interval).

For an inconclusive comparison :attr:`Comparison.seeds_needed` is the smallest n with
t_{0.975, n-1} · sd / √n < |m|: how many seeds would decide if the measured mean and spread held.

The t quantile is computed here from the closed-form distribution function of Student's t for an
integer number of degrees of freedom (Abramowitz & Stegun 26.7.3-4), so the report needs no SciPy;
the tests check it against ``scipy.stats.t``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

__all__ = [
    "CONFIDENCE",
    "CONFIRMED",
    "CONTRADICTED",
    "INCONCLUSIVE",
    "SEEDS_CAP",
    "Comparison",
    "describe",
    "mean_interval",
    "paired_comparison",
    "t_quantile",
]

CONFIRMED = "confirmed"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
#: Two-sided confidence of every interval.
CONFIDENCE = 0.95
#: The search for the seeds that would decide stops here ("more than 200 seeds").
SEEDS_CAP = 200


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with ``df`` degrees of freedom (A&S 26.7.3-4), t >= 0."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(2, df, 2):  # (1·3···(k-1)) / (2·4···k) cos^k
            term *= (k - 1) / k * cos2
            total += term
        return sin * total
    if df == 1:
        return 2 * theta / math.pi
    term, total = math.cos(theta), math.cos(theta)
    for k in range(3, df - 1, 2):  # (2·4···(k-1)) / (1·3···k) cos^k
        term *= (k - 1) / k * cos2
        total += term
    return 2 / math.pi * (theta + sin * total)


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile (> 0.5) of Student's t with ``df`` >= 1 degrees of freedom.

    Bisection on the closed-form distribution function, to about 1e-12.

    Raises:
        ValueError: ``df`` < 1 or ``probability`` outside (0.5, 1).
    """
    if df < 1 or not 0.5 < probability < 1:
        raise ValueError(f"need df >= 1 and 0.5 < probability < 1, got {df=}, {probability=}")
    central = 2 * probability - 1
    low, high = 0.0, 1.0
    while _t_central(high, df) < central:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if _t_central(middle, df) < central:
            low = middle
        else:
            high = middle
        if high - low < 1e-13 * max(1.0, high):
            break
    return (low + high) / 2


def _half_width(sd: float, n: int) -> float:
    return t_quantile((1 + CONFIDENCE) / 2, n - 1) * sd / math.sqrt(n)


@dataclass(frozen=True)
class Comparison:
    """The outcome of a comparison over seeds.

    Attributes:
        n: Seeds in the comparison.
        mean: Mean difference (ours - theirs, in the records' unit).
        sd: Sample standard deviation of the differences (None with n < 2).
        low: Lower end of the 95% t interval (None with n < 2).
        high: Upper end (None with n < 2).
        direction: +1 when the claim is "ours is higher", -1 when "ours is lower".
        verdict: ``confirmed``, ``contradicted`` or ``inconclusive``.
        seeds_needed: Smallest n whose interval would exclude 0 at the measured mean and sd; None
            when not estimable (n < 2, mean 0) or beyond :data:`SEEDS_CAP`.
        beyond_cap: More than :data:`SEEDS_CAP` seeds would be needed.
        seeds: The seeds compared.
    """

    n: int
    mean: float
    sd: float | None
    low: float | None
    high: float | None
    direction: int
    verdict: str
    seeds_needed: int | None
    beyond_cap: bool
    seeds: tuple[int, ...]


def _seeds_needed(mean: float, sd: float) -> tuple[int | None, bool]:
    if mean == 0:
        return None, False
    for n in range(2, SEEDS_CAP + 1):
        if _half_width(sd, n) < abs(mean):
            return n, False
    return None, True


def mean_interval(differences: dict[int, float], *, direction: int) -> Comparison:
    """Judge per-seed values (differences, or margins against 0) by their 95% t interval.

    Args:
        differences: seed -> value; the claim is that the values are above 0 (``direction=+1``)
            or below 0 (``direction=-1``).
        direction: +1 or -1.

    Raises:
        ValueError: ``direction`` is not ±1, or there are no values.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if not differences:
        raise ValueError("no seeds to compare")
    seeds = tuple(sorted(differences))
    values = [float(differences[s]) for s in seeds]
    n, mean = len(values), statistics.fmean(values)
    if n < 2:
        return Comparison(n, mean, None, None, None, direction, INCONCLUSIVE, None, False, seeds)
    sd = statistics.stdev(values)
    half = _half_width(sd, n)
    low, high = mean - half, mean + half
    if low > 0 or high < 0:
        above = low > 0
        verdict = CONFIRMED if above == (direction > 0) else CONTRADICTED
        needed, beyond = None, False
    else:
        verdict = INCONCLUSIVE
        needed, beyond = _seeds_needed(mean, sd)
    return Comparison(n, mean, sd, low, high, direction, verdict, needed, beyond, seeds)


def paired_comparison(
    ours: dict[int, float], theirs: dict[int, float], *, direction: int
) -> Comparison:
    """Compare two models on the seeds both have, paired by seed (ours - theirs).

    Args:
        ours: seed -> our model's value (e.g. final test accuracy).
        theirs: seed -> the other model's value on the same seed.
        direction: +1 when the claim is that ours is higher, -1 when it is lower.

    Raises:
        ValueError: No seed is shared, or ``direction`` is not ±1.
    """
    common = set(ours) & set(theirs)
    if not common:
        raise ValueError(f"no common seeds: ours {sorted(ours)}, theirs {sorted(theirs)}")
    return mean_interval({s: ours[s] - theirs[s] for s in common}, direction=direction)


def _signed(value: float, scale: float, digits: int) -> str:
    return f"{value * scale:+.{digits}f}".replace("-", "−")


def describe(
    comparison: Comparison, *, scale: float = 100.0, unit: str = "points", digits: int = 1
) -> str:
    """``Δ = +1.2 [−0.4, +2.8] points (n=3 seeds)``, and for an inconclusive comparison how
    many seeds would decide.

    Args:
        comparison: The comparison.
        scale: Multiplies the values (100 turns accuracies into points).
        unit: The unit after the interval.
        digits: Decimals shown.
    """
    c = comparison
    seeds = f"n={c.n} seed{'s' if c.n != 1 else ''}"
    mean = _signed(c.mean, scale, digits)
    if c.low is None or c.high is None:
        return f"Δ = {mean} {unit} ({seeds}); {c.verdict}: needs ≥ 2 seeds for an interval"
    interval = f"[{_signed(c.low, scale, digits)}, {_signed(c.high, scale, digits)}]"
    text = f"Δ = {mean} {interval} {unit} ({seeds})"
    if c.verdict != INCONCLUSIVE:
        return f"{text}; {c.verdict}"
    if c.seeds_needed is not None:
        return f"{text}; inconclusive: about {c.seeds_needed} seeds would decide"
    if c.beyond_cap:
        return f"{text}; inconclusive: more than {SEEDS_CAP} seeds would be needed"
    return f"{text}; inconclusive: mean difference 0, no number of seeds would decide"
