"""Copy a reproduction's headline table and figures into the README (``ia reproduce --update-readme``).

The README holds the section between :data:`BEGIN` and :data:`END`; everything else in it is left
as it is. Figures are copied into ``docs/figures/`` (as ``reproduce-<part>-<name>.png``) so that
the links work on any checkout, and the tables (paper claims, project targets, checks) are the
same as in the report's headline.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..training import atomic_write_text
from .markdown import headline_markdown
from .rows import Claim

__all__ = ["BEGIN", "END", "update_readme"]

BEGIN = "<!-- reproduce:begin -->"
END = "<!-- reproduce:end -->"


def update_readme(
    out: str | os.PathLike[str],
    *,
    readme: str | os.PathLike[str] = "README.md",
    figures_dir: str | os.PathLike[str] = "docs/figures",
) -> Path:
    """Replace the README's reproduction section with the headline of the report in ``out``.

    Args:
        out: A reproduction's output directory (holds ``headline.json``).
        readme: The README to edit; it must contain :data:`BEGIN` and :data:`END`.
        figures_dir: Where the figures are copied.

    Returns:
        The README's path.

    Raises:
        FileNotFoundError: ``out`` has no ``headline.json`` (no report was written there).
        ValueError: The README lacks the markers, or ``headline.json`` has rows this version
            cannot read.
    """
    out, readme, figures_dir = Path(out), Path(readme), Path(figures_dir)
    source = out / "headline.json"
    if not source.exists():
        raise FileNotFoundError(f"{source} not found: run `ia reproduce --out {out}` first")
    text = readme.read_text(encoding="utf-8")
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"{readme} must contain {BEGIN!r} followed by {END!r}")
    headline = json.loads(source.read_text(encoding="utf-8"))
    figures = []
    figures_dir.mkdir(parents=True, exist_ok=True)
    for title, path in headline["figures"]:
        target = figures_dir / f"reproduce-{path.replace('/', '-')}"
        shutil.copyfile(out / path, target)
        link = Path(os.path.relpath(target.resolve(), readme.resolve().parent)).as_posix()
        figures.append((title, link))
    try:
        claims = [Claim(**row) for row in headline["claims"]]
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{source} was written by another version of the report ({error}); rewrite it with "
            f"`ia reproduce --out {out}` (finished parts are kept)"
        ) from None
    section = headline_markdown(
        claims,
        figures,
        profile=headline["profile"],
        written=headline["written"],
        failed=headline["failed"],
    )
    body = f"{BEGIN}\n{section}{END}"
    return atomic_write_text(readme, text[:start] + body + text[stop + len(END) :])
