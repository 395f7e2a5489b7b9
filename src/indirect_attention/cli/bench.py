"""``ia bench attention|train|scaling|gpu``: measured speed and memory, as ratios against
same-run baselines."""

from __future__ import annotations

import argparse
import re
from pathlib import Path


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


def _names(allowed: tuple[str, ...]):
    """A parse type: a comma-separated, non-empty list of names from ``allowed``."""

    def parse(text: str) -> list[str]:
        values = [part.strip() for part in text.split(",") if part.strip()]
        if not values or not set(values) <= set(allowed):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated names from {', '.join(allowed)}, got {text!r}"
            )
        return values

    return parse


def _gpu_device(text: str) -> str:
    """``cuda``, ``cuda:N`` (a device this machine has) or ``cpu``; checked at parse time, so a
    machine without CUDA is refused before anything on disk is touched."""
    if not (text == "cpu" or re.fullmatch(r"cuda(:\d+)?", text)):
        raise argparse.ArgumentTypeError(f"expected cuda, cuda:N or cpu, got {text!r}")
    if text == "cpu":
        return text
    import torch

    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"{text}: no CUDA device is available here; expected a machine with a GPU "
            "(or --device cpu to test the harness)"
        )
    index = torch.device(text).index or 0
    if index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(
            f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return text


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..bench.attention import VARIANTS
    from ..bench.gpu import DTYPES
    from ..bench.gpu import PARTS as GPU_PARTS
    from ..bench.scaling import SCALING_VARIANTS
    from ..bench.train import PARTS

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
        "train",
        help="training-step time: synthetic models vs cross, IA decoder vs double-cross and vs "
        "the authors' formulation",
    )
    train.add_argument("--parts", default=",".join(PARTS), help="of " + ",".join(PARTS))
    train.add_argument("--queries", type=int, default=300, help="detector object queries")
    train.add_argument("--size", type=int, default=32, help="detector target map side S")
    train.add_argument(
        "--authors-size",
        type=int,
        default=64,
        help="target map side of the authors part's Q-query setting (the emoji one is fixed)",
    )
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
    scaling = commands.add_parser(
        "scaling", help="box bias + attention: time and memory against map size and Q (a figure)"
    )
    scaling.add_argument("--sizes", type=_ints, default=[32, 48, 64, 96, 128], help="sides S")
    scaling.add_argument("--queries", type=_ints, default=[100, 300, 600, 1200, 1800])
    scaling.add_argument("--fixed-queries", type=int, default=300, help="Q of the size sweep")
    scaling.add_argument("--fixed-size", type=int, default=64, help="S of the query sweep")
    scaling.add_argument("--variants", default=",".join(SCALING_VARIANTS))
    scaling.add_argument("--repeats", type=int, default=2)
    scaling.add_argument("--threads", type=int, default=1, help="torch threads per measurement")
    scaling.add_argument("--seed", type=int, default=0)
    scaling.add_argument("--out", default="runs/bench-scaling")
    scaling.add_argument(
        "--figure", default=None, help="where to save the figure (default: in --out)"
    )
    scaling.set_defaults(func=_scaling)
    gpu = commands.add_parser(
        "gpu",
        help="on a CUDA device: FlexAttention's score-mod path against bias-free SDPA, and the "
        "paper-scale detector's training step, IA against double-cross (make gpu-check)",
    )
    gpu.add_argument(
        "--device", type=_gpu_device, default="cuda", help="cuda, cuda:N, or cpu (a test run)"
    )
    gpu.add_argument(
        "--parts", type=_names(GPU_PARTS), default=list(GPU_PARTS), help="of " + ",".join(GPU_PARTS)
    )
    gpu.add_argument("--sizes", type=_ints, default=[64, 100], help="attention: map sides S")
    gpu.add_argument("--queries", type=_ints, default=[300, 1800], help="attention: queries Q")
    gpu.add_argument(
        "--dtypes", type=_names(tuple(DTYPES)), default=list(DTYPES), help="attention: dtypes"
    )
    gpu.add_argument("--target-size", type=int, default=800, help="detector: target side (px)")
    gpu.add_argument("--query-size", type=int, default=192, help="detector: query side (px)")
    gpu.add_argument("--batch-size", type=int, default=8, help="detector: pairs per step")
    gpu.add_argument("--layers", type=int, default=6, help="detector: decoder layers")
    gpu.add_argument("--num-queries", type=int, default=300, help="detector: object queries")
    gpu.add_argument("--repeats", type=int, default=5, help="timed calls per measurement")
    gpu.add_argument("--warmup", type=int, default=2, help="untimed calls first (compilation)")
    gpu.add_argument("--seed", type=int, default=0)
    gpu.add_argument("--out", default="runs/bench-gpu")
    gpu.set_defaults(func=_gpu)


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
        authors_size=args.authors_size,
    )
    results = run_train(config)
    unequal = sorted({r["setting"] for r in results["rows"] if r.get("equal") is False})
    if unequal:
        print(f"the IA decoder differs from the authors' formulation (float64, 1e-10) at {unequal}")
        return 1
    return 0


def _scaling(args: argparse.Namespace) -> int:
    from ..bench.scaling import ScalingBenchConfig
    from ..bench.scaling import run as run_scaling
    from ..plots.bench_scaling import draw_bench_scaling

    config = ScalingBenchConfig(
        out=args.out,
        sizes=args.sizes,
        queries=args.queries,
        fixed_queries=args.fixed_queries,
        fixed_size=args.fixed_size,
        variants=[name for name in args.variants.split(",") if name],
        repeats=args.repeats,
        threads=args.threads,
        seed=args.seed,
    )
    run_scaling(config)
    figure = Path(args.figure) if args.figure else Path(args.out) / "scaling.png"
    draw_bench_scaling(Path(args.out) / "results.json", figure)
    print(f"figure: {figure}")
    return 0


def _gpu(args: argparse.Namespace) -> int:
    from ..bench.gpu import GpuBenchConfig
    from ..bench.gpu import run as run_gpu

    config = GpuBenchConfig(
        out=args.out,
        device=args.device,
        parts=args.parts,
        sizes=args.sizes,
        queries=args.queries,
        dtypes=args.dtypes,
        target_size=args.target_size,
        query_size=args.query_size,
        batch_size=args.batch_size,
        num_layers=args.layers,
        num_queries=args.num_queries,
        repeats=args.repeats,
        warmup=args.warmup,
        seed=args.seed,
    )
    results = run_gpu(config)
    status = 0
    failed = [key for key, check in results["equality"].items() if not check["passed"]]
    if failed:
        print(f"ours differs from the dense reference beyond float32 rounding at {failed}")
        status = 1
    for row in results["rows"]:
        if "flex_failure" in row:
            print(f"FlexAttention failed, the chunked path was timed: {row['flex_failure']}")
            status = 1
        if "error" in row:
            print(f"a measurement failed ({row['part']}): {row['error']}")
            status = 1
    return status
