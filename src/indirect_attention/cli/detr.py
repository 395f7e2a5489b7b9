"""``ia detr``: IA-DETR one-shot detection commands; ``eval-json`` scores COCO-format predictions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("detr", help="IA-DETR one-shot detection")
    commands = parser.add_subparsers(dest="detr_command", metavar="SUBCOMMAND", required=True)
    evaluate = commands.add_parser(
        "eval-json", help="score COCO-format predictions against COCO-format ground truth (AP50)"
    )
    evaluate.add_argument("--gt", required=True, help="ground-truth COCO instances JSON")
    evaluate.add_argument("--pred", required=True, help="predictions: COCO results JSON")
    evaluate.add_argument(
        "--metric",
        choices=("voc", "coco", "per-image"),
        default="voc",
        help="voc: all-point AP50, difficult ignored; coco: pycocotools AP50; "
        "per-image: the authors' non-standard per-image AP50",
    )
    evaluate.add_argument("--out", required=True, help="folder for results.json")
    evaluate.set_defaults(func=_eval_json)


def _eval_json(args: argparse.Namespace) -> int:
    from ..detection.metrics import score_coco_json
    from ..training.records import atomic_write_text, to_jsonable

    result = score_coco_json(args.gt, args.pred, metric=args.metric)
    path = Path(args.out) / "results.json"
    atomic_write_text(path, json.dumps(to_jsonable(result), indent=2) + "\n")
    print(
        f"AP50 ({args.metric}) = {result['ap50']:.4f} over {len(result['per_class'])} classes; wrote {path}"
    )
    return 0
