"""The ``ia`` command line: a switchboard of subcommands, one small module per area.

Each area module has ``add_parser(subparsers)``, which registers its subcommand and sets
``func(args) -> int``; the function turns the flags into the area's config dataclass and calls its
one ``run()``. Only this layer seeds global random state; nothing imports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import bench, data, detr, reproduce, synthetic, theory

AREAS = (reproduce, synthetic, theory, data, detr, bench)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full ``ia`` parser with every area's subcommands."""
    parser = argparse.ArgumentParser(
        prog="ia",
        description="Indirect attention (arXiv 2509.26015): theory, synthetic tasks, IA-DETR.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for area in AREAS:
        area.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"ia {args.command}: error: {error}", file=sys.stderr)
        return 2
