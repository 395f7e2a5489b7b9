"""Rendered evaluation episodes of the emoji benchmark and their (query, target) pairs (§6.2).

For each target episode, ``draws`` query images of its class are drawn with a generator seeded by
``(seed, draw, episode)`` (draw 0 is the episode's own query), each with a wrong-class query of the
same split; boxes are in the rendered 256 px target's pixels. A query is never drawn in the style
(artist) of an instance of its class in the target: the query would then be a copy of a target
object, and matching it a pixel lookup. :func:`eval_set_pairs` hands them to
the protocol of :mod:`..evaluate`; the drawings and the reproduction read the :class:`EvalSet`.

Shapes:
    E episodes, G draws; targets (E, 3, 256, 256) uint8, queries (G, E, 3, 96, 96) uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor

from ..data import EmojiEpisodes
from ..data.emoji import SpriteBank
from ..data.emoji_dataset import chw
from ..data.emoji_episodes import EpisodeConfig, InstanceSpec, render_query, split_classes
from ..data.records import BoxRecord, ImageRecord
from .base import EvalPair, EvalPairs

__all__ = ["SPLIT_NAMES", "EvalSet", "build_eval_set", "eval_set_pairs"]

SPLIT_NAMES = {"seen": "test_seen", "unseen": "test", "val": "val"}


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
        other_classes: E tuples of the M distractors' class names.
        categories: E class names.
        styles: Per draw, the E right queries' styles (artists).
        wrong_styles: Per draw, the E wrong queries' (class, style).
    """

    split: str
    targets: Tensor
    queries: Tensor
    wrong: Tensor
    boxes: list[Tensor]
    others: list[Tensor]
    other_classes: list[tuple[str, ...]]
    categories: list[str]
    styles: list[list[str]]
    wrong_styles: list[list[tuple[str, str]]]


def _unused_styles(
    bank: SpriteBank, category: str, instances: tuple[InstanceSpec, ...], config: EpisodeConfig
) -> list[str]:
    """The styles of ``category`` (among ``config.styles``) that no instance of it in the target
    is drawn in."""
    styles = [s for s in bank.styles_of(category) if config.styles is None or s in config.styles]
    taken = {inst.style for inst in instances if inst.category == category}
    return [s for s in styles if s not in taken] or styles


def build_eval_set(
    split: str,
    episodes: int,
    *,
    draws: int = 5,
    seed: int = 0,
    config: EpisodeConfig | None = None,
) -> EvalSet:
    """Render the first ``episodes`` episodes of ``split`` and ``draws`` right / wrong queries
    (every image drawn from the styles of ``config``, default all)."""
    config = config or EpisodeConfig()
    data = EmojiEpisodes(split, length=episodes, config=config)
    bank, size = data.bank, data.config.query_size
    classes = [c for c in split_classes(bank, split)[0] if _unused_styles(bank, c, (), config)]
    targets, boxes, others, other_classes, categories = [], [], [], [], []
    queries, wrong, styles, wrong_styles = ([[] for _ in range(draws)] for _ in range(4))
    for index in range(episodes):
        episode = data.episode(index)
        category = episode.spec.category
        targets.append(chw(episode.target))
        boxes.append(torch.from_numpy(episode.boxes.copy()))
        others.append(torch.from_numpy(episode.distractor_boxes.copy()))
        other_classes.append(episode.distractor_classes)
        categories.append(category)
        instances = episode.spec.positives + episode.spec.distractors
        for draw in range(draws):
            rng = np.random.default_rng([seed, draw, index])
            if draw == 0:
                query, style = episode.query, episode.spec.query_style
            else:
                style = str(rng.choice(_unused_styles(bank, category, instances, config)))
                query = render_query(bank.sprite(category, style), size, rng.uniform(0.75, 0.95))
            queries[draw].append(chw(query))
            styles[draw].append(style)
            other = str(rng.choice([c for c in classes if c != category]))
            style = str(rng.choice(_unused_styles(bank, other, instances, config)))
            query = render_query(bank.sprite(other, style), size, rng.uniform(0.75, 0.95))
            wrong[draw].append(chw(query))
            wrong_styles[draw].append((other, style))
    return EvalSet(
        split=split,
        targets=torch.stack(targets),
        queries=torch.stack([torch.stack(q) for q in queries]),
        wrong=torch.stack([torch.stack(q) for q in wrong]),
        boxes=boxes,
        others=others,
        other_classes=other_classes,
        categories=categories,
        styles=styles,
        wrong_styles=wrong_styles,
    )


def _float(image: Tensor) -> Tensor:
    return image.float() / 255.0


def eval_set_pairs(eval_set: EvalSet) -> EvalPairs:
    """The protocol's pairs: episode ``e`` is image ``e``, scored on its query class's boxes."""
    height, width = eval_set.targets.shape[-2:]
    episodes = range(len(eval_set.categories))
    positives = [
        [BoxRecord(tuple(map(float, box)), eval_set.categories[e]) for box in eval_set.boxes[e]]
        for e in episodes
    ]
    truth = [ImageRecord(e, "", int(width), int(height), tuple(positives[e])) for e in episodes]

    def draw_pairs(queries: Tensor) -> list[EvalPair]:
        return [
            EvalPair(
                e,
                eval_set.categories[e],
                partial(_float, eval_set.targets[e]),
                partial(_float, queries[e]),
            )
            for e in episodes
        ]

    return EvalPairs(
        split=eval_set.split,
        ground_truth=truth,
        right=[draw_pairs(queries) for queries in eval_set.queries],
        wrong=[draw_pairs(queries) for queries in eval_set.wrong],
        objects={
            e: positives[e]
            + [
                BoxRecord(tuple(map(float, b)), c)
                for b, c in zip(eval_set.others[e], eval_set.other_classes[e], strict=True)
            ]
            for e in episodes
        },
        batch_size=32,
    )
