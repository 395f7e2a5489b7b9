"""Verdicts on the synthetic tasks of paper §6.1 (Figure 2), paired over seeds.

Records (written by the synthetic parts): ``results.json`` with ``models[kind]["per_seed"]`` rows
``{"seed", "final_test_acc", "curve", ...}`` for ``indirect``, ``naive`` and ``cross``, and
``ablations/results.json`` beside it with ``indirect-nobias-update`` and ``indirect-noenrich`` on
the same seeds. The top-level records are the headline setting (values without position codes:
only the bias can say where a value sits, the setting the paper's argument is about);
``value-positions/`` holds the same files for values with position codes, reported in the part's
section only.

Figure 2 is a claim about curves, so indirect attention is compared with naive and with
cross-attention on three metrics: the final test accuracy, the area under the test-accuracy
curve and the accuracy at an early epoch ⌈E/4⌉, each a paired comparison over seeds
(:mod:`.paired`). The paper gives no numbers for Figure 2, hence no paper effect size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .paired import METRICS, comparison_claim, early_epoch, per_seed_values
from .rows import Claim, read_json

__all__ = ["ABLATIONS", "SETTINGS", "synthetic_claims"]

_TASK_NAMES = {"sort": "sorting by an arbitrary ordering", "retrieval": "sequence retrieval"}
_OTHERS = {"naive": "naive misaligned attention", "cross": "cross-attention"}
#: Ablations of the indirect model: kind -> the claim it tests (§5).
ABLATIONS = {
    "indirect-nobias-update": "The per-layer reference update P^(l+1) = g(P^l, O^l) helps (§5)",
    "indirect-noenrich": "Content-enriched queries q_i = e_i + x_s(i) help (§5, Definition 1)",
}
_LABELS = {False: "values without position codes", True: "values with position codes"}
#: (sub-directory, label, shown in the headline) of the two value settings; a record's own
#: ``value_positions`` flag names its setting when it has one.
SETTINGS = (
    ("", "values without position codes", True),
    ("value-positions", "values with position codes", False),
)


def _what(metric: str, epochs: int) -> str:
    if metric == "early":
        return f"test accuracy at epoch {early_epoch(epochs)} of {epochs}"
    return METRICS[metric][0]


def _model_claims(
    results: dict[str, Any], *, part: str, task: str, label: str, headline: bool
) -> list[Claim]:
    models, epochs = results["models"], int(results["epochs"])
    indirect = models.get("indirect", {})
    rows = []
    for other, other_name in _OTHERS.items():
        if other not in models:
            continue
        for metric in METRICS:
            what = _what(metric, epochs)
            rows.append(
                comparison_claim(
                    part=part,
                    claim=f"Indirect attention beats {other_name} on {_TASK_NAMES.get(task, task)}"
                    f": {what} [{label}] (§6.1, Figure 2)",
                    paper=f"indirect above {other} (test-accuracy curves, Figure 2; no numbers "
                    "in the text)",
                    names=("indirect", other),
                    values=(
                        per_seed_values(indirect, metric, epochs),
                        per_seed_values(models[other], metric, epochs),
                    ),
                    what=what,
                    effect_paper="not given (curves only)",
                    headline=headline,
                )
            )
    return rows


def _ablation_claims(
    results: dict[str, Any], ablations: dict[str, Any], *, part: str, label: str, headline: bool
) -> list[Claim]:
    epochs = int(results["epochs"])
    indirect = per_seed_values(results["models"].get("indirect", {}), "final", epochs)
    rows = []
    for kind, claim in ABLATIONS.items():
        if kind not in ablations:
            continue
        rows.append(
            comparison_claim(
                part=part,
                claim=f"{claim}: {part.removeprefix('synthetic_')} [{label}]",
                paper="part of the method (§5); no ablation reported",
                names=("indirect", kind),
                values=(indirect, per_seed_values(ablations[kind], "final", epochs)),
                effect_paper="not reported",
                headline=headline,
            )
        )
    return rows


def synthetic_claims(part_dir: Path, *, task: str) -> list[Claim]:
    """§6.1, Figure 2: indirect against naive and cross (three metrics), then its ablations.

    Args:
        part_dir: The part's directory (``results.json``, optionally ``ablations/`` and
            ``value-positions/``).
        task: ``sort`` or ``retrieval``.
    """
    part, rows = f"synthetic_{task}", []
    for folder, label, headline in SETTINGS:
        base = part_dir / folder if folder else part_dir
        if folder and not (base / "results.json").exists():
            continue
        results = read_json(base / "results.json")
        label = _LABELS.get(results.get("value_positions"), label)
        rows += _model_claims(results, part=part, task=task, label=label, headline=headline)
        path = base / "ablations" / "results.json"
        if path.exists():
            ablations = read_json(path)["models"]
            rows += _ablation_claims(results, ablations, part=part, label=label, headline=headline)
    return rows
