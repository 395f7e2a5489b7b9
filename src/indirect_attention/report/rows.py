"""One row of the report (:class:`Claim`), its three kinds and their verdict words.

* ``paper``: what the paper says about its method (§4-6). Verdicts ``confirmed``,
  ``contradicted``, ``inconclusive`` (model comparisons: see :mod:`.stats`) or ``not comparable``
  (records missing, or numbers on another data set).
* ``target``: the project's own speed, memory and exactness targets: ``met`` or ``not met``.
* ``check``: identities and sanity checks that should hold by construction (the core equals
  standard attention, Lemma 1's inequality, "layer 1's bias is positional"): ``passed`` or
  ``failed``.

Every kind may also read ``not comparable`` when its part failed or its records are missing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .stats import CONFIRMED, CONTRADICTED, INCONCLUSIVE

__all__ = [
    "CHECK",
    "CONFIRMED",
    "CONTRADICTED",
    "FAILED",
    "INCONCLUSIVE",
    "KINDS",
    "MET",
    "NOT_COMPARABLE",
    "NOT_MET",
    "PAPER",
    "PASSED",
    "TARGET",
    "VERDICTS",
    "Claim",
    "check",
    "meets",
    "read_json",
]

PAPER, TARGET, CHECK = "paper", "target", "check"
KINDS = (PAPER, TARGET, CHECK)
NOT_COMPARABLE = "not comparable"
MET, NOT_MET = "met", "not met"
PASSED, FAILED = "passed", "failed"
#: The words each kind may use, in the order the tallies list them.
VERDICTS = {
    PAPER: (CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_COMPARABLE),
    TARGET: (MET, NOT_MET, NOT_COMPARABLE),
    CHECK: (PASSED, FAILED, NOT_COMPARABLE),
}


@dataclass(frozen=True)
class Claim:
    """One row of the report: a claim beside our result and a verdict.

    Attributes:
        part: The reproduction part whose records gave the row.
        claim: The claim, with the paper's section or figure.
        paper: What the paper states or reports (for a target: the target).
        ours: What we measured.
        verdict: One of :data:`VERDICTS` for the row's kind.
        why: The rule applied (or why no comparison is possible).
        kind: ``paper``, ``target`` or ``check``.
        effect_paper: The paper's effect size where it gives one (e.g. a Table 1 difference).
        effect_ours: Our effect with its 95% interval (see :func:`.stats.describe`).
        headline: Shown in the headline tables (False: only in the part's section).
    """

    part: str
    claim: str
    paper: str
    ours: str
    verdict: str
    why: str
    kind: str = PAPER
    effect_paper: str = ""
    effect_ours: str = ""
    headline: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.verdict not in VERDICTS[self.kind]:
            raise ValueError(
                f"a {self.kind} row's verdict must be one of {VERDICTS[self.kind]}, "
                f"got {self.verdict!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The row as a plain dict (for ``headline.json``)."""
        return asdict(self)


def meets(passed: bool) -> str:
    """A target's verdict: ``met`` when the rule holds, else ``not met``."""
    return MET if passed else NOT_MET


def check(passed: bool) -> str:
    """A check's verdict: ``passed`` when the rule holds, else ``failed``."""
    return PASSED if passed else FAILED


def read_json(path: Path) -> Any:
    """The parsed JSON file at ``path``; ``FileNotFoundError`` names the missing record."""
    if not path.exists():
        raise FileNotFoundError(f"missing record {path}")
    return json.loads(path.read_text(encoding="utf-8"))
