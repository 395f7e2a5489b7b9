"""The analogue of the paper's Table 1 on the embedded emoji benchmark (paper §6.2).

Trains ``ia``, ``double-cross`` and ``misaligned`` with the same recipe for several seeds, scores each
on seen (``test_seen``) and unseen (``test``) classes with the seeded 5-query protocol, and writes
``results.json`` and ``table1.md``. Each model's margin over its wrong-query control is the
number that shows matching; AP50 alone can sit at the chance floor (see ``docs/detection.md``).
Finished runs (with a ``results.json``) are reused, so an interrupted table resumes.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..training import RunDir, atomic_write_text
from .checkpoint import CHECKPOINT_NAME
from .decoder import KINDS
from .evaluate import evaluate_checkpoint
from .train import DetrTrainConfig, prepare_caches
from .train import run as train

__all__ = ["Table1Config", "run", "score_run"]


@dataclass
class Table1Config:
    """Options of ``ia detr table1``.

    Attributes:
        out: Directory of the table (one sub-directory per model and seed).
        seeds: Training seeds per model.
        kinds: Models to train.
        train: Training recipe shared by every model (its ``out``, ``seed`` and kind are set
            per run).
        episodes: Evaluation episodes per split.
        draws: Query draws of the protocol.
        jobs: Worker processes that train runs side by side (1: one after the other).
    """

    out: str = "runs/table1"
    seeds: int = 3
    kinds: tuple[str, ...] = KINDS
    train: DetrTrainConfig = field(default_factory=DetrTrainConfig)
    episodes: int = 500
    draws: int = 5
    jobs: int = 1


def _summary(values: list[float]) -> dict:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std()), "runs": values}


def _markdown(table: dict) -> str:
    lines = [
        "| model | seen AP50 | seen wrong-query | seen margin | unseen AP50 | unseen wrong-query "
        "| unseen margin |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, row in table["models"].items():
        cells = []
        for split in ("seen", "unseen"):
            for key in ("ap50", "wrong_query", "margin"):
                s = row[split][key]
                cells.append(f"{s['mean']:.3f} ± {s['std']:.3f}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    floors = table["chance_floor"]
    lines.append("")
    lines.append(
        f"Chance floor (perfect boxes on every object, random scores): seen "
        f"{floors['seen']:.3f}, unseen {floors['unseen']:.3f}. Mean ± std over "
        f"{table['seeds']} training seeds; each run is the mean of {table['draws']} query draws "
        f"on {table['episodes']} episodes."
    )
    return "\n".join(lines) + "\n"


def score_run(config: Table1Config, kind: str, seed: int) -> dict:
    """Train one model and seed (resuming a stopped run) and score it on both splits; a run
    with a ``results.json`` that holds the scores is reused as it is."""
    out = Path(config.out) / f"{kind}-s{seed}"
    done = RunDir(out).read_results()
    if done and "seen" in done and "unseen" in done:
        return done
    model = replace(config.train.model, kind=kind)
    recipe = replace(config.train, out=str(out), seed=seed, model=model, resume=str(out))
    train(recipe)
    done = {}
    for split in ("seen", "unseen"):
        done[split] = evaluate_checkpoint(
            out / CHECKPOINT_NAME,
            config.train.data,
            split,
            count=config.episodes,
            draws=config.draws,
        )
    RunDir(out).write_json("eval.json", done)
    results = RunDir(out).read_results() or {}
    RunDir(out).write_results({**results, **done})
    return done


def _score_job(job: tuple[Table1Config, str, int]) -> None:
    score_run(*job)


def run(config: Table1Config) -> dict:
    """Train and evaluate every model and seed; write ``results.json`` and ``table1.md``.

    With ``jobs > 1`` the runs go to that many worker processes first (each with the recipe's
    thread count); the table is then assembled from their run directories.
    """
    root = Path(config.out)
    # seed-major: a stopped table holds whole seeds, every kind paired on them
    runs = [(kind, seed) for seed in range(config.seeds) for kind in config.kinds]
    if config.jobs > 1:
        for seed in range(config.seeds):  # once here, not once per worker
            prepare_caches(replace(config.train, seed=seed))
        context = multiprocessing.get_context("spawn")
        with context.Pool(config.jobs) as pool:
            pool.map(_score_job, [(config, v, s) for v, s in runs], chunksize=1)
    table: dict = {"models": {}, "chance_floor": {}, "seeds": config.seeds}
    table.update(episodes=config.episodes, draws=config.draws)
    for kind in config.kinds:
        scores: dict = {"seen": {}, "unseen": {}}
        for seed in range(config.seeds):
            done = score_run(config, kind, seed)
            for split in ("seen", "unseen"):
                for key in ("ap50", "wrong_query"):
                    scores[split].setdefault(key, []).append(done[split][key]["mean"])
                scores[split].setdefault("margin", []).append(done[split]["margin"])
                table["chance_floor"][split] = done[split]["chance_floor"]
        table["models"][kind] = {
            split: {key: _summary(v) for key, v in scores[split].items()} for split in scores
        }
    RunDir(root).write_results(table)
    atomic_write_text(root / "table1.md", _markdown(table))
    return table
