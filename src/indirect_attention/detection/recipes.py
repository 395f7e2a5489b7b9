"""Named training recipes of IA-DETR: ``emoji`` (ours, the default) and ``paper`` (the authors').

A recipe is data: the fields it changes in the model config, the training config and the data
source, applied by :func:`.train.recipe` on top of the data source's implied defaults and under
the options a caller gives. ``ia detr train --recipe NAME`` and ``ia detr table1 --recipe NAME``
use it, and the run's ``config.json`` records its name (``DetrTrainConfig.recipe``).

``paper`` keeps the emoji benchmark's backbone, sizes, pre-training and schedule and changes only
what the authors do differently (``reference/ia-detr-official.md`` §2.4, §1.4, §4.4, §5.2; the
list with reasons is in ``docs/detection.md``):

* two-stage object queries with mixed selection (:mod:`.proposals`) instead of anchor queries
  (q_i = e_i + x_s(i));
* BoxRPB offsets in input pixels instead of feature cells;
* every training query a separate image of the class (the rendered query, in another artist's
  style than the target's instances) instead of half of them crops of the target itself;
* ``double-cross`` with the authors' block of 6 target-to-query cross-attention layers and BoxRPB
  in its decoder (ours: 1 layer, no bias).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .sources import DataSource

__all__ = ["RECIPES", "Recipe", "get_recipe", "recipe_source"]


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
