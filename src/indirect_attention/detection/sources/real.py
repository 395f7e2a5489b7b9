"""Real data sets as data sources: Pascal VOC and COCO, or a COCO JSON of one's own (§6.2).

Training images are drawn from the protocol's training view (seen classes only); each gets a
query class and a crop from another image (:func:`~..data.sample_training_pair`), reshuffled every
epoch with a generator seeded by ``(seed, epoch)``. Evaluation uses the seeded
:func:`~..data.eval_pairs` draws (per image and class) and, for each pair, a wrong-class query drawn
from the pool of another class (generator ``(seed, 1)``). Images are prepared by
:mod:`..preprocess` at ``max_size`` (targets) and ``query_size`` (queries).

Shapes:
    batches as :data:`.base.Batch`; boxes in the original image's pixels.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_convert

from ...training.distributed import shard_bounds
from ..data import (
    ClassSplit,
    DetectionDataset,
    OneShotPair,
    QueryCrop,
    crop_query,
    eval_pairs,
    eval_view,
    load_class_split,
    query_pool,
    read_coco,
    read_voc,
    sample_training_pair,
    training_view,
)
from ..preprocess import InputSpec, model_input, read_image
from .base import Batch, DataSource, EpochPlan, EvalPair, EvalPairs, TrainingSet

__all__ = [
    "AnnotatedSource",
    "CocoSource",
    "VocSource",
    "custom_split",
    "pair_batch",
    "training_pairs",
]


def custom_split(classes: Sequence[str], unseen: Sequence[str]) -> ClassSplit:
    """A class split of one's own: ``unseen`` are held out for testing, the other ``classes`` train.

    Raises:
        ValueError: an unseen name is not a class of the data set, or no class is left to train.
    """
    missing = [name for name in unseen if name not in classes]
    if missing:
        shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
        raise ValueError(
            f"--unseen-classes: {missing} not among the data set's {len(classes)} classes ({shown})"
        )
    held_out = set(unseen)
    seen = tuple(c for c in classes if c not in held_out)
    if not unseen or not seen:
        raise ValueError(
            f"--unseen-classes must hold out at least one class and leave at least one of the "
            f"{len(classes)} classes to train, got {len(unseen)} unseen"
        )
    return ClassSplit("custom", seen, tuple(unseen))


def training_pairs(
    dataset: DetectionDataset, split: ClassSplit, generator: np.random.Generator
) -> list[OneShotPair]:
    """One training pair per usable image of the training view, in a random order."""
    view = training_view(dataset, split)
    pool = query_pool(view, split.seen)
    pairs = [sample_training_pair(image, pool, generator) for image in view.images]
    kept = [p for p in pairs if p is not None]
    return [kept[int(k)] for k in generator.permutation(len(kept))]


def _target(pair: OneShotPair) -> Tensor:
    return read_image(pair.image.file_name, exif_transpose=False)  # boxes refer to stored pixels


def _query(crop: QueryCrop) -> Tensor:
    return torch.from_numpy(crop_query(crop).copy()).permute(2, 0, 1).float() / 255.0


def pair_batch(pairs: Sequence[OneShotPair], spec: InputSpec, stride: int) -> Batch:
    """Model input and ground truth (cxcywh normalised by the canvas) of training pairs."""
    batch = model_input(
        [_target(p) for p in pairs], [_query(p.query) for p in pairs], spec, stride=stride
    )
    height, width = batch.targets.shape[-2:]
    canvas = torch.tensor([width, height, width, height], dtype=torch.float32)
    truth = []
    for pair, factors in zip(pairs, batch.factors.repeat(1, 2), strict=True):
        boxes = torch.tensor([o.box for o in pair.boxes], dtype=torch.float32).reshape(-1, 4)
        truth.append(box_convert(boxes * factors / canvas, "xyxy", "cxcywh"))
    return batch.targets, batch.target_padding, batch.queries, truth


@dataclass
class _PairTrainingSet(TrainingSet):
    dataset: DetectionDataset
    split: ClassSplit
    spec: InputSpec
    seed: int

    def batches(self, plan: EpochPlan) -> Iterator[Batch]:
        """The epoch's pairs, drawn by ``(seed, epoch)`` (``plan.generator`` is not used)."""
        rank, world = plan.context.rank, plan.context.world_size
        rng = np.random.default_rng([self.seed, plan.epoch])
        pairs = training_pairs(self.dataset, self.split, rng)
        for first in range(plan.skip * plan.batch_size, len(pairs), plan.batch_size):
            chunk = pairs[first : first + plan.batch_size]
            if len(chunk) < world:
                return
            start, stop = shard_bounds(len(chunk), rank=rank, world_size=world)
            yield pair_batch(chunk[start:stop], self.spec, plan.stride)  # padded per rank

    def num_batches(self, batch_size: int) -> int:
        """Batches of epoch 0 (a pair needs a query of its class from another image)."""
        rng = np.random.default_rng([self.seed, 0])
        return math.ceil(len(training_pairs(self.dataset, self.split, rng)) / batch_size)


def _wrong_queries(
    pairs: list[OneShotPair], pool: dict[str, list[QueryCrop]], classes: list[str], seed: int
) -> list[OneShotPair]:
    """Each pair with a query crop of another class (its boxes stay the right class's)."""
    rng = np.random.default_rng([seed, 1])
    wrong = []
    for pair in pairs:
        other = [c for c in classes if c != pair.category] or [pair.category]
        crops = pool[str(rng.choice(other))]
        crop = crops[int(rng.integers(len(crops)))]
        wrong.append(OneShotPair(pair.image, pair.category, crop, pair.boxes, pair.draw))
    return wrong


