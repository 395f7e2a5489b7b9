"""The detection part of ``ia reproduce``: the Table 1 analogue and a Figure 7-style picture (§6.2).

Trains ``ia``, ``double-cross`` and ``misaligned`` on the embedded emoji benchmark through
:func:`indirect_attention.detection.table1.run`. The recipe is ``emoji_recipe()``
with only the profile's budget fields replaced (``max_minutes``, ``epochs``, ``train_episodes``,
...), so improvements to the recipe's defaults reach the reproduction unchanged. Then, for one
seed of each detector, every object query's score is recorded on unseen episodes with the right
query and with a wrong-class query (``figure7.json``), and ``figure7.png`` shows, for one target,
the top-ranked object queries' boxes side by side; ``predictions.png`` shows ia's detections.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torchvision.ops import box_convert

from ..detection.decoder import VARIANTS
from ..detection.draw import draw_predictions
from ..detection.evaluate import EvalSet, build_eval_set, load_model, prepare_images
from ..detection.model import IADETR
from ..detection.table1 import Table1Config
from ..detection.table1 import run as run_table1
from ..detection.train import emoji_recipe
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
    if getattr(model.config, "object_queries", "learned") == "anchors":
        side = math.isqrt(count)
        return side, side
    rows = next(r for r in range(math.isqrt(count), 0, -1) if count % r == 0)
    return rows, count // rows


@torch.no_grad()
def query_ranking(
    model: IADETR, eval_set: EvalSet, *, scale: float, batch_size: int = 16
) -> dict[str, dict[str, list]]:
    """Every object query's score and box with the right and with a wrong-class query.

    The paper (Appendix B.2.1) ranks object queries by their attention to the query image and
    notes that the ranking agrees with the final confidence; we rank by that confidence (the last
    layer's sigmoid), which all three detectors have.

    Returns:
        ``{"right": {"scores": E×Q, "boxes": E×Q×4}, "wrong": {...}}`` as nested lists, boxes
        xyxy in the rendered target's pixels.

    Shapes:
        eval_set.targets (E, 3, H, W) -> scores (E, Q), boxes (E, Q, 4).
    """
    model.eval()
    device = next(model.parameters()).device  # follow the model
    height, width = eval_set.targets.shape[-2:]
    pixels = torch.tensor([width, height, width, height], dtype=torch.float32)
    out: dict[str, dict[str, list]] = {}
    for name, queries in (("right", eval_set.queries[0]), ("wrong", eval_set.wrong[0])):
        scores, boxes = [], []
        for start in range(0, len(eval_set.categories), batch_size):
            stop = min(start + batch_size, len(eval_set.categories))
            output = model(
                prepare_images(eval_set.targets[start:stop], scale).to(device),
                prepare_images(queries[start:stop], scale).to(device),
            )
            scores.append(output.logits[-1].sigmoid().float().cpu())  # (b, Q)
            xyxy = box_convert(output.boxes[-1].float().cpu(), "cxcywh", "xyxy")  # (b, Q, 4)
            boxes.append(xyxy * pixels)
        out[name] = {"scores": torch.cat(scores).tolist(), "boxes": torch.cat(boxes).tolist()}
    return out


def _save_png(image: torch.Tensor, path: Path) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
    return path.name


def _figure7(run_dir: RunDir, variants: tuple[str, ...], episodes: int, seed: int) -> None:
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
    for variant in variants:
        model, scale = load_model(run_dir.root / f"{variant}-s0" / "checkpoint.pt")
        record["grid"] = list(grid_shape(model))
        ranking = query_ranking(model, eval_set, scale=scale)
        record["models"][variant] = {
            "drawn": {
                which: {key: values[episode] for key, values in ranking[which].items()}
                for which in ("right", "wrong")
            },
            "scores": {which: ranking[which]["scores"] for which in ("right", "wrong")},
        }
        if variant == "ia":
            draw_predictions(model, eval_set, run_dir.root / "predictions.png", scale=scale)
    run_dir.write_json("figure7.json", record)
    draw_figure7(run_dir.root / "figure7.json", run_dir.root / "figure7.png")


def detection(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
    """§6.2, Table 1 and Figure 7 on the emoji benchmark; resumes finished detector runs."""
    settings = config.settings
    if settings is None:
        raise ValueError("config.settings is None: run parts through reproduce.run()")
    base = emoji_recipe()
    train = replace(
        base,
        model=replace(base.model, **settings.detection_model),
        cache_dir=str(Path(config.out) / "cache"),
        progress=config.progress,
        **settings.detection_train,
    )
    variants = settings.detection_variants or VARIANTS
    table_config = Table1Config(
        out=str(run_dir.root),
        seeds=settings.detection_seeds,
        variants=tuple(variants),
        train=train,
        episodes=settings.detection_episodes,
        draws=settings.detection_draws,
        jobs=settings.detection_jobs,
    )
    run_dir.write_config(asdict(table_config))
    table = run_table1(table_config)
    _figure7(run_dir, tuple(variants), settings.ranking_episodes, config.seed)
    return {
        name: {split: row[split]["margin"]["mean"] for split in ("seen", "unseen")}
        for name, row in table["models"].items()
    }
