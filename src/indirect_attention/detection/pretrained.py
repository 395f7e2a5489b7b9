"""The detector shipped inside the package: where it lies, its card, and its card's numbers (§6.2).

``IADETR.from_pretrained()`` with no argument and ``ia detr detect`` / ``ia demo`` without
``--checkpoint`` load the folder :data:`SHIPPED_DIR` (package data: ``model.safetensors``,
``config.json``, the card ``README.md`` and ``card_metrics.json``). It is an ``ia`` detector
trained on the embedded emoji benchmark (emoji sprites pasted on photo backgrounds): it finds
emoji-like sprites of the query's class, not objects in real photographs.

The card's numbers come from :func:`card_metrics`, the evaluation protocol of
:mod:`.evaluate` on a fixed small set of rendered episodes (:data:`CARD_EPISODES` targets of each
test split, one query draw, seed :data:`CARD_SEED`), so a test can measure them again and
compare. :func:`ship` makes the folder from a training run (the command is in the card).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from torch import nn

__all__ = [
    "CARD_DRAWS",
    "CARD_EPISODES",
    "CARD_SEED",
    "SHIPPED_DIR",
    "card_metrics",
    "ship",
    "shipped_path",
]

#: The shipped detector's folder (package data).
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped" / "emoji-ia"
#: Targets of each test split in the card's fixed episode set.
CARD_EPISODES = 40
#: Right-class query draws per target in that set.
CARD_DRAWS = 1
#: Seed of that set's episodes and queries.
CARD_SEED = 0
#: The numbers of :func:`evaluate` kept in the card, per split.
_KEPT = ("ap50", "wrong_query", "margin", "matching_auc", "per_image_ap50", "oracle_boxes")


def shipped_path() -> Path:
    """The shipped detector's folder.

    Raises:
        FileNotFoundError: the package was installed without its data (no ``model.safetensors``).
    """
    if not (SHIPPED_DIR / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the shipped detector is missing from this installation ({SHIPPED_DIR} holds no "
            "model.safetensors); pass a trained model (--checkpoint) or reinstall the package"
        )
    return SHIPPED_DIR


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

**Test numbers** on the card's fixed episode set ({episodes} rendered targets of each test
split, {draws} query draw, seed {seed}; `indirect_attention.detection.pretrained.card_metrics`,
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
    out = export_detector(model, out_dir, source=f"ia detr train run {Path(run_dir).name}")
    metrics = card_metrics(model, progress=True)
    atomic_write_text(out / "card_metrics.json", json.dumps(metrics, indent=2) + "\n")
    spec = model.input_spec
    card = (out / "README.md").read_text() + _SHIPPED_CARD.format(
        num_classes=len(load_sprite_bank().classes),
        target_size=spec.target_size,
        query_size=spec.query_size,
        recipe_text=recipe_text,
        command=command,
        episodes=metrics["episodes"],
        draws=metrics["draws"],
        seed=metrics["seed"],
        rows=_rows(metrics),
        validation=validation,
        sha256=hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest(),
    )
    atomic_write_text(out / "README.md", card)
    return metrics
