"""The training data of IA-DETR (paper §6.2): cached emoji episodes and real-data batches.

Emoji training episodes are rendered once at 256 px, resized by ``scale`` and cached as uint8
tensors (``cache_dir``) so that the CPU trains instead of drawing. Each epoch visits the cached
episodes in a seeded order. With probability ``crop_queries`` a sample's query is replaced by a crop
of one object of its own target (query class or distractor) and its ground truth by the boxes of
that object's class: an easy, appearance-exact matching task, in the spirit of the authors'
random-patch pre-training stage, that makes the same target carry different answers for different
queries. Under ``torchrun`` each process keeps its slice of every global batch.

Shapes:
    targets (B, 3, H, W) and queries (B, 3, h, w) floats in [0, 1]; ground truth a list of B
    (K_b, 4) boxes, (cx, cy, w, h) normalised by the canvas.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert
from tqdm import tqdm

from ..training.distributed import DistributedContext, shard_bounds
from .data import EmojiEpisodes
from .evaluate import prepare_images

if TYPE_CHECKING:
    from .model import IADETR
    from .train import DetrTrainConfig

__all__ = ["epoch_batches", "load_train_cache", "make_batch", "num_batches", "real_val_set"]


def load_train_cache(episodes: int, scale: float, cache_dir: str | Path) -> dict[str, Tensor]:
    """Rendered training episodes: ``targets`` (E, 3, H, W) and ``queries`` (E, 3, h, w) uint8,
    ``boxes`` (E, M, 4) xyxy pixels of the resized target and ``labels`` (E, M): 0 for the query
    class, k > 0 for the k-th distractor, -1 for padding. Rendered once, then read from disk."""
    path = Path(cache_dir) / f"emoji-train-n{episodes}-s{scale:g}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    data = EmojiEpisodes("train", length=episodes)
    targets, queries, boxes, labels = [], [], [], []
    for index in tqdm(range(episodes), desc="render train episodes", mininterval=10):
        episode = data.episode(index)
        targets.append(torch.from_numpy(episode.target.transpose(2, 0, 1).copy()))
        queries.append(torch.from_numpy(episode.query.transpose(2, 0, 1).copy()))
        all_boxes = torch.cat(
            [torch.from_numpy(episode.boxes), torch.from_numpy(episode.distractor_boxes)]
        )
        n_pos = len(episode.boxes)
        boxes.append(all_boxes * scale)
        labels.append(torch.tensor([0] * n_pos + list(range(1, len(all_boxes) - n_pos + 1))))
    width = max(len(b) for b in boxes)
    cache = {
        "targets": (prepare_images(torch.stack(targets), scale) * 255).round().to(torch.uint8),
        "queries": (prepare_images(torch.stack(queries), scale) * 255).round().to(torch.uint8),
        "boxes": torch.stack([F.pad(b, (0, 0, 0, width - len(b))) for b in boxes]),
        "labels": torch.stack([F.pad(lab, (0, width - len(lab)), value=-1) for lab in labels]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # ranks of several machines may share the folder
    torch.save(cache, tmp)
    tmp.replace(path)
    return cache


def _crop_query(target: Tensor, box: Tensor, size: tuple[int, int]) -> Tensor:
    """A square crop around ``box`` (xyxy pixels) of a float target, resized to ``size``."""
    x1, y1, x2, y2 = box.tolist()
    side = max(x2 - x1, y2 - y1) / 0.8  # the object fills 80% of the query, as in render_query
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    height, width = target.shape[-2:]
    left = int(max(0, min(width - 1, math.floor(cx - side / 2))))
    top = int(max(0, min(height - 1, math.floor(cy - side / 2))))
    right = int(max(left + 1, min(width, math.ceil(cx + side / 2))))
    bottom = int(max(top + 1, min(height, math.ceil(cy + side / 2))))
    patch = target[:, top:bottom, left:right][None]
    return F.interpolate(patch, size=size, mode="bilinear", align_corners=False)[0]


def make_batch(
    cache: dict[str, Tensor], indices: Tensor, crop_queries: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Float targets, queries and ground truth (cxcywh normalised by the canvas) of ``indices``."""
    targets = cache["targets"][indices].float() / 255.0
    queries = cache["queries"][indices].float() / 255.0
    height, width = targets.shape[-2:]
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    truth = []
    for row, index in enumerate(indices.tolist()):
        labels, boxes = cache["labels"][index], cache["boxes"][index]
        wanted = 0
        if float(torch.rand((), generator=generator)) < crop_queries:
            real = (labels >= 0).nonzero()[:, 0]
            pick = real[int(torch.randint(len(real), (), generator=generator))]
            wanted = int(labels[pick])
            queries[row] = _crop_query(targets[row], boxes[pick], queries.shape[-2:])
        chosen = boxes[labels == wanted]
        truth.append(box_convert(chosen / scale, "xyxy", "cxcywh"))
    return targets, queries, truth


