"""Training of IA-DETR and its baselines (paper §6.2, Table 1), on any data source.

The data (batches, validation pairs, input sizes, the defaults they imply) comes from a data
source (:mod:`.sources`, the embedded emoji benchmark by default); the epoch loop is the
task-agnostic :func:`~..training.engine.train_one_epoch`; the optional backbone stage is in
:mod:`.pretrain`.

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

**Named recipes** (:data:`RECIPES`): ``emoji`` (ours, the default) and ``paper`` (the authors').
A recipe is data: the fields it changes in the model config, the training config and the data
source, applied by :func:`recipe` on top of the data source's implied defaults and under the
options a caller gives. ``ia detr train --recipe NAME`` and ``ia detr table1 --recipe NAME`` use
it, and the run's ``config.json`` records its name (``DetrTrainConfig.recipe``). ``paper`` keeps
the emoji benchmark's backbone, sizes, pre-training and schedule and changes only what the authors
do differently (``reference/ia-detr-official.md`` §2.4, §1.4, §4.4, §5.2; the list with reasons is
in ``docs/detection.md``):

* two-stage object queries with mixed selection (:mod:`.proposals`) instead of anchor queries
  (q_i = e_i + x_s(i));
* BoxRPB offsets in input pixels instead of feature cells;
* every training query a separate image of the class (the rendered query, in another artist's
  style than the target's instances) instead of half of them crops of the target itself;
* ``double-cross`` with the authors' block of 6 target-to-query cross-attention layers and BoxRPB
  in its decoder (ours: 1 layer, no bias).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from ..training import RunDir
from ..training.distributed import (
    DistributedContext,
    broadcast_object,
    context_from_env,
    init_distributed,
    local_main_first,
    mean_normaliser,
    resolve_device,
    shutdown_distributed,
    wrap_model,
)
from ..training.engine import (
    EpochState,
    StepResult,
    load_progress,
    save_progress,
    train_one_epoch,
)
from ..training.precision import check_precision, grad_scaler
from .checkpoint import CHECKPOINT_NAME, load_model_weights, resume_source
from .evaluate import evaluate
from .losses import HungarianMatcher, SetCriterion
from .model import IADETR, DetrModelConfig, DetrOutput
from .preprocess import random_offsets
from .sources import Batch, DataSource, EmojiSource, EpochPlan, TrainingSet

__all__ = [
    "RECIPES",
    "DetrTrainConfig",
    "Recipe",
    "config_record",
    "detr_criterion",
    "detr_loss",
    "detr_optimizer",
    "get_recipe",
    "prepare_caches",
    "recipe",
    "recipe_source",
    "run",
]


@dataclass(frozen=True)
class Recipe:
    """What a named recipe changes.

    Attributes:
        name: Its name (``--recipe``).
        model: :class:`~.model.DetrModelConfig` fields.
        train: :class:`~.train.DetrTrainConfig` fields.
        data: Data-source options, applied to the sources that have them.
    """

    name: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    "emoji": Recipe("emoji"),
    "paper": Recipe(
        "paper",
        model={
            "object_queries": "two-stage",
            "bias_unit": "pixel",
            "fusion_layers": 6,
            "fused_bias": True,
        },
        data={"crop_queries": 0.0},  # the real-data sources already take queries from other images
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_source(name: str, source_type: type[DataSource], **options: Any) -> DataSource:
    """A data source of ``source_type`` with the recipe's data options, then ``options``.

    Args:
        name: The recipe.
        source_type: The data source class.
        **options: The source's options given by the caller; they win over the recipe's.
    """
    names = {f.name for f in fields(source_type)}
    implied = {key: value for key, value in get_recipe(name).data.items() if key in names}
    return source_type(**{**implied, **options})


def _emoji_model() -> DetrModelConfig:
    return DetrModelConfig(object_queries="anchors", num_queries=64, bias_unit="cell")


@dataclass
class DetrTrainConfig:
    """Options of ``ia detr train``; the defaults are the tuned recipe of the emoji benchmark.

    On top of :class:`DetrModelConfig`'s defaults: anchor object queries (paper Definition 1,
    q_i = e_i + x_s(i), 64 on an 8 × 8 lattice), BoxRPB offsets in feature cells rather than
    pixels (the bias then starts near unit scale instead of saturating the softmax), the cached
    sprite-classification pre-training of the backbone (:mod:`.pretrain`, 2000 steps) and a
    backbone learning rate of 2e-5 (a tenth of the rest, as DETR does for a pre-trained backbone).
    ``docs/detection.md`` has the measurements behind each choice; :func:`recipe` gives the
    defaults another data source implies.

    Attributes:
        out: Run directory.
        data: The data source (its options: files, sizes, caches).
        model: Architecture (kind, sizes, query mode).
        epochs: Passes over the training data.
        batch_size: Pairs per step (the global batch).
        lr: AdamW learning rate of the transformer and heads.
        lr_backbone: Learning rate of the backbone.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps.
        lr_drop: Epoch after which the learning rate is multiplied by 0.1 (None: never).
        clip: Gradient-norm clip.
        weight_class: Focal loss weight (authors: 2).
        weight_bbox: L1 weight (authors: 5).
        weight_giou: GIoU weight (authors: 2).
        eval_every: Validate every this many epochs (and after the last).
        eval_episodes: Validation targets (one query draw).
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
        pretrain_steps: Steps of the backbone pre-training stage of the data source (the emoji
            benchmark's cached sprite classification, :mod:`.pretrain`); 0 starts the backbone
            from scratch.
        progress: Show a progress bar.
        recipe: Name of the recipe (:data:`RECIPES`) the config was built from, a record for
            ``config.json``; :func:`recipe` sets it, nothing reads it.
        random_query_placement: Put each training query at a random feature cell of the key
            canvas (drawn from ``(seed, step)``, so a resumed run draws the same cells) instead
            of the authors' top-left corner.
    """

    out: str = "runs/detr"
    data: DataSource = field(default_factory=EmojiSource)
    model: DetrModelConfig = field(default_factory=_emoji_model)
    epochs: int = 8
    batch_size: int = 16
    lr: float = 2e-4
    lr_backbone: float = 2e-5
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    lr_drop: int | None = 7
    clip: float = 1.0
    weight_class: float = 2.0
    weight_bbox: float = 5.0
    weight_giou: float = 2.0
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
    pretrain_steps: int = 2000
    progress: bool = True
    recipe: str = "emoji"
    random_query_placement: bool = False


def recipe(
    data: DataSource | None = None,
    *,
    name: str = "emoji",
    model: dict[str, Any] | None = None,
    **overrides: Any,
) -> DetrTrainConfig:
    """The training recipe for ``data``: its implied defaults (:meth:`.DataSource.recipe`), then
    the named recipe's changes (:data:`RECIPES`), then ``overrides``. ``recipe()`` is
    ``DetrTrainConfig()``, and ``ia detr train`` trains ``recipe(source, name=--recipe, **flags
    given)``.

    Unless given, the backbone learning rate is a tenth of ``lr`` for a pre-trained backbone
    (``pretrain_steps > 0`` or ``backbone_weights``) and ``lr`` otherwise.

    Args:
        data: The data source, used as given (default: the emoji benchmark with the recipe's
            data options; :func:`recipe_source` builds a source with them).
        name: The named recipe: ``emoji`` (ours) or ``paper`` (the authors' choices).
        model: ``DetrModelConfig`` fields to change.
        **overrides: ``DetrTrainConfig`` fields to change.
    """
    named = get_recipe(name)
    data = data or recipe_source(name, EmojiSource)
    implied = data.recipe()
    model_fields = {**implied.pop("model", {}), **named.model, **(model or {})}
    settings = {**implied, **named.train, **overrides, "recipe": name}
    base = DetrTrainConfig()
    if "lr_backbone" not in settings:
        lr = settings.get("lr", base.lr)
        pretrained = settings.get("pretrain_steps", base.pretrain_steps) > 0
        pretrained = pretrained or model_fields.get("backbone_weights") is not None
        settings["lr_backbone"] = lr / 10 if pretrained else lr
    return DetrTrainConfig(data=data, model=replace(base.model, **model_fields), **settings)


def config_record(config: DetrTrainConfig) -> dict[str, Any]:
    """``config`` as JSON-ready values; ``data`` names the source, ``data_options`` its fields."""
    return {**asdict(config), "data": config.data.name, "data_options": asdict(config.data)}


def _step_factor(step: int, epoch: int, config: DetrTrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    drop = 0.1 if config.lr_drop is not None and epoch >= config.lr_drop else 1.0
    return warm * drop


def prepare_caches(config: DetrTrainConfig) -> None:
    """Load (render) the training data and run the backbone pre-training into the cache, so that
    runs started side by side read them instead of each computing them."""
    training = config.data.training_set(seed=config.seed, progress=config.progress)
    if config.pretrain_steps > 0:
        _pretrained_state(training, config)


def _pretrained_state(training: TrainingSet, config: DetrTrainConfig) -> tuple[dict, dict]:
    return training.pretrained_backbone(
        dim=config.model.dim,
        backbone=config.model.backbone,
        steps=config.pretrain_steps,
        seed=config.seed,
        progress=config.progress,
    )


def _where(data: DataSource) -> str:
    """The files a data source reads, for messages."""
    named = [
        f"{k} {getattr(data, k)}" for k in ("train_json", "data_root") if getattr(data, k, None)
    ]
    return ", ".join(named) or "its default files"


def run(config: DetrTrainConfig) -> dict:
    """Train one model; return the final validation results (also in ``results.json``).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this: it joins the process group,
    trains its slice of each global batch in DDP and returns rank 0's results on every rank.
    """
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


@dataclass
class _Run:
    """What one process of a training run holds."""

    config: DetrTrainConfig
    context: DistributedContext
    device: torch.device
    model: IADETR
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    run_dir: RunDir | None
    started: float

    def save(self, state: EpochState, *, generator: torch.Generator | None = None) -> None:
        """The checkpoint: mid-epoch (with the data-order ``generator``) or at an epoch end."""
        extra = {
            "model_config": asdict(self.config.model),
            "input_spec": asdict(self.model.input_spec),
            "data": self.config.data.name,
        }
        minutes = (time.monotonic() - self.started) / 60
        path = Path(self.config.out) / CHECKPOINT_NAME
        save_progress(
            path,
            self.model,
            self.optimizer,
            self.scaler,
            state,
            minutes=minutes,
            generator=generator,
            extra=extra,
        )


def _build(config: DetrTrainConfig, context: DistributedContext, device: torch.device) -> _Run:
    """Model, optimiser and scaler of a fresh run (weights seeded by ``config.seed``)."""
    if config.batch_size < context.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} is the global batch; it must be at least the "
            f"number of processes, {context.world_size}"
        )
    started = time.monotonic()
    run_dir = None  # created with config.json once the model, weights and data are checked
    torch.manual_seed(config.seed)
    model = IADETR(config.model, input_spec=config.data.input_spec(), seed=config.seed)
    if config.init_weights is not None:
        load_model_weights(model, config.init_weights)
    model.to(device)
    optimizer = detr_optimizer(model, config)
    scaler = grad_scaler(config.precision, device)
    return _Run(config, context, device, model, optimizer, scaler, run_dir, started)


def detr_criterion(config: DetrTrainConfig) -> SetCriterion:
    """The set criterion (Hungarian matching, focal class loss, L1 and GIoU box losses) with
    ``config``'s loss weights."""
    return SetCriterion(
        HungarianMatcher(),
        weight_class=config.weight_class,
        weight_bbox=config.weight_bbox,
        weight_giou=config.weight_giou,
    )


def detr_optimizer(model: IADETR, config: DetrTrainConfig) -> torch.optim.AdamW:
    """DETR's two groups: the backbone at ``lr_backbone``, the rest at ``lr``; weight decay on
    every parameter."""

    def params(*, backbone: bool) -> list[torch.nn.Parameter]:
        return [p for n, p in model.named_parameters() if n.startswith("backbone.") == backbone]

    return torch.optim.AdamW(
        [
            {"params": params(backbone=False), "lr": config.lr},
            {"params": params(backbone=True), "lr": config.lr_backbone},
        ],
        weight_decay=config.weight_decay,
    )


def _train(config: DetrTrainConfig, context: DistributedContext, device: torch.device) -> dict:
    """The training of :func:`run` in one process of ``context``."""
    source = resume_source(config.resume, config.out)  # fail before writing anything
    run = _build(config, context, device)
    with local_main_first(context):  # one process per machine renders a cache
        training = config.data.training_set(seed=config.seed, progress=config.progress)
    if training.num_batches(config.batch_size) == 0:
        raise ValueError(
            f"the training data of --data {config.data.name} ({_where(config.data)}) holds no "
            "trainable pairs (an image "
            "with an object of a seen class, and a query of that class from another image); "
            "expected at least one"
        )
    val = None
    if context.is_main:
        val = config.data.eval_pairs("val", count=config.eval_episodes, draws=1, seed=config.seed)
        if val is not None and not any(val.right):
            raise ValueError(
                f"the validation data of --data {config.data.name} holds no evaluation pairs; "
                "expected at least one (or leave out the validation data)"
            )
    if context.is_main:
        run.run_dir = RunDir(config.out)
        run.run_dir.write_config(config_record(config))
    if config.pretrain_steps > 0 and source is None and config.init_weights is None:
        with local_main_first(context):
            state, report = _pretrained_state(training, config)
        run.model.backbone.load_state_dict(state)
        if run.run_dir is not None:  # rank 0 only
            run.run_dir.write_json("pretrain.json", report)
    base_lrs = [group["lr"] for group in run.optimizer.param_groups]  # before any resume
    state, generator_state = EpochState(epoch=0, step=0), None
    if source is not None:
        state, minutes, generator_state = load_progress(
            source, run.model, run.optimizer, run.scaler
        )
        run.started -= 60.0 * minutes
        if run.run_dir is not None:  # keep the rows up to the checkpoint, drop any after it
            rows = RunDir(source.parent).read_metrics()
            run.run_dir.rewrite_metrics([r for r in rows if r.get("epoch", 0) <= state.epoch])
    ddp_model = wrap_model(run.model, context, device)
    criterion = detr_criterion(config)
    results: dict = {}
    for epoch in range(state.epoch, config.epochs):
        if epoch > state.epoch or state.batch == 0:
            state = EpochState(epoch=epoch, step=state.step, skipped=state.skipped)
        _train_epoch(run, ddp_model, criterion, training, state, generator_state, base_lrs)
        generator_state = None
        row = {**state.means(), "epoch": epoch + 1, "step": state.step}
        row.update(skipped_steps=state.skipped, minutes=(time.monotonic() - run.started) / 60)
        # Every rank must take rank 0's decision, or some would wait in a collective for ever.
        limit = config.max_minutes
        over_time = bool(broadcast_object(limit is not None and row["minutes"] >= limit))
        last = epoch + 1 == config.epochs or over_time
        if val is not None and ((epoch + 1) % config.eval_every == 0 or last):
            results = evaluate(run.model, val)
            row.update(
                val_ap50=results["ap50"]["mean"],
                val_wrong=results["wrong_query"]["mean"],
                val_matching_auc=results["matching_auc"]["mean"],
                val_oracle_boxes=results["oracle_boxes"],
            )
        if run.run_dir is not None:
            run.run_dir.log_metrics(row)
            run.save(state)
        if over_time:
            break
    minutes = (time.monotonic() - run.started) / 60
    results.update(minutes=minutes, steps=state.step, skipped_steps=state.skipped)
    if run.run_dir is not None:
        run.run_dir.write_results(results)
    return broadcast_object(results)


def _train_epoch(
    run: _Run,
    ddp_model: torch.nn.Module,
    criterion: SetCriterion,
    training: TrainingSet,
    state: EpochState,
    generator_state: Tensor | None,
    base_lrs: list[float],
) -> None:
    """One epoch of :func:`~..training.engine.train_one_epoch` on the data source's batches."""
    config, device = run.config, run.device
    generator = torch.Generator()  # the data order and crops; reseeded every epoch
    generator.manual_seed(config.seed * 1000 + state.epoch)
    plan = EpochPlan(
        epoch=state.epoch,
        batch_size=config.batch_size,
        generator=generator,
        stride=run.model.backbone.stride,
        skip=state.batch,
        generator_state=generator_state,
        context=run.context,
    )
    bar = tqdm(
        training.batches(plan),
        total=training.num_batches(config.batch_size),
        initial=state.batch,
        desc=f"epoch {state.epoch + 1}/{config.epochs}",
        disable=not (config.progress and run.context.is_main),
        mininterval=5,
    )

    def after_step(state: EpochState, result: StepResult) -> None:
        bar.set_postfix(loss=f"{result.losses['loss']:.3f}", skipped=state.skipped, refresh=False)
        due = config.checkpoint_every > 0 and state.step % config.checkpoint_every == 0
        if due and run.run_dir is not None:  # mid-epoch: a kill loses at most this many steps
            run.save(state, generator=generator)

    def loss(output: DetrOutput, batch: Batch) -> dict[str, Tensor]:
        truth = [t.to(device) for t in batch[3]]
        # DDP averages gradients over ranks: divide by the global box count / world size.
        num_boxes = mean_normaliser(sum(int(t.shape[0]) for t in truth), device=device)
        return detr_loss(criterion, output, truth, num_boxes=num_boxes)

    def placement(batch: Batch) -> Tensor | None:
        if not config.random_query_placement:
            return None
        cells = torch.Generator().manual_seed(config.seed * 1_000_003 + state.step)
        stride = run.model.backbone.stride
        return random_offsets(batch[0].shape, batch[2].shape, stride, cells)

    ddp_model.train()
    train_one_epoch(
        ddp_model,
        run.optimizer,
        run.scaler,
        bar,
        state,
        forward=partial(_forward, device=device, placement=placement),
        loss=loss,
        clip=config.clip,
        precision=config.precision,
        device=device,
        lr_factor=partial(_step_factor, config=config),
        base_lrs=base_lrs,
        after_step=after_step,
    )


def detr_loss(
    criterion: SetCriterion,
    output: DetrOutput,
    truth: list[Tensor],
    *,
    num_boxes: float | None = None,
) -> dict[str, Tensor]:
    """The training loss: the set loss of every decoder layer and, when the model has two-stage
    queries, the proposals' own set loss (Hungarian-matched over all N proposals, the same
    weights), added to ``loss`` and logged as ``proposal_loss``.

    Shapes:
        output.logits (Ly, B, Q), output.boxes (Ly, B, Q, 4), output.proposal_logits (B, N),
        output.proposal_boxes (B, N, 4), truth list of B (K_b, 4) cxcywh.
    """
    losses = criterion(output.logits, output.boxes, truth, num_boxes=num_boxes)
    if output.proposal_logits is not None and output.proposal_boxes is not None:
        proposals = criterion(
            output.proposal_logits[None], output.proposal_boxes[None], truth, num_boxes=num_boxes
        )
        losses["loss"] = losses["loss"] + proposals["loss"]
        losses["proposal_loss"] = proposals["loss"].detach()
    return losses


def _forward(
    model: torch.nn.Module,
    batch: Batch,
    *,
    device: torch.device,
    placement: Callable[[Batch], Tensor | None],
) -> DetrOutput:
    targets, padding, queries, _ = batch
    padding = None if padding is None else padding.to(device)
    return model(targets.to(device), queries.to(device), padding, placement(batch))
