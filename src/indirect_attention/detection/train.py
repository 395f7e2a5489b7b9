"""Training of IA-DETR and its baselines on the embedded emoji benchmark (paper §6.2, Table 1).

Training episodes are rendered once at 256 px, resized by ``scale`` and cached as uint8 tensors
(``cache_dir``) so that the CPU trains instead of drawing. Each epoch visits the cached episodes in
a seeded order. With probability ``crop_queries`` a sample's query is replaced by a crop of one
object of its own target (query class or distractor) and its ground truth by the boxes of that
object's class: an easy, appearance-exact matching task, in the spirit of the authors' random-patch
pre-training stage, that makes the same target carry different answers for different queries.

Optimisation: AdamW, linear warm-up then a step decay (×0.1 at ``lr_drop``), gradient clipping,
the set loss on every decoder layer. The run directory gets ``config.json``, ``metrics.jsonl``
(one row per epoch, with validation AP50 / wrong-query control every ``eval_every`` epochs),
``checkpoint.pt`` (resumable) and ``results.json``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert
from tqdm import tqdm

from ..training import RunDir
from ..training.checkpoint import load_checkpoint, save_checkpoint
from .data import EmojiEpisodes
from .evaluate import build_eval_set, evaluate, prepare_images
from .losses import SetCriterion
from .matcher import HungarianMatcher
from .model import IADETR, DetrModelConfig

__all__ = ["DetrTrainConfig", "load_train_cache", "run"]


@dataclass
class DetrTrainConfig:
    """Options of ``ia detr train``.

    Attributes:
        out: Run directory.
        data: ``emoji``, ``voc`` or ``coco``.
        data_root: VOC year folder or COCO root (real data only).
        model: Architecture (variant, sizes, query mode).
        epochs: Passes over the cached training episodes.
        train_episodes: Cached training episodes.
        batch_size: Episodes per step.
        lr: AdamW learning rate of the transformer and heads.
        lr_backbone: Learning rate of the backbone.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps.
        lr_drop: Epoch after which the learning rate is multiplied by 0.1 (None: never).
        clip: Gradient-norm clip.
        weight_class: Focal loss weight (authors: 2).
        weight_bbox: L1 weight (authors: 5).
        weight_giou: GIoU weight (authors: 2).
        crop_queries: Fraction of samples whose query is a crop of an object of the target.
        scale: Resize factor from the rendered 256 px episodes to the model's input (emoji).
        max_size: Longer side of real targets.
        query_size: Side of real query crops.
        eval_every: Validate every this many epochs (and after the last).
        eval_episodes: Validation episodes (one draw).
        max_minutes: Stop after the epoch that crosses this wall time (None: no limit).
        threads: Torch threads.
        seed: Seed of weights, order and crops.
        resume: Continue from ``out/checkpoint.pt`` when it exists.
        cache_dir: Where rendered training episodes are cached.
        progress: Show a progress bar.
    """

    out: str = "runs/detr"
    data: str = "emoji"
    data_root: str | None = None
    model: DetrModelConfig = field(default_factory=DetrModelConfig)
    epochs: int = 8
    train_episodes: int = 3000
    batch_size: int = 16
    lr: float = 2e-4
    lr_backbone: float = 2e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    lr_drop: int | None = 7
    clip: float = 1.0
    weight_class: float = 2.0
    weight_bbox: float = 5.0
    weight_giou: float = 2.0
    crop_queries: float = 0.5
    scale: float = 0.5
    max_size: int = 512
    query_size: int = 192
    eval_every: int = 2
    eval_episodes: int = 200
    max_minutes: float | None = None
    threads: int = 1
    seed: int = 0
    resume: bool = False
    cache_dir: str = "runs/cache"
    progress: bool = True


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
    tmp = path.with_suffix(".tmp")
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


def _step_factor(step: int, epoch: int, config: DetrTrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    drop = 0.1 if config.lr_drop is not None and epoch >= config.lr_drop else 1.0
    return warm * drop


def _batches(
    config: DetrTrainConfig,
    model: IADETR,
    epoch: int,
    generator: torch.Generator,
    cache: dict[str, Tensor] | None,
):
    """The epoch's batches as (targets, padding, queries, ground truth), lazily."""
    if cache is not None:
        order = torch.randperm(len(cache["targets"]), generator=generator)
        for indices in order.split(config.batch_size):
            targets, queries, truth = make_batch(cache, indices, config.crop_queries, generator)
            yield targets, None, queries, truth
        return
    import numpy as np

    from .pairs import PairBatcher, load_real_data, training_pairs

    if config.data_root is None:
        raise ValueError(f"--data {config.data} needs --data-root")
    dataset, split = load_real_data(config.data, config.data_root, train=True)
    pairs = training_pairs(dataset, split, np.random.default_rng([config.seed, epoch]))
    batcher = PairBatcher(config.max_size, config.query_size, stride=model.backbone.stride)
    for start in range(0, len(pairs), config.batch_size):
        targets, padding, queries, truth, _ = batcher(pairs[start : start + config.batch_size])
        yield targets, padding, queries, truth


