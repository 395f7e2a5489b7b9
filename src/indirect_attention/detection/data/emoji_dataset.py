"""A torch ``Dataset`` over the fixed emoji episode sets (the detector's default data, paper §6.2).

Example:
    >>> data = EmojiEpisodes("train", seed=0)
    >>> sample = data[0]
    >>> sample.target.shape, sample.query.shape, sample.boxes.shape
    (torch.Size([3, 256, 256]), torch.Size([3, 96, 96]), torch.Size([K, 4]))
    >>> batch = collate_episodes([data[0], data[1]])   # targets (2, 3, 256, 256)
    >>> loader = torch.utils.data.DataLoader(data, batch_size=8, collate_fn=collate_episodes)

Shapes: ``target`` ``(3, H, W)`` float32 in [0, 1]; ``query`` ``(3, h, w)`` float32 in [0, 1];
``boxes`` ``(K, 4)`` float32 xyxy in target pixels, K in 1..3, all of the query's class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .emoji import SpriteBank, load_sprite_bank
from .emoji_episodes import SPLITS, EpisodeConfig, RenderedEpisode, render_episode, sample_episode

__all__ = [
    "EmojiEpisodes",
    "EpisodeBatch",
    "EpisodeSample",
    "chw",
    "collate_episodes",
    "episode_tensors",
]


@dataclass
class EpisodeSample:
    """One episode as tensors.

    Attributes:
        target: ``(3, H, W)`` float32 in [0, 1].
        query: ``(3, h, w)`` float32 in [0, 1].
        boxes: ``(K, 4)`` float32 xyxy pixel boxes of the query class in ``target``.
        category: the query's class name.
        index: the episode's index in its split.
    """

    target: torch.Tensor
    query: torch.Tensor
    boxes: torch.Tensor
    category: str
    index: int


@dataclass
class EpisodeBatch:
    """Episodes stacked for a model: ``targets`` ``(B, 3, H, W)``, ``queries`` ``(B, 3, h, w)``,
    ``boxes`` a list of B ``(K_b, 4)`` tensors, ``categories`` and ``indices`` lists of B."""

    targets: torch.Tensor
    queries: torch.Tensor
    boxes: list[torch.Tensor]
    categories: list[str]
    indices: list[int]


def chw(image: np.ndarray) -> torch.Tensor:
    """An ``(H, W, 3)`` uint8 array as a ``(3, H, W)`` uint8 tensor (a copy)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def episode_tensors(episode: RenderedEpisode) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The target and query as uint8 tensors (:func:`chw`) and every box, ``(K + M, 4)`` float32
    xyxy pixels, the K query-class boxes first."""
    boxes = np.concatenate([episode.boxes, episode.distractor_boxes])
    return chw(episode.target), chw(episode.query), torch.from_numpy(boxes)


class EmojiEpisodes(torch.utils.data.Dataset):
    """The fixed episode set of one split (``train``, ``val``, ``test``, ``test_seen``).

    Item ``i`` is rendered on demand from ``(seed, split, i)``; the same arguments always give the
    same pixels, on any machine and in any worker process.

    Args:
        split: which episode set (see :data:`~.emoji_episodes.SPLITS`).
        seed: the benchmark seed; 0 is the published fixed set.
        length: number of episodes (default the split's fixed size: 20000 / 500 / 1000 / 500).
        config: canvas and sampling settings.
        bank: the sprite bank (default the packaged one).
    """

    def __init__(
        self,
        split: str = "train",
        *,
        seed: int = 0,
        length: int | None = None,
        config: EpisodeConfig | None = None,
        bank: SpriteBank | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {sorted(SPLITS)}")
        self.split, self.seed = split, seed
        self.length = SPLITS[split][3] if length is None else int(length)
        if self.length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.config = config or EpisodeConfig()
        self.bank = bank or load_sprite_bank()

    def __len__(self) -> int:
        return self.length

    def episode(self, index: int) -> RenderedEpisode:
        """The rendered episode (numpy arrays, masks and spec) at ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(
                f"episode {index} out of range for {self.split} of length {self.length}"
            )
        spec = sample_episode(self.bank, self.split, index, seed=self.seed, config=self.config)
        return render_episode(spec, self.bank, config=self.config)

    def __getitem__(self, index: int) -> EpisodeSample:
        episode = self.episode(index)
        return EpisodeSample(
            target=chw(episode.target).float().div_(255.0),
            query=chw(episode.query).float().div_(255.0),
            boxes=torch.from_numpy(episode.boxes.copy()),
            category=episode.spec.category,
            index=index,
        )


def collate_episodes(samples: list[EpisodeSample]) -> EpisodeBatch:
    """Stack same-sized episodes into a batch (boxes stay a list: their counts differ)."""
    if not samples:
        raise ValueError("cannot collate an empty list of episodes")
    return EpisodeBatch(
        targets=torch.stack([s.target for s in samples]),
        queries=torch.stack([s.query for s in samples]),
        boxes=[s.boxes for s in samples],
        categories=[s.category for s in samples],
        indices=[s.index for s in samples],
    )
