"""The reproduction report as markdown: a headline table first, then one section per part.

The headline (claim | paper | ours | verdict) is rendered by :func:`headline_markdown`, which both
``report.md`` and the README's "Latest reproduction" section use, so the two never disagree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .claims import NOT_COMPARABLE, Claim

__all__ = ["PartRecord", "headline_markdown", "report_markdown"]

#: Longest "ours" cell in the headline; the part's section has the full text.
HEADLINE_CELL = 180


@dataclass
class PartRecord:
    """What the report shows of one part.

    Attributes:
        name: The part's name (its directory under the reproduction's output).
        status: ``ok``, ``failed`` or ``not run``.
        seconds: Wall time of its last run.
        error: The exception of a failed part (or of its verdict computation).
        trace: Its traceback.
        claims: Verdict rows computed from its records.
        figures: (title, path relative to the output directory) of its figures that exist.
        resumed: Whether it finished in an earlier invocation and was kept.
    """

    name: str
    status: str
    seconds: float | None = None
    error: str | None = None
    trace: str | None = None
    claims: list[Claim] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)
    resumed: bool = False


def _cell(text: str, limit: int | None = None) -> str:
    """One table cell: single line, pipes escaped, optionally shortened."""
    text = " ".join(str(text).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text.replace("|", "\\|")


def _verdict_cell(claim: Claim) -> str:
    word = f"**{claim.verdict}**"
    return f"{word}: {_cell(claim.why, 120)}" if claim.verdict == NOT_COMPARABLE else word


def headline_markdown(
    claims: list[Claim],
    figures: list[tuple[str, str]],
    *,
    profile: str,
    written: str,
    failed: list[str],
) -> str:
    """The headline table, the verdict counts and the figures (links as given).

    Args:
        claims: Every verdict row, in part order.
        figures: (title, link) pairs, drawn below the table.
        profile: The reproduction profile.
        written: When the report was written.
        failed: Names of the parts that failed.
    """
    lines = [
        f"Profile `{profile}`, written {written}. Each row sets our result beside the paper's "
        "claim; the verdict is computed from the run records by the rule given in the report.",
        "",
        "| claim | paper | ours | verdict |",
        "|---|---|---|---|",
    ]
    for claim in claims:
        lines.append(
            f"| {_cell(claim.claim)} | {_cell(claim.paper)} | "
            f"{_cell(claim.ours, HEADLINE_CELL)} | {_verdict_cell(claim)} |"
        )
    counts = Counter(claim.verdict for claim in claims)
    summary = ", ".join(f"{count} {word}" for word, count in counts.items()) or "no verdicts"
    lines += ["", f"Verdicts: {summary}."]
    if failed:
        lines[-1] += f" Failed parts: {', '.join(failed)}."
    for title, link in figures:
        lines += ["", f"![{title}]({link})"]
    return "\n".join(lines) + "\n"


def _part_section(record: PartRecord) -> list[str]:
    lines = ["", f"## {record.name}", ""]
    seconds = "" if record.seconds is None else f" in {record.seconds / 60:.1f} min"
    kept = " (finished earlier, kept)" if record.resumed else ""
    lines.append(f"Status: **{record.status}**{seconds}{kept}.")
    if record.error:
        lines += ["", f"Error: `{_cell(record.error)}`"]
    if record.claims:
        lines += ["", "| claim | paper | ours | verdict | why |", "|---|---|---|---|---|"]
        for c in record.claims:
            lines.append(
                f"| {_cell(c.claim)} | {_cell(c.paper)} | {_cell(c.ours)} | **{c.verdict}** "
                f"| {_cell(c.why)} |"
            )
    for title, path in record.figures:
        lines += ["", f"![{title}]({path})"]
    return lines


def report_markdown(records: list[PartRecord], *, profile: str, written: str) -> str:
    """The whole ``report.md``: headline first, then parts, failures and each part's details
    (with its figures; the headline carries none, so each figure is embedded once in the html)."""
    claims = [claim for record in records for claim in record.claims]
    failed = [r.name for r in records if r.status == "failed"]
    lines = [
        "# Reproduction report: Indirect Attention (arXiv 2509.26015)",
        "",
        "## Headline",
        "",
        headline_markdown(claims, [], profile=profile, written=written, failed=failed),
        "## Parts",
        "",
        "| part | status | minutes | verdicts |",
        "|---|---|---|---|",
    ]
    for r in records:
        minutes = "" if r.seconds is None else f"{r.seconds / 60:.1f}"
        counts = Counter(c.verdict for c in r.claims)
        verdicts = ", ".join(f"{n} {w}" for w, n in counts.items())
        lines.append(f"| {r.name} | {r.status} | {minutes} | {verdicts} |")
    if failed:
        lines += ["", "## Failed parts", ""]
        for r in records:
            if r.status == "failed":
                lines += [f"### {r.name}", "", f"`{_cell(r.error or 'unknown error')}`", ""]
                if r.trace:
                    lines += ["```", r.trace.rstrip(), "```", ""]
    for record in records:
        if record.status != "not run":
            lines += _part_section(record)
    return "\n".join(lines) + "\n"
