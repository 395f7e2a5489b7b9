"""``ia theory``: closed forms of paper §3-4 against Monte Carlo, and Figure 1 (see ``theory/run.py``)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "theory",
        help="check the paper's noise and misalignment analysis by Monte Carlo; draw Figure 1",
    )
    parser.add_argument("--out", default="runs/theory", help="output directory")
    parser.add_argument(
        "--quick", action="store_true", help="smaller sweep (under a minute on 2 cores)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..theory import TheoryConfig, run

    config = TheoryConfig(out=args.out, quick=args.quick, seed=args.seed)
    results = run(config)
    print(f"[theory] wrote {config.out}/results.json and figure1.png in {results['seconds']:.1f} s")
    return 0
