"""Verdicts on the detection experiment of paper §6.2 (Table 1) and Figure 7 (Appendix B.2.1).

Records: the table's ``results.json`` (:func:`indirect_attention.detection.table1.run`): per model
and split, ``margin`` = AP50 with the right query minus AP50 with a wrong-class query, with the
per-seed values in ``margin["runs"]`` (seed i at index i), and ``matching_auc`` (among the objects
a detector hits, how often the query's class outscores a distractor). AP50 alone mixes matching
with localisation (the oracle-box reference: perfect boxes, random scores), so the margin and the
matching AUC stand for "detects the query's class".

* "IA-DETR detects the query's class": ia's margin > 0, a one-sample 95% t interval over seeds.
* Table 1's order: per split, ia − double-cross, ia − misaligned and double-cross − misaligned,
  paired per seed on the margins and on the matching AUC, beside the paper's AP50 differences on
  Pascal VOC.
* Project target: ia's matching AUC on seen classes is at least :data:`MATCHING_TARGET`.
* Absolute AP50: not comparable (another benchmark, backbone and scale).
* Figure 7: the query image decides which object queries rank highest; a threshold rule on one
  trained ia model (not a seed comparison).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .paired import comparison_claim
from .rows import CONFIRMED, CONTRADICTED, NOT_COMPARABLE, PAPER, TARGET, Claim, meets, read_json
from .stats import Comparison, describe, mean_interval

__all__ = [
    "MATCHING_TARGET",
    "PAPER_TABLE1",
    "RANKING_DROP",
    "alignment_claim",
    "detection_claims",
    "figure7_claim",
]

#: Project target (issue 17): ia's mean matching AUC on seen classes with our recipe.
MATCHING_TARGET = 0.8

#: Figure 7 analogue: with a wrong query the top-ranked object queries keep at most this fraction
#: of the score they had with the right query.
RANKING_DROP = 0.5
#: Paper Table 1 (Pascal VOC AP50, seen / unseen classes).
PAPER_TABLE1 = {
    "ia": (82.94, 65.13),
    "double-cross": (77.90, 62.31),
    "misaligned": (29.21, 33.8),
}
_SPLITS = ("seen", "unseen")
_PAIRS = (("ia", "double-cross"), ("ia", "misaligned"), ("double-cross", "misaligned"))


def _per_seed(
    table: dict[str, Any], model: str, split: str, key: str = "margin"
) -> dict[int, float]:
    """seed -> the model's ``key`` (default the margin) on ``split`` (empty when per-seed values
    are not recorded)."""
    runs = table["models"].get(model, {}).get(split, {}).get(key, {}).get("runs")
    # a seed without a value (a matching AUC of a run that hit no distractor: null) is left out
    return {seed: float(v) for seed, v in enumerate(runs or []) if v is not None}


def _class_claims(table: dict[str, Any], scale: str) -> list[Claim]:
    rows = []
    claim = "IA-DETR detects the query's class, not just objects (§6.2, Table 1)"
    for index, split in enumerate(_SPLITS):
        base = dict(part="detection", claim=f"{claim}: {split} classes", kind=PAPER)
        base["paper"] = (
            f"IA-DETR AP50 {PAPER_TABLE1['ia'][index]} on {split} classes (Pascal VOC); "
            "no wrong-query control reported"
        )
        margins = _per_seed(table, "ia", split)
        if not margins:
            rows.append(
                Claim(
                    **base,
                    ours="no per-seed margins recorded",
                    verdict=NOT_COMPARABLE,
                    why="ia was not evaluated, or its record has no per-seed margins",
                )
            )
            continue
        comparison = mean_interval(margins, direction=1)
        oracle = table.get("oracle_boxes", {}).get(split, float("nan"))
        rows.append(
            Claim(
                **base,
                ours=f"ia margin over the wrong-query control {comparison.mean:+.3f} (oracle "
                f"boxes with random scores {oracle:.3f}; {scale})",
                verdict=comparison.verdict,
                why="rule: AP50 with the right query minus AP50 with a wrong-class query, 95% t "
                "interval over seeds; confirmed when it lies above 0, contradicted when below, "
                "inconclusive otherwise (or with one seed)",
                effect_ours=describe(comparison, unit="AP50 points"),
            )
        )
    return rows


#: The paired measures of the order rows: (record key, what it is, unit).
_MEASURES = (
    ("margin", "margin over the wrong-query control", "AP50 points"),
    ("matching_auc", "matching AUC", "AUC points (×100)"),
)


def _order_claims(table: dict[str, Any]) -> list[Claim]:
    rows = []
    for index, split in enumerate(_SPLITS):
        for ours, theirs in _PAIRS:
            gap = PAPER_TABLE1[ours][index] - PAPER_TABLE1[theirs][index]
            for key, what, unit in _MEASURES:
                values = (_per_seed(table, ours, split, key), _per_seed(table, theirs, split, key))
                if key != "margin" and not all(values):
                    continue  # a record written before the matching AUC existed
                rows.append(
                    comparison_claim(
                        part="detection",
                        claim=f"{ours} beats {theirs} on {split} classes (§6.2, Table 1)",
                        paper=f"{ours} {PAPER_TABLE1[ours][index]:.2f} > {theirs} "
                        f"{PAPER_TABLE1[theirs][index]:.2f} (AP50, Pascal VOC)",
                        names=(ours, theirs),
                        values=values,
                        what=f"{what} ({split})",
                        effect_paper=f"{gap:+.2f} AP50 points (Pascal VOC)".replace("-", "−"),
                        unit=unit,
                    )
                )
    return rows


def _matching_target(table: dict[str, Any], scale: str) -> list[Claim]:
    values = _per_seed(table, "ia", "seen", "matching_auc")
    if not values:
        return []
    mean = float(np.mean(list(values.values())))
    return [
        Claim(
            part="detection",
            claim=f"ia's matching AUC on seen classes is at least {MATCHING_TARGET} (our recipe)",
            paper="not reported (project target, issue 17)",
            ours=f"ia matching AUC {mean:.3f} ({scale}); per seed "
            + ", ".join(f"{v:.3f}" for v in values.values()),
            verdict=meets(mean >= MATCHING_TARGET),
            why=f"rule: the mean over seeds is at least {MATCHING_TARGET}; 0.5 means the scores "
            "ignore the query",
            kind=TARGET,
        )
    ]


def _absolute_claim(table: dict[str, Any], data: str) -> Claim:
    models, oracle = table["models"], table.get("oracle_boxes", {})
    aps = "; ".join(
        f"{name} {row['seen']['ap50']['mean']:.3f} / {row['unseen']['ap50']['mean']:.3f}"
        for name, row in models.items()
    )
    return Claim(
        part="detection",
        claim="Absolute AP50 of the three detectors (Table 1)",
        paper="; ".join(f"{n} {s} / {u}" for n, (s, u) in PAPER_TABLE1.items()),
        ours=f"AP50 seen / unseen: {aps}",
        verdict=NOT_COMPARABLE,
        why=f"our detectors ran on the {data!r} benchmark on a CPU, not Pascal VOC with a "
        f"Swin/ResNet-50 backbone at the paper's scale; perfect boxes on every object with "
        f"random scores earn ({oracle.get('seen', float('nan')):.3f} / "
        f"{oracle.get('unseen', float('nan')):.3f}). The order rows compare the models.",
        kind=PAPER,
    )


def detection_claims(part_dir: Path) -> list[Claim]:
    """Table 1 (§6.2): matching over seeds, the detectors' order per split, absolute AP50."""
    table = read_json(part_dir / "results.json")
    config_path = part_dir / "config.json"
    train = read_json(config_path)["train"] if config_path.exists() else {}
    data, name = train.get("data", "emoji"), train.get("recipe", "emoji")
    scale = f"{table['seeds']} seed(s), {table['episodes']} episodes × {table['draws']} draws"
    rows = [*_class_claims(table, scale), *_order_claims(table)]
    if name == "emoji":  # the target is set for our recipe
        rows += _matching_target(table, scale)
    rows.append(_absolute_claim(table, data))
    if name != "emoji":
        rows = [replace(row, claim=f"{row.claim} [{name} recipe]") for row in rows]
    return rows


