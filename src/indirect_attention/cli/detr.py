"""``ia detr``: IA-DETR one-shot detection: ``train``, ``eval``, ``show``, ``table1``, ``eval-json``,
``detect`` and ``export`` (the last two in :mod:`.detr_release`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import detr_release


def _add_recipe(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``train`` and ``table1`` (the training recipe and the architecture)."""
    parser.add_argument("--data", choices=("emoji", "voc", "coco"), default="emoji")
    parser.add_argument("--data-root", default=None, help="VOC/COCO root (not needed for emoji)")
    _add_custom_data(parser, train=True)
    parser.add_argument("--max-size", type=int, default=512, help="longer side of real targets")
    parser.add_argument("--query-size", type=int, default=192, help="side of real query crops")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-episodes", type=int, default=3000, help="cached emoji episodes")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--lr-drop", type=int, default=7, help="epoch of the ×0.1 decay")
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--weight-class", type=float, default=2.0, help="focal loss weight")
    parser.add_argument(
        "--crop-queries",
        type=float,
        default=0.5,
        help="fraction of training queries cropped from an object of the target itself",
    )
    parser.add_argument(
        "--query-mode",
        choices=("pad", "pad-features", "resize"),
        default="pad-features",
        help="pad: query padded top-left on the target canvas (authors); pad-features: same "
        "layout, query encoded at its own size; resize: query resized to the canvas",
    )
    parser.add_argument(
        "--backbone",
        choices=("small", "resnet50"),
        default=None,
        help="default: small for emoji, resnet50 (random init) for voc/coco",
    )
    parser.add_argument("--backbone-weights", default=None, help="local ResNet-50 state dict")
    parser.add_argument(
        "--fused-bias",
        action="store_true",
        help="double-cross: BoxRPB in its decoder too (the authors' version of the baseline)",
    )
    parser.add_argument(
        "--bias-unit",
        choices=("pixel", "cell"),
        default=None,
        help="unit of the BoxRPB offsets: pixel (the authors') or feature cells; default: cell "
        "for emoji (emoji_recipe), pixel otherwise",
    )
    parser.add_argument(
        "--object-queries",
        choices=("learned", "anchors"),
        default="anchors",
        help="anchors: q_i = e_i + target feature at an anchor cell (paper Definition 1); "
        "--queries must then be a square; learned: DETR's learned queries",
    )
    parser.add_argument(
        "--pretrain-steps",
        type=int,
        default=None,
        help="steps of the cached sprite-classification pre-training of the backbone "
        "(emoji only; default 2000 for emoji, 0 otherwise)",
    )
    parser.add_argument(
        "--lr-backbone",
        type=float,
        default=None,
        help="backbone learning rate (default: --lr / 10 for a pre-trained backbone, else --lr)",
    )
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument(
        "--queries", type=int, default=None, help="object queries (default 64 emoji, 100 real data)"
    )
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", default="runs/cache")


def _add_custom_data(parser: argparse.ArgumentParser, *, train: bool) -> None:
    """Flags of a COCO-format data set of one's own (``--data coco``)."""
    if train:
        parser.add_argument(
            "--train-json",
            default=None,
            help="COCO instances JSON to train on; file_name relative to --data-root "
            "(default: the JSON's folder)",
        )
    parser.add_argument(
        "--val-json", default=None, help="COCO instances JSON to validate / evaluate on"
    )
    parser.add_argument(
        "--unseen-classes",
        default=None,
        metavar="A,B,C",
        help="comma-separated classes held out of training (default: the shipped split)",
    )


def _unseen(args: argparse.Namespace) -> tuple[str, ...] | None:
    if args.unseen_classes is None:
        return None
    return tuple(name.strip() for name in args.unseen_classes.split(",") if name.strip())


