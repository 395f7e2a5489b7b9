"""VOC XML reader on fixtures written by hand in tmp_path, its errors, and the writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from indirect_attention.detection.data.records import BoxRecord, ImageRecord
from indirect_attention.detection.data.voc import read_voc, read_voc_xml, voc_xml


def _object(
    name: str, box: tuple[int, int, int, int], difficult: int = 0, truncated: int = 0
) -> str:
    x1, y1, x2, y2 = box
    return (
        f"<object><name>{name}</name><truncated>{truncated}</truncated><difficult>{difficult}</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
    )


def _write(root: Path, stem: str, objects: str, *, size=(40, 30), image: bool = True) -> Path:
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    if image:
        Image.new("RGB", size).save(root / "JPEGImages" / f"{stem}.jpg")
    xml = (
        f"<annotation><folder>VOC2007</folder><filename>{stem}.jpg</filename>"
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        f"{objects}</annotation>"
    )
    path = root / "Annotations" / f"{stem}.xml"
    path.write_text(xml)
    return path


def test_read_voc_split(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "000001",
        _object("cat", (1, 1, 10, 20), truncated=1) + _object("dog", (5, 6, 40, 30), difficult=1),
    )
    _write(tmp_path, "000002", _object("cow", (2, 3, 4, 5)))
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002\n")
    data = read_voc(tmp_path, "test")
    assert len(data) == 2 and len(data.classes) == 20
    first = data.images[0]
    assert (first.image_id, first.width, first.height) == ("000001", 40, 30)
    assert Path(first.file_name) == tmp_path / "JPEGImages" / "000001.jpg"
    # 1-based inclusive corners -> continuous: (xmin - 1, ymin - 1, xmax, ymax)
    assert first.objects[0] == BoxRecord((0.0, 0.0, 10.0, 20.0), "cat", truncated=True)
    assert first.objects[1] == BoxRecord((4.0, 5.0, 40.0, 30.0), "dog", difficult=True)
    assert data.images[1].objects[0].box == (1.0, 2.0, 4.0, 5.0)


def test_broken_xml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "x", "")
    path.write_text("<annotation><filename>x.jpg</filename>")
    with pytest.raises(ValueError, match=r"x\.xml: broken XML"):
        read_voc_xml(path)


def test_missing_image_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "x", _object("cat", (1, 1, 5, 5)), image=False)
    with pytest.raises(ValueError, match=r"x\.xml: image file .*x\.jpg is missing"):
        read_voc_xml(path)
    assert read_voc_xml(path, check_image=False).objects[0].category == "cat"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (_object("cat", (10, 5, 4, 9)), r"object 1 \(cat\): zero area box"),
        (_object("cat", (1, 1, 45, 9)), r"object 1 \(cat\): box outside image"),
        (_object("unicorn", (1, 1, 5, 5)), r"object 1: unknown class 'unicorn'"),
        ("<object><name>cat</name></object>", r"object 1: missing <bndbox>"),
        (
            "<object><name>cat</name><bndbox><xmin>a</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object>",
            r"object 1: <xmin> is 'a', not a number",
        ),
    ],
)
def test_bad_objects_name_file_and_object(tmp_path: Path, obj: str, message: str) -> None:
    path = _write(tmp_path, "bad", _object("dog", (1, 1, 5, 5)) + obj)
    with pytest.raises(ValueError, match=r"bad\.xml " + message):
        read_voc_xml(path)


def test_box_on_the_border_is_clipped_not_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "edge", _object("cat", (0, 1, 41, 30)))
    assert read_voc_xml(path).objects[0].box == (0.0, 0.0, 40.0, 30.0)


def test_writer_round_trip(tmp_path: Path) -> None:
    image = ImageRecord(
        "7", "7.png", 64, 48,
        (BoxRecord((0.0, 2.0, 10.0, 20.0), "bird", difficult=True), BoxRecord((30.0, 8.0, 64.0, 48.0), "boat")),
    )  # fmt: skip
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "7.xml").write_text(voc_xml(image))
    back = read_voc_xml(tmp_path / "Annotations" / "7.xml", check_image=False)
    assert back.objects == image.objects and (back.width, back.height) == (64, 48)
