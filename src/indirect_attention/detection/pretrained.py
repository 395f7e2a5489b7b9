"""The detector shipped inside the package: where it lies, its card, and its card's numbers (§6.2).

``IADETR.from_pretrained()`` with no argument and ``ia detr detect`` / ``ia demo`` without
``--checkpoint`` load the folder :data:`SHIPPED_DIR` (package data: ``model.safetensors``,
``config.json``, the card ``README.md`` and ``card_metrics.json``). It is an ``ia`` detector
trained on the embedded emoji benchmark (emoji sprites pasted on photo backgrounds): it finds
emoji-like sprites of the query's class, not objects in real photographs.

The card's numbers come from :func:`card_metrics`, the evaluation protocol of
:mod:`.evaluate` on a fixed small set of rendered episodes (:data:`CARD_EPISODES` targets of each
test split, one query draw, seed :data:`CARD_SEED`), so a test can measure them again and
compare. :func:`ship` makes the folder from a training run (the command is in the card), with
the score threshold :func:`recommended_threshold` chooses on the validation scenes recorded in its
``config.json``, which ``detect`` and ``ia demo`` use when no threshold is given.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .hub import SHIPPED_DIR, shipped_path

__all__ = [
    "CARD_DRAWS",
    "CARD_EPISODES",
    "CARD_SEED",
    "SHIPPED_DIR",
    "card_metrics",
    "recommended_threshold",
    "ship",
    "shipped_path",
]

#: Targets of each test split in the card's fixed episode set.
CARD_EPISODES = 150
#: Right-class query draws per target in that set.
CARD_DRAWS = 2
#: Seed of that set's episodes and queries.
CARD_SEED = 0


def card_metrics(model: nn.Module, *, progress: bool = False) -> dict[str, Any]:
    """The protocol's numbers on the card's fixed episode set (module docstring).

    Args:
        model: A detector trained on the emoji benchmark's default input sizes.
        progress: Show progress bars.

    Returns:
        ``{"episodes", "draws", "seed", "splits": {split: {ap50, wrong_query, margin,
        matching_auc, per_image_ap50, oracle_boxes}}}`` with plain floats.
    """
    from .evaluate import evaluate
    from .sources.emoji import EmojiSource

    source = EmojiSource()
    splits = {}
    for split in source.test_splits():
        pairs = source.eval_pairs(split, count=CARD_EPISODES, draws=CARD_DRAWS, seed=CARD_SEED)
        result = evaluate(model, pairs, progress=progress)  # type: ignore[arg-type]
        splits[split] = {
            "ap50": result["ap50"]["mean"],
            "wrong_query": result["wrong_query"]["mean"],
            "margin": result["margin"],
            "matching_auc": result["matching_auc"]["mean"],
            "per_image_ap50": result["per_image_ap50"]["right"],
            "oracle_boxes": result["oracle_boxes"],
        }
    return {"episodes": CARD_EPISODES, "draws": CARD_DRAWS, "seed": CARD_SEED, "splits": splits}


def recommended_threshold(
    model: nn.Module, *, episodes: int = 200, seed: int = 0
) -> tuple[float, float]:
    """The score threshold with the best F1 on the emoji benchmark's validation scenes.

    Each validation scene is searched with a query of one of its classes (``detect``, no
    threshold); a detection is right when it overlaps a not yet matched instance of that class
    with IoU above 0.5, best scores first (:func:`.metrics.greedy_match`, as VOC AP50 counts
    it). Thresholds 0.05, 0.06, ..., 0.95 are tried.

    Args:
        model: The detector.
        episodes: Validation scenes.
        seed: Seed of the scenes and queries.

    Returns:
        ``(threshold, f1)``.
    """
    import numpy as np

    from .detect import detect
    from .metrics import Detection, greedy_match
    from .sources.emoji import EmojiSource

    pairs = EmojiSource().eval_pairs("val", count=episodes, draws=1, seed=seed)
    truth = {record.image_id: record for record in pairs.ground_truth}
    scores, right, instances = [], [], 0
    for pair in pairs.right[0]:
        found = detect(model, pair.target(), pair.query(), threshold=0.0)  # type: ignore[arg-type]
        boxes = [o.box for o in truth[pair.image_id].objects if o.category == pair.category]
        instances += len(boxes)
        ranked = sorted(zip(found.scores.tolist(), found.boxes.tolist(), strict=True), reverse=True)
        found_here = [Detection(pair.image_id, pair.category, tuple(b), s) for s, b in ranked]
        flags = greedy_match(
            found_here, np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            np.zeros(len(boxes), dtype=bool), 0.5,
        )  # fmt: skip
        scores += [s for s, _ in ranked]
        right += [flag == 1 for flag in flags]
    score, hit = torch.tensor(scores), torch.tensor(right, dtype=torch.float32)
    candidates = [round(0.05 + 0.01 * k, 2) for k in range(91)]
    f1 = [float(2 * hit[score >= t].sum() / ((score >= t).sum() + instances)) for t in candidates]
    best = max(range(len(candidates)), key=f1.__getitem__)
    return candidates[best], f1[best]


_SHIPPED_CARD = """
## The shipped detector

