"""One in-memory record format for every detection data set (VOC, COCO, the emoji benchmark).

Coordinates: boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates of the original image,
with ``0 <= x1 < x2 <= width`` (a pixel ``i`` covers ``[i, i + 1)``). VOC's 1-based inclusive
integer corners map to ``(xmin - 1, ymin - 1, xmax, ymax)``; COCO's ``[x, y, w, h]`` maps to
``(x, y, x + w, y + h)``. Readers convert once, here, so nothing downstream guesses a convention.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

__all__ = [
    "BoxRecord",
    "DetectionDataset",
    "ImageRecord",
    "check_box",
    "xywh_to_xyxy",
    "xyxy_to_xywh",
]

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class BoxRecord:
    """One annotated object.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in pixels (see the module docstring).
        category: class name (e.g. ``"cat"``); names, not ids, so data sets can be mixed.
        difficult: VOC's flag; ignored (neither true nor false positive) by VOC AP50.
        truncated: VOC's flag; informational only.
        iscrowd: COCO's flag; crowd boxes are never queries, targets or training boxes.
        annotation_id: the source's id for the object, when it has one.
    """

    box: Box
    category: str
    difficult: bool = False
    truncated: bool = False
    iscrowd: bool = False
    annotation_id: int | None = None

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


@dataclass(frozen=True)
class ImageRecord:
    """One image with its objects.

    Attributes:
        image_id: the source's id (COCO integer id or VOC file stem).
        file_name: path of the image file (absolute, or relative to the data set's root).
        width: image width in pixels.
        height: image height in pixels.
        objects: the annotated objects.
    """

    image_id: int | str
    file_name: str
    width: int
    height: int
    objects: tuple[BoxRecord, ...] = ()

    def categories(self) -> list[str]:
        """Sorted distinct class names among the non-crowd objects."""
        return sorted({obj.category for obj in self.objects if not obj.iscrowd})

    def boxes_of(self, category: str, *, include_difficult: bool = True) -> list[BoxRecord]:
        """The non-crowd objects of one class, optionally without the difficult ones."""
        return [
            obj
            for obj in self.objects
            if obj.category == category
            and not obj.iscrowd
            and (include_difficult or not obj.difficult)
        ]


@dataclass
class DetectionDataset:
    """A list of image records with its class list and the reader's skip counts.

    Attributes:
        name: a label for messages (e.g. ``"voc2007-test"``).
        classes: all class names of the data set, in the source's order.
        images: the image records.
        skipped: how many records the reader skipped, by reason (e.g. ``{"zero_area_box": 3}``).
    """

    name: str
    classes: tuple[str, ...]
    images: list[ImageRecord]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def filter_objects(self, keep: Iterable[str], *, drop_empty: bool = True) -> DetectionDataset:
        """A copy that keeps only objects whose class is in ``keep`` (and drops empty images)."""
        wanted = set(keep)
        images = []
        for image in self.images:
            objects = tuple(obj for obj in image.objects if obj.category in wanted)
            if objects or not drop_empty:
                images.append(replace(image, objects=objects))
        return DetectionDataset(self.name, self.classes, images, dict(self.skipped))


def xywh_to_xyxy(box: Sequence[float]) -> Box:
    """COCO ``[x, y, w, h]`` to ``(x1, y1, x2, y2)``."""
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)


def xyxy_to_xywh(box: Sequence[float]) -> Box:
    """``(x1, y1, x2, y2)`` to COCO ``[x, y, w, h]``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2 - x1, y2 - y1)


def check_box(box: Box, width: int, height: int, *, tolerance: float = 0.0) -> str | None:
    """Why a box is invalid for a ``width`` x ``height`` image, or ``None`` when it is fine.

    Returns ``"zero_area_box"`` when ``x2 <= x1`` or ``y2 <= y1`` and ``"box_outside_image"`` when a
    corner lies more than ``tolerance`` pixels outside the image.
    """
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        return "zero_area_box"
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        return "box_outside_image"
    return None