def epoch_batches(
    config: DetrTrainConfig,
    model: IADETR,
    epoch: int,
    generator: torch.Generator,
    cache: dict[str, Tensor] | None,
    *,
    skip: int = 0,
    generator_state: Tensor | None = None,
    context: DistributedContext | None = None,
):
    """This process's slice of each of the epoch's global batches, as (targets, padding, queries,
    ground truth), lazily, from global batch ``skip`` on.

    Every rank walks the same seeded order and draws the same crops; rank r keeps rows
    ``shard_bounds(B, r, W)`` of each global batch of B, so the global batch is the one-process
    batch. A final batch smaller than the number of ranks is dropped by every rank. A resumed epoch
    redraws its order, then sets the generator to ``generator_state`` (saved after batch
    ``skip``) and starts at batch ``skip``.
    """
    context = context or DistributedContext()
    rank, world = context.rank, context.world_size
    if cache is not None:
        order = torch.randperm(len(cache["targets"]), generator=generator)
        if generator_state is not None:
            generator.set_state(generator_state)
        for indices in order.split(config.batch_size)[skip:]:
            if len(indices) < world:
                return
            targets, queries, truth = make_batch(cache, indices, config.crop_queries, generator)
            start, stop = shard_bounds(len(indices), rank=rank, world_size=world)
            yield targets[start:stop], None, queries[start:stop], truth[start:stop]
        return
    import numpy as np

    from .pairs import PairBatcher, load_real_data, training_pairs

    dataset, split = load_real_data(
        config.data,
        config.data_root,
        train=True,
        annotation_file=config.train_json,
        unseen=config.unseen_classes,
    )
    pairs = training_pairs(dataset, split, np.random.default_rng([config.seed, epoch]))
    batcher = PairBatcher(config.max_size, config.query_size, stride=model.backbone.stride)
    for first in range(skip * config.batch_size, len(pairs), config.batch_size):
        chunk = pairs[first : first + config.batch_size]
        if len(chunk) < world:
            return
        start, stop = shard_bounds(len(chunk), rank=rank, world_size=world)
        targets, padding, queries, truth, _ = batcher(chunk[start:stop])  # padded per rank
        yield targets, padding, queries, truth


def num_batches(config: DetrTrainConfig) -> int | None:
    if config.data == "emoji":
        return math.ceil(config.train_episodes / config.batch_size)
    return None


def real_val_set(config: DetrTrainConfig) -> tuple:
    """The first ``eval_episodes`` images of ``val_json`` and the class split."""
    from .data import DetectionDataset
    from .pairs import load_real_data

    dataset, split = load_real_data(
        config.data,
        config.data_root,
        train=False,
        annotation_file=config.val_json,
        unseen=config.unseen_classes,
    )
    images = dataset.images[: config.eval_episodes]
    return DetectionDataset(dataset.name, dataset.classes, images), split
