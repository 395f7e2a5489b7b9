"""The one-shot evaluation protocol of IA-DETR over (query, target) pairs (paper §6.2, Table 1).

A data source (:mod:`.sources`) draws the pairs: ``draws`` right-class queries per target, and for
each of them a *wrong-query control*, the same target with a query of another class of the split,
scored against the right class's boxes. A detector that ignores the query scores the same with
both; one that matches scores far lower (``margin`` = right - wrong). AP50 (VOC all-point,
dataset level, per class then averaged) is computed per draw and reported as mean ± std over
draws. The **chance floor** puts perfect boxes on every object of each target with uniform
random scores (mean over 5 seeds): what localising everything without matching earns.

Shapes:
    targets (3, H, W) and queries (3, h, w) in [0, 1]; boxes xyxy in the target's pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data.episodes import mean_std
from .metrics import Detection, mean_ap, voc_ap50
from .model import IADETR
from .predict import predict
from .preprocess import InputSpec, model_input
from .release import load_detector
from .sources.base import DataSource, EvalPair, EvalPairs

__all__ = ["chance_floor", "evaluate", "evaluate_checkpoint"]


def _ap50(pairs: EvalPairs, detections: list[Detection]) -> float:
    return mean_ap(voc_ap50(pairs.ground_truth, detections))


def chance_floor(pairs: EvalPairs, *, seeds: int = 5) -> float:
    """Mean AP50 of perfect boxes on every object of each first-draw target, uniform scores."""
    values = []
    for seed in range(seeds):
        rng = np.random.default_rng([seed, 7919])
        detections = [
            Detection(pair.image_id, pair.category, box, float(rng.random()))
            for pair in pairs.right[0]
            for box in pairs.objects[pair.image_id]
        ]
        values.append(_ap50(pairs, detections))
    return float(np.mean(values))


def _score(
    model: IADETR, pairs: list[EvalPair], spec: InputSpec, batch_size: int
) -> list[Detection]:
    detections = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        batch = model_input(
            [p.target() for p in chunk],
            [p.query() for p in chunk],
            spec,
            stride=model.backbone.stride,
        )
        for pair, found in zip(chunk, predict(model, batch), strict=True):
            detections.extend(
                Detection(pair.image_id, pair.category, tuple(box), score)
                for box, score in zip(found.boxes.tolist(), found.scores.tolist(), strict=True)
            )
    return detections


def evaluate(model: IADETR, pairs: EvalPairs, *, input_spec: InputSpec | None = None) -> dict:
    """AP50 with the right query and the wrong-query control per draw, and the chance floor.

    Args:
        model: The detector (evaluated in eval mode, then its mode is restored).
        pairs: The pairs of a data source.
        input_spec: Input sizes; default ``model.input_spec``.

    Returns:
        ``{"ap50": {"mean", "std", "draws"}, "wrong_query": {...}, "margin", "chance_floor",
        "episodes" (pairs per draw), "draws", "split"}``.
    """
    spec = input_spec or model.input_spec
    if spec is None:
        raise ValueError("the model records no input sizes; pass input_spec")
    was_training = model.training
    model.eval()
    right, wrong = [], []
    with torch.no_grad():
        for draw in range(len(pairs.right)):
            right.append(_ap50(pairs, _score(model, pairs.right[draw], spec, pairs.batch_size)))
            wrong.append(_ap50(pairs, _score(model, pairs.wrong[draw], spec, pairs.batch_size)))
    model.train(was_training)
    (rm, rs), (wm, ws) = mean_std(right), mean_std(wrong)
    return {
        "split": pairs.split,
        "episodes": len(pairs.right[0]),
        "draws": len(right),
        "ap50": {"mean": rm, "std": rs, "draws": right},
        "wrong_query": {"mean": wm, "std": ws, "draws": wrong},
        "margin": rm - wm,
        "chance_floor": chance_floor(pairs),
    }


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: DataSource,
    split: str,
    *,
    count: int | None = None,
    draws: int = 5,
    seed: int = 0,
) -> dict:
    """The protocol on ``split`` (``seen``, ``unseen`` or ``val``) of ``data`` for a saved model.

    Args:
        checkpoint: What :func:`~.release.load_detector` reads.
        data: The data source that draws the pairs.
        split: The split.
        count: Targets (None: the source's default).
        draws: Query draws per target.
        seed: Seed of the draws.

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
    result = evaluate(model, pairs)
    result.update(checkpoint=str(checkpoint), kind=model.config.kind, protocol_seed=seed)
    return result
