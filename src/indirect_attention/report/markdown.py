"""The reproduction report as markdown: the headline tables first, then one section per part.

The headline is three tables, each with its own tally: paper claims (claim | paper | paper's
effect | ours | our effect (95% CI) | verdict), project targets and checks (see :mod:`.rows`). It
is rendered by :func:`headline_markdown`, which both ``report.md`` and the README's "Latest
reproduction" section use, so the two never disagree; its summary sentence quotes the
paper-claim tally. Each part's section lists all its rows, with their rules.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .rows import CHECK, NOT_COMPARABLE, PAPER, TARGET, VERDICTS, Claim

__all__ = ["PartRecord", "headline_markdown", "report_markdown", "tally"]

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


def tally(claims: list[Claim], kind: str) -> str:
    """``3 confirmed, 1 contradicted, 9 inconclusive`` for the rows of ``kind`` (in the order of
    :data:`~.rows.VERDICTS`), or ``no rows``."""
    counts = Counter(claim.verdict for claim in claims if claim.kind == kind)
    words = [f"{counts[word]} {word}" for word in VERDICTS[kind] if counts[word]]
    return ", ".join(words) or "no rows"


#: (kind, heading, tally label, header, cells of a row) of the three headline tables.
_TABLES = (
    (
        PAPER,
        "Paper claims",
        "Paper claims",
        "| claim | paper | paper's effect | ours | our effect (95% CI) | verdict |",
        lambda c: [
            _cell(c.claim),
            _cell(c.paper),
            _cell(c.effect_paper or "not given"),
            _cell(c.ours, HEADLINE_CELL),
            _cell(c.effect_ours or "no interval"),
            _verdict_cell(c),
        ],
    ),
    (
        TARGET,
        "Project targets",
        "Targets",
        "| target | asked for | ours | verdict |",
        lambda c: [_cell(c.claim), _cell(c.paper), _cell(c.ours, HEADLINE_CELL), _verdict_cell(c)],
    ),
    (
        CHECK,
        "Checks",
        "Checks",
        "| check | expected | ours | verdict |",
        lambda c: [_cell(c.claim), _cell(c.paper), _cell(c.ours, HEADLINE_CELL), _verdict_cell(c)],
    ),
)


def headline_markdown(
    claims: list[Claim],
    figures: list[tuple[str, str]],
    *,
    profile: str,
    written: str,
    failed: list[str],
) -> str:
    """The three headline tables (paper claims first), each with its tally, and the figures.

    Only rows with ``headline`` set appear; the summary sentence quotes the paper-claim tally.

    Args:
        claims: Every verdict row, in part order.
        figures: (title, link) pairs, drawn below the tables.
        profile: The reproduction profile.
        written: When the report was written.
        failed: Names of the parts that failed.
    """
    shown = [claim for claim in claims if claim.headline]
    hidden = sum(1 for claim in claims if not claim.headline)
    summary = f"Paper claims: {tally(shown, PAPER)}."
    summary += f" Project targets: {tally(shown, TARGET)}. Checks: {tally(shown, CHECK)}."
    if failed:
        summary += f" Failed parts: {', '.join(failed)}."
    lines = [
        f"Profile `{profile}`, written {written}. {summary}",
        "",
        "Every verdict is computed from the run records by the rule given in the report. A model "
        "comparison is the paired per-seed difference with its 95% t interval: confirmed or "
        "contradicted only when the interval excludes 0, otherwise inconclusive, with the number "
        "of seeds that would decide at the measured spread. The intervals are not corrected for "
        "multiplicity: among many rows with no true difference about 1 in 20 would still exclude "
        "0, so a verdict whose interval ends near 0 is weak evidence on its own.",
    ]
    if hidden:
        lines[-1] += f" {hidden} more rows (the other value setting) are in the parts' sections."
    for kind, heading, label, header, cells in _TABLES:
        rows = [claim for claim in shown if claim.kind == kind]
        if not rows:
            continue
        lines += ["", f"### {heading}", "", header, "|" + "---|" * header.count(" | ") + "---|"]
        lines += ["| " + " | ".join(cells(claim)) + " |" for claim in rows]
        count = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
        lines += ["", f"{label}: {tally(rows, kind)} ({count})."]
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
        lines += [
            "",
            "| kind | claim | paper | paper's effect | ours | our effect (95% CI) | verdict | rule |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in record.claims:
            where = "" if c.headline else " (not in the headline)"
            lines.append(
                f"| {c.kind}{where} | {_cell(c.claim)} | {_cell(c.paper)} | "
                f"{_cell(c.effect_paper)} | {_cell(c.ours)} | {_cell(c.effect_ours)} | "
                f"**{c.verdict}** | {_cell(c.why)} |"
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
