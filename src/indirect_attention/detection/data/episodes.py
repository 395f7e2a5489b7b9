"""The one-shot protocol on real data sets: seen/unseen splits, query pools, pairs, a leak check.

Paper §6.2 (one-shot detection) follows CoAE: a model trains on *seen* classes only and is tested
on *unseen* ones, each target image paired with a query crop of one class it contains.

* Class splits ship as package files: ``splits/voc.json`` (unseen: aeroplane, cat, cow, sheep),
  ``splits/coco.json`` (the four CoAE splits) and the emoji bank's own split.
* Training (:func:`training_view`): only seen-class, non-difficult, non-crowd boxes are kept and
  images left empty are dropped (images that also show unseen objects stay, those objects
  unlabelled, as in CoAE and IA-DETR; ``drop_images_with_unseen=True`` is stricter).
  :func:`sample_training_pair` draws the class with probability proportional to 1 / (its number
  of crops) and a query cropped from a **different** image of that class.
* Test (:func:`eval_pairs`): for each image and each class it contains, ``draws`` (default 5)
  queries, drawn by a generator seeded with ``(seed, image id)``; scores are computed per draw
  and reported as mean ± std over draws (:func:`mean_std`). Unlike the authors' code, a query
  never comes from the target image itself (``exclude_same_image``).
* :func:`check_no_leak` raises if any unseen-class box or query reaches a training set.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from importlib import resources

import numpy as np

from .records import BoxRecord, DetectionDataset, ImageRecord

__all__ = [
    "ClassSplit",
    "OneShotPair",
    "QueryCrop",
    "check_no_leak",
    "crop_query",
    "eval_pairs",
    "eval_view",
    "load_class_split",
    "mean_std",
    "query_pool",
    "sample_training_pair",
    "training_view",
]


@dataclass(frozen=True)
class ClassSplit:
    """A fixed seen/unseen class split (seen classes train; unseen classes only test)."""

    name: str
    seen: tuple[str, ...]
    unseen: tuple[str, ...]

    def __post_init__(self) -> None:
        overlap = set(self.seen) & set(self.unseen)
        if overlap:
            raise ValueError(f"split {self.name}: classes both seen and unseen: {sorted(overlap)}")


def _split_file(name: str) -> dict:
    path = resources.files("indirect_attention.detection.data") / "splits" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def load_class_split(name: str) -> ClassSplit:
    """A shipped split: ``"voc"``, ``"coco1"`` .. ``"coco4"`` (CoAE) or ``"emoji"``."""
    if name == "voc":
        data = _split_file("voc")
        return ClassSplit("voc", tuple(data["seen"]), tuple(data["unseen"]))
    if name in ("coco1", "coco2", "coco3", "coco4"):
        data = _split_file("coco")
        unseen = tuple(data["splits"][name[-1]]["unseen"])
        seen = tuple(c["name"] for c in data["categories"] if c["name"] not in unseen)
        return ClassSplit(name, seen, unseen)
    if name == "emoji":
        from .emoji import load_sprite_bank

        bank = load_sprite_bank()
        return ClassSplit("emoji", bank.seen, bank.unseen)
    raise ValueError(f"unknown class split {name!r}; choose voc, coco1..coco4 or emoji")


def training_view(
    dataset: DetectionDataset,
    split: ClassSplit,
    *,
    drop_difficult: bool = True,
    drop_images_with_unseen: bool = False,
) -> DetectionDataset:
    """The training set of the protocol: seen-class boxes only (see the module docstring)."""
    seen, unseen = set(split.seen), set(split.unseen)
    images = []
    for image in dataset.images:
        if drop_images_with_unseen and any(o.category in unseen for o in image.objects):
            continue
        objects = tuple(
            o
            for o in image.objects
            if o.category in seen and not o.iscrowd and not (drop_difficult and o.difficult)
        )
        if objects:
            images.append(replace(image, objects=objects))
    out = DetectionDataset(f"{dataset.name}-{split.name}-train", split.seen, images)
    check_no_leak(out, split)
    return out


def eval_view(
    dataset: DetectionDataset, split: ClassSplit, *, which: str = "unseen"
) -> DetectionDataset:
    """The test set: boxes of the ``which`` (``"unseen"``, ``"seen"``) classes; difficult ones keep
    their flag so VOC AP50 can ignore them; crowd boxes are dropped."""
    if which not in ("unseen", "seen"):
        raise ValueError(f"which must be 'unseen' or 'seen', got {which!r}")
    keep = set(split.unseen if which == "unseen" else split.seen)
    images = []
    for image in dataset.images:
        objects = tuple(o for o in image.objects if o.category in keep and not o.iscrowd)
        if objects:
            images.append(replace(image, objects=objects))
    classes = split.unseen if which == "unseen" else split.seen
    return DetectionDataset(f"{dataset.name}-{split.name}-{which}", classes, images)


@dataclass(frozen=True)
class QueryCrop:
    """A query: the box ``(x1, y1, x2, y2)`` of one object in one image."""

    image_id: int | str
    file_name: str
    box: tuple[float, float, float, float]
    category: str


@dataclass(frozen=True)
class OneShotPair:
    """A target image, the query's class, the query crop and the target's boxes of that class."""

    image: ImageRecord
    category: str
    query: QueryCrop
    boxes: tuple[BoxRecord, ...]
    draw: int = 0


def query_pool(
    dataset: DetectionDataset, classes: Iterable[str], *, min_size: float = 1.0
) -> dict[str, list[QueryCrop]]:
    """Every usable query crop by class: non-difficult, non-crowd, both sides >= ``min_size``."""
    wanted = set(classes)
    pool: dict[str, list[QueryCrop]] = {c: [] for c in sorted(wanted)}
    for image in dataset.images:
        for obj in image.objects:
            x1, y1, x2, y2 = obj.box
            if obj.category not in wanted or obj.difficult or obj.iscrowd:
                continue
            if min(x2 - x1, y2 - y1) < min_size:
                continue
            pool[obj.category].append(
                QueryCrop(image.image_id, image.file_name, obj.box, obj.category)
            )
    return pool


def crop_query(crop: QueryCrop) -> np.ndarray:
    """The query's pixels: ``(h, w, 3)`` uint8, the box rounded outwards to whole pixels.

    Raises:
        ValueError: the image file is missing or the box has no pixel inside the image.
    """
    from PIL import Image

    try:
        with Image.open(crop.file_name) as image:
            rgb = np.asarray(image.convert("RGB"))
    except OSError as error:
        raise ValueError(f"query image {crop.file_name} (image {crop.image_id}): {error}") from None
    x1, y1 = max(0, math.floor(crop.box[0])), max(0, math.floor(crop.box[1]))
    x2, y2 = min(rgb.shape[1], math.ceil(crop.box[2])), min(rgb.shape[0], math.ceil(crop.box[3]))
    if x2 <= x1 or y2 <= y1:
        raise ValueError(
            f"query box {crop.box} of image {crop.image_id} ({crop.file_name}) lies outside its "
            f"{rgb.shape[1]}x{rgb.shape[0]} image"
        )
    return rgb[y1:y2, x1:x2]


def _image_seed(image_id: int | str) -> int:
    return (
        image_id
        if isinstance(image_id, int) and image_id >= 0
        else zlib.crc32(str(image_id).encode())
    )


def sample_training_pair(
    image: ImageRecord, pool: dict[str, list[QueryCrop]], generator: np.random.Generator
) -> OneShotPair | None:
    """Draw one training pair for ``image`` (class ∝ 1 / pool size; query from another image).

    Returns ``None`` when no class of the image has a crop in another image.
    """
    options = []
    for category in image.categories():
        crops = [q for q in pool.get(category, []) if q.image_id != image.image_id]
        if crops:
            options.append((category, crops, 1.0 / len(pool[category])))
    if not options:
        return None
    weights = np.asarray([w for _, _, w in options])
    category, crops, _ = options[int(generator.choice(len(options), p=weights / weights.sum()))]
    query = crops[int(generator.integers(len(crops)))]
    return OneShotPair(
        image, category, query, tuple(image.boxes_of(category, include_difficult=False))
    )


def eval_pairs(
    dataset: DetectionDataset,
    pool: dict[str, list[QueryCrop]],
    *,
    draws: int = 5,
    seed: int = 0,
    exclude_same_image: bool = True,
) -> list[OneShotPair]:
    """``draws`` pairs per (image, class it contains), seeded by ``(seed, image id)``.

    A class pool smaller than ``draws`` is repeated before shuffling (as the authors do), so a
    query can appear in several draws. Pairs carry every box of the class, difficult ones
    included (VOC AP50 ignores them).
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    pairs = []
    for image in dataset.images:
        rng = np.random.default_rng([seed, _image_seed(image.image_id)])
        for category in image.categories():
            crops = [
                q
                for q in pool.get(category, [])
                if not (exclude_same_image and q.image_id == image.image_id)
            ]
            if not crops:
                continue
            repeated = crops * math.ceil(draws / len(crops))
            order = rng.permutation(len(repeated))[:draws]
            boxes = tuple(image.boxes_of(category))
            pairs.extend(
                OneShotPair(image, category, repeated[int(k)], boxes, draw=d)
                for d, k in enumerate(order)
            )
    return pairs


def check_no_leak(
    data: DetectionDataset | Sequence[ImageRecord] | Sequence[OneShotPair], split: ClassSplit
) -> None:
    """Raise ``ValueError`` if an unseen-class box or query appears in training data.

    Args:
        data: a training data set, its image records, or training pairs.
        split: the class split whose unseen classes must not appear.
    """
    unseen = set(split.unseen)
    items = data.images if isinstance(data, DetectionDataset) else list(data)
    for item in items:
        if isinstance(item, OneShotPair):
            if item.category in unseen or item.query.category in unseen:
                raise ValueError(
                    f"leak: unseen class {item.category!r} used as a training query for image "
                    f"{item.image.image_id} ({item.image.file_name})"
                )
            objects, image = item.image.objects + item.boxes, item.image
        else:
            objects, image = item.objects, item
        for k, obj in enumerate(objects):
            if obj.category in unseen:
                raise ValueError(
                    f"leak: unseen class {obj.category!r} box {k} at {obj.box} in training image "
                    f"{image.image_id} ({image.file_name}); split {split.name}"
                )


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation of per-draw scores (NaN-free input expected)."""
    if len(values) == 0:
        raise ValueError("mean_std needs at least one value")
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std())
