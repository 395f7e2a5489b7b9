"""Verdicts on the marked-lookup part (``synthetic_lookup``), paired over seeds (§4-5).

The task (``tasks/lookup.py``): the conditioning sequence is noise with one marker at m, the
content sequence carries payloads, and the label is the payload at m + s, so the offset s is the
misalignment between where the key says and where the value sits. The paper's claim these rows
test: with misaligned keys and values, indirect attention (bias + reference update) recovers
what naive misaligned attention loses (§4-5).

Records: ``offset-{s}/results.json`` (and ``offset-{s}/value-positions/results.json`` for values
with position codes, reported in the part's section only), each with ``models[kind]["per_seed"]``
for ``indirect``, ``indirect-pointer``, ``indirect-nobias-update``, ``naive`` and ``cross``;
``references.json`` with the distance of each layer's references to the read position m + s.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .paired import comparison_claim, per_seed_values
from .rows import CHECK, NOT_COMPARABLE, Claim, check, read_json

__all__ = ["WITHIN_HALF_MIN", "lookup_claims"]

PART = "synthetic_lookup"
#: The update g "moves references to m + s" when the last layer puts at least this share of the
#: queries within half a position of it.
WITHIN_HALF_MIN = 0.5
_CLAIM = "with misaligned keys and values, indirect attention (bias + reference update) recovers "
_CLAIM += "what naive misaligned attention loses (§4-5)"
#: (ours, theirs, smallest offset, claim) of the comparisons at each offset.
_PAIRS = (
    ("indirect", "naive", 0, "Indirect attention beats naive misaligned attention"),
    ("indirect", "cross", 0, "Indirect attention beats cross-attention"),
    (
        "indirect-pointer",
        "indirect",
        1,
        "A reference update g that predicts an absolute position beats the relative update",
    ),
    ("indirect", "indirect-nobias-update", 1, "The reference update P^(l+1) = g(P^l, O^l) helps"),
)
_PAPER = {
    "naive": _CLAIM,
    "cross": _CLAIM,
    "indirect": "g is left open (§5); the pointer update is this project's variant",
    "indirect-nobias-update": "part of the method (§5); no ablation reported",
}


def _offsets(part_dir: Path) -> list[int]:
    found = [re.fullmatch(r"offset-(\d+)", p.name) for p in part_dir.glob("offset-*")]
    return sorted(int(m.group(1)) for m in found if m)


def _offset_claims(
    results: dict[str, Any], offset: int, *, label: str, headline: bool
) -> list[Claim]:
    models, epochs = results["models"], int(results["epochs"])
    rows = []
    for ours, theirs, smallest, claim in _PAIRS:
        if offset < smallest or ours not in models or theirs not in models:
            continue
        rows.append(
            comparison_claim(
                part=PART,
                claim=f"{claim} on marked lookup at offset s = {offset} [{label}]",
                paper=_PAPER[theirs],
                names=(ours, theirs),
                values=(
                    per_seed_values(models[ours], "final", epochs),
                    per_seed_values(models[theirs], "final", epochs),
                ),
                effect_paper="not given",
                headline=headline,
            )
        )
    return rows


def _references_claim(part_dir: Path) -> Claim:
    base = dict(
        part=PART,
        claim="The update g moves the references to the read position m + s (§5)",
        paper="P^(l+1) = g(P^l, O^l) refines where each query reads (no measurement reported)",
        kind=CHECK,
    )
    path = part_dir / "references.json"
    rows = read_json(path)["rows"] if path.exists() else []
    by_cell: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in rows:
        if row["model"] == "indirect" and not row["value_positions"] and row["offset"] >= 1:
            by_cell[(int(row["offset"]), int(row["layer"]))].append(float(row["within_half"]))
    if not by_cell:
        return Claim(
            **base,
            ours="no references recorded for indirect at s ≥ 1",
            verdict=NOT_COMPARABLE,
            why="references.json is missing or has no rows for indirect at an offset ≥ 1",
        )
    offsets = sorted({s for s, _ in by_cell})
    last, texts = {}, []
    for s in offsets:
        layers = sorted(layer for o, layer in by_cell if o == s)
        means = [statistics.fmean(by_cell[(s, layer)]) for layer in layers]
        last[s] = means[-1]
        texts.append(f"s={s}: " + " / ".join(f"{m:.0%}" for m in means))
    return Claim(
        **base,
        ours="share of queries within half a position of m + s, per layer: " + "; ".join(texts),
        verdict=check(min(last.values()) >= WITHIN_HALF_MIN),
        why=f"rule: for indirect (values without position codes), the last layer's share within "
        f"half a position of m + s, mean over seeds, is ≥ {WITHIN_HALF_MIN:.0%} at every "
        "offset s ≥ 1",
    )


def lookup_claims(part_dir: Path) -> list[Claim]:
    """Marked lookup: per offset, indirect against naive and cross; the pointer update and the
    fixed-reference ablation at s ≥ 1; and whether the references reach m + s."""
    offsets = _offsets(part_dir)
    if not offsets:
        raise FileNotFoundError(f"missing records {part_dir}/offset-*/results.json")
    rows: list[Claim] = []
    for folder, label, headline in (
        ("", "values without position codes", True),
        ("value-positions", "values with position codes", False),
    ):
        for offset in offsets:
            path = part_dir / f"offset-{offset}" / folder / "results.json"
            if path.exists():
                rows += _offset_claims(read_json(path), offset, label=label, headline=headline)
    return [*rows, _references_claim(part_dir)]
