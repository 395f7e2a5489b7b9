"""Synthetic-task verdicts (§6.1, Figure 2): three metrics, two settings, ablations, paired."""

from __future__ import annotations

import pytest
from report_records import model, plant, results
from scipy import stats

from indirect_attention.report.synthetic import synthetic_claims

SEEDS = (0, 1, 2)


def _curves(final: float, early: float, epochs: int = 8) -> list[float]:
    """A curve that reaches ``early`` at epoch 2 (= ⌈8/4⌉) and ``final`` at the end."""
    return [early / 2, early] + [final] * (epochs - 2)


def _planted(tmp_path, *, naive_final: list[float], naive_early: list[float]) -> None:
    indirect = [0.90, 0.92, 0.91]
    plant(
        tmp_path / "results.json",
        results(
            {
                "indirect": model(
                    dict(zip(SEEDS, indirect, strict=True)),
                    {s: _curves(f, 0.5) for s, f in zip(SEEDS, indirect, strict=True)},
                ),
                "naive": model(
                    dict(zip(SEEDS, naive_final, strict=True)),
                    {
                        s: _curves(f, e)
                        for s, f, e in zip(SEEDS, naive_final, naive_early, strict=True)
                    },
                ),
            }
        ),
    )


def test_three_metrics_each_with_its_own_verdict(tmp_path):
    # Naive ends lower (every seed) but starts higher (every seed).
    _planted(tmp_path, naive_final=[0.80, 0.81, 0.79], naive_early=[0.7, 0.72, 0.71])
    rows = synthetic_claims(tmp_path, task="sort")
    assert [r.claim.split(": ")[1].split(" [")[0] for r in rows] == [
        "final test accuracy",
        "area under the test-accuracy curve (mean over epochs)",
        "test accuracy at epoch 2 of 8",
    ]
    final, area, early = rows
    assert (final.verdict, early.verdict) == ("confirmed", "contradicted")
    assert all(r.kind == "paper" and r.headline for r in rows)
    assert "values without position codes" in final.claim
    d = [0.90 - 0.80, 0.92 - 0.81, 0.91 - 0.79]
    low, high = stats.t.interval(0.95, 2, loc=sum(d) / 3, scale=stats.sem(d))
    assert final.effect_ours == (
        f"Δ = +{100 * sum(d) / 3:.1f} [+{100 * low:.1f}, +{100 * high:.1f}] points (n=3 seeds); "
        "confirmed"
    )
    assert "paired per-seed difference indirect − naive" in final.why
    # The area: indirect (0.25+0.5+6·f)/8 against naive (e/2+e+6·f)/8, computed independently.
    ours = [(0.25 + 0.5 + 6 * f) / 8 for f in (0.90, 0.92, 0.91)]
    theirs = [(1.5 * e + 6 * f) / 8 for f, e in ((0.80, 0.7), (0.81, 0.72), (0.79, 0.71))]
    area_d = [a - b for a, b in zip(ours, theirs, strict=True)]
    assert f"{100 * sum(area_d) / 3:+.1f}" in area.effect_ours


def test_a_difference_inside_its_interval_is_inconclusive(tmp_path):
    _planted(tmp_path, naive_final=[0.95, 0.80, 0.90], naive_early=[0.5, 0.5, 0.5])
    final = synthetic_claims(tmp_path, task="sort")[0]
    assert final.verdict == "inconclusive"
    assert "seeds would decide" in final.effect_ours or "more than" in final.effect_ours


def test_without_curves_the_curve_metrics_are_not_comparable(tmp_path):
    plant(
        tmp_path / "results.json",
        results({"indirect": model({0: 0.9, 1: 0.8}), "cross": model({0: 0.7, 1: 0.61})}),
    )
    rows = synthetic_claims(tmp_path, task="retrieval")
    assert [r.verdict for r in rows] == ["confirmed", "not comparable", "not comparable"]
    assert "cross-attention" in rows[0].claim and "sequence retrieval" in rows[0].claim


def test_ablations_and_the_other_setting(tmp_path):
    _planted(tmp_path, naive_final=[0.80, 0.81, 0.79], naive_early=[0.7, 0.72, 0.71])
    plant(
        tmp_path / "ablations" / "results.json",
        results(
            {
                "indirect-nobias-update": model({0: 0.95}),  # one seed: noise at best
                "indirect-noenrich": model({0: 0.5, 1: 0.52, 2: 0.49}),
            }
        ),
    )
    plant(
        tmp_path / "value-positions" / "results.json",
        results({"indirect": model({0: 0.9}), "naive": model({0: 0.95})}, value_positions=True),
    )
    rows = synthetic_claims(tmp_path, task="sort")
    update, enrich = rows[3], rows[4]
    assert update.verdict == "inconclusive" and "needs ≥ 2 seeds" in update.effect_ours
    assert update.paper == "part of the method (§5); no ablation reported"
    assert enrich.verdict == "confirmed" and "seeds [0, 1, 2]" in enrich.ours
    other = rows[5:]
    assert other and all(not r.headline for r in other)
    assert all("values with position codes" in r.claim for r in other)
    assert other[0].verdict == "inconclusive"  # one seed, even with a 5-point gap


@pytest.mark.parametrize("epochs", [1, 4, 5, 20])
def test_the_early_epoch_is_a_quarter_of_the_run(tmp_path, epochs):
    curve = [i / 100 for i in range(1, epochs + 1)]
    plant(
        tmp_path / "results.json",
        results(
            {
                "indirect": model({0: 0.9, 1: 0.9}, {0: curve, 1: curve}),
                "naive": model({0: 0.9, 1: 0.9}, {0: [0.0] * epochs, 1: [0.0] * epochs}),
            },
            epochs=epochs,
        ),
    )
    early = synthetic_claims(tmp_path, task="sort")[2]
    k = -(-epochs // 4)
    assert f"epoch {k} of {epochs}" in early.claim
    assert early.effect_ours.startswith(f"Δ = +{k:.1f} [+{k:.1f}, +{k:.1f}]")
