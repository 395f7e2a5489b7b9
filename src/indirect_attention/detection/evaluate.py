"""The one-shot evaluation protocol of IA-DETR over (query, target) pairs (paper §6.2, Table 1).

A data source (:mod:`.sources`) draws the pairs: ``draws`` right-class queries per target, and for
each of them a *wrong-query control*, the same target with a query of another class of the split,
scored against the right class's boxes. A detector that ignores the query scores the same with
both; one that matches scores far lower (``margin`` = right - wrong). Reported:

* AP50 (VOC all-point, dataset level, per class then averaged) per draw, mean ± std over draws,
  with the right query and with the wrong one;
* the authors' per-image AP50 (:func:`.metrics.per_image_ap50`, draws pooled), beside it only to
  compare with the paper's tables;
* the matching AUC (:mod:`.matching`): among the objects the detections hit, how often the
  query's class outscores a distractor (1 = always, 0.5 = the query is ignored);
* the **oracle-box reference** (``oracle_boxes``): perfect boxes on every object of each target
  with uniform random scores, mean over 20 seeds. It is what localising everything perfectly
  while ignoring the query earns. It is not a floor: a detector that finds fewer objects, or
  boxes them less tightly, can match well and still score below it.

"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.episodes import mean_std
from .matching import matching_auc
from .metrics import Detection, mean_ap, per_image_ap50, voc_ap50
from .model import IADETR
from .predict import predict
from .preprocess import InputSpec, model_input, random_offsets
from .release import load_detector
from .sources.base import DataSource, EvalPair, EvalPairs

__all__ = ["PLACEMENTS", "evaluate", "evaluate_checkpoint", "oracle_boxes"]

#: Where the query sits on the key canvas during evaluation (``evaluate(query_placement=...)``).
PLACEMENTS = ("top-left", "random")


def _ap50(pairs: EvalPairs, detections: list[Detection]) -> float:
    return mean_ap(voc_ap50(pairs.ground_truth, detections))


def oracle_boxes(pairs: EvalPairs, *, seeds: int = 20) -> float:
    """AP50 of perfect boxes on every object of each first-draw target with uniform random
    scores (mean over ``seeds``): localisation without matching, not a floor."""
    values = []
    for seed in range(seeds):
        rng = np.random.default_rng([seed, 7919])
        detections = [
            Detection(pair.image_id, pair.category, obj.box, float(rng.random()))
            for pair in pairs.right[0]
            for obj in pairs.objects[pair.image_id]
        ]
        values.append(_ap50(pairs, detections))
    return float(np.mean(values))


def _score(
    model: IADETR,
    pairs: list[EvalPair],
    spec: InputSpec,
    batch_size: int,
    draw: int,
    generator: torch.Generator | None = None,
    bar: tqdm | None = None,
) -> list[Detection]:
    """Detections of ``pairs``; with a ``generator``, each query sits at a random cell."""
    detections = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        batch = model_input(
            [p.target() for p in chunk],
            [p.query() for p in chunk],
            spec,
            stride=model.backbone.stride,
        )
        if generator is not None:
            batch.query_offsets = random_offsets(
                batch.targets.shape, batch.queries.shape, model.backbone.stride, generator
            )
        for pair, found in zip(chunk, predict(model, batch), strict=True):
            detections.extend(
                Detection(pair.image_id, pair.category, tuple(box), score, draw)
                for box, score in zip(found.boxes.tolist(), found.scores.tolist(), strict=True)
            )
        if bar is not None:
            bar.update(len(chunk))
    return detections


def evaluate(
    model: IADETR,
    pairs: EvalPairs,
    *,
    input_spec: InputSpec | None = None,
    query_placement: str = "top-left",
    placement_seed: int = 0,
    progress: bool = False,
) -> dict:
    """The protocol's numbers for ``model`` on ``pairs`` (see the module docstring).

    Args:
        model: The detector (evaluated in eval mode, then its mode is restored).
        pairs: The pairs of a data source.
        input_spec: Input sizes; default ``model.input_spec``.
        query_placement: ``top-left`` (the authors' layout of the key canvas) or ``random``:
            each query at a uniformly drawn feature cell where it fits, the same cells for the
            right and the wrong query of a pair. Matching that holds only at the trained layout
            is a finding.
        placement_seed: Seed of the random cells.
        progress: Show a progress bar over the (query, target) pairs.

    Returns:
        ``{"ap50": {"mean", "std", "draws"}, "wrong_query": {...}, "margin",
        "matching_auc": {"mean", "std", "draws", "pairs_scored"}, "per_image_ap50":
        {"right", "wrong"}, "oracle_boxes", "episodes" (pairs per draw), "draws", "split"}``.
    """
    spec = input_spec or model.input_spec
    if spec is None:
        raise ValueError("the model records no input sizes; pass input_spec")
    was_training = model.training
    model.eval()
    if query_placement not in PLACEMENTS:
        raise ValueError(f"query_placement: got {query_placement!r}; expected one of {PLACEMENTS}")
    right: list[list[Detection]] = []
    wrong: list[list[Detection]] = []
    total = sum(len(p) for p in pairs.right) + sum(len(p) for p in pairs.wrong)
    bar = tqdm(total=total, desc=f"eval {pairs.split}", unit="pair", disable=not progress)

    def generator(draw: int) -> torch.Generator | None:
        if query_placement == "top-left":
            return None
        return torch.Generator().manual_seed(placement_seed * 1000 + draw)

    with torch.no_grad():
        for draw in range(len(pairs.right)):
            size = pairs.batch_size
            right.append(_score(model, pairs.right[draw], spec, size, draw, generator(draw), bar))
            wrong.append(_score(model, pairs.wrong[draw], spec, size, draw, generator(draw), bar))
    bar.close()
    model.train(was_training)
    right_ap = [_ap50(pairs, found) for found in right]
    wrong_ap = [_ap50(pairs, found) for found in wrong]
    matching = [matching_auc(found, pairs.objects) for found in right]
    (rm, rs), (wm, ws) = mean_std(right_ap), mean_std(wrong_ap)
    am, ast = mean_std([m["auc"] for m in matching])
    truth = pairs.ground_truth
    return {
        "split": pairs.split,
        "query_placement": query_placement,
        "episodes": len(pairs.right[0]),
        "draws": len(right),
        "ap50": {"mean": rm, "std": rs, "draws": right_ap},
        "wrong_query": {"mean": wm, "std": ws, "draws": wrong_ap},
        "margin": rm - wm,
        "matching_auc": {
            "mean": am,
            "std": ast,
            "draws": [m["auc"] for m in matching],
            "pairs_scored": [m["pairs_scored"] for m in matching],
        },
        "per_image_ap50": {
            "right": mean_ap(per_image_ap50(truth, [d for found in right for d in found])),
            "wrong": mean_ap(per_image_ap50(truth, [d for found in wrong for d in found])),
        },
        "oracle_boxes": oracle_boxes(pairs),
    }


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: DataSource,
    split: str,
    *,
    count: int | None = None,
    draws: int = 5,
    seed: int = 0,
    query_placement: str = "top-left",
    random_placement_draws: int = 0,
    progress: bool = False,
) -> dict:
    """The protocol on ``split`` (``seen``, ``unseen`` or ``val``) of ``data`` for a saved model.

    Args:
        checkpoint: What :func:`~.release.load_detector` reads.
        data: The data source that draws the pairs.
        split: The split.
        count: Targets (None: the source's default).
        draws: Query draws per target.
        seed: Seed of the draws.
        query_placement: Where the query sits on the key canvas (:data:`PLACEMENTS`).
        random_placement_draws: When > 0, the first this many draws are scored again with
            every query at a random cell, under ``"random_placement"`` (AP50, wrong-query
            control, margin, matching AUC).
        progress: Show a progress bar.

    Raises:
        ValueError: the source has no such split.
    """
    model = load_detector(checkpoint)
    pairs = data.eval_pairs(split, count=count, draws=draws, seed=seed)
    if pairs is None:
        raise ValueError(f"--data {data.name} has no {split!r} split configured")
    if not any(pairs.right):
        raise ValueError(
            f"--data {data.name}, split {split!r}: no evaluation pairs (a target image with an "
            "object of the split's classes and a query of that class); expected at least one"
        )
    result = evaluate(
        model, pairs, query_placement=query_placement, placement_seed=seed, progress=progress
    )
    result.update(checkpoint=str(checkpoint), kind=model.config.kind, protocol_seed=seed)
    if random_placement_draws > 0:
        subset = replace(
            pairs,
            right=pairs.right[:random_placement_draws],
            wrong=pairs.wrong[:random_placement_draws],
        )
        moved = evaluate(model, subset, query_placement="random", placement_seed=seed)
        keys = ("ap50", "wrong_query", "margin", "matching_auc", "draws")
        result["random_placement"] = {key: moved[key] for key in keys}
    return result
