"""Sprite-classification pre-training of the small backbone (a cached stage before paper §6.2's training).

The authors start IA-DETR from a self-supervised Swin backbone. Our emoji backbone starts from
scratch, and a detector trained from scratch for a CPU budget learns to box objects long before it
learns which ones look like the query (``docs/detection.md``). This stage gives the backbone
features that already tell the *seen* classes apart across artist styles: crops of every object of
the cached training episodes (and the episodes' query images) are classified into the seen classes
with a linear head on average-pooled features. Crops are taken at random sizes so that a 48-px
query and a 16-px target instance map to similar features. No unseen class is ever used.

The stage is cheap (minutes on one thread) and cached by its settings under ``cache_dir``; the
result is the backbone's ``state_dict`` (body and projection) plus a small report: the training
accuracy and a nearest-neighbour matching accuracy (query image vs target crops) on seen and on
unseen validation episodes.

Shapes:
    crops (B, 3, S, S) in [0, 1] -> logits (B, C) over the C seen classes.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align
from tqdm import tqdm

from ..training.checkpoint import atomic_save
from .backbone import Backbone
from .data import EmojiEpisodes, load_sprite_bank
from .data.emoji_dataset import episode_tensors
from .data.emoji_episodes import EpisodeConfig, sample_episode, split_classes
from .preprocess import resize

__all__ = ["PretrainConfig", "episode_classes", "pretrained_backbone", "random_crops"]


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of the pre-training stage (every field is part of the cache key).

    Attributes:
        dim: Projection dim D of the backbone (must match the detector's).
        steps: Optimiser steps.
        batch_size: Crops per step.
        lr: AdamW learning rate (cosine decay to 0).
        sizes: Crop sides in pixels, one drawn per step.
        query_fraction: Fraction of each batch taken from the episodes' query images.
        seed: Seed of the weights and the crops.
        check_episodes: Episodes per split of the matching check in the report.
    """

    dim: int = 128
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    sizes: tuple[int, ...] = (16, 24, 32, 40, 48)
    query_fraction: float = 0.25
    seed: int = 0
    check_episodes: int = 200


def episode_classes(
    split: str, count: int, classes: tuple[str, ...], *, episodes: EpisodeConfig | None = None
) -> list[list[int]]:
    """Class indices (into ``classes``) of the instances of episodes ``0..count-1`` of ``split``,
    positives first, in the order of the cached boxes; the query's class is element 0.
    ``episodes`` must be the settings the episodes were rendered with (e.g. the artists kept)."""
    bank = load_sprite_bank()
    lookup = {name: k for k, name in enumerate(classes)}
    rows = []
    for index in range(count):
        spec = sample_episode(bank, split, index, config=episodes)
        names = [p.category for p in spec.positives] + [d.category for d in spec.distractors]
        rows.append([lookup[name] for name in names])
    return rows


def random_crops(
    images: Tensor, boxes: Tensor, size: int, generator: torch.Generator, *, jitter: float = 0.15
) -> Tensor:
    """Square crops around ``boxes`` with a random margin and shift, resized to ``size``.

    The object fills about 80 % of the crop (as in a query image), times a factor in
    [1 - jitter, 1 + jitter]; the centre moves by up to ``jitter / 2`` of the side.

    Shapes:
        images (B, 3, H, W), boxes (B, 4) xyxy pixels -> (B, 3, size, size)
    """
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # (B, 2)
    side = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1) / 0.8  # (B,)
    noise = torch.rand(boxes.shape[0], 3, generator=generator) * 2 - 1  # (B, 3) in [-1, 1]
    side = side * (1 + jitter * noise[:, 0])
    centre = centre + noise[:, 1:] * side[:, None] * jitter / 2
    half = side[:, None] / 2
    rois = torch.cat(
        [torch.arange(len(boxes), dtype=boxes.dtype)[:, None], centre - half, centre + half], dim=1
    )  # (B, 5): batch index, x0, y0, x1, y1
    return roi_align(images, rois, output_size=size, aligned=True)


class _Classifier(nn.Module):
    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = Backbone(dim, name="small")
        self.head = nn.Linear(dim, num_classes)

    def embed(self, images: Tensor) -> Tensor:
        """Average-pooled features of [0, 1] images: (B, 3, S, S) -> (B, D)."""
        return self.backbone(self.backbone.normalize(images)).mean(dim=(2, 3))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.embed(images))


