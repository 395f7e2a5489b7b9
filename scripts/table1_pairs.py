"""Paired comparisons over the seeds of an ``ia detr table1`` folder (issue 17's tables).

Prints, per split: each model's mean per Table 1 column, ia's margin against 0, and the paired
per-seed differences ia − double-cross, ia − misaligned and double-cross − misaligned for the
margin, the matching AUC and their random-cell versions, each with its 95% t interval, verdict and
(when inconclusive) the seeds that would decide (``report.stats``). Also the last validation
scores of every run (``metrics.jsonl``), the split that model selection may use::

    python scripts/table1_pairs.py runs/table1-emoji [--markdown]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from indirect_attention.report.stats import describe, mean_interval, paired_comparison

KINDS = ("ia", "misaligned", "double-cross")
PAIRS = (("ia", "double-cross", 1), ("ia", "misaligned", 1), ("double-cross", "misaligned", 1))
MEASURES = (
    ("margin", "margin"),
    ("matching_auc", "matching AUC"),
    ("random_margin", "margin, query at a random cell"),
    ("random_matching_auc", "matching AUC, query at a random cell"),
)


def per_seed(table: dict, kind: str, split: str, key: str) -> dict[int, float]:
    """seed -> value (seeds whose value is null are left out)."""
    runs = table["models"].get(kind, {}).get(split, {}).get(key, {}).get("runs") or []
    return {seed: float(v) for seed, v in enumerate(runs) if v is not None}


def last_validation(run: Path) -> dict[str, float]:
    """The last row of a run's ``metrics.jsonl`` that holds validation scores."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    rows = [row for row in rows if "val_ap50" in row]
    if not rows:
        return {}
    row = rows[-1]
    return {
        "step": row.get("step"),
        "val_ap50": row["val_ap50"],
        "val_margin": row["val_ap50"] - row["val_wrong"],
        "val_matching_auc": row["val_matching_auc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, help="an ia detr table1 --out folder")
    args = parser.parse_args()
    table = json.loads((args.table / "results.json").read_text())
    print(f"{args.table}: {table['seeds']} seeds, {table['episodes']} episodes x {table['draws']}")
    for split in table["splits"]:
        print(f"\n## {split}")
        for kind in KINDS:
            means = {
                key: statistics.fmean(v.values())
                for key, _ in MEASURES
                if (v := per_seed(table, kind, split, key))
            }
            print(kind, " ".join(f"{key} {value:.3f}" for key, value in means.items()))
        print(
            "ia margin > 0:",
            describe(mean_interval(per_seed(table, "ia", split, "margin"), direction=1)),
        )
        for ours, theirs, direction in PAIRS:
            for key, name in MEASURES:
                a, b = per_seed(table, ours, split, key), per_seed(table, theirs, split, key)
                if len(set(a) & set(b)) == 0:
                    continue
                text = describe(paired_comparison(a, b, direction=direction))
                print(f"{ours} − {theirs}, {name}: {text}")
    print("\n## last validation scores per run (selection split)")
    for run in sorted(p for p in args.table.iterdir() if (p / "metrics.jsonl").exists()):
        values = last_validation(run)
        print(
            run.name,
            " ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
            ),
        )


if __name__ == "__main__":
    main()
