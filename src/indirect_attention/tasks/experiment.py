"""Train every model × seed on one synthetic task and write the run records (paper §6.1, Fig. 2, 4).

For each seed s the data, the parameter initialisation, dropout and the batch order are functions of
s alone, so every model sees the same pairs and the same batches. All models share the optimiser
(AdamW, no decay on norms and biases), the warm-up + cosine schedule, clipping and the budget.

Writes under ``out``: ``config.json``, ``metrics.jsonl`` (one row per epoch, model and seed),
``results.json``, ``figure2.png`` and, for retrieval with the ``indirect`` model,
``bias_maps.json`` and ``figure4.png``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..training import (
    RunDir,
    build_adamw,
    classification_step,
    evaluate,
    isolated_rng,
    iterate_minibatches,
    make_generator,
    take,
    warmup_cosine_factor,
)
from ..training.engine import EpochState, StepResult, train_one_epoch
from ..training.precision import grad_scaler
from . import lookup, retrieval, sorting
from .models import KINDS, ModelConfig, TwoSequenceModel
from .pairs import SequencePairs

__all__ = ["TASKS", "SyntheticConfig", "run", "train_one"]

TASKS = ("sort", "retrieval", "lookup")

# Peak learning rates chosen by equal-effort tuning (grid {1e-3, 3e-3}, tuning seed 100, 20 epochs,
# pointer readout; docs/results.md); the ablations inherit the indirect model's rate.
TUNED_LRS = {
    "sort": dict.fromkeys(KINDS, 3e-3),
    "retrieval": {
        "indirect": 3e-3,
        "naive": 1e-3,
        "cross": 1e-3,
        "indirect-nobias-update": 3e-3,
        "indirect-noenrich": 3e-3,
    },
}


@dataclass
class SyntheticConfig:
    """Options of ``ia synthetic``.

    Attributes:
        task: ``sort``, ``retrieval`` or ``lookup`` (the misalignment variant).
        models: Model kinds to train (see :data:`indirect_attention.tasks.models.KINDS`).
        seeds: Number of seeds; seed s in ``seed_base .. seed_base + seeds - 1``.
        seed_base: First seed.
        epochs: Training epochs per model and seed.
        lr: Peak learning rate of every model unless ``model_lrs`` names it; None takes the
            tuned rate of :data:`TUNED_LRS` (1e-3 where the task has none).
        model_lrs: Per-model peak learning rates (from equal-effort tuning).
        batch_size: Minibatch size.
        weight_decay: AdamW weight decay on matrices.
        warmup_epochs: Linear warm-up before the cosine decay.
        clip_norm: Gradient clipping norm.
        model: Model sizes.
        readout: Retrieval readout, ``pointer`` or ``pool``.
        offset: Lookup misalignment offset.
        lookup_cross_queries: Lookup only: the sequence that gives the cross model its queries,
            ``conditioning`` or ``content``.
        num_train: Training pairs.
        num_test: Test pairs.
        out: Output directory.
        progress: Show a progress bar.
    """

    task: str = "sort"
    models: tuple[str, ...] = ("indirect", "naive", "cross")
    seeds: int = 3
    seed_base: int = 0
    epochs: int = 20
    lr: float | None = None
    model_lrs: dict[str, float] = field(default_factory=dict)
    batch_size: int = 64
    weight_decay: float = 0.01
    warmup_epochs: int = 3
    clip_norm: float = 1.0
    model: ModelConfig = field(default_factory=ModelConfig)
    readout: str = "pointer"
    offset: int = 0
    lookup_cross_queries: str = "conditioning"
    num_train: int = 1000
    num_test: int = 200
    out: str = "runs/synthetic"
    progress: bool = True


def _task(config: SyntheticConfig) -> tuple[Any, Any]:
    """The task module and its config."""
    sizes = {"num_train": config.num_train, "num_test": config.num_test}
    if config.task == "sort":
        return sorting, sorting.SortingConfig(**sizes)
    if config.task == "retrieval":
        return retrieval, retrieval.RetrievalConfig(readout=config.readout, **sizes)
    if config.task == "lookup":
        return lookup, lookup.LookupConfig(
            offset=config.offset, cross_queries=config.lookup_cross_queries, **sizes
        )
    raise ValueError(f"task must be one of {TASKS}, got {config.task!r}")


def _forward(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return model(batch["conditioning"], batch["content"])


def _step(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, int]:
    return classification_step(_forward(model, batch), batch["labels"])


def _loss(logits: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The engine's losses: the mean cross-entropy, and the counts behind the accuracy."""
    loss, correct, count = classification_step(logits, batch["labels"])
    return {"loss": loss, "correct": correct.detach().float(), "count": torch.tensor(float(count))}


