"""``ia detr``: IA-DETR one-shot detection: ``train``, ``eval``, ``show``, ``table1``, ``eval-json``,
``detect`` and ``export`` (the last two in :mod:`.detr_release`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import detr_release
from .errors import UserError

SUPPRESS = argparse.SUPPRESS  # flags not given keep the library's defaults


def _sources() -> dict[str, type]:
    """The data sources of ``--data``: the one place a new source is registered."""
    from ..detection import sources

    return {"emoji": sources.EmojiSource, "voc": sources.VocSource, "coco": sources.CocoSource}


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


#: ``--split`` values of ``eval`` and ``show`` (the new-artist splits need --held-out-styles).
SPLITS = ("seen", "unseen", "val", "seen-new-artists", "unseen-new-artists")


def _add_data(parser: argparse.ArgumentParser, *, train: bool) -> None:
    """``--data`` and the data sources' options (the sources' field names)."""
    parser.add_argument("--data", default="emoji", help="emoji (default), voc or coco")
    parser.add_argument("--data-root", default=SUPPRESS, help="VOC year folder or COCO root")
    if train:
        parser.add_argument(
            "--train-json",
            default=SUPPRESS,
            help="COCO instances JSON to train on; file_name relative to --data-root "
            "(default: the JSON's folder)",
        )
    parser.add_argument(
        "--val-json", default=SUPPRESS, help="COCO instances JSON to validate / evaluate on"
    )
    parser.add_argument(
        "--unseen-classes",
        type=_names,
        default=SUPPRESS,
        metavar="A,B,C",
        help="comma-separated classes held out of training (default: the shipped split)",
    )
    parser.add_argument(
        "--held-out-styles",
        type=_names,
        default=SUPPRESS,
        metavar="A,B",
        help="emoji: two or more artists kept out of training, scored on the splits "
        "seen-new-artists and unseen-new-artists (e.g. emojione,fxemoji)",
    )
    if not train:
        return
    parser.add_argument("--max-size", type=int, default=SUPPRESS, help="longer side of targets")
    parser.add_argument("--query-size", type=int, default=SUPPRESS, help="side of query crops")
    parser.add_argument(
        "--train-episodes", type=int, default=SUPPRESS, help="cached emoji episodes"
    )
    parser.add_argument(
        "--crop-queries",
        type=float,
        default=SUPPRESS,
        help="emoji: fraction of training queries cropped from an object of the target itself",
    )
    parser.add_argument("--cache-dir", default=SUPPRESS, help="emoji: cache of episodes")


def _add_recipe(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``train`` and ``table1``: the training recipe and the architecture. Every
    default is the library's (``recipe()`` in :mod:`..detection.train`)."""
    _add_data(parser, train=True)
    parser.add_argument(
        "--recipe",
        choices=("emoji", "paper"),
        default=SUPPRESS,
        help="emoji (default): our tuned recipe; paper: the authors' choices on the same "
        "backbone, sizes and schedule (two-stage queries, BoxRPB in pixels, no query crops of "
        "the target, double-cross with 6 fusion layers and BoxRPB); flags given win",
    )
    number = {"default": SUPPRESS, "type": float}
    integer = {"default": SUPPRESS, "type": int}
    parser.add_argument("--epochs", **integer)
    parser.add_argument("--batch-size", **integer)
    parser.add_argument("--lr", **number)
    parser.add_argument("--lr-drop", **integer, help="epoch of the ×0.1 decay")
    parser.add_argument("--warmup-steps", **integer)
    parser.add_argument("--clip", **number)
    parser.add_argument("--weight-class", **number, help="focal loss weight")
    parser.add_argument(
        "--query-mode",
        choices=("pad", "pad-features", "resize"),
        default=SUPPRESS,
        help="pad: query padded top-left on the target canvas (authors); pad-features: same "
        "layout, query encoded at its own size; resize: query resized to the canvas",
    )
    parser.add_argument(
        "--backbone",
        choices=("small", "resnet50"),
        default=SUPPRESS,
        help="default: small for emoji, resnet50 (random init) for voc/coco",
    )
    parser.add_argument("--backbone-weights", default=SUPPRESS, help="local ResNet-50 state dict")
    parser.add_argument(
        "--fused-bias",
        action="store_true",
        default=SUPPRESS,
        help="double-cross: BoxRPB in its decoder too (the authors' version of the baseline)",
    )
    parser.add_argument(
        "--fusion-layers",
        type=int,
        default=SUPPRESS,
        help="double-cross: target-to-query cross-attention layers before its decoder "
        "(default 1; the authors' and --recipe paper: 6)",
    )
    parser.add_argument(
        "--bias-unit",
        choices=("pixel", "cell"),
        default=SUPPRESS,
        help="unit of the BoxRPB offsets: pixel (the authors') or feature cells; default: cell "
        "for emoji, pixel otherwise",
    )
    parser.add_argument(
        "--object-queries",
        choices=("learned", "anchors", "two-stage"),
        default=SUPPRESS,
        help="anchors (default): q_i = e_i + target feature at an anchor cell (paper "
        "Definition 1); --queries must then be a square; learned: DETR's learned queries; "
        "two-stage: the authors' proposals from the target with mixed query selection",
    )
    parser.add_argument(
        "--pretrain-steps",
        **integer,
        help="steps of the cached sprite-classification pre-training of the backbone "
        "(emoji only; default 2000 for emoji, 0 otherwise)",
    )
    parser.add_argument(
        "--lr-backbone",
        **number,
        help="backbone learning rate (default: --lr / 10 for a pre-trained backbone, else --lr)",
    )
    parser.add_argument("--dim", **integer)
    parser.add_argument("--layers", dest="num_layers", **integer)
    parser.add_argument(
        "--queries",
        dest="num_queries",
        **integer,
        help="object queries (default 64 emoji, 100 real data)",
    )
    parser.add_argument("--eval-every", **integer)
    parser.add_argument("--eval-episodes", **integer, help="validation targets")
    parser.add_argument("--max-minutes", **number)
    parser.add_argument(
        "--random-query-placement",
        action="store_true",
        default=SUPPRESS,
        help="train with each query at a random cell of the key canvas (default: top-left)",
    )
    parser.add_argument("--threads", **integer)


