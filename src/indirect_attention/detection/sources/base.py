"""The seam between IA-DETR and its data (paper §6.2): what a data source gives training and
evaluation.

A data source is a small dataclass of options (which files, which sizes) with four answers:

* :meth:`DataSource.input_spec`: the sizes the model is trained at (recorded in its checkpoint);
* :meth:`DataSource.recipe`: the training defaults it implies (e.g. a backbone, a query count);
* :meth:`DataSource.training_set`: the training batches, epoch by epoch;
* :meth:`DataSource.eval_pairs`: (query, target) pairs (:class:`EvalPairs`) for the one
  protocol of :mod:`..evaluate`.

Nothing else in the package asks which data set it trains on. ``docs/data_sources.md`` adds a
source with a worked example.

Shapes:
    :data:`Batch`: targets (B, 3, H, W) in [0, 1], padding (B, H, W) bool or None, queries
    (B, 3, h, w), ground truth a list of B (K_b, 4) cxcywh normalised by the canvas.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ...training.distributed import DistributedContext
from ..data.records import BoxRecord, ImageRecord
from ..preprocess import InputSpec

__all__ = ["Batch", "DataSource", "EpochPlan", "EvalPair", "EvalPairs", "TrainingSet"]

Batch = tuple[Tensor, Tensor | None, Tensor, list[Tensor]]


@dataclass(frozen=True)
class EvalPair:
    """One (query, target) pair to score.

    Attributes:
        image_id: The target's id in :attr:`EvalPairs.ground_truth`.
        category: The class the query shows (the right class even for a wrong-query control).
        target: Loads the target, (3, H, W) in [0, 1].
        query: Loads the query, (3, h, w) in [0, 1].
    """

    image_id: int | str
    category: str
    target: Callable[[], Tensor]
    query: Callable[[], Tensor]


@dataclass
class EvalPairs:
    """Everything the protocol scores.

    Attributes:
        split: Name of the evaluated split.
        ground_truth: Targets with the boxes a detection can match (the classes queried).
        right: Per draw, the pairs with a query of the target's class.
        wrong: Per draw, the same targets with a query of another class.
        objects: Every object of each target (any class, with its class), for the oracle-box
            reference and the matching score.
        batch_size: Pairs per forward pass (targets of one batch share a padded canvas).
    """

    split: str
    ground_truth: list[ImageRecord]
    right: list[list[EvalPair]]
    wrong: list[list[EvalPair]]
    objects: dict[int | str, list[BoxRecord]]
    batch_size: int = 8


@dataclass
class EpochPlan:
    """Which batches of an epoch this process trains on.

    Attributes:
        epoch: The epoch (sources that reshuffle by epoch read it).
        batch_size: The global batch.
        generator: Seeded by the caller each epoch; draws the order and any augmentation.
        stride: The backbone stride (canvas sides are multiples of it).
        skip: Global batches already done (a resumed epoch).
        generator_state: The generator's state saved after batch ``skip`` (resume).
        context: The data-parallel processes; rank r keeps its rows of every global batch, and a
            final batch smaller than the number of processes is dropped.
    """

    epoch: int
    batch_size: int
    generator: torch.Generator
    stride: int
    skip: int = 0
    generator_state: Tensor | None = None
    context: DistributedContext = field(default_factory=DistributedContext)


class TrainingSet(ABC):
    """The training data of one run, loaded once."""

    @abstractmethod
    def batches(self, plan: EpochPlan) -> Iterator[Batch]:
        """This process's slice of each of the epoch's global batches, from batch ``plan.skip``
        on."""

    def num_batches(self, batch_size: int) -> int | None:
        """Global batches per epoch, when known in advance (a progress bar's total)."""
        return None

    def pretrained_backbone(
        self, *, dim: int, backbone: str, steps: int, seed: int, progress: bool
    ) -> tuple[dict[str, Tensor], dict]:
        """A backbone ``state_dict`` pre-trained on this data, and its report.

        Raises:
            ValueError: this source has no pre-training stage.
        """
        raise ValueError(
            f"pretrain_steps > 0 needs the emoji data and the small backbone; this data "
            f"source has no backbone pre-training (got backbone {backbone!r})"
        )


class DataSource(ABC):
    """Options of one data set, and what training and evaluation need from it.

    Subclasses are dataclasses; their fields are the data's options (``ia detr`` flags of the
    same names) and :attr:`name` is the value of ``--data``.
    """

    name: ClassVar[str]

    @abstractmethod
    def input_spec(self) -> InputSpec:
        """Sizes of the model's inputs: the resized target's longer side and the query square."""

    def recipe(self) -> dict[str, Any]:
        """Training defaults this data implies, as ``DetrTrainConfig`` fields; ``model`` holds
        ``DetrModelConfig`` fields. Empty: the defaults of ``DetrTrainConfig``."""
        return {}

    @abstractmethod
    def training_set(self, *, seed: int, progress: bool = True) -> TrainingSet:
        """Load (or render) the training data of a run seeded by ``seed``."""

    def test_splits(self) -> tuple[str, ...]:
        """The splits Table 1 scores (default: seen and unseen classes)."""
        return ("seen", "unseen")

    @abstractmethod
    def eval_pairs(
        self, split: str, *, count: int | None, draws: int, seed: int
    ) -> EvalPairs | None:
        """Seeded (query, target) pairs of ``split`` (``val``, ``seen`` or ``unseen``).

        Args:
            split: ``val`` validates during training; ``seen`` and ``unseen`` test.
            count: Targets to use (None: the source's default).
            draws: Query draws per target.
            seed: Seed of the draws.

        Returns:
            The pairs, or None when the source has no such split (no validation data).

        Raises:
            ValueError: the split is unknown or its data is not configured.
        """
