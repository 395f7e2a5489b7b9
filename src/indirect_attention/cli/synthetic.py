"""``ia synthetic``: train the indirect, naive and cross models on a synthetic task (paper §6.1)."""

from __future__ import annotations

import argparse

TASK_NAMES = {"sort": "sort", "sorting": "sort", "retrieval": "retrieval", "lookup": "lookup"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..tasks import KINDS, ModelConfig, SyntheticConfig  # the library's defaults

    parser = subparsers.add_parser(
        "synthetic", help="sorting / retrieval / lookup with indirect, naive and cross models"
    )
    parser.add_argument("--task", choices=sorted(TASK_NAMES), default="sort")
    parser.add_argument(
        "--kinds",
        "--models",
        dest="kinds",
        default="indirect,naive,cross",
        help=f"comma-separated subset of {','.join(KINDS)}",
    )
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    parser.add_argument("--seed-base", type=int, default=0, help="first seed")
    parser.add_argument("--epochs", type=int, default=SyntheticConfig.epochs)
    parser.add_argument(
        "--lr", type=float, default=None, help="peak learning rate (default: the tuned rates)"
    )
    parser.add_argument(
        "--model-lr",
        default="",
        help="per-model peak learning rates, e.g. indirect=2e-3,cross=1e-3 (override --lr)",
    )
    parser.add_argument("--batch-size", type=int, default=SyntheticConfig.batch_size)
    parser.add_argument("--dropout", type=float, default=ModelConfig.dropout)
    parser.add_argument("--dim", type=int, default=ModelConfig.dim, help="model width")
    parser.add_argument("--layers", type=int, default=ModelConfig.num_layers)
    parser.add_argument("--heads", type=int, default=ModelConfig.num_heads)
    parser.add_argument(
        "--no-value-positions",
        action="store_true",
        help="values without position codes (keys and queries keep theirs): only the bias can "
        "say where a value sits",
    )
    parser.add_argument("--num-train", type=int, default=SyntheticConfig.num_train)
    parser.add_argument("--num-test", type=int, default=SyntheticConfig.num_test)
    parser.add_argument("--readout", choices=["pointer", "pool"], default="pointer")
    parser.add_argument("--offset", type=int, default=0, help="lookup task: key-value offset")
    parser.add_argument(
        "--cross-queries",
        choices=["conditioning", "content"],
        default="conditioning",
        help="lookup task: the sequence that gives the cross model its queries",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default="runs/synthetic", help="output directory")
    parser.add_argument(
        "--quiet", "--no-progress", dest="no_progress", action="store_true", help="no progress bar"
    )
    parser.set_defaults(func=_run)


def _model_lrs(text: str) -> dict[str, float]:
    from ..tasks import KINDS

    lrs = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        try:
            lrs[name] = float(value)
        except ValueError:
            lrs[name] = -1.0
        if name not in KINDS or not lrs[name] > 0 or lrs[name] == float("inf"):
            raise ValueError(
                f"--model-lr items must look like kind=lr with kind in {KINDS} and lr > 0, "
                f"got {item!r}"
            )
    return lrs


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..tasks import KINDS, ModelConfig, SyntheticConfig, run
    from ..training import seed_everything

    models = tuple(name.strip() for name in args.kinds.split(",") if name.strip())
    unknown = [name for name in models if name not in KINDS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {KINDS}")
    if args.dim % args.heads:
        raise ValueError(f"--dim {args.dim} must be a multiple of --heads {args.heads}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed_base)
    task = TASK_NAMES[args.task]
    config = SyntheticConfig(
        task=task,
        models=models,
        seeds=args.seeds,
        seed_base=args.seed_base,
        epochs=args.epochs,
        lr=args.lr,
        model_lrs=_model_lrs(args.model_lr),
        batch_size=args.batch_size,
        model=ModelConfig(
            dim=args.dim,
            num_heads=args.heads,
            num_layers=args.layers,
            ffn_dim=4 * args.dim,
            dropout=args.dropout,
            value_positions=not args.no_value_positions,
        ),
        num_train=args.num_train,
        num_test=args.num_test,
        readout=args.readout,
        offset=args.offset,
        lookup_cross_queries=args.cross_queries,
        out=args.out,
        progress=not args.no_progress,
    )
    results = run(config)
    for name, summary in results["models"].items():
        print(
            f"{task} {name:24s} final {100 * summary['final_test_acc_mean']:.1f} "
            f"± {100 * summary['final_test_acc_std']:.1f}  best "
            f"{100 * summary['best_test_acc_mean']:.1f}  {summary['seconds_per_epoch']:.2f} s/epoch"
        )
    print(f"wrote {args.out} in {results['seconds_total']:.0f} s")
    return 0
