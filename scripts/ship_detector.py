"""Make the detector shipped in the package from an ``ia detr train`` run (issue 19).

The shipped detector was made with (emoji recipe, ``ia`` kind, seed 0; the recipe chosen on the
validation split against the paper recipe, see the card)::

    ia detr train --kind ia --seed 0 --recipe emoji --out runs/ship/ia-emoji-s0 \\
        --cache-dir runs/reproduce/cache --eval-every 1 --threads 1
    python scripts/ship_detector.py runs/ship/ia-emoji-s0 --compare runs/table1-paper/ia-s0

It exports the run into ``src/indirect_attention/detection/shipped/emoji-ia`` (weights, config,
card) and measures the card's numbers (``detection.pretrained.card_metrics``), which
``tests/detection/test_pretrained.py`` measures again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from indirect_attention.detection.pretrained import SHIPPED_DIR, ship

COMMAND = (
    "ia detr train --kind ia --seed 0 --recipe emoji --out runs/ship/ia-emoji-s0 "
    "--cache-dir runs/reproduce/cache --eval-every 1 --threads 1\n"
    "python scripts/ship_detector.py runs/ship/ia-emoji-s0 --compare runs/table1-paper/ia-s0"
)
RECIPE = (
    "`ia detr train --recipe emoji` (our recipe, `docs/detection.md`): small CNN backbone "
    "pre-trained on sprite classification (2,000 steps), dim 128, 4 heads, 4 decoder layers, "
    "64 anchor object queries (q_i = e_i + x_s(i), paper Definition 1), BoxRPB in feature cells, "
    "half the training queries cropped from the target itself, 8 epochs of 188 steps (batch 16, "
    "AdamW 2e-4, backbone 2e-5), seed 0, on 2 CPU cores."
)


def _final_val(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    return {
        "epoch": last["epoch"],
        "ap50": last["val_ap50"],
        "wrong": last["val_wrong"],
        "auc": last["val_matching_auc"],
    }


def _validation(run: Path, others: list[Path]) -> str:
    lines = [
        "**Chosen on validation** (200 rendered validation scenes of the seen classes, one query "
        "draw; the last epoch of each run, same seed and schedule):",
        "",
        "| run | recipe | epoch | val AP50 | wrong query | margin | matching AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in [run, *others]:
        recipe = json.loads((path / "config.json").read_text()).get("recipe", "emoji")
        v = _final_val(path)
        lines.append(
            f"| `{path.name}` | {recipe} | {v['epoch']} | {v['ap50']:.3f} | {v['wrong']:.3f} | "
            f"{v['ap50'] - v['wrong']:+.3f} | {v['auc']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the ia detr train run to ship")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="runs it beat")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR)
    args = parser.parse_args()
    metrics = ship(
        args.run,
        args.out,
        command=COMMAND,
        recipe_text=RECIPE,
        validation=_validation(args.run, args.compare),
    )
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
