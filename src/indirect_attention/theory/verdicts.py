"""Plain verdicts on the paper's theoretical claims, read off the Monte Carlo rows (§3-4, A).

Every verdict is a dict ``{"claim", "verdict", "evidence"}``: the claim in the paper's words, one of
``"holds"``, ``"does not hold"`` or ``"undetermined"`` (too few dims to fit a trend), and the
numbers behind it. Trends in d are least-squares slopes of log(value) against log(d): 0 means
"does not depend on d", 1 "grows linearly", -1 "falls as 1/d".

Shapes:
    rows are lists of dicts as written to ``results.json`` (one dict per Monte Carlo cell).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

__all__ = ["REL_TOL", "SLOPE_TOL", "log_slope", "make_verdicts"]

#: Agreement with a closed form: every Monte Carlo value within 5% (the issue's acceptance bar).
REL_TOL = 0.05
#: A log-log slope this close to 0 counts as "independent of d", this close to 1 as "linear".
SLOPE_TOL = 0.05

Row = dict[str, Any]


def log_slope(dims: list[float], values: list[float]) -> float:
    """Least-squares slope of log(values) against log(dims); NaN with fewer than two dims."""
    if len(set(dims)) < 2:
        return float("nan")
    return float(np.polyfit(np.log(dims), np.log(values), 1)[0])


def _slopes(rows: list[Row], group: tuple[str, ...], field: str) -> dict[tuple, float]:
    by_group: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        by_group[tuple(row[k] for k in group)].append(row)
    return {
        key: log_slope([r["dim"] for r in rs], [r[field] for r in rs])
        for key, rs in by_group.items()
    }


def _verdict(claim: str, holds: bool | str | None, evidence: str) -> dict[str, str]:
    if isinstance(holds, str):
        word = holds
    else:
        word = "undetermined" if holds is None else ("holds" if holds else "does not hold")
    return {"claim": claim, "verdict": word, "evidence": evidence}


def _span(values: list[float]) -> str:
    return f"[{min(values):.4g}, {max(values):.4g}]"


def _lemmas(additive: list[Row], multi_head: list[Row]) -> dict[str, dict[str, str]]:
    samples = sum(r["trials"] for r in additive)
    violations = sum(r["lemma1_violations"] for r in additive)
    worst = max(r["lemma1_max_ratio"] for r in additive)
    rel = [abs(r["mse_mc"] / r["mse_closed"] - 1) for r in additive]
    z = [abs(r["mse_mc"] - r["mse_closed"]) / r["mse_se"] for r in additive]
    out = {
        "lemma1_bound": _verdict(
            "||o_hat - o*|| <= sum_j a_j ||eps_j|| for orthogonal W_v (Lemma 1)",
            violations == 0,
            f"{violations} violations in {samples} samples checked one by one; the largest "
            f"ratio ||o_hat - o*|| / sum_j a_j ||eps_j|| is {worst:.12f} (1 only for one-hot "
            "attention, where the bound is tight).",
        ),
        "lemma2_expected_error": _verdict(
            "E||o_hat - o*||² = sigma² d sum_j a_j² (Lemma 2)",
            max(rel) < REL_TOL,
            f"{len(additive)} cells (d x sigma x temperature): |MC / closed - 1| <= "
            f"{max(rel):.2%}, at most {max(z):.2f} standard errors.",
        ),
    }
    if multi_head:
        rel_total = [abs(r["mse_mc"] / r["mse_closed"] - 1) for r in multi_head]
        rel_head = [abs(r["mse_head_mc"] / r["mse_head_closed"] - 1) for r in multi_head]
        snr_head = [r["snr_head_mc"] / r["snr_closed"] for r in multi_head]
        heads = sorted({r["num_heads"] for r in multi_head})
        out["multi_head_remark"] = _verdict(
            "H heads: per-head error sigma² (d/H) sum (a^h)², total sigma² d mean_h sum (a^h)², "
            "per-head SNR still 1/sigma²",
            max(rel_total + rel_head) < REL_TOL and max(abs(s - 1) for s in snr_head) < REL_TOL,
            f"H in {heads} at d={multi_head[0]['dim']}: total error within {max(rel_total):.2%}, "
            f"per-head error within {max(rel_head):.2%}, per-head SNR x sigma² in "
            f"{_span(snr_head)}.",
        )
    return out


def _additive_claim(additive: list[Row], sigma_star: list[Row]) -> dict[str, str]:
    scaled = [r["snr_mc"] * r["sigma"] ** 2 for r in additive]
    slopes = [s for s in _slopes(additive, ("sigma", "temperature"), "snr_mc").values()]
    finite = [s for s in slopes if np.isfinite(s)]
    stars = [r["sigma_star_mc"] for r in sigma_star if r["sigma_star_mc"] is not None]
    holds = None
    if finite:
        holds = max(abs(s - 1) for s in scaled) < REL_TOL and max(map(abs, finite)) < SLOPE_TOL
    star_text = f"; the MC crossing SNR = 1 lies at sigma in {_span(stars)}" if stars else ""
    dims = sorted({r["dim"] for r in additive})
    return _verdict(
        "SNR under additive value noise does not depend on d: SNR = 1/sigma², sigma* = 1 (§3.1)",
        holds,
        f"over d = {dims[0]}..{dims[-1]}, every sigma and temperature: SNR_mc x sigma² in "
        f"{_span(scaled)}; slopes of log SNR vs log d in "
        f"{_span(finite) if finite else '(one d only)'}{star_text}.",
    )


def _misaligned_claims(misaligned: list[Row]) -> dict[str, dict[str, str]]:
    gamma_slopes = list(_slopes(misaligned, ("mean_shift",), "gamma_mc").values())
    snr_slopes = list(_slopes(misaligned, ("mean_shift", "temperature"), "snr_mc").values())
    comp_slopes = list(_slopes(misaligned, ("mean_shift",), "snr_per_component_mc").values())
    total_slopes = list(_slopes(misaligned, ("mean_shift",), "snr_total_energy").values())
    rel = [abs(r["gamma_mc"] / r["gamma_closed"] - 1) for r in misaligned]
    enough = all(np.isfinite(gamma_slopes))
    per_comp_var = [r["gamma_mc"] / r["dim"] for r in misaligned]
    snrs = [r["snr_mc"] for r in misaligned]
    grows = _verdict(
        "misalignment noise gamma = E||W_v (y - x)||² = 2d + ||mu_y - mu_x||² grows linearly "
        "with d (§4, A.3)",
        (max(abs(s - 1) for s in gamma_slopes) < SLOPE_TOL and max(rel) < REL_TOL)
        if enough
        else None,
        f"gamma_mc within {max(rel):.2%} of 2d + d·delta² in every cell; slopes of log gamma "
        f"vs log d in {_span(gamma_slopes)} (1 = linear). But per component it is "
        f"gamma/d in {_span(per_comp_var)} = 2 + delta², the same for every d.",
    )
    falls = _verdict(
        "the SNR under misalignment falls as d grows (§4, Figure 1 middle)",
        (max(snr_slopes + comp_slopes) < -SLOPE_TOL) if enough else None,
        f"measured as an output energy ratio E||o*||² / E||o_tilde - o*||² the slopes vs log d "
        f"are {_span(snr_slopes)}, per component (signal variance / noise variance of a token) "
        f"{_span(comp_slopes)}: flat, the SNR does not fall with d. Only 1/gamma, which sets the "
        f"total energy gamma against the per-component threshold sigma*² = 1, falls (slopes "
        f"{_span(total_slopes)}); signal and noise both grow as d, so the paper's fall with d "
        "comes from comparing a total with a per-component quantity.",
    )
    exceeds = _verdict(
        "misalignment noise exceeds the critical level sigma* = 1, so noise dominates (§4)",
        max(snrs) < 1 and min(per_comp_var) > 1,
        f"per-component misalignment noise variance {_span(per_comp_var)} > sigma*² = 1 and the "
        f"misaligned output SNR is {_span(snrs)} < 1 in every cell: it holds at every d, but "
        "by a margin set by delta and the attention's sharpness, not by d.",
    )
    return {
        "misalignment_noise_grows_with_d": grows,
        "misaligned_snr_falls_with_d": falls,
        "misalignment_exceeds_threshold": exceeds,
    }


def _xavier_claim(xavier: dict[str, Any]) -> dict[str, str]:
    additive, misaligned = xavier["additive"], xavier["misaligned"]
    matrices = xavier["matrices"]
    rate = sum(r["lemma1_violations"] for r in additive) / sum(r["trials"] for r in additive)
    spectral = sum(r["spectral_violations"] for r in additive)
    snr_scaled = [r["snr_mc"] * r["sigma"] ** 2 for r in additive]
    paper = [r["gamma_mc"] / r["gamma_closed"] - 1 for r in misaligned]
    own = [abs(r["gamma_mc"] / r["gamma_closed_w"] - 1) for r in misaligned]
    gains = [m["shift_gain"] for m in matrices]
    norms = [m["spectral_norm"] for m in matrices]
    carries = max(abs(s - 1) for s in snr_scaled) < REL_TOL and max(own) < REL_TOL and spectral == 0
    return _verdict(
        "the expectation-level results drawn for an orthogonal W_v (SNR = 1/sigma², gamma) carry "
        "over to a Xavier-initialised W_v; Lemma 1's bound needs a factor ||W_v||_2",
        carries,
        f"SNR x sigma² stays in {_span(snr_scaled)}: signal and noise go through the same W_v. "
        f"gamma departs from 2d + d·delta² by {_span(paper)} because ||W_v 1||²/d is "
        f"{_span(gains)} for the drawn matrices; against the matrix's own closed form "
        f"2||W_v||_F² + ||W_v Δmu||² it agrees within {max(own):.2%}. Lemma 1's orthogonal "
        f"bound fails on {rate:.1%} of samples (||W_v||_2 in {_span(norms)}), while "
        f"||W_v||_2 x bound never does ({spectral} violations).",
    )


def make_verdicts(results: dict[str, Any]) -> dict[str, dict[str, str]]:
    """All verdicts from a ``results.json`` dict (keys additive, misaligned, multi_head, xavier)."""
    out = _lemmas(results["additive"], results.get("multi_head", []))
    out["additive_snr_independent_of_d"] = _additive_claim(
        results["additive"], results.get("sigma_star", [])
    )
    out.update(_misaligned_claims(results["misaligned"]))
    xavier = results.get("xavier")
    if xavier and xavier["additive"] and xavier["misaligned"]:
        out["xavier_w_v"] = _xavier_claim(xavier)
    return out
