"""Drawn examples of IA-DETR predictions (paper §6.2).

:func:`draw_predictions` (benchmark episodes, right query vs wrong query): each panel shows the
right query, the wrong-class query, and the target three times: ground truth (white), the top
detections with the right query (green) and with the wrong query (red), each labelled with its
score. A detector that matches moves its boxes with the query.

:func:`draw_detections` (``ia detr detect``): one target at its original size with its detections
(torchvision's ``draw_bounding_boxes``), the query shown to its right.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .model import IADETR
from .predict import Detections, predict
from .preprocess import model_input
from .sources.emoji_eval import EvalSet

__all__ = ["draw_detections", "draw_predictions"]

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


def draw_detections(
    target: Tensor, query: Tensor, found: Detections, path: str | Path, *, color: str = "lime"
) -> Path:
    """Save the target with its detections and the query beside it as a PNG.

    The target keeps its original size (boxes are in its pixels); the query is shown to its right
    after a white gap of :data:`GAP` pixels, scaled to a height between a quarter of the target's
    and the target's own (aspect kept).

    Args:
        target: (3, H, W) in [0, 1], the original target.
        query: (3, h, w) in [0, 1], the query as given (or cropped).
        found: The detections, boxes xyxy in the target's pixels.
        path: The PNG to write (folders created).
        color: Box and label colour.

    Returns:
        The path. The image is H pixels high and W + GAP + (query's shown width) wide.
    """
    from PIL import Image
    from torchvision.utils import draw_bounding_boxes

    height, width = target.shape[-2:]
    panel = _to_uint8(target)
    if len(found.scores):
        panel = draw_bounding_boxes(
            panel,
            found.boxes.float(),
            labels=[f"{float(s):.2f}" for s in found.scores],
            colors=color,
            width=max(2, round(max(height, width) / 250)),
        )
    q_height = min(height, max(query.shape[-2], height // 4))
    q_width = max(1, round(query.shape[-1] * q_height / query.shape[-2]))
    shown = torch.nn.functional.interpolate(
        query[None].float().cpu(), size=(q_height, q_width), mode="bilinear", antialias=True
    )[0]
    canvas = torch.full((3, height, width + GAP + q_width), 255, dtype=torch.uint8)
    canvas[:, :, :width] = panel
    canvas[:, :q_height, width + GAP :] = _to_uint8(shown)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas.permute(1, 2, 0).numpy()).save(path)
    return path
