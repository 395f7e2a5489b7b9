"""The embedded emoji benchmark as a data source (paper §6.2, Table 1): the default data.

Training episodes are rendered once at 256 px, resized by ``scale`` and cached as uint8 tensors
(``cache_dir``) so that the CPU trains instead of drawing. Each epoch visits the cached episodes in
a seeded order. With probability ``crop_queries`` a sample's query is replaced by a crop of one
object of its own target (query class or distractor) and its ground truth by the boxes of that
object's class: an easy, appearance-exact matching task, in the spirit of the authors' random-patch
pre-training stage, that makes the same target carry different answers for different queries.
Evaluation renders its episodes and query draws (:mod:`.emoji_eval`).

Shapes:
    cache targets (E, 3, H, W) and queries (E, 3, h, w) uint8; batches as :data:`.base.Batch`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert
from tqdm import tqdm

from ...training.checkpoint import atomic_save
from ...training.distributed import shard_bounds
from ..data import EmojiEpisodes, EpisodeConfig, load_sprite_bank
from ..data.emoji_dataset import episode_tensors
from ..preprocess import InputSpec, resize
from ..pretrain import PretrainConfig, pretrained_backbone
from .base import Batch, DataSource, EpochPlan, EvalPairs, TrainingSet
from .emoji_eval import SPLIT_NAMES, build_eval_set, eval_set_pairs

__all__ = ["NEW_ARTIST_SPLITS", "EmojiSource", "load_train_cache", "make_batch"]

#: Splits of the held-out-artist experiment (``EmojiSource.held_out_styles``).
NEW_ARTIST_SPLITS = ("seen-new-artists", "unseen-new-artists")


def _episode_sizes(scale: float) -> InputSpec:
    episode = EpisodeConfig()
    return InputSpec(round(episode.canvas_size * scale), round(episode.query_size * scale))


def load_train_cache(
    episodes: int, scale: float, cache_dir: str | Path, config: EpisodeConfig | None = None
) -> dict[str, Tensor]:
    """Rendered training episodes: ``targets`` (E, 3, H, W) and ``queries`` (E, 3, h, w) uint8,
    ``boxes`` (E, M, 4) xyxy pixels of the resized target and ``labels`` (E, M): 0 for the query
    class, k > 0 for the k-th distractor, -1 for padding. Rendered once, then read from disk
    (``cache_dir`` must differ between episode configs: the file name holds only the count and
    the scale)."""
    path = Path(cache_dir) / f"emoji-train-n{episodes}-s{scale:g}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    data = EmojiEpisodes("train", length=episodes, config=config)
    targets, queries, boxes, labels = [], [], [], []
    for index in tqdm(range(episodes), desc="render train episodes", mininterval=10):
        episode = data.episode(index)
        target, query, all_boxes = episode_tensors(episode)
        targets.append(target)
        queries.append(query)
        n_pos = len(episode.boxes)
        boxes.append(all_boxes * scale)
        labels.append(torch.tensor([0] * n_pos + list(range(1, len(all_boxes) - n_pos + 1))))
    width = max(len(b) for b in boxes)
    spec = _episode_sizes(scale)
    target_side, query_side = (spec.target_size,) * 2, (spec.query_size,) * 2
    cache = {
        "targets": _to_uint8(resize(torch.stack(targets).float() / 255.0, target_side)),
        "queries": _to_uint8(resize(torch.stack(queries).float() / 255.0, query_side)),
        "boxes": torch.stack([F.pad(b, (0, 0, 0, width - len(b))) for b in boxes]),
        "labels": torch.stack([F.pad(lab, (0, width - len(lab)), value=-1) for lab in labels]),
    }
    atomic_save(path, cache)  # ranks of several machines may share the folder
    return cache


def _to_uint8(images: Tensor) -> Tensor:
    return (images * 255).round().to(torch.uint8)


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


@dataclass
class _EmojiTrainingSet(TrainingSet):
    cache: dict[str, Tensor]
    source: EmojiSource

    def batches(self, plan: EpochPlan) -> Iterator[Batch]:
        """Every rank walks the same seeded order and draws the same crops (see the base)."""
        rank, world = plan.context.rank, plan.context.world_size
        order = torch.randperm(len(self.cache["targets"]), generator=plan.generator)
        if plan.generator_state is not None:
            plan.generator.set_state(plan.generator_state)
        crop = self.source.crop_queries
        for indices in order.split(plan.batch_size)[plan.skip :]:
            if len(indices) < world:
                return
            targets, queries, truth = make_batch(self.cache, indices, crop, plan.generator)
            start, stop = shard_bounds(len(indices), rank=rank, world_size=world)
            yield targets[start:stop], None, queries[start:stop], truth[start:stop]

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self.cache["targets"]) / batch_size)

    def pretrained_backbone(
        self, *, dim: int, backbone: str, steps: int, seed: int, progress: bool
    ) -> tuple[dict[str, Tensor], dict]:
        """The cached sprite-classification stage of :mod:`..pretrain` (small backbone only)."""
        if backbone != "small":
            super().pretrained_backbone(
                dim=dim, backbone=backbone, steps=steps, seed=seed, progress=progress
            )
        settings = PretrainConfig(dim=dim, steps=steps, seed=seed)
        return pretrained_backbone(
            self.cache,
            settings,
            scale=self.source.scale,
            cache_dir=self.source.cache_root(),
            progress=progress,
            episodes=self.source.episode_config(),
        )


@dataclass
class EmojiSource(DataSource):
    """The embedded emoji benchmark (``--data emoji``).

    Attributes:
        train_episodes: Cached training episodes.
        scale: Resize factor from the rendered 256 px episodes to the model's input.
        crop_queries: Fraction of training samples whose query is a crop of an object of the
            target itself.
        cache_dir: Where rendered training episodes and the backbone pre-training are cached.
        held_out_styles: Artists (sprite styles) kept out of training entirely, queries and
            targets alike, and of the ``seen``/``unseen``/``val`` splits; the splits
            ``seen-new-artists`` and ``unseen-new-artists`` draw every image from them (a query
            in one, its class's instances in another: at least two are needed).
    """

    name: ClassVar[str] = "emoji"
    train_episodes: int = 3000
    scale: float = 0.5
    crop_queries: float = 0.5
    cache_dir: str = "runs/cache"
    held_out_styles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.held_out_styles = tuple(self.held_out_styles)
        if not self.held_out_styles:
            return
        known = load_sprite_bank().styles
        unknown = [s for s in self.held_out_styles if s not in known]
        if unknown or len(set(self.held_out_styles)) < 2:
            raise ValueError(
                f"held_out_styles: got {list(self.held_out_styles)}; expected two or more "
                f"distinct artists of {list(known)}"
            )

    def cache_root(self) -> Path:
        """``cache_dir``, or a folder inside it named after the held-out artists."""
        if not self.held_out_styles:
            return Path(self.cache_dir)
        return Path(self.cache_dir) / ("without-" + "+".join(sorted(self.held_out_styles)))

    def episode_config(self, *, new_artists: bool = False) -> EpisodeConfig:
        """The episodes of training and the usual splits, or of the new-artist splits."""
        if not self.held_out_styles:
            return EpisodeConfig()
        known = load_sprite_bank().styles
        held = set(self.held_out_styles)
        keep = [s for s in known if (s in held) == new_artists]
        return EpisodeConfig(styles=tuple(keep))

    def test_splits(self) -> tuple[str, ...]:
        """Seen and unseen classes, and their new-artist splits when artists are held out."""
        if not self.held_out_styles:
            return ("seen", "unseen")
        return ("seen", "unseen", *NEW_ARTIST_SPLITS)

    def input_spec(self) -> InputSpec:
        """The 256 px targets and 96 px queries of the episodes, resized by ``scale``."""
        return _episode_sizes(self.scale)

    def training_set(self, *, seed: int, progress: bool = True) -> TrainingSet:
        del seed, progress  # the cache is the same for every seed
        cache = load_train_cache(
            self.train_episodes, self.scale, self.cache_root(), self.episode_config()
        )
        return _EmojiTrainingSet(cache, self)

    def eval_pairs(
        self, split: str, *, count: int | None, draws: int, seed: int
    ) -> EvalPairs | None:
        """Rendered episodes of ``val``, ``seen`` (``test_seen``) or ``unseen`` (``test``)
        classes, or of ``seen-new-artists`` / ``unseen-new-artists`` (held-out artists only);
        ``count`` defaults to 500."""
        new_artists = split in NEW_ARTIST_SPLITS
        if split not in SPLIT_NAMES and not new_artists:
            choices = sorted(SPLIT_NAMES) + list(NEW_ARTIST_SPLITS)
            raise ValueError(f"unknown split {split!r}; choose from {choices}")
        if new_artists and not self.held_out_styles:
            raise ValueError(f"split {split!r} needs held-out artists (--held-out-styles)")
        episodes = SPLIT_NAMES[split.removesuffix("-new-artists")]
        eval_set = build_eval_set(
            episodes,
            count or 500,
            draws=draws,
            seed=seed,
            config=self.episode_config(new_artists=new_artists),
        )
        eval_set.split = split
        return eval_set_pairs(eval_set)
