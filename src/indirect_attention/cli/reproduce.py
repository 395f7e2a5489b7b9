"""``ia reproduce``: re-run the paper's experiments at laptop scale (see ``reproduce/``).

``ia reproduce --profile quick|default|full --out DIR [--parts a,b]`` runs (or resumes) the parts
and writes ``DIR/report.md`` and ``DIR/report.html``. ``ia reproduce --update-readme DIR`` runs
nothing: it copies the headline table and figures of the report in ``DIR`` into the README
section between ``<!-- reproduce:begin -->`` and ``<!-- reproduce:end -->``.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..reproduce import PARTS, PROFILES

    parser = subparsers.add_parser(
        "reproduce",
        help="re-run the paper's experiments on embedded data and write a report",
        description="Profiles: quick (under 10 min on 2 cores: checks the pipeline), default "
        "(under 60 min), full (closest to the paper's scale a CPU allows; hours). Finished parts "
        "are kept, so running the same command again resumes.",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default")
    parser.add_argument("--out", default="runs/reproduce", help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--parts",
        default="",
        help=f"comma-separated subset of parts to run (default all): {','.join(PARTS)}",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--update-readme",
        metavar="DIR",
        default=None,
        help="copy the headline of the report in DIR into README.md (runs nothing)",
    )
    parser.add_argument("--readme", default="README.md", help="README edited by --update-readme")
    parser.add_argument(
        "--figures-dir", default="docs/figures", help="where --update-readme copies the figures"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..report import update_readme
    from ..reproduce import ReproduceConfig, run

    if args.update_readme is not None:
        path = update_readme(args.update_readme, readme=args.readme, figures_dir=args.figures_dir)
        print(f"[reproduce] updated {path} from {args.update_readme}")
        return 0
    parts = tuple(name.strip() for name in args.parts.split(",") if name.strip())
    config = ReproduceConfig(
        profile=args.profile,
        out=args.out,
        seed=args.seed,
        parts=parts,
        progress=not args.quiet,
    )
    results = run(config)
    failed = [name for name, part in results["parts"].items() if part["status"] != "ok"]
    return 1 if failed else 0
