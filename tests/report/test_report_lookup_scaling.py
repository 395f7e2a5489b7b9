"""Marked-lookup and scaling verdicts: paired per seed, rows per offset, a references check."""

from __future__ import annotations

import pytest
from report_records import model, plant, results

from indirect_attention.report.lookup import lookup_claims
from indirect_attention.report.scaling import scaling_claims

SEEDS = (0, 1, 2)


def _lookup_models(offset: int) -> dict:
    lost = 0.5 - 0.1 * offset  # naive loses more as the offset grows
    return {
        "indirect": model({0: 0.90, 1: 0.91, 2: 0.92}),
        "indirect-pointer": model({0: 0.95, 1: 0.90, 2: 0.97}),
        "indirect-nobias-update": model({0: 0.60, 1: 0.62, 2: 0.61}),
        "naive": model({0: lost, 1: lost + 0.01, 2: lost - 0.01}),
        "cross": model({0: 0.91, 1: 0.90, 2: 0.93}),
    }


def _references(last_layer: float) -> dict:
    rows = []
    for offset in (1, 2):
        for seed in SEEDS:
            for layer, share in ((0, 0.1), (1, 0.4), (2, last_layer)):
                rows.append(
                    {
                        "value_positions": False,
                        "offset": offset,
                        "model": "indirect",
                        "seed": seed,
                        "layer": layer,
                        "mean_abs_error": 1.0 - share,
                        "within_half": share,
                    }
                )
    rows.append({**rows[-1], "model": "naive", "within_half": 0.0})  # ignored: not indirect
    return {"rows": rows}


def _plant_lookup(tmp_path, last_layer: float) -> None:
    for offset in (0, 1, 2):
        plant(tmp_path / f"offset-{offset}" / "results.json", results(_lookup_models(offset)))
    plant(
        tmp_path / "offset-1" / "value-positions" / "results.json",
        results({"indirect": model({0: 0.9}), "naive": model({0: 0.2})}, value_positions=True),
    )
    plant(tmp_path / "references.json", _references(last_layer))
    tuning = {"seed": 100, "grid": [1e-3], "rows": [], "chosen": {"indirect": 1e-3}}
    plant(tmp_path / "tuning.json", tuning)


def test_lookup_rows_per_offset(tmp_path):
    _plant_lookup(tmp_path, last_layer=0.8)
    rows = lookup_claims(tmp_path)
    headline = [r for r in rows if r.headline and r.kind == "paper"]
    assert len(headline) == 2 + 4 + 4  # s = 0: vs naive, cross; s ≥ 1: also pointer, ablation
    assert all(f"offset s = {s}" in r.claim for s, r in zip((0, 0, 1), headline, strict=False))
    verdicts = {(r.claim.split(" on marked")[0], r.claim.split("s = ")[1][0]): r for r in headline}
    assert verdicts[("Indirect attention beats naive misaligned attention", "2")].verdict == (
        "confirmed"
    )
    assert verdicts[("Indirect attention beats cross-attention", "0")].verdict == "inconclusive"
    pointer = verdicts[
        (
            "A reference update g that predicts an absolute position beats the relative update",
            "1",
        )
    ]
    assert pointer.verdict == "inconclusive" and pointer.ours.startswith("indirect-pointer")
    ablation = verdicts[("The reference update P^(l+1) = g(P^l, O^l) helps", "1")]
    assert ablation.verdict == "confirmed"
    other = [r for r in rows if not r.headline]
    assert len(other) == 1 and "values with position codes" in other[0].claim
    assert other[0].verdict == "inconclusive"  # one seed
    check = rows[-1]
    assert (check.kind, check.verdict) == ("check", "passed")
    assert "s=1: 10% / 40% / 80%" in check.ours


def test_references_check_fails_below_half(tmp_path):
    _plant_lookup(tmp_path, last_layer=0.45)
    assert lookup_claims(tmp_path)[-1].verdict == "failed"
    (tmp_path / "references.json").unlink()
    assert lookup_claims(tmp_path)[-1].verdict == "not comparable"


def test_lookup_without_records_names_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="offset-"):
        lookup_claims(tmp_path)


def _scaling(naive: dict[tuple[int, int], float], indirect: float = 0.9) -> dict:
    rows = []
    for (dim, depth), acc in naive.items():
        for seed, jitter in zip(SEEDS, (0.0, 0.01, -0.01), strict=True):
            base = {"dim": dim, "depth": depth, "seed": seed, "curve": []}
            rows.append({**base, "model": "naive", "final_test_acc": acc + jitter})
            rows.append({**base, "model": "indirect", "final_test_acc": indirect + jitter / 2})
    return {
        "task": "lookup",
        "offset": 2,
        "value_positions": False,
        "dims": sorted({d for d, _ in naive}),
        "depths": sorted({L for _, L in naive}),
        "rows": rows,
    }


def test_scaling_claims(tmp_path):
    grid = {(d, L): 0.8 - 0.001 * d - 0.05 * L for d in (16, 32, 64) for L in (1, 2, 4)}
    plant(tmp_path / "results.json", _scaling(grid))
    width, depth, less = scaling_claims(tmp_path)
    assert width.verdict == "confirmed" and "depth 2" in width.claim  # the middle depth
    assert width.ours.startswith("naive d=64") and "Δ = −4.8 [" in width.effect_ours
    assert depth.verdict == "confirmed" and "d 32" in depth.claim
    assert less.verdict == "confirmed"
    flat = {key: 0.8 for key in grid}
    plant(tmp_path / "results.json", _scaling(flat, indirect=0.8))
    assert [r.verdict for r in scaling_claims(tmp_path)] == ["inconclusive"] * 3
    rising = {(d, L): 0.5 + 0.002 * d for d, L in grid}
    plant(tmp_path / "results.json", _scaling(rising))
    assert scaling_claims(tmp_path)[0].verdict == "contradicted"


def test_scaling_skips_missing_cells(tmp_path):
    record = _scaling({(16, 2): 0.7, (64, 2): 0.6})
    record["depths"] = [1, 2, 4]  # the grid names depths the records lack
    plant(tmp_path / "results.json", record)
    width, depth, less = scaling_claims(tmp_path)
    assert width.verdict == "confirmed" and less.verdict == "confirmed"
    assert depth.verdict == "not comparable"
