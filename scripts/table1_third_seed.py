"""Add a trained seed to a 2-seed Table 1 whose per-seed runs are no longer kept (issue 17).

The 2-seed tables of 2026-12-02 (``docs/results.md``) publish, per model, split and column, the
mean ``m`` and the population standard deviation ``s`` of seeds 0 and 1, so their two values are
``{m - s, m + s}`` (which seed had which is not recorded), and, per comparison, the paired 95% t
interval ``mean [low, high]`` over the two seeds, so the two per-seed differences are
``mean ± (high - low) / 2 / t_{0.975, 1}``. Means, standard deviations and paired t intervals
over three seeds depend only on these sets, not on which seed had which value, so a third seed's
run is enough to state the 3-seed numbers (to the rounding of the published 3 and 1 decimals).

    ia detr train --kind K --seed 2 --out runs/table1-emoji/K-s2 --eval-every 1 --threads 1 \
        --cache-dir runs/cache                       # one per kind (add --recipe paper)
    python scripts/table1_third_seed.py runs/table1-emoji emoji --cache-dir runs/cache

scores each ``<folder>/<kind>-s2`` run with the protocol of ``ia detr table1 --episodes 150
--draws 5`` (``detection.table1.score_run``, which reuses a run already scored) and prints the
3-seed table and comparisons.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from indirect_attention.detection.table1 import _run_values as run_values
from indirect_attention.report.stats import (
    describe,
    mean_interval,
    t_quantile,
)

COLUMNS = (
    "ap50",
    "wrong_query",
    "margin",
    "matching_auc",
    "per_image_ap50",
    "random_margin",
    "random_matching_auc",
)
# docs/tables/table1-emoji-2026-12-02.md and table1-paper-2026-12-02.md: (mean, population std)
PUBLISHED = {
    "emoji": {
        (
            "ia",
            "seen",
        ): "0.592 0.019 0.302 0.013 0.290 0.006 0.838 0.008 0.606 0.021 0.102 0.014 0.643 0.012",
        (
            "ia",
            "unseen",
        ): "0.537 0.022 0.265 0.002 0.272 0.020 0.791 0.028 0.601 0.018 0.134 0.034 0.671 0.046",
        (
            "misaligned",
            "seen",
        ): "0.591 0.011 0.297 0.002 0.294 0.010 0.831 0.005 0.601 0.009 0.022 0.016 0.527 0.006",
        (
            "misaligned",
            "unseen",
        ): "0.531 0.025 0.243 0.007 0.288 0.018 0.772 0.013 0.597 0.013 0.046 0.002 0.564 0.015",
        (
            "double-cross",
            "seen",
        ): "0.610 0.010 0.273 0.000 0.337 0.010 0.833 0.020 0.619 0.013 0.318 0.008 0.824 0.024",
        (
            "double-cross",
            "unseen",
        ): "0.549 0.019 0.221 0.010 0.329 0.009 0.797 0.021 0.608 0.020 0.334 0.019 0.798 0.030",
    },
    "paper": {
        (
            "ia",
            "seen",
        ): "0.425 0.005 0.422 0.005 0.004 0.000 0.576 0.003 0.475 0.006 0.001 0.006 0.567 0.001",
        (
            "ia",
            "unseen",
        ): "0.386 0.025 0.388 0.026 -0.002 0.001 0.604 0.000 0.501 0.016 0.005 0.001 0.609 0.003",
        (
            "misaligned",
            "seen",
        ): "0.423 0.025 0.420 0.021 0.003 0.004 0.560 0.013 0.465 0.020 0.004 0.005 0.552 0.003",
        (
            "misaligned",
            "unseen",
        ): "0.396 0.019 0.387 0.021 0.009 0.001 0.603 0.011 0.499 0.014 0.009 0.003 0.598 0.011",
        (
            "double-cross",
            "seen",
        ): "0.664 0.008 0.290 0.013 0.374 0.021 0.850 0.009 0.674 0.006 0.365 0.018 0.854 0.007",
        (
            "double-cross",
            "unseen",
        ): "0.547 0.008 0.256 0.006 0.291 0.014 0.793 0.009 0.609 0.007 0.311 0.021 0.791 0.017",
    },
}
# docs/results.md, "Paired over the 2 seeds": (ours, theirs, column) -> split -> (mean, low, high),
# in points (×100)
PUBLISHED_PAIRS = {
    "emoji": {
        ("ia", None, "margin"): {"seen": (29.0, 21.6, 36.3), "unseen": (27.2, 1.5, 52.9)},
        ("ia", "double-cross", "margin"): {
            "seen": (-4.7, -25.4, 15.9),
            "unseen": (-5.7, -19.8, 8.4),
        },
        ("ia", "misaligned", "margin"): {"seen": (-0.4, -5.4, 4.6), "unseen": (-1.6, -4.9, 1.6)},
        ("ia", "misaligned", "matching_auc"): {
            "seen": (0.7, -3.6, 4.9),
            "unseen": (2.0, -16.6, 20.5),
        },
        ("ia", "misaligned", "random_matching_auc"): {
            "seen": (11.5, -11.0, 34.0),
            "unseen": (10.7, -29.2, 50.6),
        },
    },
    "paper": {
        ("ia", None, "margin"): {"seen": (0.4, 0.2, 0.5), "unseen": (-0.2, -1.6, 1.1)},
        ("ia", "double-cross", "margin"): {
            "seen": (-37.0, -63.4, -10.6),
            "unseen": (-29.3, -49.0, -9.6),
        },
        ("ia", "double-cross", "matching_auc"): {
            "seen": (-27.4, -35.1, -19.7),
            "unseen": (-18.9, -30.0, -7.9),
        },
        ("ia", "misaligned", "margin"): {"seen": (0.1, -5.0, 5.2), "unseen": (-1.1, -4.3, 2.1)},
    },
}
SPLITS = {"seen": "test_seen", "unseen": "test"}
KINDS = ("ia", "misaligned", "double-cross")


def score(folder: Path, recipe: str, cache_dir: str, kinds: tuple[str, ...]) -> None:
    """Score every trained ``<kind>-s2`` run of ``folder`` as ``ia detr table1`` scores a run."""
    from indirect_attention.cli import build_parser
    from indirect_attention.cli.detr import _train_config
    from indirect_attention.detection.table1 import Table1Config, score_run

    argv = ["detr", "table1", "--out", str(folder), "--recipe", recipe, "--quiet"]
    args = build_parser().parse_args([*argv, "--cache-dir", cache_dir, "--threads", "1"])
    train = _train_config(args, out=str(folder), kind="ia", seed=0)
    config = Table1Config(out=str(folder), seeds=3, train=train, episodes=150, draws=5)
    for kind in kinds:
        done = folder / f"{kind}-s2" / "results.json"
        if done.exists() and "steps" in json.loads(done.read_text()):  # trained to the end
            score_run(config, kind, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("recipe", choices=sorted(PUBLISHED))
    parser.add_argument("--cache-dir", default="runs/cache")
    parser.add_argument("--kind", action="append", help="score only these kinds (repeatable)")
    parser.add_argument("--score-only", action="store_true", help="score, print nothing")
    args = parser.parse_args()
    score(args.folder, args.recipe, args.cache_dir, tuple(args.kind or KINDS))
    if args.score_only:
        return
    new: dict[tuple[str, str], dict[str, float | None]] = {}
    for (kind, split), _ in PUBLISHED[args.recipe].items():
        path = args.folder / f"{kind}-s2" / "results.json"
        if path.exists():
            result = json.loads(path.read_text())
            key = SPLITS[split] if SPLITS[split] in result else split
            new[kind, split] = run_values(result[key])
    print("| model | split | " + " | ".join(COLUMNS) + " |")
    for (kind, split), text in PUBLISHED[args.recipe].items():
        if (kind, split) not in new:
            continue
        numbers = [float(x) for x in text.split()]
        cells = []
        for index, column in enumerate(COLUMNS):
            m, s = numbers[2 * index], numbers[2 * index + 1]
            third = new[kind, split][column]
            values = [m - s, m + s] + ([third] if third is not None else [])
            mean = statistics.fmean(values)
            std = statistics.pstdev(values)
            cells.append(f"{mean:.3f} ± {std:.3f} (s2 {third:.3f})")
        print(f"| {kind} | {split} | " + " | ".join(cells) + " |")
    t1 = t_quantile(0.975, 1)
    for (ours, theirs, column), splits in PUBLISHED_PAIRS[args.recipe].items():
        for split, (mean, low, high) in splits.items():
            if (ours, split) not in new or (theirs and (theirs, split) not in new):
                continue
            spread = (high - low) / 2 / t1
            third = new[ours, split][column] - (new[theirs, split][column] if theirs else 0.0)
            differences = {0: (mean - spread) / 100, 1: (mean + spread) / 100, 2: third}
            name = f"{ours} − {theirs}" if theirs else f"{ours} > 0"
            text = describe(mean_interval(differences, direction=1))
            print(f"{name}, {column}, {split}: seed 2 {third * 100:+.1f}; 3 seeds {text}")


if __name__ == "__main__":
    main()
