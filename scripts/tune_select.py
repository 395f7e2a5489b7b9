"""Pick each detector's setting on validation: the equal tuning of issue 17.

Every detector gets the same grid (the same number of runs, one seed) and the same rule: the
setting with the highest final validation margin, ``val_ap50 - val_wrong`` of the last row of
``metrics.jsonl`` (seen classes, the ``val`` episode stream, which no test split shares). The
test splits are not read.

    ia detr train --kind K --seed 2 --weight-class 4 --out runs/tune-emoji-w4/K-s2 \
        --eval-every 1 --threads 1 --cache-dir runs/cache          # one per kind
    python scripts/tune_select.py runs/table1-emoji/*-s2 runs/tune-emoji-w4/*-s2

prints, per kind, one row per run (the config keys that differ between that kind's runs, the
validation curve of the margin per epoch, its final value) and the selected run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


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
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [row for row in rows if "val_ap50" in row]
    if not rows or rows[-1]["epoch"] != config["epochs"]:
        raise SystemExit(f"{run}: the run has not finished its {config['epochs']} epochs")
    return config, [row["val_ap50"] - row["val_wrong"] for row in rows], rows[-1]["val_ap50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of `ia detr train`")
    args = parser.parse_args()
    ignored = {"out", "resume", "progress", "threads", "data_options.cache_dir"}
    by_kind: dict[str, list[tuple[Path, dict[str, Any], list[float], float]]] = {}
    for run in args.runs:
        config, margins, ap50 = _read(run)
        by_kind.setdefault(config["model.kind"], []).append((run, config, margins, ap50))
    sizes = {len(runs) for runs in by_kind.values()}
    if len(sizes) != 1:
        raise SystemExit(f"unequal effort: runs per kind {sorted(sizes)}")
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


if __name__ == "__main__":
    main()
