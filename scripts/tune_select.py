"""Pick each detector's setting on validation: the equal tuning of issue 17.

Every detector gets the same grid (the same number of runs, one seed) and the same rule: the
setting with the highest final validation margin, ``val_ap50 - val_wrong`` of the last row of
``metrics.jsonl`` (seen classes, the ``val`` episode stream, which no test split shares). The
test splits are not read.

    ia detr train --kind K --seed 2 --weight-class 4 --out runs/tune-emoji-w4/K-s2 \
        --eval-every 1 --threads 1 --cache-dir runs/cache          # one per kind
    python scripts/tune_select.py runs/table1-emoji/*-s2 runs/tune-emoji-w4/*-s2

prints, per kind, one row per run (the config keys that differ between that kind's runs, the
validation curve of the margin per epoch, its final value) and the selected run. With ``--test``
(after the selection, never before it) it also prints the test-split numbers of each selected run
and of the first run given for each kind (the recipe), as ``ia detr table1`` scored them
(``python scripts/table1_third_seed.py FOLDER emoji --kind K --score-only`` scores a run), and
the differences between kinds at the recipe and at the selected settings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from indirect_attention.detection.table1 import _run_values as run_values
from indirect_attention.training.records import read_jsonl

SPLITS = {"seen": "test_seen", "unseen": "test"}


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _read(run: Path) -> tuple[dict[str, Any], list[float], float]:
    """(flattened config, val margin per evaluated epoch, final val AP50)."""
    config = _flat(json.loads((run / "config.json").read_text(encoding="utf-8")))
    rows = [row for row in read_jsonl(run / "metrics.jsonl") if "val_ap50" in row]
    if not rows or rows[-1]["epoch"] != config["epochs"]:
        raise SystemExit(f"{run}: the run has not finished its {config['epochs']} epochs")
    return config, [row["val_ap50"] - row["val_wrong"] for row in rows], rows[-1]["val_ap50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of `ia detr train`")
    parser.add_argument("--test", action="store_true", help="then print the test numbers")
    args = parser.parse_args()
    ignored = {"out", "resume", "progress", "threads", "data_options.cache_dir"}
    by_kind: dict[str, list[tuple[Path, dict[str, Any], list[float], float]]] = {}
    for run in args.runs:
        config, margins, ap50 = _read(run)
        by_kind.setdefault(config["model.kind"], []).append((run, config, margins, ap50))
    sizes = {len(runs) for runs in by_kind.values()}
    if len(sizes) != 1:
        raise SystemExit(f"unequal effort: runs per kind {sorted(sizes)}")
    selected: dict[str, tuple[Path, Path]] = {}
    for kind, runs in by_kind.items():
        keys = sorted(
            key
            for key in runs[0][1]
            if key not in ignored and len({repr(run[1].get(key)) for run in runs}) > 1
        )
        print(f"## {kind} ({len(runs)} runs; differing: {', '.join(keys) or 'nothing'})")
        print("| run | setting | val margin per epoch | final val AP50 | final val margin |")
        print("|---|---|---|---|---|")
        for run, config, margins, ap50 in runs:
            setting = ", ".join(f"{key}={config[key]}" for key in keys)
            curve = " ".join(f"{margin:.3f}" for margin in margins)
            print(f"| {run} | {setting} | {curve} | {ap50:.3f} | {margins[-1]:.3f} |")
        best = max(runs, key=lambda run: run[2][-1])
        print(f"\nselected: {best[0]} (final val margin {best[2][-1]:.3f})\n")
        selected[kind] = (runs[0][0], best[0])
    if args.test:
        _print_test(selected)


def _test_values(run: Path) -> dict[str, dict[str, float | None]]:
    result = json.loads((run / "results.json").read_text(encoding="utf-8"))
    keys = {split: key if key in result else split for split, key in SPLITS.items()}
    missing = [key for key in keys.values() if key not in result]
    if missing:
        raise SystemExit(f"{run}: not scored on {missing}; score it with table1_third_seed.py")
    return {split: run_values(result[key]) for split, key in keys.items()}


def _print_test(selected: dict[str, tuple[Path, Path]]) -> None:
    """Test margin and matching AUC of the recipe's run and the selected run of each kind."""
    values = {
        (kind, which): _test_values(run)
        for kind, pair in selected.items()
        for which, run in zip(("recipe", "selected"), pair, strict=True)
    }
    print("| model | settings | seen margin | unseen margin | seen AUC | unseen AUC |")
    print("|---|---|---|---|---|---|")
    for (kind, which), value in values.items():
        cells = [value[s][c] for c in ("margin", "matching_auc") for s in SPLITS]
        print(f"| {kind} | {which} | " + " | ".join(f"{cell:.3f}" for cell in cells) + " |")
    kinds = sorted(selected, key=lambda kind: kind != "ia")  # ia − each baseline first
    print("\ndifferences in margin, points (seen / unseen):")
    for which in ("recipe", "selected"):
        for ours in kinds:
            for theirs in kinds[kinds.index(ours) + 1 :]:
                deltas = [
                    100 * (values[ours, which][s]["margin"] - values[theirs, which][s]["margin"])
                    for s in SPLITS
                ]
                print(f"- {which}: {ours} − {theirs}: {deltas[0]:+.1f} / {deltas[1]:+.1f}")


if __name__ == "__main__":
    main()
