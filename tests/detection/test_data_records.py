"""The shared record format: box conversions, validity checks and filtering."""

from __future__ import annotations

import pytest

from indirect_attention.detection.data.records import (
    BoxRecord,
    DetectionDataset,
    ImageRecord,
    check_box,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def test_xywh_xyxy_round_trip() -> None:
    assert xywh_to_xyxy([10, 20, 5, 7]) == (10.0, 20.0, 15.0, 27.0)
    assert xyxy_to_xywh(xywh_to_xyxy([1.5, 2.25, 3.0, 4.5])) == (1.5, 2.25, 3.0, 4.5)


@pytest.mark.parametrize(
    ("box", "reason"),
    [
        ((0, 0, 10, 10), None),
        ((5, 5, 5, 9), "zero_area_box"),
        ((5, 9, 8, 3), "zero_area_box"),
        ((-2, 0, 10, 10), "box_outside_image"),
        ((0, 0, 10, 10.5), "box_outside_image"),
    ],
)
def test_check_box(box, reason) -> None:
    assert check_box(box, 10, 10) == reason


def test_check_box_tolerance() -> None:
    assert check_box((-0.5, 0, 10, 10.5), 10, 10, tolerance=1.0) is None


def test_image_queries_and_filter() -> None:
    objects = (
        BoxRecord((0, 0, 4, 4), "cat"),
        BoxRecord((1, 1, 5, 5), "cat", difficult=True),
        BoxRecord((2, 2, 9, 9), "dog", iscrowd=True),
        BoxRecord((0, 0, 2, 3), "cow"),
    )
    image = ImageRecord(1, "a.png", 10, 10, objects)
    assert image.categories() == ["cat", "cow"]  # the crowd-only class is not a category
    assert len(image.boxes_of("cat")) == 2
    assert len(image.boxes_of("cat", include_difficult=False)) == 1
    assert image.objects[3].area == 6.0
    data = DetectionDataset(
        "d", ("cat", "dog", "cow"), [image, ImageRecord(2, "b.png", 5, 5, objects[2:3])]
    )
    kept = data.filter_objects(["cat"])
    assert len(kept) == 1 and {o.category for o in kept.images[0].objects} == {"cat"}
    assert len(data.filter_objects(["cat"], drop_empty=False)) == 2


def test_public_names_resolve() -> None:
    import indirect_attention.detection as detection
    import indirect_attention.detection.data as data

    for module in (detection, data):
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, (module.__name__, missing)