def _eval_pairs(
    dataset: DetectionDataset, split: ClassSplit, which: str, draws: int, seed: int
) -> EvalPairs:
    view = eval_view(dataset, split, which=which)
    pool = query_pool(view, view.classes)
    right = eval_pairs(view, pool, draws=draws, seed=seed)
    wrong = _wrong_queries(right, pool, [c for c in view.classes if pool.get(c)], seed)

    def by_draw(pairs: list[OneShotPair]) -> list[list[EvalPair]]:
        return [
            [
                EvalPair(
                    p.image.image_id, p.category, partial(_target, p), partial(_query, p.query)
                )
                for p in pairs
                if p.draw == draw
            ]
            for draw in range(draws)
        ]

    full = {image.image_id: list(image.objects) for image in dataset.images}
    return EvalPairs(which, list(view.images), by_draw(right), by_draw(wrong), full, batch_size=8)


@dataclass
class AnnotatedSource(DataSource):
    """A data set of annotated images with a class split: VOC, COCO, or one's own.

    A subclass says where its images and boxes are (:meth:`_dataset`); the rest is shared:
    training pairs of seen classes, the seeded test pairs with their wrong-query controls,
    targets resized to ``max_size`` and queries to ``query_size``.

    Attributes:
        data_root: The data set's folder.
        unseen_classes: Classes held out of training (default: the subclass's split).
        max_size: Longer side of a resized target.
        query_size: Side of a resized query crop.
    """

    data_root: str | None = None
    unseen_classes: tuple[str, ...] | None = None
    max_size: int = 512
    query_size: int = 192

    @abstractmethod
    def _dataset(self, *, train: bool) -> tuple[DetectionDataset, ClassSplit] | None:
        """The training (``train``) or test data set and its class split; None when the
        options do not name it."""

    def _data(self, *, train: bool) -> tuple[DetectionDataset, ClassSplit] | None:
        found = self._dataset(train=train)
        if found is None or self.unseen_classes is None:
            return found
        return found[0], custom_split(found[0].classes, self.unseen_classes)

    def input_spec(self) -> InputSpec:
        return InputSpec(self.max_size, self.query_size)

    def recipe(self) -> dict[str, Any]:
        """The authors' real-data recipe: ResNet-50, 100 queries, BoxRPB offsets in pixels."""
        model = {"backbone": "resnet50", "num_queries": 100, "bias_unit": "pixel"}
        return {"pretrain_steps": 0, "model": model}

    def training_set(self, *, seed: int, progress: bool = True) -> TrainingSet:
        found = self._data(train=True)
        if found is None:
            raise ValueError(f"--data {self.name} needs --data-root (or --train-json)")
        return _PairTrainingSet(*found, spec=self.input_spec(), seed=seed)

    def eval_pairs(
        self, split: str, *, count: int | None, draws: int, seed: int
    ) -> EvalPairs | None:
        """``val``: the first ``count`` images of the validation data (None without it), one
        query draw per image and unseen class; ``seen`` / ``unseen``: the test data."""
        if split not in ("val", "seen", "unseen"):
            raise ValueError(f"unknown split {split!r}; choose from ['seen', 'unseen', 'val']")
        if split == "val" and not self._has_validation():
            return None
        found = self._data(train=False)
        if found is None:
            raise ValueError(f"--data {self.name} needs --data-root (or --val-json)")
        dataset, classes = found
        split = "unseen" if split == "val" else split
        if count is not None:
            dataset = DetectionDataset(dataset.name, dataset.classes, dataset.images[:count])
        return _eval_pairs(dataset, classes, split, draws, seed)

    def _has_validation(self) -> bool:
        """Whether :meth:`_dataset` (``train=False``) is also the data to validate on."""
        return False


@dataclass
class VocSource(AnnotatedSource):
    """Pascal VOC (``--data voc``): ``data_root`` is a VOC year folder (``trainval`` to train,
    ``test`` to test) with CoAE's class split."""

    name: ClassVar[str] = "voc"

    def _dataset(self, *, train: bool) -> tuple[DetectionDataset, ClassSplit] | None:
        if self.data_root is None:
            return None
        split = load_class_split("voc")
        return read_voc(Path(self.data_root), "trainval" if train else "test"), split


@dataclass
class CocoSource(AnnotatedSource):
    """COCO (``--data coco``): ``data_root`` holds ``annotations/instances_{train,val}2017.json``
    and the image folders (class split 1); or instances JSONs of one's own.

    Attributes:
        train_json: A COCO instances JSON to train on; ``file_name`` entries are relative to
            ``data_root``, or to the JSON's folder when ``data_root`` is None.
        val_json: A COCO instances JSON to validate and test on (its unseen classes).
    """

    name: ClassVar[str] = "coco"
    train_json: str | None = None
    val_json: str | None = None

    def _dataset(self, *, train: bool) -> tuple[DetectionDataset, ClassSplit] | None:
        annotations = self.train_json if train else self.val_json
        split = load_class_split("coco1")
        if annotations is not None:
            return read_coco(annotations, self.data_root), split
        if self.data_root is None:
            return None
        name, root = "train2017" if train else "val2017", Path(self.data_root)
        return read_coco(root / "annotations" / f"instances_{name}.json", root / name), split

    def _has_validation(self) -> bool:
        return self.val_json is not None