def _cache_path(config: PretrainConfig, cache: dict[str, Tensor], cache_dir: Path) -> Path:
    key = json.dumps({**asdict(config), "episodes": len(cache["targets"])}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir / f"backbone-small-{digest}.pt"


def _instances(cache: dict[str, Tensor], classes: list[list[int]]) -> tuple[Tensor, Tensor, Tensor]:
    """(episode index, box, class) of every object of the cached episodes."""
    episode, boxes, labels = [], [], []
    for index, names in enumerate(classes):
        valid = (cache["labels"][index] >= 0).nonzero()[:, 0]
        if len(valid) != len(names):
            raise ValueError(
                f"episode {index}: the cache holds {len(valid)} objects but its spec has "
                f"{len(names)}; the cache is stale, delete it"
            )
        for slot, name in zip(valid.tolist(), names, strict=True):
            episode.append(index)
            boxes.append(cache["boxes"][index, slot])
            labels.append(name)
    return torch.tensor(episode), torch.stack(boxes), torch.tensor(labels)


def _rescaled(images: Tensor, scale: float) -> Tensor:
    """uint8 (B, 3, H, W) -> float in [0, 1], resized by ``scale`` (as the cached episodes)."""
    size = (round(images.shape[-2] * scale), round(images.shape[-1] * scale))
    return resize(images.float() / 255.0, size)


@torch.no_grad()
def _matching_accuracy(
    model: _Classifier, split: str, episodes: int, scale: float, settings: EpisodeConfig | None
) -> float:
    """Nearest-neighbour matching with pooled features: on each rendered episode, is the crop most
    similar to the query image one of the query's class? (The chance level is positives / objects.)"""
    data = EmojiEpisodes(split, length=episodes, config=settings)
    hits = 0
    for index in range(episodes):
        episode = data.episode(index)
        target, query, boxes = episode_tensors(episode)
        target, query = _rescaled(target[None], scale), _rescaled(query[None], scale)
        images = target.expand(len(boxes), -1, -1, -1)  # one view of the target per object
        crops = random_crops(images, boxes * scale, 32, torch.Generator(), jitter=0.0)
        similarity = F.cosine_similarity(model.embed(crops), model.embed(query), dim=1)
        hits += int(int(similarity.argmax()) < len(episode.boxes))
    return hits / episodes


def pretrained_backbone(
    cache: dict[str, Tensor],
    config: PretrainConfig,
    *,
    scale: float,
    cache_dir: str | Path = "runs/cache",
    progress: bool = True,
    episodes: EpisodeConfig | None = None,
) -> tuple[dict[str, Tensor], dict]:
    """The pre-trained backbone ``state_dict`` and its report, trained once and then cached.

    Args:
        cache: The cached training episodes (:func:`~.sources.emoji.load_train_cache`).
        config: Settings of the stage.
        scale: Resize factor of the cached episodes (for the matching check).
        cache_dir: Where the result is cached.
        progress: Show a progress bar.
        episodes: The settings ``cache`` was rendered with (the artists kept, when some are held
            out); the same settings draw the matching check's episodes.
    """
    cache_dir = Path(cache_dir)
    path = _cache_path(config, cache, cache_dir)
    if not path.exists():
        with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is the same either way
            torch.manual_seed(config.seed)
            state, report = _pretrain(
                cache, config, scale=scale, progress=progress, episodes=episodes
            )
        atomic_save(path, {"backbone": state, "report": json.dumps(report)})
    saved = torch.load(path, weights_only=True)
    return saved["backbone"], json.loads(saved["report"])


def _pretrain(
    cache: dict[str, Tensor],
    config: PretrainConfig,
    *,
    scale: float,
    progress: bool,
    episodes: EpisodeConfig | None,
) -> tuple[dict[str, Tensor], dict]:
    seen, _ = split_classes(load_sprite_bank(), "train")
    classes = episode_classes("train", len(cache["targets"]), seen, episodes=episodes)
    episode, boxes, labels = _instances(cache, classes)
    query_labels = torch.tensor([names[0] for names in classes])
    generator = torch.Generator().manual_seed(config.seed)
    model = _Classifier(config.dim, len(seen))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    num_queries = round(config.batch_size * config.query_fraction)
    correct, seen_count = 0, 0
    bar = tqdm(range(config.steps), desc="pre-train backbone", disable=not progress, mininterval=5)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        size = config.sizes[int(torch.randint(len(config.sizes), (), generator=generator))]
        pick = torch.randint(len(episode), (config.batch_size - num_queries,), generator=generator)
        images = cache["targets"][episode[pick]].float() / 255.0
        crops = random_crops(images, boxes[pick], size, generator)
        chosen = torch.randint(len(query_labels), (num_queries,), generator=generator)
        queries = cache["queries"][chosen].float() / 255.0
        queries = F.interpolate(queries, size=(size, size), mode="bilinear", antialias=True)
        batch = torch.cat([crops, queries])  # (B, 3, S, S)
        target = torch.cat([labels[pick], query_labels[chosen]])  # (B,)
        flip = torch.rand(len(batch), generator=generator) < 0.5
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
        logits = model(batch)
        loss = F.cross_entropy(logits, target, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= config.steps - 100:  # training accuracy over the last 100 steps
            correct += int((logits.argmax(dim=1) == target).sum())
            seen_count += len(target)
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
    model.eval()
    report = {
        "config": asdict(config),
        "train_accuracy_last_100_steps": correct / max(1, seen_count),
        "matching_accuracy": {
            split: _matching_accuracy(model, name, config.check_episodes, scale, episodes)
            for split, name in (("seen", "test_seen"), ("unseen", "test"))
        },
    }
    return {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}, report
