"""Drawn examples of IA-DETR predictions (paper §6.2).

:func:`draw_predictions` (benchmark episodes, right query vs wrong query): each panel shows the
right query, the wrong-class query, and the target three times: ground truth (white), the top
detections with the right query (green) and with the wrong query (red), each labelled with its
score. A detector that matches moves its boxes with the query.

:func:`draw_detections` (``ia detr detect``): one target at its original size with its detections,
the query shown to its right. Line width and the score labels scale with the image
(:func:`font_size`), so a score reads the same on a thumbnail and on a 4000-pixel photograph.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .model import IADETR
from .predict import Detections, predict
from .preprocess import model_input
from .sources.emoji_eval import EvalSet

__all__ = ["draw_detections", "draw_predictions", "font_size"]

GAP = 8  # white pixels between the target and the query in draw_detections


@torch.no_grad()
def draw_predictions(
    model: IADETR,
    eval_set: EvalSet,
    path: str | Path,
    *,
    indices: list[int] | None = None,
    top_k: int = 3,
) -> Path:
    """Save a PNG with one row per episode (default the first four) and return its path.

    The model reads the episodes at its ``input_spec`` sizes.
    """
    from PIL import Image, ImageDraw

    if model.input_spec is None:
        raise ValueError("the model records no input sizes (model.input_spec is None)")
    model.eval()
    indices = list(range(min(4, len(eval_set.categories)))) if indices is None else indices
    index = torch.tensor(indices)
    targets = eval_set.targets[index]
    height, width = targets.shape[-2:]
    found = []
    for queries in (eval_set.queries[0][index], eval_set.wrong[0][index]):
        batch = model_input(
            [t.float() / 255.0 for t in targets],
            [q.float() / 255.0 for q in queries],
            model.input_spec,
            stride=model.backbone.stride,
        )
        found.append(predict(model, batch, top_k=top_k))
    qsize, pad = eval_set.queries.shape[-1], 6
    row_w, row_h = 2 * qsize + 3 * width + 6 * pad, max(height, qsize) + 2 * pad + 12
    canvas = Image.new("RGB", (row_w, row_h * len(indices)), "white")
    draw = ImageDraw.Draw(canvas)

    def image(t: torch.Tensor) -> Image.Image:
        return Image.fromarray(t.permute(1, 2, 0).numpy())

    for row, episode in enumerate(indices):
        y = row * row_h + pad
        canvas.paste(image(eval_set.queries[0][episode]), (pad, y))
        canvas.paste(image(eval_set.wrong[0][episode]), (qsize + 2 * pad, y))
        draw.text((pad, y + qsize + 2), "right | wrong query", fill="black")
        panels = [(eval_set.boxes[episode], None, "white")]
        panels += [
            (found[0][row].boxes, found[0][row].scores, "lime"),
            (found[1][row].boxes, found[1][row].scores, "red"),
        ]
        for p, (boxes, scores, color) in enumerate(panels):
            x = 2 * qsize + (3 + p) * pad + p * width
            canvas.paste(image(targets[row]), (x, y))
            for k, box in enumerate(boxes.tolist()):
                x1, y1, x2, y2 = (max(0.0, min(v, width - 1.0)) for v in box)
                draw.rectangle((x + x1, y + y1, x + x2, y + y2), outline=color, width=2)
                if scores is not None:
                    draw.text((x + x1 + 2, y + y1 + 1), f"{float(scores[k]):.2f}", fill=color)
        draw.text((2 * qsize + 3 * pad, y + height + 1), eval_set.categories[episode], fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _to_uint8(image: Tensor) -> Tensor:
    return (image.detach().cpu().clamp(0.0, 1.0) * 255).round().to(torch.uint8)


def font_size(height: int, width: int) -> int:
    """Pixel height of the score labels on an image of this size: 1/40 of its longer side, at
    least 11 pixels."""
    return max(11, round(max(height, width) / 40))


def _font(size: int):  # -> PIL ImageFont
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: scalable
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _draw_boxes(panel: Tensor, found: Detections, color: str):  # -> PIL Image
    """The target with each box and a filled score label above it (inside it at the top edge)."""
    from PIL import Image, ImageDraw

    height, width = panel.shape[-2:]
    image = Image.fromarray(panel.permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(image)
    size = font_size(height, width)
    font, pad, line = _font(size), max(1, size // 6), max(2, round(max(height, width) / 250))
    for box, score in zip(found.boxes.tolist(), found.scores.tolist(), strict=True):
        x0, y0, x1, y1 = box
        draw.rectangle((x0, y0, max(x0, x1), max(y0, y1)), outline=color, width=line)
        text = f"{score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        label_w, label_h = right - left + 2 * pad, bottom - top + 2 * pad
        lx = min(max(0.0, x0), max(0.0, width - label_w))
        ly = y0 - label_h if y0 - label_h >= 0 else max(0.0, y0)
        draw.rectangle((lx, ly, lx + label_w - 1, ly + label_h - 1), fill=color)
        draw.text((lx + pad - left, ly + pad - top), text, fill="black", font=font)
    return image


def draw_detections(
    target: Tensor,
    query: Tensor,
    found: Detections,
    path: str | Path,
    *,
    color: str = "lime",
    heat: Tensor | None = None,
) -> Path:
    """Save the target with its detections and the query beside it as a PNG.

    The target keeps its original size (boxes are in its pixels); each box carries its score on a
    filled label of :func:`font_size` pixels. The query is shown to its right after a white gap of
    :data:`GAP` pixels, scaled to a height between a quarter of the target's and the target's own
    (aspect kept).

    Args:
        target: (3, H, W) in [0, 1], the original target.
        query: (3, h, w) in [0, 1], the query as given (or cropped).
        found: The detections, boxes xyxy in the target's pixels.
        path: The PNG to write (folders created).
        color: Box and label colour.
        heat: (H, W) in [0, 1], a heat map laid over the target in red (opacity 0.6 at 1), e.g.
            :func:`~.attention_map.attention_map`.

    Returns:
        The path. The image is H pixels high and W + GAP + (query's shown width) wide.
    """
    from PIL import Image

    height, width = target.shape[-2:]
    q_height = min(height, max(query.shape[-2], height // 4))
    q_width = max(1, round(query.shape[-1] * q_height / query.shape[-2]))
    shown = torch.nn.functional.interpolate(
        query[None].float().cpu(), size=(q_height, q_width), mode="bilinear", antialias=True
    )[0]
    canvas = Image.new("RGB", (width + GAP + q_width, height), "white")
    shown_target = target.detach().cpu().float()
    if heat is not None:
        if tuple(heat.shape) != (height, width):
            raise ValueError(
                f"heat must have shape (H, W) = {(height, width)}, got {tuple(heat.shape)}"
            )
        alpha = 0.6 * heat.detach().cpu().float().clamp(0.0, 1.0)[None]  # (1, H, W)
        red = torch.tensor([1.0, 0.1, 0.0])[:, None, None]
        shown_target = (1 - alpha) * shown_target + alpha * red
    canvas.paste(_draw_boxes(_to_uint8(shown_target), found, color), (0, 0))
    canvas.paste(Image.fromarray(_to_uint8(shown).permute(1, 2, 0).numpy()), (width + GAP, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
