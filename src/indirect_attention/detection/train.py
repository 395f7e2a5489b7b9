"""Training of IA-DETR and its baselines on the embedded emoji benchmark (paper §6.2, Table 1).

The data side (cached episodes, in-target query crops, real-data batches) is in :mod:`.train_data`;
one optimisation step in :mod:`.train_step`; the optional backbone stage in :mod:`.pretrain`.

Optimisation: AdamW, linear warm-up then a step decay (×0.1 at ``lr_drop``), gradient clipping,
the set loss on every decoder layer. The run directory gets ``config.json``, ``metrics.jsonl``
(one row per epoch, with validation AP50 / wrong-query control every ``eval_every`` epochs),
``checkpoint.pt`` (resumable) and ``results.json``.

Robustness (``docs/training.md``): the checkpoint is also written every ``checkpoint_every`` steps
inside an epoch, and ``resume`` restores the model, optimiser, gradient scaler, RNG states, the
data-order generator and the position within the epoch, so a resumed run skips the batches already
done and ends with the weights of an uninterrupted one. ``precision`` trains in fp32, bf16 or fp16
autocast; a step whose loss or gradient norm is not finite is skipped and counted
(``skipped_steps``). Under ``torchrun`` every process trains its slice of each global batch in
DistributedDataParallel; rank 0 alone evaluates (each validation image once) and writes files.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from ..training import RunDir
from ..training.checkpoint import load_checkpoint, save_checkpoint
from ..training.distributed import (
    DistributedContext,
    broadcast_object,
    context_from_env,
    init_distributed,
    local_main_first,
    resolve_device,
    shutdown_distributed,
    wrap_model,
)
from ..training.precision import check_precision, grad_scaler
from .evaluate import build_eval_set, evaluate
from .losses import SetCriterion
from .matcher import HungarianMatcher
from .model import IADETR, DetrModelConfig
from .pretrain import PretrainConfig, pretrained_backbone
from .train_data import epoch_batches, load_train_cache, num_batches, real_val_set
from .train_step import CHECKPOINT_NAME, load_model_weights, resume_source, train_step

__all__ = ["DetrTrainConfig", "emoji_recipe", "load_train_cache", "prepare_caches", "run"]


@dataclass
class DetrTrainConfig:
    """Options of ``ia detr train``.

    Attributes:
        out: Run directory.
        data: ``emoji``, ``voc`` or ``coco``.
        data_root: VOC year folder or COCO root (real data only); with ``train_json`` /
            ``val_json``, the folder their ``file_name`` entries are relative to (default: each
            JSON's folder).
        train_json: A COCO instances JSON of one's own to train on (``data="coco"``).
        val_json: A COCO instances JSON to validate on (unseen classes, one query draw).
        unseen_classes: Classes held out of training (default: the shipped split).
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
        resume: Run directory (its ``checkpoint.pt``) or checkpoint file to continue from:
            weights, optimiser, scaler, RNG states, epoch and batch within the epoch. When it is
            ``out`` and holds no checkpoint yet the run starts fresh (relaunch-safe).
        init_weights: Checkpoint, state dict or ``.safetensors`` file whose model weights start
            the run; optimiser and schedule start fresh.
        checkpoint_every: Also write the checkpoint every this many steps inside an epoch
            (0: at epoch ends only).
        precision: ``32``, ``bf16`` or ``fp16`` autocast (fp16 with a gradient scaler).
        device: ``auto`` (this process's GPU when CUDA exists, else the CPU), ``cpu`` or ``cuda``.
        pretrain_steps: Steps of the cached sprite-classification pre-training of the small
            backbone (:mod:`.pretrain`; emoji only); 0 starts the backbone from scratch.
        cache_dir: Where rendered training episodes are cached.
        progress: Show a progress bar.
    """

    out: str = "runs/detr"
    data: str = "emoji"
    data_root: str | None = None
    train_json: str | None = None
    val_json: str | None = None
    unseen_classes: tuple[str, ...] | None = None
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
    resume: str | None = None
    init_weights: str | None = None
    checkpoint_every: int = 100
    precision: str = "32"
    device: str = "auto"
    pretrain_steps: int = 0
    cache_dir: str = "runs/cache"
    progress: bool = True


def emoji_recipe(**overrides) -> DetrTrainConfig:
    """The tuned recipe of the embedded emoji benchmark (``ia detr train`` and Table 1 defaults).

    On top of :class:`DetrTrainConfig`'s defaults: anchor object queries (paper Definition 1,
    q_i = e_i + x_s(i), 64 on an 8 × 8 lattice), BoxRPB offsets in feature cells rather than
    pixels (the bias then starts near unit scale instead of saturating the softmax), the cached
    sprite-classification pre-training of the backbone (:mod:`.pretrain`, 2000 steps) and a
    backbone learning rate of 2e-5 (a tenth of the rest, as DETR does for a pre-trained backbone).
    ``docs/detection.md`` has the measurements behind each choice.

    Args:
        **overrides: Fields to change (``model`` replaces the whole model config).
    """
    settings: dict = {
        "model": DetrModelConfig(object_queries="anchors", num_queries=64, bias_unit="cell"),
        "pretrain_steps": 2000,
        "lr_backbone": 2e-5,
    }
    settings.update(overrides)
    return DetrTrainConfig(**settings)


def _step_factor(step: int, epoch: int, config: DetrTrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    drop = 0.1 if config.lr_drop is not None and epoch >= config.lr_drop else 1.0
    return warm * drop


def _validate(model: IADETR, val: object, config: DetrTrainConfig) -> dict:
    """The emoji protocol, or AP50 of one query draw on the real validation set's unseen
    classes (with the wrong-query control and the chance floor)."""
    if config.data == "emoji":
        return evaluate(model, val, scale=config.scale)
    from .pairs import PairBatcher, evaluate_pairs

    batcher = PairBatcher(config.max_size, config.query_size, stride=model.backbone.stride)
    dataset, split = val  # from real_val_set
    return evaluate_pairs(model, dataset, split, draws=1, seed=config.seed, batcher=batcher)


def _pretrained_state(cache: dict[str, Tensor], config: DetrTrainConfig) -> tuple[dict, dict]:
    """The cached sprite-classification stage of this run's settings (computed on a cache miss)."""
    settings = PretrainConfig(dim=config.model.dim, steps=config.pretrain_steps, seed=config.seed)
    return pretrained_backbone(
        cache, settings, scale=config.scale, cache_dir=config.cache_dir, progress=config.progress
    )


def _load_pretrained_backbone(
    model: IADETR,
    cache: dict[str, Tensor] | None,
    config: DetrTrainConfig,
    run_dir: RunDir | None,
) -> None:
    """Start the backbone from the cached sprite-classification stage (:mod:`.pretrain`)."""
    if cache is None or config.model.backbone != "small":
        raise ValueError(
            f"pretrain_steps > 0 needs --data emoji and the small backbone, got data "
            f"{config.data!r} and backbone {config.model.backbone!r}"
        )
    state, report = _pretrained_state(cache, config)
    model.backbone.load_state_dict(state)
    if run_dir is not None:  # rank 0 only
        run_dir.write_json("pretrain.json", report)


def prepare_caches(config: DetrTrainConfig) -> None:
    """Render the emoji training episodes and run the backbone pre-training into the cache, so
    that runs started side by side read them instead of each computing them (no-op otherwise)."""
    if config.data != "emoji":
        return
    cache = load_train_cache(config.train_episodes, config.scale, config.cache_dir)
    if config.pretrain_steps > 0 and config.model.backbone == "small":
        _pretrained_state(cache, config)


def run(config: DetrTrainConfig) -> dict:
    """Train one model; return the final validation results (also in ``results.json``).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this: it joins the process group,
    trains its slice of each global batch in DDP and returns rank 0's results on every rank.
    """
    if config.data not in ("emoji", "voc", "coco"):
        raise ValueError(f"unknown data {config.data!r}; choose emoji, voc or coco")
    check_precision(config.precision)
    if config.checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0, got {config.checkpoint_every}")
    if config.resume is not None and config.init_weights is not None:
        raise ValueError("give resume (which restores the weights) or init_weights, not both")
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, context_from_env())
    context = init_distributed(device_type=device.type)
    try:
        return _train(config, context, device)
    finally:
        shutdown_distributed(context)


