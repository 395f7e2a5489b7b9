"""``ia detr detect`` and ``ia detr export``: IA-DETR on the user's own images, and its release
format (paper §6.2). Registered by :mod:`.detr`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

QUERY_CATEGORY_ID = 1  # as detection.detect.QUERY_CATEGORY_ID (tested), without importing torch
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``detect`` and ``export`` under ``ia detr``."""
    detect = commands.add_parser(
        "detect",
        help="find the query's class in target images; write a COCO results JSON and drawings",
        description="One-shot detection on your own images. The query is an image file "
        "(--query), a box of it (--query --query-box), or a box of the first target "
        "(--query-box alone); it is used for every target. Boxes are in original pixels. "
        "The output is a COCO results file: image_id 1, 2, ... in target order (or from --gt), "
        "category_id --category-id for every detection.",
    )
    detect.add_argument(
        "--checkpoint",
        default=None,
        help="a trained model: a run folder, its checkpoint.pt, an `ia detr export` folder or "
        "its model.safetensors (default: the detector shipped in the package, trained on the "
        "emoji benchmark: emoji-like sprites, not real photographs)",
    )
    detect.add_argument("--query", default=None, help="query image file")
    detect.add_argument(
        "--query-box",
        default=None,
        metavar="x0,y0,x1,y1",
        help="crop the query from this box (pixels) of --query, or of the first target",
    )
    detect.add_argument(
        "--target",
        action="extend",
        nargs="+",
        required=True,
        help="target image files or folders of them (their images, sorted by name); repeatable",
    )
    detect.add_argument(
        "--out",
        default=None,
        help="detections JSON (COCO results format); default: DRAW/detections.json with "
        "--draw, else the JSON is printed",
    )
    detect.add_argument("--draw", default=None, help="folder for one PNG per target")
    detect.add_argument(
        "--draw-attention",
        action="store_true",
        help="in the --draw PNGs, a red heat map of where the detections' object queries "
        "attended in the target (last decoder layer)",
    )
    detect.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="minimum score (default: the model's recommended threshold, chosen on validation "
        "and recorded in its export, as the shipped detector's is; else 0.5)",
    )
    detect.add_argument("--max-detections", type=int, default=100, help="per target")
    detect.add_argument(
        "--nms",
        type=float,
        default=None,
        metavar="IOU",
        help="class-agnostic non-maximum suppression: drop boxes overlapping a better one with "
        "IoU above IOU (default: none)",
    )
    detect.add_argument(
        "--category-id",
        type=int,
        default=QUERY_CATEGORY_ID,
        help="category_id of every detection: the query's class in your ground truth "
        f"(default {QUERY_CATEGORY_ID})",
    )
    detect.add_argument(
        "--gt",
        default=None,
        metavar="COCO_JSON",
        help="take each target's image_id from this COCO instances JSON (matched by file name), "
        "so that `ia detr eval-json --gt` scores the output; default: 1, 2, ... in target order",
    )
    detect.add_argument(
        "--device", default="auto", help="auto (a GPU if there is one, else the CPU), cpu, cuda:0"
    )
    detect.add_argument("--quiet", action="store_true", help="no progress bar")
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


def _targets(given: list[str]) -> list[str]:
    """``--target`` values with each folder replaced by its image files, sorted by name."""
    targets = []
    for text in given:
        path = Path(text)
        if not path.is_dir():
            targets.append(text)
            continue
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ValueError(
                f"--target {text}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        targets += [str(p) for p in images]
    return targets


def _device(text: str):  # -> torch.device
    """``--device``: ``auto`` picks a GPU when there is one."""
    import torch

    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(
            f"--device {text!r} is not a device; expected auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {text}: no CUDA device is available here")
    return device


def _detect(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from ..detection.attention_map import attention_map
    from ..detection.data.coco import load_coco_json
    from ..detection.detect import coco_image_ids, coco_results_text, detect, detections_to_coco
    from ..detection.draw import draw_detections
    from ..detection.preprocess import crop_box, read_image
    from ..detection.release import load_detector
    from ..training.records import atomic_write_text

    if args.query is None and args.query_box is None:
        raise ValueError("give --query QUERY.png, --query-box x0,y0,x1,y1, or both")
    if args.draw_attention and args.draw is None:
        raise ValueError("--draw-attention needs --draw DIR (the heat map is drawn there)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    box = _parse_box(args.query_box) if args.query_box is not None else None
    targets = _targets(args.target)
    image_ids = list(range(1, len(targets) + 1))
    if args.gt is not None:
        image_ids = coco_image_ids(args.gt, targets)
        known = sorted(int(c["id"]) for c in load_coco_json(args.gt).get("categories", []))
        if args.category_id not in known:
            raise ValueError(
                f"--category-id {args.category_id} is not a category of --gt {args.gt} "
                f"(its ids: {', '.join(map(str, known[:20]))})"
            )
    if args.checkpoint is None:
        from ..detection.pretrained import shipped_path

        args.checkpoint = str(shipped_path())
    model = load_detector(args.checkpoint, map_location=_device(args.device))
    source = args.query if args.query is not None else targets[0]
    query = read_image(source)
    if box is not None:
        query = crop_box(query, box, name=f"--query-box {args.query_box} of {source}")
    rows = []
    work = zip(targets, image_ids, _drawing_names(targets), strict=True)
    bar = tqdm(
        work,
        total=len(targets),
        desc="detect",
        unit="image",
        disable=args.quiet or len(targets) < 2,
    )
    for path, image_id, name in bar:
        target = read_image(path)
        found = detect(
            model,
            target,
            query,
            threshold=args.threshold,
            max_detections=args.max_detections,
            nms_iou=args.nms,
        )
        rows += detections_to_coco(
            found, image_id=image_id, file_name=path, category_id=args.category_id
        )
        if args.draw is not None:
            heat = None
            if args.draw_attention:  # the detections' queries, or every query by its score
                kept = len(found.queries) > 0
                heat = attention_map(
                    model,
                    target,
                    query,
                    queries=found.queries if kept else None,
                    weights=found.scores if kept else None,
                )
            draw_detections(target, query, found, Path(args.draw) / name, heat=heat)
    text = coco_results_text(rows)  # one detection per line
    out = args.out
    if out is None and args.draw is not None:
        out = str(Path(args.draw) / "detections.json")
    if out is None:  # the JSON on stdout, the summary on stderr
        sys.stdout.write(text)
        print(f"{len(rows)} detections in {len(targets)} images", file=sys.stderr)
        return 0
    atomic_write_text(out, text)
    drawn = f" and {len(targets)} PNGs in {args.draw}" if args.draw is not None else ""
    print(f"{len(rows)} detections in {len(targets)} images; wrote {out}{drawn}")
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
