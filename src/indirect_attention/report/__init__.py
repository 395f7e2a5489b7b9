"""The reproduction report: verdicts from run records, markdown, self-contained HTML, README.

Nothing here trains or measures; every number is read from the JSON records the parts of
``ia reproduce`` wrote, and every verdict is computed from them (see :mod:`.claims`,
:mod:`.experiments` and, for model comparisons over seeds, :mod:`.stats`). Rows come in three
kinds with their own verdict words and tallies (:mod:`.rows`): paper claims, project targets and
checks.
"""

from __future__ import annotations

from .document import part_record, write_reports
from .html import markdown_to_html
from .markdown import PartRecord, headline_markdown, tally
from .readme import BEGIN, END, update_readme
from .rows import (
    CHECK,
    CONFIRMED,
    CONTRADICTED,
    FAILED,
    INCONCLUSIVE,
    MET,
    NOT_COMPARABLE,
    NOT_MET,
    PAPER,
    PASSED,
    TARGET,
    Claim,
)
from .stats import Comparison, describe, paired_comparison

__all__ = [
    "BEGIN",
    "CHECK",
    "CONFIRMED",
    "CONTRADICTED",
    "END",
    "FAILED",
    "INCONCLUSIVE",
    "MET",
    "NOT_COMPARABLE",
    "NOT_MET",
    "PAPER",
    "PASSED",
    "TARGET",
    "Claim",
    "Comparison",
    "PartRecord",
    "describe",
    "headline_markdown",
    "markdown_to_html",
    "paired_comparison",
    "part_record",
    "tally",
    "update_readme",
    "write_reports",
]
