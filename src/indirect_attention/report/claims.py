"""Verdicts on the core check, the theory (§3-4, Figure 1) and the benchmarks, from run records.

Every function here reads the JSON files a part wrote into its directory and returns
:class:`~.rows.Claim` rows (what the paper states, what we measured, the verdict and its rule).
Most rows here are ``check`` rows (identities that hold by construction) or ``target`` rows (the
project's speed, memory and exactness targets); the one theory row that tests the paper's argument,
"the SNR under misalignment falls as d grows" (§4), is a ``paper`` row. The trained experiments
(§6, Figures 2, 4, 7 and Table 1) are in :mod:`.experiments`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..theory.verdicts import make_verdicts
from .rows import (
    CHECK,
    CONFIRMED,
    CONTRADICTED,
    FAILED,
    INCONCLUSIVE,
    NOT_COMPARABLE,
    PAPER,
    PASSED,
    TARGET,
    Claim,
    check,
    meets,
    read_json,
)

__all__ = [
    "Claim",
    "bench_attention_claims",
    "bench_train_claims",
    "core_check_claims",
    "read_json",
    "theory_claims",
]

#: Project targets of ``ia bench attention`` (forward+backward, the paper gives no timings).
FLOOR_RATIO_MAX = 2.5
SPEEDUP_MIN = 4.0
MEMORY_RATIO_MAX = 0.25
#: Project target of ``ia bench train``: one indirect synthetic step at most 1.2× one of cross.
SYNTHETIC_STEP_MAX = 1.2
#: Project target of ``ia bench train``'s authors part: the IA decoder's training step at least
#: this many times faster than the authors' formulation of the same decoder.
DECODER_SPEEDUP_MIN = 3.0


def core_check_claims(part_dir: Path) -> list[Claim]:
    """§5, Definition 1: with one source for keys and values indirect attention is attention."""
    results = read_json(part_dir / "results.json")
    worst = float(results["worst_max_abs"])
    return [
        Claim(
            part="core_check",
            claim="With keys and values from one sequence and no bias, indirect attention is "
            "standard attention (§5, Definition 1)",
            paper="exact equality (by definition)",
            ours=f"max |ours - formula|, |ours - nn.MultiheadAttention| = {worst:.1e} (float64)",
            verdict=check(worst < 1e-10),
            why="rule: the largest difference over every checked size is below 1e-10 in float64 "
            "(an identity: it fails only on a bug)",
            kind=CHECK,
        )
    ]


#: The theory part's verdict words, as a check's and as a paper claim's verdict.
_AS_CHECK = {"holds": PASSED, "does not hold": FAILED, "partly": FAILED}
_AS_PAPER = {"holds": CONFIRMED, "does not hold": CONTRADICTED, "partly": INCONCLUSIVE}
#: The one theory verdict that tests the paper's argument; the others check its algebra.
_PAPER_THEORY = {"misaligned_snr_falls_with_d"}
_THEORY_PAPER_COLUMN = {
    "xavier_w_v": "assumes an orthogonal W_v 'as motivated by' Glorot/He (A.3); states nothing "
    "for Xavier",
    "misalignment_exceeds_threshold": "holds (§4): misalignment noise 2d exceeds sigma*² = 1",
}
_THEORY_NOTES = {
    "misalignment_exceeds_threshold": "; under the paper's model (zero-mean keys) it cannot "
    "fail: the misaligned SNR is at most 1/2 and the per-component noise at least 2",
    "xavier_w_v": "; passed when the expectation-level results (SNR·sigma², gamma against the "
    "matrix's own closed form) carry over; Lemma 1 then needs a ||W_v||_2 factor",
}


def theory_claims(part_dir: Path) -> list[Claim]:
    """§3-4 and Figure 1: the theory part's verdicts, each against its Monte Carlo evidence.

    The verdicts are recomputed from the recorded Monte Carlo rows with the current rules
    (:func:`indirect_attention.theory.make_verdicts`), so a report written later never shows
    verdicts of older rules. Every verdict is a check (the closed forms, Lemmas 1-2, the multi-head remark, the Xavier
    question) except "the SNR under misalignment falls as d grows", a paper claim (§4).
    """
    results = read_json(part_dir / "results.json")
    verdicts = results["verdicts"]
    if all(key in results for key in ("additive", "misaligned", "multi_head")):
        verdicts = make_verdicts(results)  # today's rules on the recorded Monte Carlo rows
    rows = []
    for name, item in verdicts.items():
        kind = PAPER if name in _PAPER_THEORY else CHECK
        words = _AS_PAPER if kind == PAPER else _AS_CHECK
        word = item["verdict"]
        verdict = words.get(word, NOT_COMPARABLE)
        why = f"the theory part's own verdict: {word}"
        if word == "undetermined":
            why = "too few model dims d to fit a trend"
        rows.append(
            Claim(
                part="theory",
                claim=item["claim"],
                paper=_THEORY_PAPER_COLUMN.get(
                    name, "holds (stated and proved, §3-4, Appendix A; Figure 1)"
                ),
                ours=item["evidence"],
                verdict=verdict,
                why=f"rule: {why} ({name}; float64 Monte Carlo against the closed forms)"
                + _THEORY_NOTES.get(name, ""),
                kind=kind,
            )
        )
    return rows


def _largest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the largest target map (the size the targets are stated for)."""
    size = max(row["size"] for row in rows)
    return [row for row in rows if row["size"] == size]


