"""Collect every part's outcome and verdicts; write ``report.md``, ``report.html`` and
``headline.json`` into the reproduction's output directory.

A part's verdicts are computed here, from the records in its directory, each time the report is
written; a part that failed, or whose records cannot be read, still gets a row that says so.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..training import atomic_write_text
from .html import write_html
from .markdown import PartRecord, report_markdown
from .rows import CHECK, NOT_COMPARABLE, PAPER, TARGET, Claim

__all__ = ["part_record", "write_reports"]

ClaimsFn = Callable[[Path], list[Claim]]


def _failed_row(name: str, what: str, error: str) -> Claim:
    """A failed part's one row, counted with the kind of rows the part gives (benchmarks give
    targets, the core check a check, every other part paper claims)."""
    kind = TARGET if name.startswith("bench") else CHECK if name == "core_check" else PAPER
    return Claim(
        kind=kind,
        part=name,
        claim=f"every claim of part `{name}`",
        paper="see the part's claims",
        ours="no result",
        verdict=NOT_COMPARABLE,
        why=f"{what}: {error}",
    )


def part_record(
    name: str,
    part_dir: Path,
    *,
    claims: ClaimsFn | None,
    figures: tuple[tuple[str, str], ...],
    resumed: bool = False,
) -> PartRecord:
    """Read ``part_dir/part.json`` and compute the part's verdict rows from its records.

    Args:
        name: The part's name.
        part_dir: Its directory (holds ``part.json`` once it ran).
        claims: Computes the verdict rows from ``part_dir``; None for a part without claims.
        figures: (title, file name in ``part_dir``) of the figures it may have drawn.
        resumed: It finished in an earlier invocation and was kept.
    """
    path = part_dir / "part.json"
    if not path.exists():
        return PartRecord(name=name, status="not run")
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    record = PartRecord(
        name=name,
        status=state.get("status", "failed"),
        seconds=state.get("seconds"),
        error=state.get("error"),
        trace=state.get("trace"),
        resumed=resumed,
    )
    if record.status != "ok":
        record.claims = [_failed_row(name, "the part failed", record.error or "unknown error")]
    elif claims is not None:
        try:
            record.claims = claims(part_dir)
        except Exception as error:  # unreadable records are reported, never dropped
            record.error = f"verdicts could not be computed: {error!r}"
            record.trace = traceback.format_exc()
            record.claims = [_failed_row(name, "records unreadable", repr(error))]
    base = part_dir.name
    record.figures = [
        (title, f"{base}/{file}") for title, file in figures if (part_dir / file).is_file()
    ]
    return record


def write_reports(out: Path, records: list[PartRecord], *, profile: str, written: str) -> Path:
    """Write ``report.md``, ``report.html`` and ``headline.json`` into ``out``; return the html."""
    text = report_markdown(records, profile=profile, written=written)
    markdown_path = atomic_write_text(out / "report.md", text)
    headline = {
        "profile": profile,
        "written": written,
        "claims": [claim.to_dict() for record in records for claim in record.claims],
        "figures": [list(figure) for record in records for figure in record.figures],
        "failed": [record.name for record in records if record.status == "failed"],
    }
    atomic_write_text(out / "headline.json", json.dumps(headline, indent=2) + "\n")
    return write_html(
        markdown_path, out / "report.html", title=f"Indirect Attention reproduction ({profile})"
    )
