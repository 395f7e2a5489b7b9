"""Pascal VOC reader and writer (XML annotations) into the shared record format.

Layout read: ``root/Annotations/<id>.xml``, ``root/JPEGImages/<file>``,
``root/ImageSets/Main/<image_set>.txt`` (the layout of ``VOCdevkit/VOC2007``). VOC corners are
1-based inclusive integers; records hold ``(xmin - 1, ymin - 1, xmax, ymax)``.

Bad data raises ``ValueError`` naming the file and the object: broken XML, missing fields, an
unknown class, a zero-area box (``xmax < xmin``) or a box more than one pixel outside the image.
The VOC devkit guarantees ``1 <= xmin <= xmax <= width``, so nothing is skipped silently; boxes
within one pixel of the border are clipped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from .records import BoxRecord, DetectionDataset, ImageRecord, check_box

__all__ = ["VOC_CLASSES", "read_voc", "read_voc_xml", "voc_xml"]

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


def _text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, where: str) -> float:
    value = _text(node, tag, where)
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: <{tag}> is {value!r}, not a number") from None


def _flag(node: ET.Element, tag: str) -> bool:
    child = node.find(tag)
    return child is not None and (child.text or "0").strip() not in ("", "0")


def _image_size(root: ET.Element, where: str, image_path: Path) -> tuple[int, int]:
    size = root.find("size")
    if size is not None and size.find("width") is not None:
        return int(_number(size, "width", where)), int(_number(size, "height", where))
    if not image_path.is_file():
        raise ValueError(f"{where}: no <size> and the image {image_path} is missing")
    from PIL import Image

    with Image.open(image_path) as image:
        return image.size


def read_voc_xml(
    path: str | Path,
    *,
    image_dir: str | Path | None = None,
    classes: Sequence[str] | None = VOC_CLASSES,
    check_image: bool = True,
) -> ImageRecord:
    """Read one VOC annotation file.

    Args:
        path: the ``.xml`` file.
        image_dir: folder of the images (default ``../JPEGImages`` next to the XML's folder).
        classes: allowed class names; ``None`` accepts any name.
        check_image: raise when the image file does not exist.

    Returns:
        The image record; ``image_id`` is the file stem and ``file_name`` the image path.

    Raises:
        ValueError: broken XML, a missing field, an unknown class or an invalid box, with the file
            and the object's index in the message.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"{path}: broken XML ({error})") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error})") from None
    where = str(path)
    image_dir = Path(image_dir) if image_dir is not None else path.parent.parent / "JPEGImages"
    image_path = image_dir / _text(root, "filename", where)
    if check_image and not image_path.is_file():
        raise ValueError(f"{where}: image file {image_path} is missing")
    width, height = _image_size(root, where, image_path)
    objects = []
    for k, obj in enumerate(root.findall("object")):
        here = f"{where} object {k}"
        name = _text(obj, "name", here)
        if classes is not None and name not in classes:
            raise ValueError(f"{here}: unknown class {name!r}")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise ValueError(f"{here}: missing <bndbox>")
        xmin, ymin, xmax, ymax = (
            _number(bndbox, t, here) for t in ("xmin", "ymin", "xmax", "ymax")
        )
        box = (xmin - 1.0, ymin - 1.0, xmax, ymax)
        problem = check_box(box, width, height, tolerance=1.0)
        if problem is not None:
            raise ValueError(
                f"{here} ({name}): {problem.replace('_', ' ')}: xmin={xmin:g} ymin={ymin:g} "
                f"xmax={xmax:g} ymax={ymax:g} in a {width}x{height} image"
            )
        box = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], width), min(box[3], height))
        objects.append(
            BoxRecord(
                box=box,
                category=name,
                difficult=_flag(obj, "difficult"),
                truncated=_flag(obj, "truncated"),
            )
        )
    return ImageRecord(path.stem, str(image_path), width, height, tuple(objects))


def read_voc(
    root: str | Path,
    image_set: str = "test",
    *,
    classes: Sequence[str] | None = VOC_CLASSES,
    check_images: bool = True,
) -> DetectionDataset:
    """Read every image listed in ``root/ImageSets/Main/<image_set>.txt``.

    Args:
        root: a VOC year folder (``.../VOCdevkit/VOC2007``).
        image_set: the list file's stem (``train``, ``val``, ``trainval``, ``test``).
        classes: allowed class names (default the 20 VOC classes); ``None`` accepts any.
        check_images: raise when an image file is missing.

    Returns:
        The data set, named ``"<folder>-<image_set>"``.
    """
    root = Path(root)
    listing = root / "ImageSets" / "Main" / f"{image_set}.txt"
    if not listing.is_file():
        raise ValueError(f"{listing}: image-set list not found")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    images = [
        read_voc_xml(
            root / "Annotations" / f"{image_id}.xml",
            image_dir=root / "JPEGImages",
            classes=classes,
            check_image=check_images,
        )
        for image_id in ids
    ]
    names = (
        tuple(classes)
        if classes is not None
        else tuple(sorted({o.category for im in images for o in im.objects}))
    )
    return DetectionDataset(f"{root.name}-{image_set}", names, images)


def voc_xml(image: ImageRecord, *, folder: str = "VOC", extra: ET.Element | None = None) -> str:
    """Serialise an image record as VOC XML (integer 1-based corners; inverse of the reader).

    ``extra`` is appended to the ``<annotation>`` root (e.g. the emoji episode's query).
    """
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = Path(image.file_name).name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", image.width), ("height", image.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    for obj in image.objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = obj.category
        ET.SubElement(node, "truncated").text = str(int(obj.truncated))
        ET.SubElement(node, "difficult").text = str(int(obj.difficult))
        bndbox = ET.SubElement(node, "bndbox")
        x1, y1, x2, y2 = obj.box
        corners = (round(x1) + 1, round(y1) + 1, round(x2), round(y2))
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True):
            ET.SubElement(bndbox, tag).text = str(value)
    if extra is not None:
        root.append(extra)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"
