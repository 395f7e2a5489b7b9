"""Detection verdicts (§6.2, Table 1; Figure 7): per-seed margins, paired, beside the paper."""

from __future__ import annotations

from report_records import plant, table
from scipy import stats

from indirect_attention.report.detection import detection_claims, figure7_claim


def _by_claim(rows):
    return {r.claim: r for r in rows}


def test_order_rows_are_paired_per_seed_with_the_papers_gaps(tmp_path):
    plant(
        tmp_path / "results.json",
        table(
            {
                "ia": [0.30, 0.32, 0.31],
                "double-cross": [0.20, 0.33, 0.25],  # ia − dc: +0.10, −0.01, +0.06
                "misaligned": [0.01, 0.02, 0.00],
            }
        ),
    )
    rows = _by_claim(detection_claims(tmp_path))
    vs_dc = rows["ia beats double-cross on seen classes (§6.2, Table 1)"]
    vs_mis = rows["ia beats misaligned on unseen classes (§6.2, Table 1)"]
    assert vs_dc.kind == "paper" and vs_dc.effect_paper == "+5.04 AP50 points (Pascal VOC)"
    assert rows["ia beats misaligned on seen classes (§6.2, Table 1)"].effect_paper == (
        "+53.73 AP50 points (Pascal VOC)"
    )
    d = [0.10, -0.01, 0.06]
    p = stats.ttest_1samp(d, 0).pvalue
    assert p > 0.05 and vs_dc.verdict == "inconclusive"
    assert "seeds would decide" in vs_dc.effect_ours
    assert vs_mis.verdict == "confirmed" and "AP50 points (n=3 seeds)" in vs_mis.effect_ours
    detects = rows[
        "IA-DETR detects the query's class, not just objects (§6.2, Table 1): seen classes"
    ]
    assert detects.verdict == "confirmed" and detects.effect_ours.startswith("Δ = +31.0 [")
    absolute = rows["Absolute AP50 of the three detectors (Table 1)"]
    assert absolute.verdict == "not comparable" and "'emoji' benchmark" in absolute.why
    assert len(rows) == 2 + 6 + 1


def test_one_seed_is_inconclusive_and_says_why(tmp_path):
    plant(
        tmp_path / "results.json", table({"ia": [0.3], "double-cross": [0.1], "misaligned": [0.0]})
    )
    rows = detection_claims(tmp_path)
    assert [r.verdict for r in rows[:-1]] == ["inconclusive"] * 8
    assert all("needs ≥ 2 seeds" in r.effect_ours for r in rows[:-1])


def test_a_record_without_per_seed_margins_is_not_comparable(tmp_path):
    record = table({"ia": [0.3, 0.31], "double-cross": [0.1, 0.12], "misaligned": [0.0, 0.01]})
    for row in record["models"].values():
        for split in row.values():
            split["margin"].pop("runs", None)  # seen and unseen share one dict here
    plant(tmp_path / "results.json", record)
    assert {r.verdict for r in detection_claims(tmp_path)} == {"not comparable"}


def _ranking(wrong_scale: float) -> dict:
    right = [[0.9, 0.8, 0.1, 0.05], [0.7, 0.6, 0.2, 0.1]]
    wrong = [[wrong_scale * s for s in r] for r in right]
    return {"top_k": 2, "models": {"ia": {"scores": {"right": right, "wrong": wrong}}}}


def test_figure7_keeps_its_threshold_rule_with_paper_words(tmp_path):
    plant(tmp_path / "figure7.json", _ranking(0.2))
    row = figure7_claim(tmp_path)
    assert (row.kind, row.verdict) == ("paper", "confirmed")
    assert "one seed" in row.ours and "not a seed comparison" in row.why
    plant(tmp_path / "figure7.json", _ranking(0.9))
    assert figure7_claim(tmp_path).verdict == "contradicted"
    assert figure7_claim(tmp_path / "missing").verdict == "not comparable"


def test_matching_auc_rows_and_target_and_a_second_recipe_named_in_its_claims(tmp_path):
    margins = {"ia": [0.30, 0.32, 0.31], "double-cross": [0.2, 0.2, 0.2], "misaligned": [0, 0, 0]}
    matching = {"ia": [0.85, 0.9, 0.8], "double-cross": [0.7, 0.72, 0.69], "misaligned": [0.5] * 3}
    plant(tmp_path / "results.json", table(margins, matching=matching))
    rows = detection_claims(tmp_path)
    target = [r for r in rows if r.kind == "target"]
    assert len(target) == 1 and target[0].verdict == "met" and "0.850" in target[0].ours
    auc = [r for r in rows if "matching AUC" in r.effect_ours or "AUC" in (r.effect_ours or "")]
    assert len(auc) == 6 and all(r.kind == "paper" for r in auc)
    ia_dc = [r for r in auc if r.claim.startswith("ia beats double-cross on seen")]
    assert ia_dc[0].verdict == "confirmed"  # +0.15, +0.18, +0.11 over 3 seeds
    low = {**matching, "ia": [0.7, 0.75, 0.8]}
    plant(tmp_path / "low" / "results.json", table(margins, matching=low))
    (tmp_path / "low" / "config.json").write_text('{"train": {"data": "emoji", "recipe": "paper"}}')
    other = detection_claims(tmp_path / "low")
    assert all(r.claim.endswith("[paper recipe]") for r in other)
    assert not [r for r in other if r.kind == "target"]  # the target is set for our recipe


def test_alignment_claim_is_the_mean_spearman_over_episodes(tmp_path):
    import json

    import numpy as np
    from scipy.stats import spearmanr

    from indirect_attention.report.detection import alignment_claim

    rng = np.random.default_rng(0)
    confidence = rng.random((12, 9))
    attention = confidence + 0.3 * rng.random((12, 9))  # agrees, with noise
    record = {
        "top_k": 3,
        "models": {
            "ia": {
                "scores": {"right": confidence.tolist(), "wrong": confidence.tolist()},
                "alignment": {"right": attention.tolist(), "wrong": (-attention).tolist()},
            }
        },
    }
    (tmp_path / "figure7.json").write_text(json.dumps(record))
    claim = alignment_claim(tmp_path)
    rhos = [spearmanr(a, c).statistic for a, c in zip(attention, confidence, strict=True)]
    assert claim is not None and claim.verdict == "confirmed"
    assert f"{np.mean(rhos):+.2f} with the right query" in claim.ours
    assert f"{-np.mean(rhos):+.2f} with a wrong one" in claim.ours
    del record["models"]["ia"]["alignment"]
    (tmp_path / "figure7.json").write_text(json.dumps(record))
    assert alignment_claim(tmp_path) is None  # a record from before the score existed
