"""The reproduction report: verdicts from run records, markdown, self-contained HTML, README.

Nothing here trains or measures; every number is read from the JSON records the parts of
``ia reproduce`` wrote, and every verdict is computed from them (see :mod:`.claims` and
:mod:`.experiments`).
"""

from __future__ import annotations

from .claims import CONFIRMED, NOT_COMPARABLE, NOT_CONFIRMED, Claim
from .document import part_record, write_reports
from .html import markdown_to_html
from .markdown import PartRecord, headline_markdown
from .readme import BEGIN, END, update_readme

__all__ = [
    "BEGIN",
    "CONFIRMED",
    "END",
    "NOT_COMPARABLE",
    "NOT_CONFIRMED",
    "Claim",
    "PartRecord",
    "headline_markdown",
    "markdown_to_html",
    "part_record",
    "update_readme",
    "write_reports",
]
