"""One-shot pairs from real data sets (VOC, COCO) as model batches, and their evaluation (§6.2).

Training images are drawn from the protocol's training view (seen classes only); each gets a
query class and a crop from another image (:func:`sample_training_pair`). Targets are resized so
the longer side is ``max_size`` and zero-padded bottom-right to a shared canvas with a padding mask;
query crops are resized to ``query_size`` squares (aspect not kept, as the authors do). Evaluation
uses the seeded :func:`eval_pairs` draws (5 per image and class), scores VOC AP50 per draw, and
adds the same wrong-query control and chance floor as the emoji protocol.

Shapes:
    targets (B, 3, H, W) in [0, 1], padding (B, H, W) bool, queries (B, 3, q, q); ground truth
    a list of (K, 4) cxcywh normalised by the canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert

from .data import (
    ClassSplit,
    DetectionDataset,
    OneShotPair,
    QueryCrop,
    crop_query,
    eval_pairs,
    eval_view,
    load_class_split,
    mean_std,
    query_pool,
    read_coco,
    read_voc,
    sample_training_pair,
    training_view,
)
from .metrics import Detection, mean_ap, voc_ap50
from .model import IADETR
from .postprocess import PostProcess

__all__ = ["PairBatcher", "custom_split", "evaluate_pairs", "load_real_data", "training_pairs"]


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


def load_real_data(
    data: str,
    root: str | Path | None,
    *,
    train: bool,
    annotation_file: str | Path | None = None,
    unseen: Sequence[str] | None = None,
) -> tuple[DetectionDataset, ClassSplit]:
    """The VOC (``root`` = a VOC year folder: ``trainval`` / ``test``) or COCO (``root`` holds
    ``annotations/instances_{train,val}2017.json`` and the image folders) split, with the class
    split (VOC: CoAE's; COCO: split 1).

    Args:
        data: ``voc`` or ``coco``.
        root: The data set's folder (may be None with ``annotation_file``).
        train: The training split (else the test split).
        annotation_file: A COCO instances JSON of one's own instead of the standard one
            (``data="coco"``); its ``file_name`` entries are relative to ``root``, or to the
            JSON's folder when ``root`` is None.
        unseen: Held-out classes replacing the shipped split (:func:`custom_split`); without
            it a custom JSON gets COCO split 1 (its class names must then be COCO's).
    """
    if annotation_file is not None:
        if data != "coco":
            raise ValueError(f"--train-json / --val-json need --data coco, got --data {data}")
        dataset, split = read_coco(annotation_file, root), load_class_split("coco1")
    elif root is None:
        raise ValueError(f"--data {data} needs --data-root (or --train-json / --val-json)")
    else:
        dataset, split = _standard_data(data, Path(root), train=train)
    if unseen is not None:
        split = custom_split(dataset.classes, unseen)
    return dataset, split


def _standard_data(data: str, root: Path, *, train: bool) -> tuple[DetectionDataset, ClassSplit]:
    if data == "voc":
        dataset = read_voc(root, "trainval" if train else "test")
        split = load_class_split("voc")
    elif data == "coco":
        name = "train2017" if train else "val2017"
        dataset = read_coco(root / "annotations" / f"instances_{name}.json", root / name)
        split = load_class_split("coco1")
    else:
        raise ValueError(f"unknown real data set {data!r}; choose voc or coco")
    return dataset, split


def _load(path: str, max_size: int) -> tuple[Tensor, float]:
    from PIL import Image

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0
    scale = max_size / max(tensor.shape[-2:])
    size = (max(1, round(tensor.shape[-2] * scale)), max(1, round(tensor.shape[-1] * scale)))
    resized = F.interpolate(tensor[None], size=size, mode="bilinear", antialias=True)[0]
    return resized, scale


def _query(crop: QueryCrop, size: int) -> Tensor:
    pixels = torch.from_numpy(crop_query(crop).copy()).permute(2, 0, 1).float() / 255.0
    return F.interpolate(pixels[None], size=(size, size), mode="bilinear", antialias=True)[0]


@dataclass
class PairBatcher:
    """Turns one-shot pairs into padded model inputs.

    Attributes:
        max_size: Longer side of the resized target.
        query_size: Side of the resized query.
        stride: The canvas is rounded up to a multiple of this.
    """

    max_size: int = 512
    query_size: int = 192
    stride: int = 16

    def __call__(
        self, pairs: list[OneShotPair]
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor], list[float]]:
        """Targets, padding, queries, ground truth and each target's resize factor."""
        images, scales = zip(*(_load(p.image.file_name, self.max_size) for p in pairs), strict=True)
        height = -(-max(i.shape[-2] for i in images) // self.stride) * self.stride
        width = -(-max(i.shape[-1] for i in images) // self.stride) * self.stride
        targets = torch.zeros(len(pairs), 3, height, width)
        padding = torch.ones(len(pairs), height, width, dtype=torch.bool)
        truth = []
        canvas = torch.tensor([width, height, width, height], dtype=torch.float32)
        for b, (image, scale, pair) in enumerate(zip(images, scales, pairs, strict=True)):
            targets[b, :, : image.shape[-2], : image.shape[-1]] = image
            padding[b, : image.shape[-2], : image.shape[-1]] = False
            boxes = torch.tensor([o.box for o in pair.boxes], dtype=torch.float32).reshape(-1, 4)
            truth.append(box_convert(boxes * scale / canvas, "xyxy", "cxcywh"))
        queries = torch.stack([_query(p.query, self.query_size) for p in pairs])
        return targets, padding, queries, truth, list(scales)


def training_pairs(
    dataset: DetectionDataset, split: ClassSplit, generator: np.random.Generator
) -> list[OneShotPair]:
    """One training pair per usable image of the training view, in a random order."""
    view = training_view(dataset, split)
    pool = query_pool(view, split.seen)
    pairs = [sample_training_pair(image, pool, generator) for image in view.images]
    kept = [p for p in pairs if p is not None]
    return [kept[int(k)] for k in generator.permutation(len(kept))]


@torch.no_grad()
def _score(
    model: IADETR, pairs: list[OneShotPair], batcher: PairBatcher, batch_size: int
) -> list[Detection]:
    post, detections = PostProcess(100), []
    device = next(model.parameters()).device  # follow the model (a GPU during training)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        targets, padding, queries, _, scales = batcher(chunk)
        out = model(targets.to(device), queries.to(device), padding.to(device))
        height, width = targets.shape[-2:]
        for pair, scale, (scores, boxes) in zip(
            chunk, scales, post(out.logits[-1], out.boxes[-1], (width, height)), strict=True
        ):
            detections.extend(
                Detection(
                    pair.image.image_id,
                    pair.category,
                    tuple((box / scale).tolist()),
                    float(s),
                    pair.draw,
                )
                for s, box in zip(scores, boxes, strict=True)
            )
    return detections


def evaluate_pairs(
    model: IADETR,
    dataset: DetectionDataset,
    split: ClassSplit,
    *,
    which: str = "unseen",
    draws: int = 5,
    seed: int = 0,
    batcher: PairBatcher | None = None,
    batch_size: int = 8,
) -> dict:
    """VOC AP50 mean ± std over query draws, the wrong-query control and the chance floor."""
    batcher = batcher or PairBatcher()
    view = eval_view(dataset, split, which=which)
    pool = query_pool(view, view.classes)
    pairs = eval_pairs(view, pool, draws=draws, seed=seed)
    rng = np.random.default_rng([seed, 1])
    classes = [c for c in view.classes if pool.get(c)]
    wrong = []
    for pair in pairs:
        other = [c for c in classes if c != pair.category] or [pair.category]
        crops = pool[str(rng.choice(other))]
        wrong.append(
            OneShotPair(
                pair.image,
                pair.category,
                crops[int(rng.integers(len(crops)))],
                pair.boxes,
                pair.draw,
            )
        )
    model.eval()
    right_ap, wrong_ap = [], []
    for draw in range(draws):
        for chosen, out in ((pairs, right_ap), (wrong, wrong_ap)):
            selected = [p for p in chosen if p.draw == draw]
            out.append(mean_ap(voc_ap50(view.images, _score(model, selected, batcher, batch_size))))
    full = {image.image_id: image for image in dataset.images}
    chance = [
        Detection(p.image.image_id, p.category, o.box, float(rng.random()))
        for p in pairs
        if p.draw == 0
        for o in full[p.image.image_id].objects
    ]
    (rm, rs), (wm, ws) = mean_std(right_ap), mean_std(wrong_ap)
    return {
        "split": which,
        "draws": draws,
        "ap50": {"mean": rm, "std": rs, "draws": right_ap},
        "wrong_query": {"mean": wm, "std": ws, "draws": wrong_ap},
        "margin": rm - wm,
        "chance_floor": mean_ap(voc_ap50(view.images, chance)),
    }