def _train(config: DetrTrainConfig, context: DistributedContext, device: torch.device) -> dict:
    """The training of :func:`run` in one process of ``context``."""
    if config.batch_size < context.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} is the global batch; it must be at least the "
            f"number of processes, {context.world_size}"
        )
    started = time.monotonic()
    source = resume_source(config.resume, config.out)  # fail before writing anything
    run_dir = RunDir(config.out) if context.is_main else None
    if run_dir is not None:
        run_dir.write_config(asdict(config))
    torch.manual_seed(config.seed)
    model = IADETR(config.model, seed=config.seed)
    if config.init_weights is not None:
        load_model_weights(model, config.init_weights)
    model.to(device)
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    optimizer = torch.optim.AdamW(
        [{"params": rest, "lr": config.lr}, {"params": backbone, "lr": config.lr_backbone}],
        weight_decay=config.weight_decay,
    )
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    scaler = grad_scaler(config.precision, device)
    criterion = SetCriterion(
        HungarianMatcher(),
        weight_class=config.weight_class,
        weight_bbox=config.weight_bbox,
        weight_giou=config.weight_giou,
    )
    val, cache = None, None
    if config.data == "emoji":
        with local_main_first(context):  # one process per machine renders the cache
            cache = load_train_cache(config.train_episodes, config.scale, config.cache_dir)
        if context.is_main:
            val = build_eval_set("val", config.eval_episodes, draws=1, seed=config.seed)
    if config.pretrain_steps > 0 and source is None and config.init_weights is None:
        with local_main_first(context):
            _load_pretrained_backbone(model, cache, config, run_dir)
    if config.val_json is not None and context.is_main:
        val = real_val_set(config)
    generator = torch.Generator()  # the data order and crops; reseeded every epoch
    start_epoch, step, skip, progress, generator_state = 0, 0, 0, {}, None
    if source is not None:
        state = load_checkpoint(source, model, optimizer, scaler=scaler, restore_random=True)
        start_epoch, step, skip = state["epoch"], state["step"], state.get("batch", 0)
        generator_state = state.get("generators", {}).get("data_order")
        progress = state["extra"].get("progress", {})
        started -= 60.0 * progress.get("minutes", 0.0)
        if run_dir is not None:  # keep the rows up to the checkpoint, drop any written after it
            rows = RunDir(source.parent).read_metrics()
            run_dir.rewrite_metrics([row for row in rows if row.get("epoch", 0) <= start_epoch])
    ddp_model = wrap_model(model, context, device)
    checkpoint = Path(config.out) / CHECKPOINT_NAME
    extra = {
        "model_config": asdict(config.model),
        "scale": config.scale,
        "data": config.data,
        "max_size": config.max_size,
        "query_size": config.query_size,
    }
    skipped = int(progress.get("skipped_steps", 0))
    results: dict = {}
    for epoch in range(start_epoch, config.epochs):
        ddp_model.train()
        generator.manual_seed(config.seed * 1000 + epoch)
        first = skip if epoch == start_epoch else 0
        sums: dict[str, float] = dict(progress.get("sums", {})) if first else {}
        count = int(progress.get("count", 0)) if first else 0
        batches = epoch_batches(
            config,
            model,
            epoch,
            generator,
            cache,
            skip=first,
            generator_state=generator_state if first else None,
            context=context,
        )
        bar = tqdm(
            batches,
            total=num_batches(config),
            initial=first,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not (config.progress and context.is_main),
            mininterval=5,
        )
        for batch_index, batch in enumerate(bar, start=first):
            factor = _step_factor(step, epoch, config)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * factor
            result = train_step(
                ddp_model,
                criterion,
                optimizer,
                scaler,
                batch,
                clip=config.clip,
                precision=config.precision,
                device=device,
            )
            step += 1
            if result.stepped:
                count += 1
                for key, value in result.losses.items():
                    sums[key] = sums.get(key, 0.0) + value
            else:
                skipped += 1
            bar.set_postfix(loss=f"{result.losses['loss']:.3f}", skipped=skipped, refresh=False)
            due = config.checkpoint_every > 0 and step % config.checkpoint_every == 0
            if due and run_dir is not None:  # mid-epoch: a kill loses at most this many steps
                minutes = (time.monotonic() - started) / 60
                save_checkpoint(
                    checkpoint,
                    model,
                    optimizer,
                    scaler=scaler,
                    epoch=epoch,
                    step=step,
                    batch=batch_index + 1,
                    generators={"data_order": generator},
                    extra={
                        **extra,
                        "progress": {
                            "sums": sums,
                            "count": count,
                            "skipped_steps": skipped,
                            "minutes": minutes,
                        },
                    },
                )
        row = {k: v / max(1, count) for k, v in sums.items()}
        row.update(
            epoch=epoch + 1,
            step=step,
            skipped_steps=skipped,
            minutes=(time.monotonic() - started) / 60,
        )
        # Every rank must take rank 0's decision, or some would wait in a collective for ever.
        limit = config.max_minutes
        over_time = bool(broadcast_object(limit is not None and row["minutes"] >= limit))
        last = epoch + 1 == config.epochs or over_time
        if val is not None and ((epoch + 1) % config.eval_every == 0 or last):
            results = _validate(model, val, config)
            row.update(
                val_ap50=results["ap50"]["mean"],
                val_wrong=results["wrong_query"]["mean"],
                val_chance=results["chance_floor"],
            )
        if run_dir is not None:
            run_dir.log_metrics(row)
            save_checkpoint(
                checkpoint,
                model,
                optimizer,
                scaler=scaler,
                epoch=epoch + 1,
                step=step,
                extra={
                    **extra,
                    "progress": {"skipped_steps": skipped, "minutes": row["minutes"]},
                },
            )
        if over_time:
            break
    results["minutes"] = (time.monotonic() - started) / 60
    results["steps"] = step
    results["skipped_steps"] = skipped
    if run_dir is not None:
        run_dir.write_results(results)
    return broadcast_object(results)
