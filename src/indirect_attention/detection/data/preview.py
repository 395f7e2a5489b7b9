"""Draw emoji episodes for a person to look at (``ia data show``): query, target, boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .emoji_episodes import RenderedEpisode

__all__ = ["episode_grid"]

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