This folder is the detector that ships inside the `indirect-attention` package
(`IADETR.from_pretrained()` with no argument, `ia detr detect` and `ia demo` without
`--checkpoint`).

**Data.** The embedded emoji benchmark: sprites of {num_classes} emoji classes by 7 artists
(Twemoji, Fluent Emoji flat, Noto, Noto v1, EmojiOne, fxemoji, Streamline), pasted on photo
backgrounds (scikit-image's sample photographs), 3,000 rendered training scenes of the *seen*
classes; the *unseen* classes are never trained on. Targets {target_size} px, queries
{query_size} px.

**What it will not do.** It finds emoji-like sprites of the query's class on such scenes. It
was never shown a real photograph of an object: on real photographs (a bicycle in a street)
it will not find the query's class. For that, train on your own COCO-format data
(`ia detr train --data coco --data-root DIR --train-json train.json --val-json val.json`) and
pass the run with `--checkpoint`.

**Recipe.** {recipe_text}

**Command that made it.**

```
{command}
```

**Score threshold.** {threshold:.2f}, recorded in `config.json` and used by `ia detr detect`
and `ia demo` when no `--threshold` is given: the best F1 ({f1:.3f}, a detection right at IoU
above 0.5 with an instance of the query's class) over 0.05-0.95 on 200 validation scenes
(`indirect_attention.detection.pretrained.recommended_threshold`). This detector's scores are
low (its best detections score about 0.4-0.6), so the usual 0.5 would drop many right boxes.

**Test numbers** on the card's fixed episode set ({episodes} rendered targets of each test
split, {draws} query draws, seed {seed}; `indirect_attention.detection.pretrained.card_metrics`,
measured again by the package's tests). AP50 with the right query, with a query of another
class (the wrong-query control), their margin, the matching AUC (0.5: the query is ignored)
and the oracle-box reference (perfect boxes, random scores):

| split | AP50 | wrong query | margin | matching AUC | per-image AP50 | oracle boxes |
|---|---|---|---|---|---|---|
{rows}

{validation}

**Licence of the sprites.** The weights were trained on renderings of emoji under CC-BY-4.0
(Twemoji, EmojiOne, Streamline), Apache-2.0 (Noto, Noto v1, fxemoji) and MIT (Fluent Emoji);
the attribution is in the package at `indirect_attention/detection/data/emoji/ATTRIBUTION.md`.
The weights are released with the package (MIT).

**SHA-256** of `model.safetensors`: `{sha256}`.
"""


def _rows(metrics: dict[str, Any]) -> str:
    return "\n".join(
        f"| {split} | {m['ap50']:.3f} | {m['wrong_query']:.3f} | {m['margin']:+.3f} | "
        f"{m['matching_auc']:.3f} | {m['per_image_ap50']:.3f} | {m['oracle_boxes']:.3f} |"
        for split, m in metrics["splits"].items()
    )


def ship(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    command: str,
    recipe_text: str,
    validation: str = "",
) -> dict[str, Any]:
    """Export a training run as the shipped detector: weights, config, card and card numbers.

    Args:
        run_dir: The ``ia detr train`` run folder (its ``checkpoint.pt``).
        out_dir: Destination (:data:`SHIPPED_DIR` to replace the shipped one).
        command: The command that trained the run, quoted in the card.
        recipe_text: One paragraph on the recipe and why it was chosen.
        validation: Markdown on the choice made on validation (recipes compared), optional.

    Returns:
        The card numbers (:func:`card_metrics`), also written to ``card_metrics.json``.
    """
    from ..training.records import atomic_write_text
    from .data.emoji import load_sprite_bank
    from .export_format import export_detector
    from .release import load_detector

    model = load_detector(run_dir)
    model.score_threshold, f1 = recommended_threshold(model)
    out = export_detector(model, out_dir, source=f"ia detr train run {Path(run_dir).name}")
    metrics = card_metrics(model, progress=True)
    atomic_write_text(out / "card_metrics.json", json.dumps(metrics, indent=2) + "\n")
    spec = model.input_spec
    card = (out / "README.md").read_text() + _SHIPPED_CARD.format(
        **asdict(spec),  # target_size, query_size
        **metrics,  # episodes, draws, seed
        num_classes=len(load_sprite_bank().classes),
        recipe_text=recipe_text,
        command=command,
        rows=_rows(metrics),
        validation=validation,
        threshold=model.score_threshold,
        f1=f1,
        sha256=hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest(),
    )
    atomic_write_text(out / "README.md", card)
    return metrics
