"""COCO JSON reader on fixtures written in tmp_path, its skip/clip conventions and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from indirect_attention.detection.data.coco import read_coco, to_coco_dict


def _fixture(root: Path, annotations: list[dict], *, images: bool = True) -> Path:
    entries = [
        {"id": 11, "file_name": "a.jpg", "width": 50, "height": 40},
        {"id": 12, "file_name": "sub/b.jpg", "width": 30, "height": 30},
    ]
    if images:
        (root / "sub").mkdir(parents=True, exist_ok=True)
        for entry in entries:
            Image.new("RGB", (entry["width"], entry["height"])).save(root / entry["file_name"])
    data = {
        "images": entries,
        "annotations": annotations,
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path


def _ann(k: int, image_id: int, cat: int, bbox: list[float], **extra) -> dict:
    return {"id": k, "image_id": image_id, "category_id": cat, "bbox": bbox, **extra}


def test_read_coco(tmp_path: Path) -> None:
    path = _fixture(
        tmp_path,
        [
            _ann(1, 11, 18, [5, 6, 10, 20]),
            _ann(2, 11, 1, [0, 0, 3, 4], iscrowd=1),
            _ann(3, 12, 1, [1.5, 2, 3, 4]),
        ],
    )
    data = read_coco(path)
    assert data.classes == ("person", "dog")  # category-id order
    by_id = {im.image_id: im for im in data.images}
    a = by_id[11]
    assert (a.width, a.height) == (50, 40) and Path(a.file_name) == tmp_path / "a.jpg"
    assert a.objects[0].box == (5.0, 6.0, 15.0, 26.0) and a.objects[0].category == "dog"
    assert a.objects[0].annotation_id == 1 and a.objects[1].iscrowd
    assert by_id[12].objects[0].box == (1.5, 2.0, 4.5, 6.0)
    assert data.skipped == {"zero_area_box": 0, "clipped_box": 0}


def test_zero_area_skipped_and_outside_clipped_with_counted_warning(tmp_path: Path) -> None:
    path = _fixture(
        tmp_path,
        [
            _ann(1, 11, 18, [5, 6, 0, 20]),  # zero width
            _ann(2, 11, 18, [60, 6, 5, 5]),  # entirely outside: zero after clipping
            _ann(3, 11, 18, [45, 30, 10, 20]),  # reaches outside: clipped
            _ann(4, 12, 1, [1, 1, 2, 2]),
        ],
    )
    with pytest.warns(UserWarning, match="skipped 2 zero-area boxes and clipped 1 boxes"):
        data = read_coco(path)
    assert data.skipped == {"zero_area_box": 2, "clipped_box": 1}
    a = next(im for im in data.images if im.image_id == 11)
    assert [o.box for o in a.objects] == [(45.0, 30.0, 50.0, 40.0)]


def test_broken_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"images": [1, 2,')
    with pytest.raises(ValueError, match=r"broken\.json: broken JSON at line 1"):
        read_coco(path)


@pytest.mark.parametrize(
    ("ann", "message"),
    [
        (
            {"id": 9, "image_id": 11, "category_id": 18},
            r"annotations\[0\] \(id=9\): missing field 'bbox'",
        ),
        (_ann(9, 99, 18, [0, 0, 1, 1]), r"annotations\[0\] \(id=9\): unknown image_id 99"),
        (_ann(9, 11, 5, [0, 0, 1, 1]), r"annotations\[0\] \(id=9\): unknown category_id 5"),
        (_ann(9, 11, 18, [0, 0, 1]), r"annotations\[0\] \(id=9\): bbox must be"),
    ],
)
def test_bad_annotations_name_the_record(tmp_path: Path, ann: dict, message: str) -> None:
    with pytest.raises(ValueError, match=r"instances\.json " + message):
        read_coco(_fixture(tmp_path, [ann]))


def test_missing_image_names_the_record(tmp_path: Path) -> None:
    path = _fixture(tmp_path, [], images=False)
    with pytest.raises(ValueError, match=r"images\[0\] \(id=11\): image file .*a\.jpg is missing"):
        read_coco(path)
    assert len(read_coco(path, check_images=False)) == 2


def test_writer_round_trip(tmp_path: Path) -> None:
    path = _fixture(
        tmp_path, [_ann(1, 11, 18, [5, 6, 10, 20], difficult=1), _ann(2, 12, 1, [1.5, 2, 3, 4])]
    )
    data = read_coco(path)
    document = to_coco_dict(data.images, data.classes, image_root=tmp_path)
    (tmp_path / "again.json").write_text(json.dumps(document))
    back = read_coco(tmp_path / "again.json")
    assert [im.objects for im in back.images] == [im.objects for im in data.images]
    assert back.images[0].objects[0].difficult
