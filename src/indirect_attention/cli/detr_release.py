"""``ia detr detect`` and ``ia detr export``: IA-DETR on the user's own images, and its release
format (paper §6.2). Registered by :mod:`.detr`."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``detect`` and ``export`` under ``ia detr``."""
    detect = commands.add_parser(
        "detect",
        help="find the query's class in target images; write COCO-style JSON and drawings",
        description="One-shot detection on your own images. The query is an image file "
        "(--query), a box of it (--query --query-box), or a box of the first target "
        "(--query-box alone); it is used for every target. Boxes are in original pixels.",
    )
    detect.add_argument(
        "--checkpoint", required=True, help="checkpoint.pt, or a folder of `ia detr export`"
    )
    detect.add_argument("--query", default=None, help="query image file")
    detect.add_argument(
        "--query-box",
        default=None,
        metavar="x0,y0,x1,y1",
        help="crop the query from this box (pixels) of --query, or of the first target",
    )
    detect.add_argument("--target", nargs="+", required=True, help="target image files")
    detect.add_argument("--out", required=True, help="detections JSON (COCO results format)")
    detect.add_argument("--draw", default=None, help="folder for one PNG per target")
    detect.add_argument("--threshold", type=float, default=0.5, help="minimum score")
    detect.add_argument("--max-detections", type=int, default=100, help="per target")
    detect.add_argument(
        "--category-id",
        type=int,
        default=None,
        help='category_id written for every detection (default: the string "query")',
    )
    detect.add_argument("--threads", type=int, default=1)
    detect.set_defaults(func=_detect)

    export = commands.add_parser(
        "export",
        help="write model.safetensors + config.json + README.md (model card), the folder "
        "IADETR.from_pretrained reads",
    )
    export.add_argument("--checkpoint", required=True, help="checkpoint.pt of `ia detr train`")
    export.add_argument("--out", required=True, help="output folder")
    export.set_defaults(func=_export)


def _drawing_names(targets: list[str]) -> list[str]:
    """``<stem>.png`` per target; ``<stem>-<k>.png`` where two targets share a stem."""
    stems = [Path(t).stem for t in targets]
    return [
        f"{stem}.png" if stems.count(stem) == 1 else f"{stem}-{k + 1}.png"
        for k, stem in enumerate(stems)
    ]


def _parse_box(text: str) -> tuple[float, float, float, float]:
    """``--query-box "x0,y0,x1,y1"`` (pixels, x1 > x0, y1 > y0) -> a tuple of floats.

    Raises:
        ValueError: not four numbers, or a degenerate box (names the flag and the text).
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--query-box must be four numbers x0,y0,x1,y1 (pixels), got {text!r}")
    x0, y0, x1, y1 = values
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"--query-box {text!r} is degenerate: expected x1 > x0 and y1 > y0")
    return x0, y0, x1, y1


def _detect(args: argparse.Namespace) -> int:
    import torch

    from ..detection.detect import detect, detections_to_coco
    from ..detection.draw import draw_detections
    from ..detection.preprocess import crop_box, read_image
    from ..detection.release import load_detector
    from ..training.records import atomic_write_text

    if args.query is None and args.query_box is None:
        raise ValueError("give --query QUERY.png, --query-box x0,y0,x1,y1, or both")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    box = _parse_box(args.query_box) if args.query_box is not None else None
    model = load_detector(args.checkpoint)
    source = args.query if args.query is not None else args.target[0]
    query = read_image(source)
    if box is not None:
        query = crop_box(query, box, name=f"--query-box {args.query_box} of {source}")
    category = "query" if args.category_id is None else args.category_id
    rows = []
    for k, (path, name) in enumerate(zip(args.target, _drawing_names(args.target), strict=True)):
        target = read_image(path)
        found = detect(
            model, target, query, threshold=args.threshold, max_detections=args.max_detections
        )
        rows += detections_to_coco(found, image_id=k + 1, file_name=path, category_id=category)
        if args.draw is not None:
            draw_detections(target, query, found, Path(args.draw) / name)
    lines = ",\n".join(f"  {json.dumps(row)}" for row in rows)  # one detection per line
    atomic_write_text(args.out, f"[\n{lines}\n]\n" if rows else "[]\n")
    drawn = f" and {len(args.target)} PNGs in {args.draw}" if args.draw is not None else ""
    print(f"{len(rows)} detections in {len(args.target)} images; wrote {args.out}{drawn}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..detection.release import export_detector, load_detector

    model = load_detector(args.checkpoint)
    out = export_detector(model, args.out, source=str(args.checkpoint))
    spec = model.input_spec
    print(
        f"wrote {out}: model.safetensors, config.json and the model card README.md "
        f"({model.config.kind}, targets {spec.target_size} px, queries {spec.query_size} px)"
    )
    return 0
