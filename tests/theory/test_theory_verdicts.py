"""The Xavier verdict: the expectation-level results carry over; Lemma 1 needs ||W_v||_2."""

from __future__ import annotations

from indirect_attention.theory.verdicts import _xavier_claim


def _xavier(*, snr_scaled: float, gamma_own: float, spectral_violations: int) -> dict:
    additive = [
        {
            "trials": 100,
            "lemma1_violations": 30,  # the orthogonal bound fails often: expected, not judged
            "spectral_violations": spectral_violations,
            "snr_mc": snr_scaled / 4.0,
            "sigma": 2.0,
        }
    ]
    misaligned = [{"gamma_mc": 1.0 * gamma_own, "gamma_closed": 1.3, "gamma_closed_w": 1.0}]
    matrices = [{"shift_gain": 0.7, "spectral_norm": 1.9}]
    return {"additive": additive, "misaligned": misaligned, "matrices": matrices}


def test_xavier_holds_when_the_expectations_carry_over():
    verdict = _xavier_claim(_xavier(snr_scaled=1.01, gamma_own=0.99, spectral_violations=0))
    assert verdict["verdict"] == "holds"
    assert "||W_v||_2" in verdict["claim"] and "0 violations" in verdict["evidence"]


def test_xavier_fails_when_any_part_does_not_carry_over():
    for broken in (
        {"snr_scaled": 1.2, "gamma_own": 1.0, "spectral_violations": 0},
        {"snr_scaled": 1.0, "gamma_own": 1.1, "spectral_violations": 0},
        {"snr_scaled": 1.0, "gamma_own": 1.0, "spectral_violations": 1},
    ):
        assert _xavier_claim(_xavier(**broken))["verdict"] == "does not hold", broken
