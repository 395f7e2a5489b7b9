"""``ia reproduce``: re-run the paper's experiments at laptop scale (see ``reproduce.py``)."""

from __future__ import annotations

import argparse

from ..reproduce import PROFILES, ReproduceConfig, run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="re-run the paper's experiments on embedded data and write a report"
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default")
    parser.add_argument("--out", default="runs/reproduce", help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    config = ReproduceConfig(profile=args.profile, out=args.out, seed=args.seed)
    results = run(config)
    failed = [name for name, part in results["parts"].items() if part["status"] != "ok"]
    return 1 if failed else 0
