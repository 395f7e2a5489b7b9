"""Run records in the shapes the parts write, for the report's tests (written into tmp_path)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def plant(path: Path, payload: dict) -> None:
    """Write ``payload`` as JSON at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def model(finals: dict[int, float], curves: dict[int, list[float]] | None = None) -> dict:
    """One model's record: per-seed final accuracy and, optionally, per-epoch test curves."""
    rows = []
    for seed, final in finals.items():
        row = {"seed": seed, "lr": 1e-3, "final_test_acc": final, "best_test_acc": final}
        row["final_train_acc"] = final
        if curves is not None:
            row["curve"] = curves[seed]
        rows.append(row)
    values = list(finals.values())
    return {
        "final_test_acc_mean": statistics.fmean(values),
        "final_test_acc_std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "per_seed": rows,
    }


def results(models: dict[str, dict], *, epochs: int = 8, value_positions: bool = False) -> dict:
    """A synthetic ``results.json``."""
    return {"task": "t", "epochs": epochs, "value_positions": value_positions, "models": models}


def table(
    margins: dict[str, list[float]],
    ap50: float = 0.6,
    matching: dict[str, list[float]] | None = None,
) -> dict:
    """The detection table's ``results.json`` with per-seed margins (seed i at index i) and,
    when given, per-seed matching AUCs."""

    def summary(values: list[float]) -> dict:
        return {"mean": statistics.fmean(values), "std": 0.0, "runs": values}

    models = {}
    for name, runs in margins.items():
        split = {
            "ap50": summary([ap50] * len(runs)),
            "wrong_query": summary([ap50 - m for m in runs]),
            "margin": summary(runs),
        }
        if matching is not None:
            split["matching_auc"] = summary(matching[name])
        models[name] = {"seen": split, "unseen": split}
    seeds = max(len(runs) for runs in margins.values())
    return {
        "models": models,
        "oracle_boxes": {"seen": 0.6, "unseen": 0.5},
        "oracle_per_class": 20,
        "seeds": seeds,
        "episodes": 10,
        "draws": 1,
    }
