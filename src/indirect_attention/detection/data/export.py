"""Write an emoji episode set to disk in COCO or VOC format (``ia data export``).

COCO layout: ``images/<id>.png``, ``queries/<id>.png``, ``annotations.json``. The JSON is a
standard instances file whose annotations are the one-shot ground truth (the query-class boxes),
so ``ia detr eval-json --gt annotations.json`` scores predictions on it directly. Each image entry
adds ``query_file``, ``query_category_id`` and ``query_style``; distractor objects are listed
separately under the top-level ``"distractors"`` key so they are never mistaken for targets.

VOC layout: ``JPEGImages/<id>.png`` (PNG, lossless, in VOC's folder name), ``Queries/<id>.png``,
``Annotations/<id>.xml`` (``<object>`` = query-class boxes; ``<query>`` and ``<distractor>``
elements carry the rest) and ``ImageSets/Main/<split>.txt``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tqdm.auto import tqdm

from .emoji_dataset import EmojiEpisodes
from .emoji_episodes import EpisodeConfig
from .records import BoxRecord, ImageRecord, xyxy_to_xywh
from .voc import voc_xml

__all__ = ["export_episodes"]


def _save_png(array, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array).save(path, optimize=False)


def _write_voc_annotation(
    out: Path,
    record: ImageRecord,
    others: tuple[BoxRecord, ...],
    *,
    split: str,
    category: str,
    style: str,
) -> None:
    """``Annotations/<stem>.xml``: the query's boxes as objects, a ``query`` element naming the
    query image, class and style, and the distractors as ``distractor`` elements."""
    stem = str(record.image_id)
    extra = ET.Element("query")
    for tag, value in (("filename", f"{stem}.png"), ("name", category), ("style", style)):
        ET.SubElement(extra, tag).text = value
    root = ET.fromstring(voc_xml(record, folder=f"emoji-{split}", extra=extra))
    for obj in others:
        single = ImageRecord(stem, "", record.width, record.height, (obj,))
        node = ET.fromstring(voc_xml(single)).find("object")
        node.tag = "distractor"
        root.append(node)
    ET.indent(root)
    (out / "Annotations").mkdir(exist_ok=True)
    (out / "Annotations" / f"{stem}.xml").write_text(ET.tostring(root, encoding="unicode") + "\n")


def export_episodes(
    split: str,
    out_dir: str | Path,
    *,
    fmt: str = "coco",
    seed: int = 0,
    length: int | None = None,
    config: EpisodeConfig | None = None,
    progress: bool = False,
) -> Path:
    """Render and write episodes ``0 .. length - 1`` of ``split``.

    Args:
        split: ``train``, ``val``, ``test`` or ``test_seen``.
        out_dir: destination folder (created).
        fmt: ``"coco"`` or ``"voc"``.
        seed: the benchmark seed (0 = the published sets).
        length: number of episodes (default the split's fixed size).
        config: canvas and sampling settings.
        progress: show a progress bar over the episodes.

    Returns:
        The annotation file (COCO) or the image-set list (VOC) that was written.
    """
    if fmt not in ("coco", "voc"):
        raise ValueError(f"unknown export format {fmt!r}; choose coco or voc")
    data = EmojiEpisodes(split, seed=seed, length=length, config=config)
    out = Path(out_dir)
    image_dir = out / ("images" if fmt == "coco" else "JPEGImages")
    query_dir = out / ("queries" if fmt == "coco" else "Queries")
    for folder in (image_dir, query_dir):
        folder.mkdir(parents=True, exist_ok=True)
    cat_ids = {name: k + 1 for k, name in enumerate(data.bank.classes)}
    images, annotations, distractors, ids = [], [], [], []
    for index in tqdm(
        range(len(data)), desc=f"export {split}", unit="episode", disable=not progress
    ):
        episode = data.episode(index)
        stem = f"{split}_{index:06d}"
        _save_png(episode.target, image_dir / f"{stem}.png")
        _save_png(episode.query, query_dir / f"{stem}.png")
        spec, size = episode.spec, data.config.canvas_size
        objects = tuple(BoxRecord(tuple(map(float, b)), spec.category) for b in episode.boxes)
        others = tuple(
            BoxRecord(tuple(map(float, b)), c)
            for b, c in zip(episode.distractor_boxes, episode.distractor_classes, strict=True)
        )
        if fmt == "voc":
            record = ImageRecord(stem, f"{stem}.png", size, size, objects)
            _write_voc_annotation(
                out, record, others, split=split, category=spec.category, style=spec.query_style
            )
            ids.append(stem)
            continue
        image_id = index + 1
        images.append({
            "id": image_id, "file_name": f"images/{stem}.png", "width": size, "height": size,
            "query_file": f"queries/{stem}.png", "query_category_id": cat_ids[spec.category],
            "query_style": spec.query_style, "episode": index,
        })  # fmt: skip
        for group, items in ((annotations, objects), (distractors, others)):
            for obj in items:
                x, y, w, h = xyxy_to_xywh(obj.box)
                group.append({
                    "id": len(group) + 1, "image_id": image_id, "category_id": cat_ids[obj.category],
                    "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
                })  # fmt: skip
    if fmt == "voc":
        listing = out / "ImageSets" / "Main" / f"{split}.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{i}\n" for i in ids))
        return listing
    document = {
        "info": {
            "description": f"indirect-attention emoji one-shot episodes, split {split}, seed {seed}"
        },
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i, "name": n, "supercategory": data.bank.groups[n]} for n, i in cat_ids.items()
        ],
        "distractors": distractors,
    }
    path = out / "annotations.json"
    path.write_text(json.dumps(document) + "\n")
    return path
