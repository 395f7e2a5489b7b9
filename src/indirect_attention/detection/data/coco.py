"""COCO reader and writer (instances JSON) into the shared record format.

Bad data follows COCO's own conventions where it has them and fails loudly otherwise:

* broken JSON, a missing field, an annotation pointing at an unknown image or category, or a
  missing image file: ``ValueError`` naming the file and the record (``annotations[12] (id=...)``);
* a box with ``w <= 0`` or ``h <= 0``: skipped, counted in ``skipped["zero_area_box"]`` and reported
  in one warning (COCO train2017 holds a few; DETR's loader drops them the same way);
* a box reaching outside the image: clipped to the image, counted in ``skipped["clipped_box"]``
  (DETR clamps the same way); one that lies entirely outside is skipped as zero-area;
* crowd boxes are kept with ``iscrowd=True``; every consumer ignores them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from .records import BoxRecord, DetectionDataset, ImageRecord, xywh_to_xyxy, xyxy_to_xywh

__all__ = ["load_coco_json", "read_coco", "to_coco_dict"]


def load_coco_json(path: str | Path) -> dict[str, Any]:
    """Load a COCO JSON file, raising ``ValueError`` with the file and position when it is broken."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: broken JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None


def _field(record: dict, key: str, where: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{where}: missing field {key!r}")
    return record[key]


def _image_entries(
    entries: list, path: Path, root: Path, *, check_images: bool
) -> dict[int, dict[str, Any]]:
    """``images`` of a COCO file by id: file path (under ``root``), size and an empty object list."""
    metas: dict[int, dict[str, Any]] = {}
    for k, image in enumerate(entries):
        where = f"{path} images[{k}]"
        image_id = int(_field(image, "id", where))
        where = f"{where} (id={image_id})"
        file_path = root / str(_field(image, "file_name", where))
        if check_images and not file_path.is_file():
            raise ValueError(f"{where}: image file {file_path} is missing")
        metas[image_id] = {
            "file_name": str(file_path),
            "width": int(_field(image, "width", where)),
            "height": int(_field(image, "height", where)),
            "objects": [],
        }
    return metas


def read_coco(
    annotation_file: str | Path,
    image_root: str | Path | None = None,
    *,
    check_images: bool = True,
) -> DetectionDataset:
    """Read a COCO instances file.

    Args:
        annotation_file: the JSON file (``instances_val2017.json`` or an exported episode set).
        image_root: folder the ``file_name`` entries are relative to (default: the JSON's folder).
        check_images: raise when an image file is missing.

    Returns:
        The data set: classes in category-id order, records with integer ``image_id`` and boxes in
        ``xyxy`` pixels, and ``skipped`` counts (see the module docstring).
    """
    path = Path(annotation_file)
    data = load_coco_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level is {type(data).__name__}, expected an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing list {key!r}")
    root = Path(image_root) if image_root is not None else path.parent
    categories: dict[int, str] = {}
    for k, cat in enumerate(data["categories"]):
        where = f"{path} categories[{k}]"
        categories[int(_field(cat, "id", where))] = str(_field(cat, "name", where))
    metas = _image_entries(data["images"], path, root, check_images=check_images)
    skipped = {"zero_area_box": 0, "clipped_box": 0}
    for k, ann in enumerate(data["annotations"]):
        where = f"{path} annotations[{k}] (id={ann.get('id') if isinstance(ann, dict) else None})"
        image_id = int(_field(ann, "image_id", where))
        category_id = int(_field(ann, "category_id", where))
        bbox = _field(ann, "bbox", where)
        if image_id not in metas:
            raise ValueError(f"{where}: unknown image_id {image_id}")
        if category_id not in categories:
            raise ValueError(f"{where}: unknown category_id {category_id}")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
        meta = metas[image_id]
        x1, y1, x2, y2 = xywh_to_xyxy(bbox)
        clipped = (
            min(max(x1, 0.0), meta["width"]),
            min(max(y1, 0.0), meta["height"]),
            min(max(x2, 0.0), meta["width"]),
            min(max(y2, 0.0), meta["height"]),
        )
        if not (clipped[2] > clipped[0] and clipped[3] > clipped[1]):
            skipped["zero_area_box"] += 1
            continue
        if clipped != (x1, y1, x2, y2):
            skipped["clipped_box"] += 1
        meta["objects"].append(
            BoxRecord(
                box=clipped,
                category=categories[category_id],
                iscrowd=bool(ann.get("iscrowd", 0)),
                difficult=bool(ann.get("difficult", 0)),
                annotation_id=int(ann["id"]) if "id" in ann else None,
            )
        )
    if skipped["zero_area_box"] or skipped["clipped_box"]:
        warnings.warn(
            f"{path}: skipped {skipped['zero_area_box']} zero-area boxes and clipped "
            f"{skipped['clipped_box']} boxes to their image",
            stacklevel=2,
        )
    images = [
        ImageRecord(i, m["file_name"], m["width"], m["height"], tuple(m["objects"]))
        for i, m in metas.items()
    ]
    names = tuple(categories[i] for i in sorted(categories))
    return DetectionDataset(path.stem, names, images, skipped)


def to_coco_dict(
    images: list[ImageRecord],
    classes: tuple[str, ...],
    *,
    image_root: str | Path | None = None,
) -> dict[str, Any]:
    """Serialise records as a COCO instances dict (category ids ``1..len(classes)``).

    Non-integer image ids are replaced by their position + 1 and kept in ``"source_id"``.
    ``file_name`` is written relative to ``image_root`` when given. Difficult flags are kept in a
    ``"difficult"`` field, which :func:`read_coco` and the VOC metric read back.
    """
    cat_ids = {name: k + 1 for k, name in enumerate(classes)}
    out_images, annotations = [], []
    for position, image in enumerate(images):
        image_id = image.image_id if isinstance(image.image_id, int) else position + 1
        file_name = image.file_name
        if image_root is not None:
            file_name = str(Path(file_name).relative_to(image_root))
        entry: dict[str, Any] = {
            "id": image_id,
            "file_name": file_name,
            "width": image.width,
            "height": image.height,
        }
        if not isinstance(image.image_id, int):
            entry["source_id"] = image.image_id
        out_images.append(entry)
        for obj in image.objects:
            x, y, w, h = xyxy_to_xywh(obj.box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_ids[obj.category],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": int(obj.iscrowd),
                    "difficult": int(obj.difficult),
                }
            )
    categories = [{"id": i, "name": name} for name, i in cat_ids.items()]
    return {"images": out_images, "annotations": annotations, "categories": categories}
