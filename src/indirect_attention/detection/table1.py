"""The analogue of the paper's Table 1 on the embedded emoji benchmark (paper §6.2).

Trains ``ia``, ``double-cross`` and ``misaligned`` with the same recipe for several seeds, scores each
on seen (``test_seen``) and unseen (``test``) classes with the seeded 5-query protocol, and writes
``results.json`` and ``table1.md``. Each model's margin over its wrong-query control and its
matching AUC are the numbers that show matching; AP50 alone mixes matching with localisation (the
oracle-box reference, :func:`.evaluate.oracle_boxes`, shows what localisation alone earns).
Finished runs are reused (a run whose scores predate the current protocol is re-scored, not
retrained), so an interrupted table resumes.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..training import RunDir, atomic_write_text
from .checkpoint import CHECKPOINT_NAME
from .data.episodes import mean_std
from .decoder import KINDS
from .evaluate import evaluate_checkpoint, oracle_boxes
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
        oracle_per_class: Episodes per class of the oracle-box reference, the same number for
            every split so that the seen and unseen references compare.
        random_placement_draws: Query draws scored again with every query at a random cell of
            the key canvas (the trained layout puts it top-left); 0 skips it.
    """

    out: str = "runs/table1"
    seeds: int = 3
    kinds: tuple[str, ...] = KINDS
    train: DetrTrainConfig = field(default_factory=DetrTrainConfig)
    episodes: int = 500
    draws: int = 5
    jobs: int = 1
    oracle_per_class: int = 20
    random_placement_draws: int = 2


def _summary(values: list[float | None]) -> dict:
    mean, std = mean_std([np.nan if v is None else v for v in values])
    return {"mean": mean, "std": std, "runs": values}


#: Table 1's columns per split: (key in a run's scores, header).
COLUMNS = (
    ("ap50", "AP50"),
    ("wrong_query", "wrong-query AP50"),
    ("margin", "margin"),
    ("matching_auc", "matching AUC"),
    ("per_image_ap50", "per-image AP50 (authors)"),
    ("random_margin", "margin, query at a random cell"),
    ("random_matching_auc", "matching AUC, query at a random cell"),
)


def _run_values(done: dict) -> dict[str, float]:
    """One run's Table 1 numbers on one split (``done`` is its protocol result)."""
    return {
        "ap50": done["ap50"]["mean"],
        "wrong_query": done["wrong_query"]["mean"],
        "margin": done["margin"],
        "matching_auc": done["matching_auc"]["mean"],
        "per_image_ap50": done["per_image_ap50"]["right"],
        "random_margin": done.get("random_placement", {}).get("margin"),
        "random_matching_auc": done.get("random_placement", {}).get("matching_auc", {}).get("mean"),
    }


def _cell(summary: dict) -> str:
    if np.isnan(summary["mean"]):
        return "–"
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def _markdown(table: dict) -> str:
    lines = [
        "| model | split | " + " | ".join(name for _, name in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for kind, row in table["models"].items():
        for split in table["splits"]:
            cells = [_cell(row[split][key]) for key, _ in COLUMNS]
            lines.append(f"| {kind} | {split} | " + " | ".join(cells) + " |")
    oracle = ", ".join(f"{split} {value:.3f}" for split, value in table["oracle_boxes"].items())
    lines.append("")
    lines.append(
        f"Oracle boxes, random scores (every object boxed perfectly, scores that ignore the query; "
        f"{table['oracle_per_class']} episodes per class), AP50: {oracle}. A reference for "
        f"localisation without matching, not a floor. Matching AUC: among the objects a detector "
        f"hits, how often the query's class outscores a distractor (0.5 = the query is ignored). "
        f"Mean ± std over {table['seeds']} training seeds; each run is the mean of "
        f"{table['draws']} query draws on {table['episodes']} episodes."
    )
    return "\n".join(lines) + "\n"


def score_run(config: Table1Config, kind: str, seed: int) -> dict:
    """Train one model and seed (resuming a stopped run) and score it on both splits; a run
    with a ``results.json`` that holds the scores is reused as it is."""
    out = Path(config.out) / f"{kind}-s{seed}"
    done = RunDir(out).read_results()
    splits = config.train.data.test_splits()
    if done and all("matching_auc" in done.get(split, {}) for split in splits):
        return done
    if not (done and "steps" in done):  # not trained to the end yet
        model = replace(config.train.model, kind=kind)
        recipe = replace(config.train, out=str(out), seed=seed, model=model, resume=str(out))
        train(recipe)
    done = {}
    for split in splits:
        done[split] = evaluate_checkpoint(
            out / CHECKPOINT_NAME,
            config.train.data,
            split,
            count=config.episodes,
            draws=config.draws,
            random_placement_draws=config.random_placement_draws,
            progress=config.train.progress,
        )
    RunDir(out).write_json("eval.json", done)
    results = RunDir(out).read_results() or {}
    RunDir(out).write_results({**results, **done})
    return RunDir(out).read_results()  # as a resumed table reads it (NaN is written as null)


def _oracle(config: Table1Config, split: str) -> float:
    """The oracle-box reference on ``oracle_per_class`` episodes of every class of ``split``."""
    probe = config.train.data.eval_pairs(split, count=config.episodes, draws=1, seed=0)
    if probe is None:
        raise ValueError(f"--data {config.train.data.name} has no {split!r} split configured")
    classes = len({pair.category for pair in probe.right[0]})
    count = config.oracle_per_class * classes
    pairs = config.train.data.eval_pairs(split, count=count, draws=1, seed=0)
    assert pairs is not None
    return oracle_boxes(pairs)


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
    table: dict = {"models": {}, "seeds": config.seeds, "oracle_per_class": config.oracle_per_class}
    table.update(episodes=config.episodes, draws=config.draws)
    splits = config.train.data.test_splits()
    table["splits"] = list(splits)
    table["oracle_boxes"] = {split: _oracle(config, split) for split in splits}
    for kind in config.kinds:
        scores: dict = {split: {} for split in splits}
        for seed in range(config.seeds):
            done = score_run(config, kind, seed)
            for split in splits:
                for key, value in _run_values(done[split]).items():
                    scores[split].setdefault(key, []).append(value)
        table["models"][kind] = {
            split: {key: _summary(v) for key, v in scores[split].items()} for split in scores
        }
    RunDir(root).write_results(table)
    atomic_write_text(root / "table1.md", _markdown(table))
    return table
