"""Write an emoji episode set to disk in COCO or VOC format (``ia data export``), or draw episodes
for a person to look at (``ia data show``: :func:`episode_grid`).

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
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .emoji_dataset import EmojiEpisodes
from .emoji_episodes import EpisodeConfig, RenderedEpisode
from .records import BoxRecord, ImageRecord, xyxy_to_xywh
from .voc import voc_xml

__all__ = ["episode_grid", "export_episodes"]


def _save_png(array, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array).save(path, optimize=False)


def _objects(episode: RenderedEpisode) -> tuple[tuple[BoxRecord, ...], tuple[BoxRecord, ...]]:
    """The episode's query-class boxes and its distractors, as records."""
    objects = tuple(BoxRecord(tuple(map(float, b)), episode.spec.category) for b in episode.boxes)
    others = tuple(
        BoxRecord(tuple(map(float, b)), c)
        for b, c in zip(episode.distractor_boxes, episode.distractor_classes, strict=True)
    )
    return objects, others


def _write_voc_annotation(
    out: Path, episode: RenderedEpisode, stem: str, *, split: str, size: int
) -> None:
    """``Annotations/<stem>.xml``: the query's boxes as objects, a ``query`` element naming the
    query image, class and style, and the distractors as ``distractor`` elements."""
    objects, others = _objects(episode)
    record = ImageRecord(stem, f"{stem}.png", size, size, objects + others)
    query, spec = ET.Element("query"), episode.spec
    for tag, value in (
        ("filename", f"{stem}.png"),
        ("name", spec.category),
        ("style", spec.query_style),
    ):
        ET.SubElement(query, tag).text = value
    root = ET.fromstring(voc_xml(record, folder=f"emoji-{split}", extra=query))
    for node in root.findall("object")[len(objects) :]:  # the distractors, after the query
        root.remove(node)
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
    out, size = Path(out_dir), data.config.canvas_size
    folders = ("images", "queries") if fmt == "coco" else ("JPEGImages", "Queries")
    for folder in folders:
        (out / folder).mkdir(parents=True, exist_ok=True)
    cat_ids = {name: k + 1 for k, name in enumerate(data.bank.classes)}
    description = f"indirect-attention emoji one-shot episodes, split {split}, seed {seed}"
    document: dict[str, Any] = {
        "info": {"description": description},
        "images": [],
        "annotations": [],
        "categories": [
            {"id": i, "name": n, "supercategory": data.bank.groups[n]} for n, i in cat_ids.items()
        ],
        "distractors": [],
    }
    stems = [f"{split}_{index:06d}" for index in range(len(data))]
    bar = tqdm(stems, desc=f"export {split}", unit="episode", disable=not progress)
    for index, stem in enumerate(bar):
        episode = data.episode(index)
        _save_png(episode.target, out / folders[0] / f"{stem}.png")
        _save_png(episode.query, out / folders[1] / f"{stem}.png")
        if fmt == "voc":
            _write_voc_annotation(out, episode, stem, split=split, size=size)
            continue
        image_id, spec = index + 1, episode.spec
        document["images"].append({
            "id": image_id, "file_name": f"images/{stem}.png", "width": size, "height": size,
            "query_file": f"queries/{stem}.png", "query_category_id": cat_ids[spec.category],
            "query_style": spec.query_style, "episode": index,
        })  # fmt: skip
        for key, items in zip(("annotations", "distractors"), _objects(episode), strict=True):
            for obj in items:
                x, y, w, h = xyxy_to_xywh(obj.box)
                document[key].append({
                    "id": len(document[key]) + 1, "image_id": image_id,
                    "category_id": cat_ids[obj.category], "bbox": [x, y, w, h], "area": w * h,
                    "iscrowd": 0,
                })  # fmt: skip
    if fmt == "voc":
        listing = out / "ImageSets" / "Main" / f"{split}.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{stem}\n" for stem in stems))
        return listing
    path = out / "annotations.json"
    path.write_text(json.dumps(document) + "\n")
    return path


POSITIVE = (40, 220, 60)
DISTRACTOR = (230, 40, 40)


def _panel(episode: RenderedEpisode):
    from PIL import Image, ImageDraw

    target, query = episode.target, episode.query
    h, w = target.shape[:2]
    qh, qw = query.shape[:2]
    pad = 6
    panel = Image.new("RGB", (qw + w + 3 * pad, max(h, qh + 48) + 2 * pad + 14), "white")
    panel.paste(Image.fromarray(query), (pad, pad))
    panel.paste(Image.fromarray(target), (qw + 2 * pad, pad))
    draw = ImageDraw.Draw(panel)
    draw.rectangle((pad - 1, pad - 1, pad + qw, pad + qh), outline=(40, 40, 220))
    spec = episode.spec
    draw.text((pad, qh + pad + 4), f"query:\n{spec.category}\n{spec.query_style}", fill="black")
    ox = qw + 2 * pad
    for boxes, color, names in (
        (episode.boxes, POSITIVE, [spec.category] * len(episode.boxes)),
        (episode.distractor_boxes, DISTRACTOR, list(episode.distractor_classes)),
    ):
        for (x1, y1, x2, y2), name in zip(boxes.tolist(), names, strict=True):
            draw.rectangle((ox + x1, pad + y1, ox + x2 - 1, pad + y2 - 1), outline=color, width=2)
            if color == DISTRACTOR:
                draw.text((ox + x1 + 2, pad + y1 + 1), name, fill=color)
    styles = ", ".join(p.style for p in spec.positives)
    draw.text((ox, pad + h + 2), f"{spec.split} #{spec.index}  targets: {styles}", fill="black")
    return panel


def episode_grid(episodes: list[RenderedEpisode], path: str | Path, *, columns: int = 2) -> Path:
    """Save a grid of episode panels (query left, target right; green = query class, red =
    distractor with its name) as a PNG and return its path."""
    from PIL import Image

    if not episodes:
        raise ValueError("episode_grid needs at least one episode")
    panels = [_panel(e) for e in episodes]
    pw, ph = panels[0].size
    rows = int(np.ceil(len(panels) / columns))
    grid = Image.new("RGB", (pw * min(columns, len(panels)), ph * rows), "white")
    for k, panel in enumerate(panels):
        grid.paste(panel, ((k % columns) * pw, (k // columns) * ph))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path
