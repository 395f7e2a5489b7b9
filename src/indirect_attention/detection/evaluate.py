"""Seeded one-shot evaluation of IA-DETR on the emoji benchmark (paper §6.2, Table 1).

For each target episode, ``draws`` query images of its class are drawn with a generator seeded by
``(seed, draw, episode)`` (draw 0 is the episode's own query); AP50 (VOC all-point, dataset level,
per class then averaged) is computed per draw and reported as mean ± std over draws. Beside it,
always:

* **wrong-query control**: the same targets, each paired with a query of *another* class of the
  split, scored against the right class's boxes. A detector that ignores the query scores the same
  as with the right query; one that matches scores far lower. ``margin`` = right - wrong.
* **chance floor**: perfect boxes on every object of the target (positives and distractors) with
  uniform random scores: what localising everything without matching earns.

Images are rendered at 256 px and fed to the model resized by ``scale``; boxes are scored in the
rendered pixels.

Shapes:
    E episodes, G draws; targets (E, 3, 256, 256) uint8, queries (G, E, 3, 96, 96) uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data import EmojiEpisodes
from .data.emoji_episodes import render_query, split_classes
from .data.episodes import mean_std
from .data.records import BoxRecord, ImageRecord
from .metrics import Detection, mean_ap, voc_ap50
from .model import IADETR, DetrModelConfig
from .postprocess import PostProcess

__all__ = [
    "SPLIT_NAMES",
    "EvalSet",
    "build_eval_set",
    "chance_floor",
    "evaluate",
    "evaluate_checkpoint",
    "load_model",
    "prepare_images",
]


@dataclass
class EvalSet:
    """Rendered evaluation episodes with every query draw (uint8 images, pixel boxes).

    Attributes:
        split: The episode split.
        targets: (E, 3, H, W) uint8.
        queries: (G, E, 3, h, w) uint8, right-class queries.
        wrong: (G, E, 3, h, w) uint8, queries of another class.
        boxes: E tensors (K, 4) xyxy pixels of the query class.
        others: E tensors (M, 4) xyxy pixels of the distractors.
        categories: E class names.
    """

    split: str
    targets: Tensor
    queries: Tensor
    wrong: Tensor
    boxes: list[Tensor]
    others: list[Tensor]
    categories: list[str]


def _image(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def build_eval_set(split: str, episodes: int, *, draws: int = 5, seed: int = 0) -> EvalSet:
    """Render the first ``episodes`` episodes of ``split`` and ``draws`` right / wrong queries."""
    data = EmojiEpisodes(split, length=episodes)
    bank, size = data.bank, data.config.query_size
    classes, _ = split_classes(bank, split)
    targets, boxes, others, categories = [], [], [], []
    queries = [[] for _ in range(draws)]
    wrong = [[] for _ in range(draws)]
    for index in range(episodes):
        episode = data.episode(index)
        category = episode.spec.category
        targets.append(_image(episode.target))
        boxes.append(torch.from_numpy(episode.boxes.copy()))
        others.append(torch.from_numpy(episode.distractor_boxes.copy()))
        categories.append(category)
        for draw in range(draws):
            rng = np.random.default_rng([seed, draw, index])
            if draw == 0:
                queries[0].append(_image(episode.query))
            else:
                style = str(rng.choice(bank.styles_of(category)))
                query = render_query(bank.sprite(category, style), size, rng.uniform(0.75, 0.95))
                queries[draw].append(_image(query))
            other = str(rng.choice([c for c in classes if c != category]))
            style = str(rng.choice(bank.styles_of(other)))
            query = render_query(bank.sprite(other, style), size, rng.uniform(0.75, 0.95))
            wrong[draw].append(_image(query))
    return EvalSet(
        split=split,
        targets=torch.stack(targets),
        queries=torch.stack([torch.stack(q) for q in queries]),
        wrong=torch.stack([torch.stack(q) for q in wrong]),
        boxes=boxes,
        others=others,
        categories=categories,
    )


def prepare_images(images: Tensor, scale: float) -> Tensor:
    """uint8 (B, 3, H, W) -> float in [0, 1], resized by ``scale`` (antialiased)."""
    out = images.float() / 255.0
    if scale != 1.0:
        size = (round(images.shape[-2] * scale), round(images.shape[-1] * scale))
        out = F.interpolate(out, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out


def _ground_truth(eval_set: EvalSet) -> list[ImageRecord]:
    height, width = eval_set.targets.shape[-2:]
    return [
        ImageRecord(
            index,
            "",
            int(width),
            int(height),
            tuple(BoxRecord(tuple(float(v) for v in box), category) for box in boxes),
        )
        for index, (boxes, category) in enumerate(
            zip(eval_set.boxes, eval_set.categories, strict=True)
        )
    ]


def _ap50(eval_set: EvalSet, detections: list[Detection]) -> float:
    return mean_ap(voc_ap50(_ground_truth(eval_set), detections))


def chance_floor(eval_set: EvalSet, *, seeds: int = 5) -> float:
    """Mean AP50 of perfect boxes on every object with uniform random scores."""
    values = []
    for seed in range(seeds):
        rng = np.random.default_rng([seed, 7919])
        detections = [
            Detection(index, category, tuple(float(v) for v in box), float(rng.random()))
            for index, category in enumerate(eval_set.categories)
            for box in torch.cat([eval_set.boxes[index], eval_set.others[index]])
        ]
        values.append(_ap50(eval_set, detections))
    return float(np.mean(values))


@torch.no_grad()
def _detect(
    model: IADETR, eval_set: EvalSet, queries: Tensor, *, scale: float, batch_size: int, top_k: int
) -> list[Detection]:
    post = PostProcess(top_k)
    height, width = eval_set.targets.shape[-2:]
    detections = []
    device = next(model.parameters()).device  # follow the model (a GPU during training)
    for start in range(0, len(eval_set.categories), batch_size):
        stop = min(start + batch_size, len(eval_set.categories))
        output = model(
            prepare_images(eval_set.targets[start:stop], scale).to(device),
            prepare_images(queries[start:stop], scale).to(device),
        )
        results = post(output.logits[-1], output.boxes[-1], (float(width), float(height)))
        for offset, (scores, boxes) in enumerate(results):
            index = start + offset
            detections.extend(
                Detection(index, eval_set.categories[index], tuple(box.tolist()), float(score))
                for score, box in zip(scores, boxes, strict=True)
            )
    return detections


def evaluate(
    model: IADETR, eval_set: EvalSet, *, scale: float = 0.5, batch_size: int = 32, top_k: int = 100
) -> dict:
    """AP50 with the right query and the wrong-query control per draw, and the chance floor.

    Returns:
        ``{"ap50": {"mean", "std", "draws"}, "wrong_query": {...}, "margin", "chance_floor",
        "episodes", "draws", "split"}``.
    """
    was_training = model.training
    model.eval()
    right, wrong = [], []
    for draw in range(eval_set.queries.shape[0]):
        kwargs = {"scale": scale, "batch_size": batch_size, "top_k": top_k}
        right.append(_ap50(eval_set, _detect(model, eval_set, eval_set.queries[draw], **kwargs)))
        wrong.append(_ap50(eval_set, _detect(model, eval_set, eval_set.wrong[draw], **kwargs)))
    model.train(was_training)
    (rm, rs), (wm, ws) = mean_std(right), mean_std(wrong)
    return {
        "split": eval_set.split,
        "episodes": len(eval_set.categories),
        "draws": len(right),
        "ap50": {"mean": rm, "std": rs, "draws": right},
        "wrong_query": {"mean": wm, "std": ws, "draws": wrong},
        "margin": rm - wm,
        "chance_floor": chance_floor(eval_set),
    }


SPLIT_NAMES = {"seen": "test_seen", "unseen": "test", "val": "val"}


def load_model(checkpoint: str | Path) -> tuple[IADETR, float]:
    """The model saved by ``ia detr train`` and its input scale."""
    from ..training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    config = DetrModelConfig(**state["extra"]["model_config"])
    model = IADETR(config)
    model.load_state_dict(state["model"])
    return model.eval(), float(state["extra"].get("scale", 0.5))


def evaluate_checkpoint(
    checkpoint: str | Path, split: str, *, episodes: int = 500, draws: int = 5, seed: int = 0
) -> dict:
    """The seeded protocol on ``split`` (``seen``, ``unseen`` or ``val``) for a saved model."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; choose from {sorted(SPLIT_NAMES)}")
    model, scale = load_model(checkpoint)
    eval_set = build_eval_set(SPLIT_NAMES[split], episodes, draws=draws, seed=seed)
    result = evaluate(model, eval_set, scale=scale)
    result.update(checkpoint=str(checkpoint), variant=model.config.variant, protocol_seed=seed)
    return result
