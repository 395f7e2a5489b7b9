"""``ia bench attention|train``: measured speed and memory, as ratios against same-run baselines."""

from __future__ import annotations

import argparse


def _ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from error
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..bench.attention import VARIANTS

    parser = subparsers.add_parser("bench", help="benchmarks (speed is measured, never asserted)")
    commands = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    attention = commands.add_parser(
        "attention", help="box bias + indirect attention: ours vs the authors' formulation"
    )
    attention.add_argument("--sizes", type=_ints, default=[32, 64], help="target map sides S")
    attention.add_argument("--queries", type=_ints, default=[300, 1800], help="object queries Q")
    attention.add_argument("--repeats", type=int, default=5)
    attention.add_argument("--variants", default=",".join(VARIANTS))
    attention.add_argument("--seed", type=int, default=0)
    attention.add_argument("--out", default="runs/bench-attention")
    attention.set_defaults(func=_attention)
    train = commands.add_parser(
        "train", help="training-step time: synthetic models vs cross, IA decoder vs double-cross"
    )
    train.add_argument("--parts", default="synthetic,detector")
    train.add_argument("--queries", type=int, default=300, help="detector object queries")
    train.add_argument("--size", type=int, default=32, help="detector target map side S")
    train.add_argument(
        "--fusion-layers",
        type=int,
        default=6,
        help="layers of double-cross's fusion block (paper: 6; a 1-layer stack is measured too)",
    )
    train.add_argument("--repeats", type=int, default=5)
    train.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="runs/bench-train")
    train.set_defaults(func=_train)


def _attention(args: argparse.Namespace) -> int:
    from ..bench.attention import AttentionBenchConfig
    from ..bench.attention import run as run_attention

    config = AttentionBenchConfig(
        out=args.out,
        sizes=args.sizes,
        queries=args.queries,
        repeats=args.repeats,
        seed=args.seed,
        variants=[name for name in args.variants.split(",") if name],
    )
    results = run_attention(config)
    failed = [key for key, check in results["equality"].items() if not check["passed"]]
    if failed:
        print(
            f"ours differs from the reference beyond float32 rounding (or 1e-10 in float64) at {failed}"
        )
        return 1
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..bench.train import TrainBenchConfig
    from ..bench.train import run as run_train

    config = TrainBenchConfig(
        out=args.out,
        parts=[name for name in args.parts.split(",") if name],
        queries=args.queries,
        size=args.size,
        fusion_layers=args.fusion_layers,
        repeats=args.repeats,
        threads=args.threads,
        seed=args.seed,
    )
    run_train(config)
    return 0