def _add_runtime(parser: argparse.ArgumentParser) -> None:
    """Flags of how a training runs (not what it learns): precision, device, checkpoints."""
    parser.add_argument(
        "--precision",
        choices=("32", "bf16", "fp16"),
        default="32",
        help="autocast precision; losses and matching stay float32; fp16 uses a gradient scaler",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (this process's GPU if any, else CPU), cpu, cuda"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=100,
        metavar="N",
        help="also write OUT/checkpoint.pt every N steps inside an epoch (0: epoch ends only)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("detr", help="IA-DETR one-shot detection")
    commands = parser.add_subparsers(dest="detr_command", metavar="SUBCOMMAND", required=True)

    train = commands.add_parser("train", help="train IA-DETR or a baseline")
    train.add_argument("--model", choices=("ia", "double-cross", "misaligned"), default="ia")
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
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", choices=("emoji", "voc", "coco"), default="emoji")
    evaluate.add_argument("--data-root", default=None, help="VOC year folder or COCO root")
    _add_custom_data(evaluate, train=False)
    evaluate.add_argument("--split", choices=("seen", "unseen", "val"), default="unseen")
    evaluate.add_argument("--episodes", type=int, default=500)
    evaluate.add_argument("--draws", type=int, default=5)
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the query draws")
    evaluate.add_argument("--threads", type=int, default=1)
    evaluate.add_argument("--out", default=None, help="folder for results.json")
    evaluate.set_defaults(func=_eval)

    show = commands.add_parser("show", help="draw predictions with the right and a wrong query")
    show.add_argument("--checkpoint", required=True)
    show.add_argument("--split", choices=("seen", "unseen", "val"), default="unseen")
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
        help="voc: all-point AP50, difficult ignored; coco: pycocotools AP50; "
        "per-image: the authors' non-standard per-image AP50",
    )
    json_eval.add_argument("--out", required=True, help="folder for results.json")
    json_eval.set_defaults(func=_eval_json)

    detr_release.add_commands(commands)


def _train_config(args: argparse.Namespace, *, out: str, model: str, seed: int):
    from ..detection.model import DetrModelConfig
    from ..detection.train import DetrTrainConfig, emoji_recipe

    recipe = emoji_recipe()  # the emoji defaults live there once
    emoji = args.data == "emoji"
    pretrain, queries = args.pretrain_steps, args.queries
    if pretrain is None:
        pretrain = recipe.pretrain_steps if emoji else 0
    if queries is None:
        queries = recipe.model.num_queries if emoji else 100
    bias_unit = args.bias_unit or (recipe.model.bias_unit if emoji else "pixel")
    lr_backbone = args.lr_backbone
    if lr_backbone is None:
        lr_backbone = args.lr / 10 if pretrain > 0 or args.backbone_weights else args.lr
    return DetrTrainConfig(
        out=out,
        data=args.data,
        data_root=args.data_root,
        train_json=args.train_json,
        val_json=args.val_json,
        unseen_classes=_unseen(args),
        model=DetrModelConfig(
            variant=model,
            backbone=args.backbone or ("small" if args.data == "emoji" else "resnet50"),
            backbone_weights=args.backbone_weights,
            dim=args.dim,
            layers=args.layers,
            num_queries=queries,
            query_mode=args.query_mode,
            fused_bias=args.fused_bias,
            bias_unit=bias_unit,
            object_queries=args.object_queries,
        ),
        epochs=args.epochs,
        train_episodes=args.train_episodes,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_backbone=lr_backbone,
        pretrain_steps=pretrain,
        warmup_steps=args.warmup_steps,
        lr_drop=args.lr_drop,
        clip=args.clip,
        weight_class=args.weight_class,
        crop_queries=args.crop_queries,
        max_size=args.max_size,
        query_size=args.query_size,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        max_minutes=args.max_minutes,
        threads=args.threads,
        seed=seed,
        resume=getattr(args, "resume", None),
        init_weights=getattr(args, "init_weights", None),
        checkpoint_every=args.checkpoint_every,
        precision=args.precision,
        device=args.device,
        cache_dir=args.cache_dir,
    )


def _train(args: argparse.Namespace) -> int:
    from ..detection.train import run
    from ..training.distributed import context_from_env

    out = args.out
    if out is None and args.resume is not None:
        resume = Path(args.resume)
        if not (resume.is_file() or (resume / "checkpoint.pt").is_file()):
            raise FileNotFoundError(
                f"no checkpoint in {resume} (with --out {resume} as well, a missing checkpoint "
                "starts the run fresh)"
            )
        out = str(resume.parent if resume.is_file() else resume)
    if out is None:
        raise ValueError("ia detr train needs --out (or --resume RUN_DIR)")
    result = run(_train_config(args, out=out, model=args.model, seed=args.seed))
    if not context_from_env().is_main:  # under torchrun, rank 0 reports
        return 0
    summary = f"{result['steps']} steps | {result['minutes']:.1f} min; wrote {out}"
    if result.get("skipped_steps"):
        summary += f" | {result['skipped_steps']} non-finite steps skipped"
    if "ap50" in result:  # real data validates only with --val-json
        ap, wrong = result["ap50"]["mean"], result["wrong_query"]["mean"]
        summary = (
            f"val AP50 {ap:.3f} | wrong query {wrong:.3f} | chance floor "
            f"{result['chance_floor']:.3f} | {summary}"
        )
    print(summary)
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from ..detection.evaluate import evaluate_checkpoint
    from ..training.records import atomic_write_text, to_jsonable

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.data == "emoji":
        result = evaluate_checkpoint(
            args.checkpoint, args.split, episodes=args.episodes, draws=args.draws, seed=args.seed
        )
    else:
        from ..detection.model import IADETR
        from ..detection.pairs import PairBatcher, evaluate_pairs, load_real_data

        if (args.data_root is None and args.val_json is None) or args.split == "val":
            raise ValueError(
                "--data voc/coco needs --data-root (or --val-json) and --split seen or unseen"
            )
        model = IADETR.from_checkpoint(args.checkpoint)
        dataset, split = load_real_data(
            args.data,
            args.data_root,
            train=False,
            annotation_file=args.val_json,
            unseen=_unseen(args),
        )
        spec = model.input_spec  # the sizes the model was trained at
        batcher = PairBatcher(spec.target_size, spec.query_size, stride=model.backbone.stride)
        result = evaluate_pairs(
            model,
            dataset,
            split,
            which=args.split,
            draws=args.draws,
            seed=args.seed,
            batcher=batcher,
        )
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval-{args.split}"
    path = out / "results.json"
    atomic_write_text(path, json.dumps(to_jsonable(result), indent=2) + "\n")
    print(
        f"{args.split}: AP50 {result['ap50']['mean']:.3f} ± {result['ap50']['std']:.3f} | "
        f"wrong query {result['wrong_query']['mean']:.3f} ± {result['wrong_query']['std']:.3f} | "
        f"margin {result['margin']:.3f} | chance floor {result['chance_floor']:.3f}; wrote {path}"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..detection.draw import draw_predictions
    from ..detection.evaluate import SPLIT_NAMES, build_eval_set, load_model

    model, scale = load_model(args.checkpoint)
    eval_set = build_eval_set(SPLIT_NAMES[args.split], args.episodes, draws=1)
    print(f"wrote {draw_predictions(model, eval_set, args.out, scale=scale)}")
    return 0


def _table1(args: argparse.Namespace) -> int:
    from ..detection.table1 import Table1Config, run

    recipe = _train_config(args, out=args.out, model="ia", seed=0)
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
    print(f"wrote {args.out}/results.json and {args.out}/table1.md ({len(table['models'])} models)")
    return 0


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