def _add_runtime(parser: argparse.ArgumentParser) -> None:
    """Flags of how a training runs (not what it learns): precision, device, checkpoints."""
    parser.add_argument(
        "--precision",
        choices=("32", "bf16", "fp16"),
        default=SUPPRESS,
        help="autocast precision; losses and matching stay float32; fp16 uses a gradient scaler",
    )
    parser.add_argument(
        "--device", default=SUPPRESS, help="auto (this process's GPU if any, else CPU), cpu, cuda"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=SUPPRESS,
        metavar="N",
        help="also write OUT/checkpoint.pt every N steps inside an epoch (0: epoch ends only)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("detr", help="IA-DETR one-shot detection")
    commands = parser.add_subparsers(dest="detr_command", metavar="SUBCOMMAND", required=True)

    train = commands.add_parser("train", help="train IA-DETR or a baseline")
    train.add_argument(
        "--kind",
        "--model",
        dest="kind",
        choices=("ia", "misaligned", "double-cross"),
        default="ia",
        help="the detector: IA-DETR or a baseline (the name is its config field, `kind`)",
    )
    train.add_argument("--out", default=None, help="run directory (default: the --resume one)")
    train.add_argument("--seed", type=int, default=0)
    start = train.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue RUN_DIR's run (its checkpoint.pt, or a checkpoint file) exactly where it "
        "stopped, mid-epoch included; pass the same recipe flags (--epochs may grow). OUT "
        "defaults to RUN_DIR; with --out RUN_DIR given and no checkpoint yet, start fresh "
        "(relaunch-safe)",
    )
    start.add_argument(
        "--init-weights",
        default=None,
        metavar="PATH",
        help="start from these model weights only (a checkpoint, a state dict or .safetensors); "
        "fresh optimiser and schedule",
    )
    _add_recipe(train)
    _add_runtime(train)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("eval", help="seeded 5-query evaluation of a checkpoint")
    evaluate.add_argument(
        "--checkpoint",
        required=True,
        help="what detect reads: a run folder, checkpoint.pt, an export folder or its "
        "model.safetensors",
    )
    _add_data(evaluate, train=False)
    evaluate.add_argument("--split", choices=SPLITS, default="unseen")
    evaluate.add_argument(
        "--episodes", type=int, default=None, help="targets (default: emoji 500, real data all)"
    )
    evaluate.add_argument("--draws", type=int, default=5)
    evaluate.add_argument(
        "--query-placement",
        choices=("top-left", "random"),
        default="top-left",
        help="where the query sits on the key canvas: the trained layout, or a random cell",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the query draws")
    evaluate.add_argument("--threads", type=int, default=1)
    evaluate.add_argument(
        "--out",
        default=None,
        help="folder for results.json (default: eval-SPLIT in the --checkpoint folder, or beside "
        "the file)",
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=_eval)

    show = commands.add_parser("show", help="draw predictions with the right and a wrong query")
    show.add_argument("--checkpoint", required=True)
    show.add_argument("--split", choices=SPLITS, default="unseen")
    show.add_argument("--episodes", type=int, default=4)
    show.add_argument("--out", required=True, help="PNG file")
    show.set_defaults(func=_show)

    table = commands.add_parser("table1", help="Table 1 analogue on the emoji benchmark")
    table.add_argument("--out", required=True)
    table.add_argument("--seeds", type=int, default=3)
    table.add_argument("--episodes", type=int, default=500, help="evaluation episodes per split")
    table.add_argument("--draws", type=int, default=5)
    table.add_argument("--jobs", type=int, default=1, help="runs trained side by side")
    _add_recipe(table)
    _add_runtime(table)
    table.set_defaults(func=_table1)

    json_eval = commands.add_parser(
        "eval-json", help="score COCO-format predictions against COCO-format ground truth (AP50)"
    )
    json_eval.add_argument("--gt", required=True, help="ground-truth COCO instances JSON")
    json_eval.add_argument("--pred", required=True, help="predictions: COCO results JSON")
    json_eval.add_argument(
        "--metric",
        choices=("voc", "coco", "per-image"),
        default="voc",
        help="voc: all-point AP50, difficult ignored; coco: pycocotools, AP50 and its full "
        "summary (AP, AP50, AP75, small/medium/large, AR@1/10/100); per-image: the authors' "
        "non-standard per-image AP50",
    )
    json_eval.add_argument("--out", required=True, help="folder for results.json")
    json_eval.set_defaults(func=_eval_json)

    detr_release.add_commands(commands)


def _source(args: argparse.Namespace):
    """The data source of ``--data`` with the options given on the command line."""
    from dataclasses import fields

    from ..detection.train import recipe_source

    sources = _sources()
    if args.data not in sources:
        raise ValueError(f"--data {args.data}: choose from {', '.join(sources)}")
    source = sources[args.data]
    names = {f.name for f in fields(source)}
    options = ("data_root", "train_json", "val_json", "unseen_classes", "max_size")
    options += ("query_size", "train_episodes", "crop_queries", "cache_dir", "held_out_styles")
    given = [name for name in options if hasattr(args, name)]
    for name in given:
        if name not in names:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to --data {args.data}")
    options = {name: getattr(args, name) for name in given}
    return recipe_source(getattr(args, "recipe", "emoji"), source, **options)


def _train_config(args: argparse.Namespace, *, out: str, kind: str, seed: int):
    """``recipe(source, flags given)``: the library decides every default."""
    from dataclasses import fields

    from ..detection.model import DetrModelConfig
    from ..detection.train import DetrTrainConfig, recipe

    given = vars(args)
    model = {f.name: given[f.name] for f in fields(DetrModelConfig) if f.name in given}
    names = {f.name for f in fields(DetrTrainConfig)} - {"data", "model", "recipe"}  # --kind
    train = {name: given[name] for name in names if name in given}
    train.update(out=out, seed=seed, resume=given.get("resume"), progress=not given.get("quiet"))
    train["init_weights"] = given.get("init_weights")
    name = given.get("recipe", "emoji")
    return recipe(_source(args), name=name, model={**model, "kind": kind}, **train)


def _train(args: argparse.Namespace) -> int:
    from ..detection.train import run
    from ..training.distributed import context_from_env

    if args.resume is not None:  # the recipe is the run's own (cli/resume.py)
        from .resume import resume_recipe

        config = resume_recipe(
            args,
            getattr(args, "given", set(vars(args))),
            sources=_sources(),
            fresh=lambda out: _train_config(args, out=out, kind=args.kind, seed=args.seed),
        )
    elif args.out is None:
        raise UserError("ia detr train needs --out RUN_DIR (or --resume RUN_DIR)")
    else:
        config = _train_config(args, out=args.out, kind=args.kind, seed=args.seed)
    out = config.out
    result = run(config)
    if not context_from_env().is_main:  # under torchrun, rank 0 reports
        return 0
    summary = f"{result['steps']} steps | {result['minutes']:.1f} min; wrote {out}"
    if result.get("skipped_steps"):
        summary += f" | {result['skipped_steps']} non-finite steps skipped"
    if "ap50" in result:  # real data validates only with --val-json
        ap, wrong = result["ap50"]["mean"], result["wrong_query"]["mean"]
        summary = (
            f"val AP50 {ap:.3f} | wrong query {wrong:.3f} | matching AUC "
            f"{result['matching_auc']['mean']:.3f} | oracle boxes, random scores "
            f"{result['oracle_boxes']:.3f} | {summary}"
        )
    print(summary)
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from ..detection.evaluate import evaluate_checkpoint
    from ..training.records import atomic_write_text, to_jsonable

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    result = evaluate_checkpoint(
        args.checkpoint,
        _source(args),
        args.split,
        count=args.episodes,
        draws=args.draws,
        seed=args.seed,
        query_placement=args.query_placement,
        progress=not args.quiet,
    )
    checkpoint = Path(args.checkpoint)
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    out = Path(args.out) if args.out else folder / f"eval-{args.split}"
    path = out / "results.json"
    atomic_write_text(path, json.dumps(to_jsonable(result), indent=2) + "\n")
    print(
        f"{args.split}: AP50 {result['ap50']['mean']:.3f} ± {result['ap50']['std']:.3f} | "
        f"wrong query {result['wrong_query']['mean']:.3f} ± {result['wrong_query']['std']:.3f} | "
        f"margin {result['margin']:.3f} | matching AUC {result['matching_auc']['mean']:.3f} | "
        f"per-image AP50 {result['per_image_ap50']['right']:.3f} | oracle boxes, random scores "
        f"{result['oracle_boxes']:.3f}; wrote {path}"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..detection.draw import draw_predictions
    from ..detection.release import load_detector
    from ..detection.sources.emoji_eval import SPLIT_NAMES, build_eval_set

    model = load_detector(args.checkpoint)
    eval_set = build_eval_set(SPLIT_NAMES[args.split], args.episodes, draws=1)
    print(f"wrote {draw_predictions(model, eval_set, args.out)}")
    return 0


def _table1(args: argparse.Namespace) -> int:
    from ..detection.table1 import Table1Config, run
    from .table_folder import check_table_folder

    recipe = _train_config(args, out=args.out, kind="ia", seed=0)
    check_table_folder(args.out, recipe, overwrite=getattr(args, "overwrite", False))
    table = run(
        Table1Config(
            out=args.out,
            seeds=args.seeds,
            train=recipe,
            episodes=args.episodes,
            draws=args.draws,
            jobs=args.jobs,
        )
    )
    from ..plots.detection_curves import draw_detection_curves

    curves = draw_detection_curves(args.out, Path(args.out) / "curves.png")
    print(
        f"wrote {args.out}/results.json, {args.out}/table1.md and {curves} "
        f"({len(table['models'])} models)"
    )
    return 0


def _eval_json(args: argparse.Namespace) -> int:
    from ..detection.metrics import score_coco_json
    from ..training.records import atomic_write_text, to_jsonable

    result = score_coco_json(args.gt, args.pred, metric=args.metric)
    path = Path(args.out) / "results.json"
    atomic_write_text(path, json.dumps(to_jsonable(result), indent=2) + "\n")
    if "text" in result.get("summary", {}):
        print(result["summary"]["text"])  # pycocotools' own twelve lines
    elif "summary" in result:  # several draws: their mean
        print(" | ".join(f"{k} {v:.3f}" for k, v in result["summary"]["stats"].items()))
    print(
        f"AP50 ({args.metric}) = {result['ap50']:.4f} over {len(result['per_class'])} classes; wrote {path}"
    )
    return 0