def _num_batches(config: DetrTrainConfig) -> int | None:
    if config.data == "emoji":
        return math.ceil(config.train_episodes / config.batch_size)
    return None


def run(config: DetrTrainConfig) -> dict:
    """Train one model; return the final validation results (also in ``results.json``)."""
    if config.data not in ("emoji", "voc", "coco"):
        raise ValueError(f"unknown data {config.data!r}; choose emoji, voc or coco")
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    started = time.monotonic()
    run_dir = RunDir(config.out)
    run_dir.write_config(asdict(config))
    torch.manual_seed(config.seed)
    model = IADETR(config.model, seed=config.seed)
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    optimizer = torch.optim.AdamW(
        [{"params": rest, "lr": config.lr}, {"params": backbone, "lr": config.lr_backbone}],
        weight_decay=config.weight_decay,
    )
    criterion = SetCriterion(
        HungarianMatcher(),
        weight_class=config.weight_class,
        weight_bbox=config.weight_bbox,
        weight_giou=config.weight_giou,
    )
    val, cache = None, None
    if config.data == "emoji":
        cache = load_train_cache(config.train_episodes, config.scale, config.cache_dir)
        val = build_eval_set("val", config.eval_episodes, draws=1, seed=config.seed)
    checkpoint = Path(config.out) / "checkpoint.pt"
    start_epoch, step = 0, 0
    if config.resume and checkpoint.exists():
        state = load_checkpoint(checkpoint, model, optimizer, restore_random=True)
        start_epoch, step = state["epoch"], state["step"]
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    results: dict = {}
    for epoch in range(start_epoch, config.epochs):
        model.train()
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        sums: dict[str, float] = {}
        bar = tqdm(
            _batches(config, model, epoch, generator, cache),
            total=_num_batches(config),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not config.progress,
            mininterval=5,
        )
        count = 0
        for targets, padding, queries, truth in bar:
            factor = _step_factor(step, epoch, config)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * factor
            output = model(targets, queries, padding)
            losses = criterion(output.logits, output.boxes, truth)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            step, count = step + 1, count + 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            bar.set_postfix(loss=f"{float(losses['loss'].detach()):.3f}")
        row = {k: v / max(1, count) for k, v in sums.items()}
        row.update(epoch=epoch + 1, step=step, minutes=(time.monotonic() - started) / 60)
        over_time = config.max_minutes is not None and row["minutes"] >= config.max_minutes
        last = epoch + 1 == config.epochs or over_time
        if val is not None and ((epoch + 1) % config.eval_every == 0 or last):
            results = evaluate(model, val, scale=config.scale)
            row.update(
                val_ap50=results["ap50"]["mean"],
                val_wrong=results["wrong_query"]["mean"],
                val_chance=results["chance_floor"],
            )
        run_dir.log_metrics(row)
        save_checkpoint(
            checkpoint,
            model,
            optimizer,
            epoch=epoch + 1,
            step=step,
            extra={
                "model_config": asdict(config.model),
                "scale": config.scale,
                "data": config.data,
            },
        )
        if over_time:
            break
    results["minutes"] = (time.monotonic() - started) / 60
    results["steps"] = step
    run_dir.write_results(results)
    return results