def bench_attention_claims(part_dir: Path) -> list[Claim]:
    """Box bias + indirect attention against the project's speed and memory targets (§6.2)."""
    results = read_json(part_dir / "results.json")
    train = _largest([r for r in results["rows"] if r["mode"] == "train"])
    ours = [r for r in train if r["variant"] == "ours"]
    paper = "no timing in the paper; project target"
    rows = []
    if not ours:
        return [
            Claim(
                part="bench_attention",
                kind=TARGET,
                claim="Box bias + indirect attention is fast and lean",
                paper=paper,
                ours="'ours' was not timed",
                verdict=NOT_COMPARABLE,
                why="the benchmark ran without the 'ours' variant",
            )
        ]
    label = ", ".join(f"S={r['size']},Q={r['queries']}" for r in ours)
    if any("compiled_loops" in r for r in ours):
        compiled = all(r.get("compiled_loops") for r in ours)
        label += "; compiled CPU loops" if compiled else "; no compiler: PyTorch path"
    light = [r for r in train if r["variant"] == "ours-h64"]

    def lever(key: str, unit: str) -> str:
        """The smaller-bias variant's figures, shown beside (never judged instead of) ours."""
        values = [r.get(key) for r in light]
        if not values or any(v is None for v in values):
            return ""
        return f"; with BoxRPB width 64: {', '.join(f'{v:.2f}{unit}' for v in values)}"

    floor = [r.get("time_vs_floor") for r in ours]
    if all(v is not None for v in floor):
        rows.append(
            Claim(
                part="bench_attention",
                kind=TARGET,
                claim="Box bias + indirect attention costs at most 2.5× bias-free attention "
                "(forward+backward)",
                paper=f"{paper}: ≤ {FLOOR_RATIO_MAX}× the SDPA floor",
                ours=f"{', '.join(f'{v:.2f}×' for v in floor)} ({label})"
                + lever("time_vs_floor", "×"),
                verdict=meets(max(floor) <= FLOOR_RATIO_MAX),
                why=f"rule: every measured ours ÷ floor ≤ {FLOOR_RATIO_MAX} at the largest map",
            )
        )
    speed = [r.get("speedup_vs_reference") for r in ours]
    memory = [r.get("memory_vs_reference") for r in ours]
    if all(v is not None for v in speed + memory):
        rows.append(
            Claim(
                part="bench_attention",
                kind=TARGET,
                claim="Ours is ≥ 4× faster than the authors' formulation with ≤ ¼ of its memory",
                paper=f"{paper}: speed-up ≥ {SPEEDUP_MIN}×, memory ≤ {MEMORY_RATIO_MAX}",
                ours=f"speed-up {', '.join(f'{v:.2f}×' for v in speed)}; memory "
                f"{', '.join(f'{v:.2f}' for v in memory)} ({label})"
                + lever("speedup_vs_reference", "× faster"),
                verdict=meets(min(speed) >= SPEEDUP_MIN and max(memory) <= MEMORY_RATIO_MAX),
                why="rule: both hold at every measured size of the largest map",
            )
        )
    equal = results.get("equality", {})
    errors = [check["float32"]["max_relative_error"] for check in equal.values()]
    rows.append(
        Claim(
            part="bench_attention",
            kind=TARGET,
            claim="Ours computes the authors' attention exactly (outputs and gradients)",
            paper="project target (the paper gives no implementation): relative error ≤ 1e-5 "
            "in float32",
            ours=f"worst float32 relative error {max(errors):.1e}" if errors else "not checked",
            verdict=meets(bool(errors) and all(check["passed"] for check in equal.values())),
            why="rule: the benchmark's own equality check passed at every size",
        )
    )
    return rows


