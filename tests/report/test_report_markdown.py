"""The headline: three tables with their own tallies, paper claims first, headline rows only."""

from __future__ import annotations

import pytest

from indirect_attention.report import Claim, headline_markdown, markdown_to_html, tally
from indirect_attention.report.markdown import PartRecord, report_markdown


def _row(kind: str, verdict: str, name: str, *, headline: bool = True) -> Claim:
    return Claim(
        part="p",
        claim=name,
        paper="paper says",
        ours="we measured",
        verdict=verdict,
        why=f"rule of {name}",
        kind=kind,
        effect_paper="+5.04 AP50 points" if kind == "paper" else "",
        effect_ours="Δ = +1.0 [−0.5, +2.5] points (n=3 seeds)" if kind == "paper" else "",
        headline=headline,
    )


CLAIMS = [
    _row("check", "passed", "core equals attention"),
    _row("paper", "confirmed", "indirect beats naive"),
    _row("target", "not met", "fast enough"),
    _row("paper", "inconclusive", "indirect beats cross"),
    _row("paper", "contradicted", "ia beats double-cross"),
    _row("paper", "confirmed", "other setting", headline=False),
    _row("paper", "not comparable", "absolute AP50"),
    _row("check", "failed", "lemma"),
]


def test_three_tables_paper_claims_first_with_their_tallies():
    text = headline_markdown(CLAIMS, [], profile="default", written="now", failed=["x"])
    first = text.splitlines()[0]
    assert first == (
        "Profile `default`, written now. Paper claims: 1 confirmed, 1 contradicted, "
        "1 inconclusive, 1 not comparable. Project targets: 1 not met. Checks: 1 passed, "
        "1 failed. Failed parts: x."
    )
    assert text.index("### Paper claims") < text.index("### Project targets")
    assert text.index("### Project targets") < text.index("### Checks")
    assert "| claim | paper | paper's effect | ours | our effect (95% CI) | verdict |" in text
    assert (
        "| indirect beats naive | paper says | +5.04 AP50 points | we measured | "
        "Δ = +1.0 [−0.5, +2.5] points (n=3 seeds) | **confirmed** |"
    ) in text
    assert "other setting" not in text and "1 more rows" in text
    tally_line = (
        "Paper claims: 1 confirmed, 1 contradicted, 1 inconclusive, 1 not comparable (4 rows)."
    )
    assert tally_line in text
    assert "Targets: 1 not met (1 row)." in text and "Checks: 1 passed, 1 failed (2 rows)." in text
    # not comparable says why in the headline
    assert "**not comparable**: rule of absolute AP50" in text


def test_tally_counts_only_its_kind_in_a_fixed_order():
    assert tally(CLAIMS, "paper") == (
        "2 confirmed, 1 contradicted, 1 inconclusive, 1 not comparable"
    )
    assert tally([], "check") == "no rows"


def test_a_row_must_use_its_kinds_words():
    with pytest.raises(ValueError, match="verdict must be one of"):
        _row("check", "confirmed", "x")
    with pytest.raises(ValueError, match="kind"):
        _row("claim", "confirmed", "x")


def test_part_sections_list_every_row_with_its_rule_and_html_colours_every_word(tmp_path):
    record = PartRecord(name="p", status="ok", seconds=60.0, claims=CLAIMS)
    text = report_markdown([record], profile="default", written="now")
    section = text.split("\n## p\n")[1]
    assert (
        "| kind | claim | paper | paper's effect | ours | our effect (95% CI) | verdict | rule |"
        in (section)
    )
    assert all(f"rule of {c.claim}" in section for c in CLAIMS)
    assert "| paper (not in the headline) | other setting |" in section
    page = markdown_to_html(text, base=tmp_path, title="t")
    for word in ("confirmed", "contradicted", "inconclusive", "not-comparable", "not-met"):
        assert f'class="v-{word}"' in page
    assert 'class="v-passed"' in page and 'class="v-failed"' in page