def _top_k_means(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Mean of each episode's ``top_k`` largest scores; scores (E, Q) -> (E,)."""
    return np.sort(scores, axis=1)[:, -top_k:].mean(axis=1)


def _overlap(right: np.ndarray, wrong: np.ndarray, top_k: int) -> float:
    """Mean share of the right query's top-k object queries still top-k with the wrong query."""
    shared = [
        len(set(np.argsort(r)[-top_k:]) & set(np.argsort(w)[-top_k:])) / top_k
        for r, w in zip(right, wrong, strict=True)
    ]
    return float(np.mean(shared))


def figure7_claim(part_dir: Path) -> Claim:
    """Figure 7 / Appendix B.2.1: the query image selects which object queries rank highest.

    Not a seed comparison: one trained ia model, judged by a threshold on the share of its top-k
    score that a wrong-class query keeps (confirmed at most :data:`RANKING_DROP`, else
    contradicted).
    """
    base = dict(
        part="detection",
        claim="The query image decides which object queries rank highest (Figure 7, B.2.1)",
        paper="object queries related to the query object receive higher attention (pictures)",
        kind=PAPER,
    )
    if not (part_dir / "figure7.json").exists():
        return Claim(
            **base,
            ours="no ranking recorded",
            verdict=NOT_COMPARABLE,
            why="figure7.json is missing",
        )
    record = read_json(part_dir / "figure7.json")
    top_k = int(record["top_k"])
    stats = {}
    for name, model in record["models"].items():
        right = np.asarray(model["scores"]["right"], dtype=np.float64)  # (E, Q)
        wrong = np.asarray(model["scores"]["wrong"], dtype=np.float64)
        kept = float(
            _top_k_means(wrong, top_k).mean() / max(_top_k_means(right, top_k).mean(), 1e-12)
        )
        stats[name] = (kept, _overlap(right, wrong, top_k), len(right))
    ours = "; ".join(
        f"{name}: wrong query keeps {kept:.0%} of the top-{top_k} score, {shared:.0%} of the "
        f"same object queries"
        for name, (kept, shared, _) in stats.items()
    )
    if "ia" not in stats:
        return Claim(
            **base, ours=ours or "no model", verdict=NOT_COMPARABLE, why="ia was not trained"
        )
    return Claim(
        **base,
        ours=f"{ours} ({stats['ia'][2]} unseen episodes, one seed)",
        verdict=CONFIRMED if stats["ia"][0] <= RANKING_DROP else CONTRADICTED,
        why=f"rule (a threshold on one trained model, one seed; not a seed comparison): for ia, "
        f"the mean of the top-{top_k} object-query scores with a wrong-class query is at most "
        f"{RANKING_DROP:.0%} of that with the right query (confirmed), else contradicted; we "
        "rank by the model's scores, which the paper says align with its attention ranking",
    )


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two score vectors (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _episodes_interval(comparison: Comparison) -> str:
    if comparison.low is None or comparison.high is None:
        return f"ρ = {comparison.mean:+.2f} (n={comparison.n} episodes)"
    return (
        f"ρ = {comparison.mean:+.2f} [{comparison.low:+.2f}, {comparison.high:+.2f}] "
        f"(n={comparison.n} episodes of one model)"
    )


def alignment_claim(part_dir: Path) -> Claim | None:
    """Appendix B.2.1: the attention ranking of the object queries agrees with their confidence.

    Per unseen episode, Spearman's ρ between ia's per-object-query attention score (the paper's
    computation, last layer) and its final confidence; a one-sample 95% t interval over the
    episodes of one trained model (not over seeds). None when the record predates the score.
    """
    path = part_dir / "figure7.json"
    if not path.exists():
        return None
    model = read_json(path)["models"].get("ia", {})
    if "alignment" not in model:
        return None
    rows = []
    for which in ("right", "wrong"):
        scores = np.asarray(model["scores"][which], dtype=np.float64)
        attention = np.asarray(model["alignment"][which], dtype=np.float64)
        rows.append([_spearman(a, c) for a, c in zip(attention, scores, strict=True)])
    right = {e: v for e, v in enumerate(rows[0]) if np.isfinite(v)}
    comparison = mean_interval(right, direction=1)
    return Claim(
        part="detection",
        claim="The object queries' attention to the query image ranks them as their final "
        "confidence does (Appendix B.2.1)",
        paper="the attention ranking 'aligns with' the final confidence (pictures)",
        ours=f"ia, last layer: mean Spearman ρ {comparison.mean:+.2f} with the right query, "
        f"{np.nanmean(rows[1]):+.2f} with a wrong one ({len(right)} unseen episodes, one seed)",
        verdict=comparison.verdict,
        why="rule: Spearman's ρ per episode between the paper's score (q·k softmaxed over the "
        "object queries, averaged over the query image's keys and the heads) and the final "
        "confidence; 95% t interval over the episodes of one trained model (not over seeds): "
        "confirmed above 0, contradicted below, inconclusive otherwise",
        effect_ours=_episodes_interval(comparison),
        kind=PAPER,
    )