def bench_train_claims(part_dir: Path) -> list[Claim]:
    """Figure 6 / §6.2: one indirect-attention block instead of a double cross-attention stack."""
    results = read_json(part_dir / "results.json")
    detector = {r["model"]: r for r in results["rows"] if r["part"] == "detector"}
    synthetic = [
        r for r in results["rows"] if r["part"] == "synthetic" and r["model"] == "indirect"
    ]
    rows = []
    if "ia" in detector and "double-cross" in detector:
        ratio = detector["ia"]["vs_double_cross"]
        layers = detector["double-cross"].get("fusion_layers", 1)
        shape = f"Q={detector['ia']['queries']}, S={detector['ia']['size']}"
        ours = f"ia ÷ double-cross ({layers} fusion layers) = {ratio:.2f}× per training step"
        if "double-cross-1" in detector:
            single = detector["ia"]["median_ms"] / detector["double-cross-1"]["median_ms"]
            ours += f"; ÷ a 1-fusion-layer stack = {single:.2f}×"
        if "ia-h64" in detector:
            ours += "; ia with BoxRPB width 64 ÷ double-cross = "
            ours += f"{detector['ia-h64']['vs_double_cross']:.2f}×"
        rows.append(
            Claim(
                part="bench_train",
                kind=TARGET,
                claim="The IA decoder is cheaper to train than the double cross-attention stack "
                "(§6.2, Figure 6)",
                paper="'a more efficient architecture' (one block instead of two, each of 6 "
                "layers; no timing)",
                ours=f"{ours} ({shape})",
                verdict=meets(ratio < 1.0),
                why=f"rule: ia's median training step is shorter than that of the stack with "
                f"{layers} fusion layers (the paper's has 6), same run",
            )
        )
    rows += _authors_claims(results["rows"])
    sort = [r for r in synthetic if r.get("task") == "sort"]
    if sort:
        ratio = sort[0]["vs_cross"]
        rows.append(
            Claim(
                part="bench_train",
                kind=TARGET,
                claim="An indirect synthetic model trains at most 1.2× slower than cross-attention",
                paper=f"no timing in the paper; project target ≤ {SYNTHETIC_STEP_MAX}×",
                ours=f"indirect ÷ cross = {ratio:.2f}× per training step (sorting)",
                verdict=meets(ratio <= SYNTHETIC_STEP_MAX),
                why="rule: the sorting task, where every model has the same 10 queries and keys",
            )
        )
    return rows


def _authors_claims(records: list[dict]) -> list[Claim]:
    """One target row per setting of the ``authors`` part: ours against the authors' decoder."""
    rows = []
    for ours in (r for r in records if r["part"] == "authors" and r["model"] == "ia-ours"):
        speedup = ours["speedup_vs_authors"]
        shape = f"{ours['setting']}: Q={ours['queries']}, S={ours['size']}, B={ours['batch']}"
        shape += f", BoxRPB width {ours['bias_hidden']}"
        rows.append(
            Claim(
                part="bench_train",
                kind=TARGET,
                claim=f"The IA decoder trains at least {DECODER_SPEEDUP_MIN:g}× faster than the "
                "authors' formulation of the same decoder",
                paper="no timing in the paper; the authors materialise the logits and the bias",
                ours=f"authors ÷ ours = {speedup:.2f}× per training step (CPU time "
                f"{ours['cpu_speedup_vs_authors']:.2f}×), peak memory "
                f"{ours['memory_vs_authors']:.2f}× theirs ({shape})",
                verdict=meets(speedup >= DECODER_SPEEDUP_MIN and ours["equal"]),
                why="rule: median wall time of one AdamW step, same run, and the two decoders "
                "equal in float64",
            )
        )
    return rows
