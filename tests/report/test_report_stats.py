"""Paired comparisons over seeds against SciPy and against cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from indirect_attention.report.stats import (
    CONFIRMED,
    CONTRADICTED,
    INCONCLUSIVE,
    SEEDS_CAP,
    describe,
    mean_interval,
    paired_comparison,
    t_quantile,
)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 29, 30, 99, 199])
@pytest.mark.parametrize("probability", [0.6, 0.9, 0.975, 0.995])
def test_t_quantile_matches_scipy(df, probability):
    assert t_quantile(probability, df) == pytest.approx(stats.t.ppf(probability, df), rel=1e-9)


def test_t_quantile_rejects_what_it_cannot_compute():
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile(0.975, 0)
    with pytest.raises(ValueError, match="probability"):
        t_quantile(0.4, 3)


def test_interval_matches_scipy_on_random_pairs():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 8):
        ours, theirs = rng.normal(0.8, 0.05, n), rng.normal(0.78, 0.05, n)
        c = paired_comparison(dict(enumerate(ours)), dict(enumerate(theirs)), direction=1)
        d = ours - theirs
        low, high = stats.t.interval(0.95, n - 1, loc=d.mean(), scale=stats.sem(d))
        assert (c.n, c.mean, c.sd) == (n, pytest.approx(d.mean()), pytest.approx(d.std(ddof=1)))
        assert (c.low, c.high) == (pytest.approx(low), pytest.approx(high))
        # The interval excludes 0 exactly when the paired t test rejects at 5%.
        p = stats.ttest_rel(ours, theirs).pvalue
        assert (c.verdict != INCONCLUSIVE) == (p < 0.05)


def test_hand_worked_case():
    # differences 1, 2, 3: mean 2, sd 1, half width t(0.975, 2) / sqrt(3) = 4.303 / 1.732 = 2.484
    c = paired_comparison({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.0, 1: 0.0, 2: 0.0}, direction=1)
    assert c.mean == 2.0 and c.sd == 1.0
    assert c.low == pytest.approx(2 - 2.4841, abs=1e-4)
    assert c.high == pytest.approx(2 + 2.4841, abs=1e-4)
    # 0 lies inside [-0.48, 4.48]: a positive mean difference is still inconclusive.
    assert c.verdict == INCONCLUSIVE
    # n = 4: t(0.975, 3) = 3.182, 3.182 / 2 = 1.59 < 2, so four seeds would decide.
    assert c.seeds_needed == 4
    assert describe(c, scale=1, unit="points") == (
        "Δ = +2.0 [−0.5, +4.5] points (n=3 seeds); inconclusive: about 4 seeds would decide"
    )


def test_seeds_needed_is_the_smallest_deciding_n():
    rng, checked = np.random.default_rng(1), 0
    for _ in range(20):
        d = rng.normal(0.3, 1.0, 3)
        c = mean_interval(dict(enumerate(d)), direction=1)
        if c.verdict != INCONCLUSIVE or c.seeds_needed is None:
            continue
        half = [stats.t.ppf(0.975, n - 1) * c.sd / math.sqrt(n) for n in range(2, SEEDS_CAP + 1)]
        deciding = [
            n for n, h in zip(range(2, SEEDS_CAP + 1), half, strict=True) if h < abs(c.mean)
        ]
        assert c.seeds_needed == deciding[0] > c.n
        checked += 1
    assert checked >= 5


def test_the_verdict_follows_the_claimed_direction():
    ours = {0: 0.9, 1: 0.91, 2: 0.92}
    theirs = {0: 0.8, 1: 0.8, 2: 0.8}
    assert paired_comparison(ours, theirs, direction=1).verdict == CONFIRMED
    assert paired_comparison(ours, theirs, direction=-1).verdict == CONTRADICTED
    assert paired_comparison(theirs, ours, direction=-1).verdict == CONFIRMED
    decided = paired_comparison(ours, theirs, direction=1)
    assert decided.seeds_needed is None and describe(decided).endswith("; confirmed")


def test_pairs_only_the_common_seeds():
    c = paired_comparison({0: 1.0, 1: 2.0, 5: 9.0}, {0: 0.0, 1: 0.0, 2: 7.0}, direction=1)
    assert c.seeds == (0, 1) and c.n == 2 and c.mean == 1.5
    with pytest.raises(ValueError, match="no common seeds"):
        paired_comparison({0: 1.0}, {1: 1.0}, direction=1)
    with pytest.raises(ValueError, match="direction"):
        paired_comparison({0: 1.0}, {0: 1.0}, direction=0)


def test_one_seed_is_inconclusive_without_an_interval():
    c = paired_comparison({0: 0.99}, {0: 0.10}, direction=1)
    assert c.verdict == INCONCLUSIVE and c.low is None and c.seeds_needed is None
    assert (
        describe(c) == "Δ = +89.0 points (n=1 seed); inconclusive: needs ≥ 2 seeds for an interval"
    )


def test_no_spread_and_no_difference():
    same = mean_interval({0: 0.0, 1: 0.0}, direction=1)
    assert same.verdict == INCONCLUSIVE and same.seeds_needed is None and not same.beyond_cap
    assert "no number of seeds would decide" in describe(same)
    exact = mean_interval({0: 0.01, 1: 0.01}, direction=1)
    assert exact.verdict == CONFIRMED and exact.low == exact.high == pytest.approx(0.01)


def test_a_tiny_effect_needs_more_seeds_than_the_cap():
    c = mean_interval({0: 1.0, 1: -0.99, 2: 0.0}, direction=1)
    assert c.verdict == INCONCLUSIVE and c.seeds_needed is None and c.beyond_cap
    assert describe(c).endswith(f"more than {SEEDS_CAP} seeds would be needed")