def train_one(
    model: TwoSequenceModel,
    train: SequencePairs,
    test: SequencePairs,
    config: SyntheticConfig,
    *,
    seed: int,
    lr: float,
    on_epoch: Any = None,
) -> list[dict[str, float]]:
    """Train ``model`` for ``config.epochs`` with the shared engine; one metrics row per epoch.

    Each step goes through :func:`indirect_attention.training.train_one_epoch` (the engine the
    detector trains with): a per-step warm-up + cosine learning rate, clipping, and a skipped
    step on a non-finite loss. ``on_epoch(row)`` is called after each epoch (e.g. to log and
    advance a progress bar).
    """
    optimizer = build_adamw(model, lr=lr, weight_decay=config.weight_decay)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    steps_per_epoch = -(-len(train) // config.batch_size)
    warmup, total = config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch
    device = next(model.parameters()).device
    scaler = grad_scaler("32", device)
    batches = make_generator(seed + 1)
    train_data, test_data = train.as_dict(), test.as_dict()
    rows, step = [], 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        start = time.perf_counter()
        sums = {"loss": 0.0, "correct": 0.0, "count": 0.0}

        def tally(_: EpochState, result: StepResult, sums: dict[str, float] = sums) -> None:
            # weighted by the batch size, as the epoch's mean over examples
            sums["loss"] += result.losses["loss"] * result.losses["count"]
            sums["correct"] += result.losses["correct"]
            sums["count"] += result.losses["count"]

        order = iterate_minibatches(len(train), config.batch_size, generator=batches)
        state = train_one_epoch(
            model,
            optimizer,
            scaler,
            (take(train_data, index) for index in order),
            EpochState(epoch=epoch - 1, step=step),
            forward=_forward,
            loss=_loss,
            clip=config.clip_norm,
            precision="32",
            device=device,
            lr_factor=lambda step, _: warmup_cosine_factor(
                step, warmup_steps=warmup, total_steps=total
            ),
            base_lrs=base_lrs,
            after_step=tally,
        )
        step = state.step
        seconds = time.perf_counter() - start
        check = evaluate(model, test_data, _step)
        row = {
            "epoch": epoch,
            "train_loss": sums["loss"] / sums["count"],
            "train_acc": sums["correct"] / sums["count"],
            "test_loss": check.loss,
            "test_acc": check.accuracy,
            "seconds": seconds + check.seconds,
            "train_seconds": seconds,
            "skipped_steps": state.skipped,
        }
        rows.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return rows


def _summary(per_seed: list[dict[str, Any]], seconds: list[float]) -> dict[str, Any]:
    finals = [row["final_test_acc"] for row in per_seed]
    bests = [row["best_test_acc"] for row in per_seed]
    std = statistics.stdev(finals) if len(finals) > 1 else 0.0
    return {
        "final_test_acc_mean": statistics.fmean(finals),
        "final_test_acc_std": std,
        "best_test_acc_mean": statistics.fmean(bests),
        "best_test_acc_std": statistics.stdev(bests) if len(bests) > 1 else 0.0,
        "per_seed": per_seed,
        "seconds_per_epoch": statistics.fmean(seconds),
    }


@torch.no_grad()
def bias_maps(model: TwoSequenceModel, test: SequencePairs, *, count: int = 4) -> dict[str, Any]:
    """Position bias per layer and head for the first ``count`` test pairs (paper Figure 4).

    Returns:
        ``{"examples": [{"conditioning", "content", "label", "bias": [Ly][H][Lq][Lk],
        "references": [Ly + 1][Lq]}]}``.
    """
    model.eval()
    decoded = model.decode(test.conditioning[:count], test.content[:count], return_maps=True)
    if decoded.bias is None:
        raise ValueError(f"model {model.kind!r} has no position bias to draw")
    examples = []
    for index in range(min(count, len(test))):
        examples.append(
            {
                "conditioning": test.conditioning[index].tolist(),
                "content": test.content[index].tolist(),
                "label": test.labels[index].tolist(),
                "bias": decoded.bias[:, index].tolist(),  # (Ly, H, Lq, Lk)
                "references": decoded.references[:, index, :, 0].tolist(),  # (Ly + 1, Lq)
            }
        )
    return {"model": model.kind, "examples": examples}


def run(config: SyntheticConfig) -> dict[str, Any]:
    """Train every model × seed, write the records and figures, return ``results.json``'s dict.

    The run starts afresh: a ``metrics.jsonl`` already in ``config.out`` is replaced.
    """
    from ..plots.figure2 import draw_figure2
    from ..plots.figure4 import draw_figure4

    unknown = [kind for kind in config.models if kind not in KINDS]
    if unknown or not config.models:
        raise ValueError(f"models must be a non-empty subset of {KINDS}, got {config.models}")
    if config.seeds <= 0 or config.epochs <= 0:
        raise ValueError(f"seeds and epochs must be positive, got {config.seeds}, {config.epochs}")
    module, task_config = _task(config)
    run_dir = RunDir(config.out)
    run_dir.metrics_path.unlink(missing_ok=True)
    run_dir.write_config({**asdict(config), "task_config": asdict(task_config)})
    total = len(config.models) * config.seeds * config.epochs
    bar = _progress(total, enabled=config.progress)
    start = time.perf_counter()
    per_model: dict[str, tuple[list, list]] = {kind: ([], []) for kind in config.models}
    references: list[dict[str, Any]] = []
    for seed in range(config.seed_base, config.seed_base + config.seeds):
        train, test = module.generate(task_config, generator=make_generator(seed))
        for kind in config.models:
            default = TUNED_LRS.get(config.task, {}).get(kind, 1e-3)
            lr = config.model_lrs.get(kind, default if config.lr is None else config.lr)

            def log(row: dict[str, float], kind: str = kind, seed: int = seed) -> None:
                run_dir.log_metrics({"task": config.task, "model": kind, "seed": seed, **row})
                bar.update(1)
                bar.set_postfix(model=kind, seed=seed, test=f"{row['test_acc']:.3f}")

            with isolated_rng(seed):
                model = module.build_model(kind, task_config, config.model)
                rows = train_one(model, train, test, config, seed=seed, lr=lr, on_epoch=log)
            tests = [row["test_acc"] for row in rows]
            per_model[kind][0].append(
                {
                    "seed": seed,
                    "lr": lr,
                    "final_test_acc": tests[-1],
                    "best_test_acc": max(tests),
                    "best_epoch": 1 + tests.index(max(tests)),
                    "final_train_acc": rows[-1]["train_acc"],
                    "curve": tests,
                }
            )
            if config.task == "lookup" and model.uses_references:
                for layer in lookup.reference_errors(model, test, task_config):
                    references.append({"model": kind, "seed": seed, **layer})
            per_model[kind][1].extend(row["seconds"] for row in rows)
            if config.task == "retrieval" and kind == "indirect" and seed == config.seed_base:
                run_dir.write_json("bias_maps.json", bias_maps(model, test))
    bar.close()
    results = {
        "task": config.task,
        "value_positions": config.model.value_positions,
        "models": {kind: _summary(*per_model[kind]) for kind in config.models},
        "epochs": config.epochs,
        "seconds_total": time.perf_counter() - start,
    }
    run_dir.write_results(results)
    if references:
        run_dir.write_json("references.json", {"offset": config.offset, "rows": references})
    draw_figure2([run_dir.root], run_dir.root / "figure2.png")
    if (run_dir.root / "bias_maps.json").exists():
        draw_figure4(run_dir.root / "bias_maps.json", run_dir.root / "figure4.png")
    return results


class _NoBar:
    def update(self, _: int) -> None:
        pass

    def set_postfix(self, **_: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, *, enabled: bool) -> Any:
    """A tqdm bar when tqdm is installed and ``enabled``; otherwise a silent stand-in."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="synthetic", unit="epoch", dynamic_ncols=True)
