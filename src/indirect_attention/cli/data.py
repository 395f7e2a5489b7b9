"""``ia data``: build the emoji sprite bank, export episode sets, draw episodes to look at."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="one-shot detection data: the emoji benchmark")
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    build = commands.add_parser(
        "build-emoji", help="npm pack the pinned @iconify-json sets and render the sprite bank"
    )
    build.add_argument("--out", default=None, help="folder (default: the package's emoji data)")
    build.add_argument("--size", type=int, default=80, help="render size in pixels")
    build.add_argument("--npm-dir", default=None, help="reuse npm-pack tarballs from this folder")
    build.set_defaults(func=_build)

    export = commands.add_parser("export", help="write an episode split in COCO or VOC format")
    export.add_argument("--format", choices=("coco", "voc"), default="coco")
    export.add_argument("--split", default="test", help="train, val, test or test_seen")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--limit", type=int, default=None, help="first N episodes only")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(func=_export)

    show = commands.add_parser("show", help="draw episodes (query, target, boxes) to a PNG")
    show.add_argument("--split", default="test")
    show.add_argument("--n", type=int, default=8, help="number of episodes")
    show.add_argument("--start", type=int, default=0, help="first episode index")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--out", default="episodes.png")
    show.set_defaults(func=_show)


def _build(args: argparse.Namespace) -> int:
    from ..detection.data import emoji_build

    out = Path(args.out) if args.out else Path(emoji_build.__file__).parent / "emoji"
    index = emoji_build.build_emoji_bank(out, size=args.size, npm_dir=args.npm_dir)
    sprites = sum(len(c["sprites"]) for c in index["classes"])
    print(
        f"wrote {out}: {len(index['classes'])} classes ({len(index['seen'])} seen, "
        f"{len(index['unseen'])} unseen), {sprites} sprites in {len(index['styles'])} styles"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..detection.data import export_episodes

    path = export_episodes(
        args.split,
        args.out,
        fmt=args.format,
        seed=args.seed,
        length=args.limit,
        progress=not args.quiet,
    )
    print(f"wrote {path}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..detection.data import EmojiEpisodes
    from ..detection.data.export import episode_grid

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    data = EmojiEpisodes(args.split, seed=args.seed)
    episodes = [data.episode(i) for i in range(args.start, args.start + args.n)]
    print(f"wrote {episode_grid(episodes, args.out)}")
    return 0
