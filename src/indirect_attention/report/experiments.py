"""Verdicts on the trained experiments of paper §6, computed from the parts' run records.

* Synthetic tasks (§6.1, Figure 2): the indirect model's final test accuracy against the naive and
  cross-attention models, and against its two ablations (references fixed at P^0; no content in
  the queries), from ``results.json`` and ``ablations/results.json``.
* Figure 4 / Appendix A.5: the retrieval model's bias is purely positional in layer 1 and depends
  on the data from layer 2 on, from ``bias_maps.json``.
* Table 1 (§6.2): each detector's margin over its wrong-query control, from the table's
  ``results.json``. AP50 alone can sit at the chance floor on the emoji benchmark, so the margin
  stands for "detects the query's class"; the absolute AP50s are compared only on Pascal VOC.
* Figure 7 / Appendix B.2.1: the object queries ranked highest depend on the query image, from
  ``figure7.json`` (every object query's score with the right and with a wrong query).
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from .claims import NOT_COMPARABLE, Claim, judge, read_json

__all__ = [
    "MARGIN_TARGET",
    "ORDER_GAP",
    "RANKING_DROP",
    "detection_claims",
    "figure4_claim",
    "figure7_claim",
    "synthetic_claims",
]

#: A detector "matches" when its AP50 beats its own wrong-query control by this much.
MARGIN_TARGET = 0.25
#: The detectors' order counts only where consecutive margins differ by more than this (AP50).
ORDER_GAP = 0.02
#: Figure 7 analogue: with a wrong query the top-ranked object queries keep at most this fraction
#: of the score they had with the right query.
RANKING_DROP = 0.5
#: Paper Table 1 (Pascal VOC AP50, seen / unseen classes).
PAPER_TABLE1 = {
    "ia": (82.94, 65.13),
    "double-cross": (77.90, 62.31),
    "misaligned": (29.21, 33.8),
}
_TASK_NAMES = {"sort": "sorting by an arbitrary ordering", "retrieval": "sequence retrieval"}


def _acc(model: dict[str, Any]) -> str:
    return f"{100 * model['final_test_acc_mean']:.1f} ± {100 * model['final_test_acc_std']:.1f}"


def _seed_mean(model: dict[str, Any], seeds: set[int]) -> float:
    return statistics.fmean(r["final_test_acc"] for r in model["per_seed"] if r["seed"] in seeds)


def synthetic_claims(part_dir: Path, *, task: str) -> list[Claim]:
    """§6.1, Figure 2: indirect against naive and cross, then against its ablations."""
    results = read_json(part_dir / "results.json")
    models, part = results["models"], f"synthetic_{task}"
    seeds = len(models["indirect"]["per_seed"])
    rows = []
    others = [name for name in ("naive", "cross") if name in models]
    indirect = models["indirect"]["final_test_acc_mean"]
    best = max(models[name]["final_test_acc_mean"] for name in others)
    rows.append(
        Claim(
            part=part,
            claim=f"Indirect attention beats naive misaligned and cross-attention on "
            f"{_TASK_NAMES.get(task, task)} (§6.1, Figure 2)",
            paper="indirect above naive and cross (test-accuracy curves; no numbers in the text)",
            ours=", ".join(f"{name} {_acc(models[name])}" for name in ["indirect", *others])
            + f" % (seeds: {seeds}, epochs: {results['epochs']})",
            verdict=judge(indirect > best),
            why=f"rule: indirect's mean final test accuracy above every other model's "
            f"(gap {100 * (indirect - best):+.1f} points)",
        )
    )
    ablations_path = part_dir / "ablations" / "results.json"
    ablations = read_json(ablations_path)["models"] if ablations_path.exists() else {}
    named = {
        "indirect-nobias-update": "The per-layer reference update P^(l+1) = g(P^l, O^l) helps (§5)",
        "indirect-noenrich": "Content-enriched queries q_i = e_i + x_s(i) help (§5, Definition 1)",
    }
    for kind, claim in named.items():
        if kind not in ablations:
            continue
        used = {r["seed"] for r in ablations[kind]["per_seed"]}
        ours, ablated = _seed_mean(models["indirect"], used), _seed_mean(ablations[kind], used)
        rows.append(
            Claim(
                part=part,
                claim=f"{claim}: {task}",
                paper="part of the mechanism (no ablation reported)",
                ours=f"indirect {100 * ours:.1f} vs {kind} {100 * ablated:.1f} % "
                f"(seeds {sorted(used)})",
                verdict=judge(ours > ablated),
                why="rule: indirect's mean final test accuracy above the ablation's, same seeds",
            )
        )
    return rows


def _spread(array: np.ndarray) -> float:
    return float(array.max() - array.min()) or 1.0


def figure4_claim(part_dir: Path) -> Claim:
    """Appendix A.5, Figure 4: layer 1's bias is positional, later layers depend on the data.

    Layer 1 is positional when every head's map is constant along each diagonal (a function of
    the offset j - i) and identical for every test pair; a later layer depends on the data when
    its maps differ between test pairs. Both are measured relative to the map's own range.
    """
    claim = "The bias of layer 1 is purely positional; later layers' bias depends on the data "
    claim += "(Figure 4, Appendix A.5)"
    paper = "layer 1: a position bias; layers 2+: 'considers the data as well'"
    if not (part_dir / "bias_maps.json").exists():
        return Claim(
            part="synthetic_retrieval",
            claim=claim,
            paper=paper,
            ours="no bias maps recorded",
            verdict=NOT_COMPARABLE,
            why="bias_maps.json is missing (the indirect model was not trained on retrieval)",
        )
    record = read_json(part_dir / "bias_maps.json")
    bias = np.asarray([item["bias"] for item in record["examples"]], dtype=np.float64)
    first = bias[:, 0]  # (E, H, Lq, Lk)
    lq, lk = first.shape[-2:]
    diagonal = 0.0
    for offset in range(-lq + 1, lk):
        values = np.stack([np.diagonal(m, offset=offset) for m in first.reshape(-1, lq, lk)])
        diagonal = max(diagonal, float((values.max(axis=1) - values.min(axis=1)).max()))
    diagonal /= _spread(first)
    same = float(np.abs(first - first[:1]).max()) / _spread(first)
    later = [
        float(np.abs(bias[:, layer] - bias[:1, layer]).max()) / _spread(bias[:, layer])
        for layer in range(1, bias.shape[1])
    ]
    varies = max(later) if later else 0.0
    enough = bias.shape[0] > 1 and bias.shape[1] > 1
    return Claim(
        part="synthetic_retrieval",
        claim=claim,
        paper=paper,
        ours=f"layer 1: off-diagonal variation {diagonal:.1e}, between pairs {same:.1e}; "
        f"layers 2+: between pairs up to {varies:.2f} (relative to each map's range)",
        verdict=judge(diagonal < 1e-3 and same < 1e-3 and varies > 1e-2)
        if enough
        else NOT_COMPARABLE,
        why="rule: layer 1 constant along diagonals and across pairs (< 1e-3), some later layer "
        "differs between pairs (> 1e-2)"
        if enough
        else "needs at least two test pairs and two layers",
    )


def _margins(table: dict[str, Any], variant: str) -> tuple[float, float]:
    row = table["models"][variant]
    return row["seen"]["margin"]["mean"], row["unseen"]["margin"]["mean"]


def detection_claims(part_dir: Path) -> list[Claim]:
    """Table 1 (§6.2): matching margins, the ordering of the three detectors, absolute AP50."""
    table = read_json(part_dir / "results.json")
    config_path = part_dir / "config.json"
    data = read_json(config_path)["train"]["data"] if config_path.exists() else "emoji"
    models, floors = table["models"], table["chance_floor"]
    scale = f"{table['seeds']} seed(s), {table['episodes']} episodes × {table['draws']} draws"
    rows = []
    if "ia" in models:
        seen, unseen = _margins(table, "ia")
        ap = models["ia"]
        rows.append(
            Claim(
                part="detection",
                claim="IA-DETR detects the query's class, not just objects (§6.2, Table 1)",
                paper="IA-DETR AP50 82.94 seen / 65.13 unseen (Pascal VOC)",
                ours=f"ia margin over the wrong-query control {seen:+.3f} seen / {unseen:+.3f} "
                f"unseen (AP50 {ap['seen']['ap50']['mean']:.3f} / "
                f"{ap['unseen']['ap50']['mean']:.3f}; chance floor {floors['seen']:.3f} / "
                f"{floors['unseen']:.3f}; {scale})",
                verdict=judge(min(seen, unseen) >= MARGIN_TARGET),
                why=f"rule: AP50 with the right query minus AP50 with a wrong-class query ≥ "
                f"{MARGIN_TARGET} on seen and unseen classes (the paper reports no such control)",
            )
        )
    order = ("ia", "double-cross", "misaligned")
    present = all(name in models for name in order)
    margins = {name: _margins(table, name) for name in order if name in models}
    ours = "; ".join(f"{n} {m[0]:+.3f} / {m[1]:+.3f}" for n, m in margins.items())
    holds = present and all(
        margins["ia"][s] - ORDER_GAP
        > margins["double-cross"][s]
        > margins["misaligned"][s] + ORDER_GAP
        for s in (0, 1)
    )
    rows.append(
        Claim(
            part="detection",
            claim="IA-DETR > double cross-attention > misaligned attention (§6.2, Table 1)",
            paper="seen 82.94 > 77.90 > 29.21; unseen 65.13 > 62.31 > 33.8 (AP50, Pascal VOC)",
            ours=f"margins seen / unseen: {ours}" if ours else "no detector was evaluated",
            verdict=judge(holds) if present else NOT_COMPARABLE,
            why=f"rule: the margins over the wrong-query control keep the paper's order on both "
            f"splits, each step by more than {ORDER_GAP}"
            if present
            else "not all three detectors were trained",
        )
    )
    aps = "; ".join(
        f"{name} {row['seen']['ap50']['mean']:.3f} / {row['unseen']['ap50']['mean']:.3f}"
        for name, row in models.items()
    )
    voc = data == "voc" and present
    rows.append(
        Claim(
            part="detection",
            claim="Absolute AP50 of the three detectors (Table 1)",
            paper="; ".join(f"{n} {s} / {u}" for n, (s, u) in PAPER_TABLE1.items()),
            ours=f"AP50 seen / unseen: {aps}",
            verdict=judge(
                all(
                    models[a][s]["ap50"]["mean"] > models[b][s]["ap50"]["mean"]
                    for a, b in itertools.pairwise(order)
                    for s in ("seen", "unseen")
                )
            )
            if voc
            else NOT_COMPARABLE,
            why="rule: the paper's AP50 order on Pascal VOC"
            if voc
            else f"our detectors ran on the {data!r} benchmark on a CPU, not Pascal VOC with a "
            f"Swin/ResNet-50 backbone; localising every object already earns the chance floor "
            f"({floors['seen']:.3f} / {floors['unseen']:.3f})",
        )
    )
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
    """Figure 7 / Appendix B.2.1: the query image selects which object queries rank highest."""
    claim = "The query image decides which object queries rank highest (Figure 7, B.2.1)"
    paper = "object queries related to the query object receive higher attention (pictures)"
    if not (part_dir / "figure7.json").exists():
        return Claim(
            part="detection",
            claim=claim,
            paper=paper,
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
    episodes = stats["ia"][2] if "ia" in stats else 0
    return Claim(
        part="detection",
        claim=claim,
        paper=paper,
        ours=f"{ours} ({episodes} unseen episodes)",
        verdict=judge(stats["ia"][0] <= RANKING_DROP) if "ia" in stats else NOT_COMPARABLE,
        why=f"rule: for ia, the mean of the top-{top_k} object-query scores with a wrong-class "
        f"query is at most {RANKING_DROP:.0%} of that with the right query (we rank by the "
        "model's scores, which the paper says align with its attention ranking)"
        if "ia" in stats
        else "ia was not trained",
    )
