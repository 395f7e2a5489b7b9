"""The detection part of ``ia reproduce``: the Table 1 analogue and a Figure 7-style picture (§6.2).

Trains ``ia``, ``double-cross`` and ``misaligned`` on the embedded emoji benchmark through
:func:`indirect_attention.detection.table1.run`. The recipe is ``DetrTrainConfig()``
with only the profile's budget fields replaced (``max_minutes``, ``epochs``, ``train_episodes``,
...), so improvements to the recipe's defaults reach the reproduction unchanged. Then, for one
seed of each detector, every object query's score is recorded on unseen episodes with the right
query and with a wrong-class query (``figure7.json``), and ``figure7.png`` shows, for one target,
the top-ranked object queries' boxes side by side; ``predictions.png`` shows ia's detections;
``curves.png`` draws each run's validation AP50, wrong-query AP50 and matching AUC by step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import torch

from ..detection.attention_map import alignment_scores
from ..detection.checkpoint import CHECKPOINT_NAME
from ..detection.decoder import KINDS
from ..detection.draw import draw_predictions
from ..detection.model import IADETR
from ..detection.predict import predict
from ..detection.preprocess import model_input
from ..detection.release import load_detector
from ..detection.sources import EmojiSource, EvalSet, build_eval_set
from ..detection.table1 import Table1Config
from ..detection.table1 import run as run_table1
from ..detection.train import config_record, recipe_source
from ..detection.train import recipe as train_recipe
from ..plots.detection_curves import draw_detection_curves
from ..plots.figure7 import draw_figure7
from ..training import RunDir
from .config import ReproduceConfig

__all__ = ["TOP_K", "detection", "grid_shape", "query_ranking"]

#: Object queries drawn and compared in the Figure 7 analogue.
TOP_K = 5


def grid_shape(model: IADETR) -> tuple[int, int]:
    """How the Q object queries are laid out as a matrix: the anchor lattice when the model has
    one (its queries then sit on a √Q × √Q grid), otherwise the most nearly square factors."""
    count = model.config.num_queries
    if model.config.object_queries == "anchors":
        side = math.isqrt(count)
        return side, side
    rows = next(r for r in range(math.isqrt(count), 0, -1) if count % r == 0)
    return rows, count // rows


@torch.no_grad()
def query_ranking(
    model: IADETR, eval_set: EvalSet, *, batch_size: int = 16
) -> dict[str, dict[str, list]]:
    """Every object query's score and box with the right and with a wrong-class query.

    The paper (Appendix B.2.1) ranks object queries by their attention to the query image and
    notes that the ranking agrees with the final confidence. Both are recorded: ``scores`` is the
    final confidence (the last layer's sigmoid), ``alignment`` the paper's attention score
    (:func:`~..detection.attention_map.alignment_scores`, last decoder layer).

    Returns:
        ``{"right": {"scores": E×Q, "alignment": E×Q, "boxes": E×Q×4}, "wrong": {...}}`` as
        nested lists, in the object queries' order, boxes xyxy in the rendered target's pixels.

    Shapes:
        eval_set.targets (E, 3, H, W) -> scores (E, Q), boxes (E, Q, 4).
    """
    if model.input_spec is None:
        raise ValueError("the model records no input sizes (model.input_spec is None)")
    model.eval()
    num_queries = model.config.num_queries
    out: dict[str, dict[str, list]] = {}
    for name, queries in (("right", eval_set.queries[0]), ("wrong", eval_set.wrong[0])):
        scores, boxes, alignment = [], [], []
        for start in range(0, len(eval_set.categories), batch_size):
            stop = min(start + batch_size, len(eval_set.categories))
            batch = model_input(
                [t.float() / 255.0 for t in eval_set.targets[start:stop]],
                [q.float() / 255.0 for q in queries[start:stop]],
                model.input_spec,
                stride=model.backbone.stride,
            )
            for found in predict(model, batch, top_k=num_queries):
                order = found.queries.argsort()  # back to the object queries' order
                scores.append(found.scores[order].tolist())
                boxes.append(found.boxes[order].tolist())
            alignment.extend(alignment_scores(model, batch).tolist())
        out[name] = {"scores": scores, "alignment": alignment, "boxes": boxes}
    return out


def _save_png(image: torch.Tensor, path: Path) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
    return path.name


def _figure7(run_dir: RunDir, kinds: tuple[str, ...], episodes: int, seed: int) -> None:
    """Write ``figure7.json`` (+ its images) and draw ``figure7.png`` and ``predictions.png``."""
    eval_set = build_eval_set("test", episodes, draws=1, seed=seed)
    episode = 0
    images = run_dir.root / "figure7"
    record: dict[str, Any] = {
        "split": "test",
        "episode": episode,
        "category": eval_set.categories[episode],
        "top_k": TOP_K,
        "images": {
            "target": f"figure7/{_save_png(eval_set.targets[episode], images / 'target.png')}",
            "right": f"figure7/{_save_png(eval_set.queries[0][episode], images / 'right.png')}",
            "wrong": f"figure7/{_save_png(eval_set.wrong[0][episode], images / 'wrong.png')}",
        },
        "truth": eval_set.boxes[episode].tolist(),
        "models": {},
    }
    for kind in kinds:
        model = load_detector(run_dir.root / f"{kind}-s0" / CHECKPOINT_NAME)
        record["grid"] = list(grid_shape(model))
        ranking = query_ranking(model, eval_set)
        record["models"][kind] = {
            "drawn": {
                which: {key: values[episode] for key, values in ranking[which].items()}
                for which in ("right", "wrong")
            },
            "scores": {which: ranking[which]["scores"] for which in ("right", "wrong")},
            "alignment": {which: ranking[which]["alignment"] for which in ("right", "wrong")},
        }
        if kind == "ia":
            draw_predictions(model, eval_set, run_dir.root / "predictions.png")
    run_dir.write_json("figure7.json", record)
    draw_figure7(run_dir.root / "figure7.json", run_dir.root / "figure7.png")


def _recipe_table(
    config: ReproduceConfig, out: Path, name: str, kinds: tuple[str, ...]
) -> tuple[Table1Config, dict]:
    """The profile's Table 1 of recipe ``name`` into ``out`` (trained, or resumed)."""
    settings = config.settings
    assert settings is not None
    data_fields = {f.name for f in fields(EmojiSource)}
    budget = settings.detection_train
    data = recipe_source(name, EmojiSource, cache_dir=str(Path(config.out) / "cache"))
    base = train_recipe(data, name=name)
    train = replace(
        base,
        data=replace(data, **{k: v for k, v in budget.items() if k in data_fields}),
        model=replace(base.model, **settings.detection_model),
        progress=config.progress,
        **{k: v for k, v in budget.items() if k not in data_fields},
    )
    table_config = Table1Config(
        out=str(out),
        seeds=settings.detection_seeds,
        kinds=kinds,
        train=train,
        episodes=settings.detection_episodes,
        draws=settings.detection_draws,
        jobs=settings.detection_jobs,
    )
    RunDir(out).write_config({**asdict(table_config), "train": config_record(train)})
    table = run_table1(table_config)
    draw_detection_curves(out, out / "curves.png")
    return table_config, table


def _mean_margins(table: dict, *, suffix: str) -> dict[str, dict[str, float]]:
    """kind + ``suffix`` -> split -> the mean margin over seeds, of a Table 1 record."""
    return {
        f"{kind}{suffix}": {split: row[split]["margin"]["mean"] for split in ("seen", "unseen")}
        for kind, row in table["models"].items()
    }


def detection(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
    """§6.2, Table 1 and Figure 7 on the emoji benchmark; resumes finished detector runs.

    The first of the profile's recipes (``emoji``, ours) fills the part's own directory and
    Figure 7; every other recipe (``paper``) has its Table 1 in ``recipe-<name>/``.
    """
    settings = config.settings
    if settings is None:
        raise ValueError("config.settings is None: run parts through reproduce.run()")
    kinds = tuple(settings.detection_kinds or KINDS)
    first, *others = settings.detection_recipes
    _, table = _recipe_table(config, run_dir.root, first, kinds)
    summary = _mean_margins(table, suffix="")
    for name in others:
        _, other = _recipe_table(config, run_dir.root / f"recipe-{name}", name, kinds)
        summary.update(_mean_margins(other, suffix=f" ({name} recipe)"))
    _figure7(run_dir, kinds, settings.ranking_episodes, config.seed)
    return summary
