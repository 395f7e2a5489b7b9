"""The synthetic parts of ``ia reproduce``: sorting, retrieval, marked lookup, width/depth sweep.

Every comparison is paired: for a seed s all models see the same data and batches (see
:func:`indirect_attention.tasks.run`), and the ablations run on the same seeds as the models they
ablate, so the report can compare models on per-seed differences.

Each task runs in two settings (``ModelConfig.value_positions``):

* **without value position codes** (the part's top-level records, the headline): keys and
  queries carry positions, values do not, so only the bias can say where a value sits. This is
  the setting the paper's argument (§4-5) is about.
* **with value position codes** (``value-positions/``): a value tells its own position, so naive
  attention can read *where* it looked from the value itself (the set-up of earlier runs).

Learning rates are chosen per model on a tuning seed that no reported number uses (its held-out
pairs act as the validation split), by the same grid for every model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..plots.figure2 import draw_figure2
from ..plots.lookup import draw_lookup, draw_references, draw_scaling
from ..tasks import ModelConfig, SyntheticConfig
from ..tasks import run as run_synthetic
from ..training import RunDir
from .config import ReproduceConfig
from .profiles import ProfileSettings

__all__ = ["ABLATIONS", "LOOKUP_MODELS", "MODELS", "lookup", "scaling", "synthetic", "tune"]

#: The three models of paper §6.1 and the two ablations of the indirect model.
MODELS = ("indirect", "naive", "cross")
ABLATIONS = ("indirect-nobias-update", "indirect-noenrich")
#: The marked-lookup comparison: the mechanism, the two baselines, the update ablated, and the
#: update g that can point at an absolute position.
LOOKUP_MODELS = ("indirect", "indirect-pointer", "indirect-nobias-update", "naive", "cross")
#: Sub-folder of the setting whose values carry position codes.
WITH_POSITIONS = "value-positions"


def _settings(config: ReproduceConfig) -> ProfileSettings:
    if config.settings is None:
        raise ValueError("config.settings is None: run parts through reproduce.run()")
    return config.settings


def _model(base: ModelConfig, *, value_positions: bool) -> ModelConfig:
    return replace(base, value_positions=value_positions)


def _run_once(config: SyntheticConfig) -> dict[str, Any]:
    """Train as :func:`indirect_attention.tasks.run`, unless ``config.out`` already holds the
    finished run of this very config (a part killed midway resumes from its finished runs)."""
    folder = Path(config.out)
    if (folder / "results.json").exists() and (folder / "config.json").exists():
        stored = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        stored.pop("task_config", None)
        if stored == json.loads(json.dumps(asdict(config))):
            return json.loads((folder / "results.json").read_text(encoding="utf-8"))
    return run_synthetic(config)


def synthetic(task: str) -> Callable[[ReproduceConfig, RunDir], dict[str, Any]]:
    """§6.1, Figures 2 and 4: the three models and the two ablations, both value settings."""

    def part(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
        settings = _settings(config)
        summary: dict[str, Any] = {}
        for value_positions in (False, True):
            root = run_dir.root / WITH_POSITIONS if value_positions else run_dir.root
            common = SyntheticConfig(
                task=task,
                seed_base=config.seed,
                seeds=settings.synthetic_seeds,
                epochs=settings.synthetic_epochs,
                progress=config.progress,
                **settings.synthetic,
            )
            common = replace(common, model=_model(common.model, value_positions=value_positions))
            models, ablated = MODELS, ABLATIONS
            if value_positions and settings.synthetic_models_with_positions:
                chosen = settings.synthetic_models_with_positions
                models = tuple(m for m in MODELS if m in chosen)
                ablated = tuple(m for m in ABLATIONS if m in chosen)
            main = _run_once(replace(common, models=models, out=str(root)))
            folder = root / "ablations"
            ablations = (
                _run_once(replace(common, models=ablated, out=str(folder)))
                if ablated
                else {"models": {}}
            )
            draw_figure2([[root, folder] if ablated else root], root / "figure2.png")
            key = WITH_POSITIONS if value_positions else "no-value-positions"
            summary[key] = {
                name: m["final_test_acc_mean"]
                for name, m in {**main["models"], **ablations["models"]}.items()
            }
        return {"final_test_acc_mean": summary}

    part.__doc__ = f"§6.1: the {task} task, three models and two ablations, both value settings."
    return part


def tune(
    base: SyntheticConfig, models: tuple[str, ...], grid: tuple[float, ...], runs: Path
) -> dict[str, Any]:
    """Pick each model's peak learning rate on a tuning seed: the best held-out accuracy.

    ``base.seed_base`` is the tuning seed; its held-out pairs are the validation split (no
    reported number uses this seed). Every model gets the same grid; the runs go under ``runs``.

    Returns:
        ``{"seed", "grid", "rows": [{"model", "lr", "val_acc", "value_positions", "offset"}],
        "chosen": {model: lr}}``.
    """
    rows = []
    for lr in grid:
        results = _run_once(
            replace(base, models=models, seeds=1, lr=lr, model_lrs={}, out=str(runs / f"lr-{lr:g}"))
        )
        for name, model in results["models"].items():
            rows.append(
                {
                    "model": name,
                    "lr": lr,
                    "val_acc": model["final_test_acc_mean"],
                    "value_positions": base.model.value_positions,
                    "offset": base.offset,
                }
            )
    chosen = {
        name: max((r for r in rows if r["model"] == name), key=lambda r: r["val_acc"])["lr"]
        for name in models
    }
    return {"seed": base.seed_base, "grid": list(grid), "rows": rows, "chosen": chosen}


def _lookup_base(config: ReproduceConfig, settings: ProfileSettings) -> SyntheticConfig:
    return SyntheticConfig(
        task="lookup",
        seed_base=config.seed,
        seeds=settings.lookup_seeds,
        epochs=settings.lookup_epochs,
        batch_size=settings.lookup_batch_size,
        warmup_epochs=1,
        model=ModelConfig(**settings.lookup_model),
        num_train=settings.lookup_train,
        num_test=settings.lookup_test,
        progress=config.progress,
    )


def lookup(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
    """Marked lookup with offsets 0..3 (the misalignment), five models, both value settings.

    Writes ``tuning.json``, ``offset-{s}/`` and ``offset-{s}/value-positions/`` (run records),
    ``references.json`` (every layer's references against the read position m + s) and the
    figures ``lookup.png`` and ``references.png``.
    """
    settings = _settings(config)
    base = _lookup_base(config, settings)
    tuning = replace(
        base,
        seed_base=settings.tuning_seed,
        offset=settings.lookup_tuning_offset,
        model=_model(base.model, value_positions=False),
    )
    tuned = tune(tuning, LOOKUP_MODELS, settings.lr_grid, run_dir.root / "tuning")
    run_dir.write_json("tuning.json", tuned)
    lrs = tuned["chosen"]
    references, summary = [], {}
    # The headline setting first, every offset; then the setting with value position codes.
    for value_positions in (False, True):
        for offset in settings.lookup_offsets:
            if value_positions and offset not in (
                settings.lookup_offsets_with_positions or settings.lookup_offsets
            ):
                continue
            folder = run_dir.root / f"offset-{offset}"
            folder = folder / WITH_POSITIONS if value_positions else folder
            models = LOOKUP_MODELS
            if value_positions and settings.lookup_models_with_positions:
                models = settings.lookup_models_with_positions
            results = _run_once(
                replace(
                    base,
                    models=models,
                    offset=offset,
                    model_lrs=lrs,
                    model=_model(base.model, value_positions=value_positions),
                    out=str(folder),
                )
            )
            layers = json.loads((folder / "references.json").read_text(encoding="utf-8"))
            for row in layers["rows"]:
                references.append({"value_positions": value_positions, "offset": offset, **row})
            summary[f"{folder.relative_to(run_dir.root)}"] = {
                name: m["final_test_acc_mean"] for name, m in results["models"].items()
            }
    run_dir.write_json("references.json", {"rows": references})
    run_dir.write_config({"part": "synthetic_lookup", "base": asdict(base), "lrs": lrs})
    run_dir.write_results({"final_test_acc_mean": summary, "lrs": lrs})
    draw_lookup(run_dir.root, run_dir.root / "lookup.png")
    draw_references(run_dir.root / "references.json", run_dir.root / "references.png")
    return {"final_test_acc_mean": summary, "lrs": lrs}


def scaling(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
    """The paper's prediction (§3-4): misalignment noise grows with width d and depth.

    Naive and indirect on the marked lookup without value position codes, over the profile's
    widths and depths, same seeds and batches for both; the learning rate is the lookup part's
    default (1e-3) for both models.
    """
    settings = _settings(config)
    base = _lookup_base(config, settings)
    rows = []
    for depth in settings.scaling_depths:
        for dim in settings.scaling_dims:
            model = replace(
                base.model,
                dim=dim,
                num_layers=depth,
                ffn_dim=4 * dim,
                value_positions=False,
            )
            folder = run_dir.root / f"d{dim}-l{depth}"
            results = _run_once(
                replace(
                    base,
                    models=("indirect", "naive"),
                    seeds=settings.scaling_seeds,
                    epochs=settings.scaling_epochs,
                    num_train=settings.scaling_train,
                    offset=settings.scaling_offset,
                    lr=1e-3,
                    model=model,
                    out=str(folder),
                )
            )
            for name, summary in results["models"].items():
                for seed_row in summary["per_seed"]:
                    rows.append(
                        {
                            "model": name,
                            "dim": dim,
                            "depth": depth,
                            "seed": seed_row["seed"],
                            "final_test_acc": seed_row["final_test_acc"],
                            "curve": seed_row["curve"],
                        }
                    )
    results = {
        "task": "lookup",
        "offset": settings.scaling_offset,
        "value_positions": False,
        "dims": list(settings.scaling_dims),
        "depths": list(settings.scaling_depths),
        "rows": rows,
    }
    run_dir.write_config({"part": "synthetic_scaling", "base": asdict(base)})
    run_dir.write_results(results)
    draw_scaling(run_dir.root / "results.json", run_dir.root / "scaling.png")
    return {"cells": len(rows)}
