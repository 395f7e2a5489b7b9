"""Verdicts on the trained experiments of paper §6, computed from the parts' run records.

* Synthetic tasks (§6.1, Figure 2): :mod:`.synthetic` (paired comparisons over seeds).
* Figure 4 / Appendix A.5: here, a check: the retrieval model's bias is purely positional in
  layer 1 and depends on the data from layer 2 on, from ``bias_maps.json``.
* Table 1 (§6.2) and Figure 7: :mod:`.detection`.
* The marked-lookup and scaling parts: :mod:`.lookup` and :mod:`.scaling`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .detection import alignment_claim, detection_claims, figure7_claim
from .lookup import lookup_claims
from .rows import CHECK, NOT_COMPARABLE, Claim, check, read_json
from .scaling import scaling_claims
from .synthetic import synthetic_claims

__all__ = [
    "alignment_claim",
    "detection_claims",
    "figure4_claim",
    "figure7_claim",
    "lookup_claims",
    "scaling_claims",
    "synthetic_claims",
]


def _spread(array: np.ndarray) -> float:
    return float(array.max() - array.min()) or 1.0


def figure4_claim(part_dir: Path) -> Claim:
    """Appendix A.5, Figure 4: layer 1's bias is positional, later layers depend on the data.

    Layer 1 is positional when every head's map is constant along each diagonal (a function of
    the offset j - i) and identical for every test pair; a later layer depends on the data when
    its maps differ between test pairs. Both are measured relative to the map's own range. A
    check, not a test of the paper: P^0 is fixed, so layer 1 is positional by construction.
    """
    claim = "The bias of layer 1 is purely positional; later layers' bias depends on the data "
    claim += "(Figure 4, Appendix A.5)"
    paper = "layer 1: a position bias; layers 2+: 'considers the data as well'"
    if not (part_dir / "bias_maps.json").exists():
        return Claim(
            part="synthetic_retrieval",
            claim=claim,
            paper=paper,
            ours="no bias maps recorded",
            verdict=NOT_COMPARABLE,
            why="bias_maps.json is missing (the indirect model was not trained on retrieval)",
            kind=CHECK,
        )
    record = read_json(part_dir / "bias_maps.json")
    bias = np.asarray([item["bias"] for item in record["examples"]], dtype=np.float64)
    first = bias[:, 0]  # (E, H, Lq, Lk)
    lq, lk = first.shape[-2:]
    diagonal = 0.0
    for offset in range(-lq + 1, lk):
        values = np.stack([np.diagonal(m, offset=offset) for m in first.reshape(-1, lq, lk)])
        diagonal = max(diagonal, float((values.max(axis=1) - values.min(axis=1)).max()))
    diagonal /= _spread(first)
    same = float(np.abs(first - first[:1]).max()) / _spread(first)
    later = [
        float(np.abs(bias[:, layer] - bias[:1, layer]).max()) / _spread(bias[:, layer])
        for layer in range(1, bias.shape[1])
    ]
    varies = max(later) if later else 0.0
    enough = bias.shape[0] > 1 and bias.shape[1] > 1
    return Claim(
        part="synthetic_retrieval",
        claim=claim,
        paper=paper,
        ours=f"layer 1: off-diagonal variation {diagonal:.1e}, between pairs {same:.1e}; "
        f"layers 2+: between pairs up to {varies:.2f} (relative to each map's range)",
        verdict=check(diagonal < 1e-3 and same < 1e-3 and varies > 1e-2)
        if enough
        else NOT_COMPARABLE,
        why="rule: layer 1 constant along diagonals and across pairs (< 1e-3), some later layer "
        "differs between pairs (> 1e-2)"
        if enough
        else "needs at least two test pairs and two layers",
        kind=CHECK,
    )
