"""The ``ia`` command line: a switchboard of subcommands, one small module per area.

Each area module has ``add_parser(subparsers)``, which registers its subcommand and sets
``func(args) -> int``; the function turns the flags into the area's config dataclass and calls its
one ``run()``. Only this layer seeds global random state; nothing imports it.

Errors follow :mod:`.errors`: a user's mistake is one line on stderr and exit status 2. Numbers and
input paths are checked at parse time (:mod:`.validate`), output paths before the command runs
(:mod:`.outputs`). Area modules import their heavy dependencies (torch and the rest) only when
their command runs, and :func:`main` builds the parser of the chosen area alone, so ``ia --help``
answers without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import USER_ERRORS, OneLineParser, report
from .extras import check_extras
from .outputs import add_overwrite, check_outputs
from .validate import apply_checks, given_dests, iter_parsers

__all__ = ["AREAS", "build_parser", "main"]

#: Area name -> the one-line help of ``ia --help`` (the area module's own ``help=`` is the same).
AREAS = {
    "reproduce": "re-run the paper's experiments on embedded data and write a report",
    "synthetic": "sorting / retrieval / lookup with indirect, naive and cross models",
    "theory": "check the paper's noise and misalignment analysis by Monte Carlo; draw Figure 1",
    "data": "one-shot detection data: the emoji benchmark",
    "detr": "IA-DETR one-shot detection",
    "bench": "benchmarks (speed is measured, never asserted)",
    "demo": "a local web page: drop a query and target images, see the boxes and the JSON",
}


def _version() -> str:
    """The installed distribution's version (``indirect_attention.__version__`` at build)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("indirect-attention")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``ia`` parser.

    Args:
        only: Build this area's subcommands in full and the others as names with their help
            (what ``ia --help`` lists; ``""``: no area in full); ``None`` builds every area.
    """
    parser = OneLineParser(
        prog="ia",
        description="Indirect attention (arXiv 2509.26015): theory, synthetic tasks, IA-DETR.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in AREAS.items():
        if only is None or only == name:
            importlib.import_module(f".{name}", __name__).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    for path, sub in iter_parsers(parser):
        add_overwrite(sub, path)
    apply_checks(parser)
    return parser


def _area(argv: Sequence[str]) -> str:
    """The area named by ``argv`` (its first word that is not an option), or ``""``."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in AREAS else ""
    return ""


def _command_path(args: argparse.Namespace) -> tuple[str, ...]:
    """``("detr", "train")``: the subcommand words the user gave."""
    path = (args.command,)
    sub = getattr(args, f"{args.command}_command", None)
    return (*path, sub) if sub else path


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return its exit status.

    A user's mistake, found by argparse or later, returns 2 after one line on stderr; ``--help``
    and ``--version`` return 0; a bug raises.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(only=_area(argv)).parse_args(argv)
    except SystemExit as stop:  # a usage error (one line, status 2), --help or --version (0)
        return stop.code if isinstance(stop.code, int) else 2
    args.given = given_dests(build_parser(only=_area(argv)), argv)
    path = _command_path(args)
    try:
        check_extras(args, path)
        check_outputs(args, path)
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        return report(f"ia {' '.join(path)}", error)
    except KeyboardInterrupt:  # Ctrl-C: checkpoints are written atomically, nothing half-written
        print(f"ia {' '.join(path)}: interrupted", file=sys.stderr)
        return 130
