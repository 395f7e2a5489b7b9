"""One-shot detection with a trained IA-DETR on the user's own images (paper §6.2).

A target image and a query image (a picture of the kind of object to find) go in; scored boxes in
the target's original pixels come out. Images are prepared the way the model saw them in training:

* the **target** is resized (bilinear, antialiased) so its longer side is
  :attr:`InputSpec.target_size` and zero-padded bottom-right to a canvas whose sides are multiples
  of the backbone stride, with a padding mask (as :class:`~.pairs.PairBatcher` does);
* the **query** is resized to a :attr:`InputSpec.query_size` square (aspect not kept, as in
  training); the model places it top-left on the target canvas (§6.2), so the canvas is never
  smaller than the query.

Boxes are mapped back by the per-axis resize factors and clipped to the original image.

Example:
    >>> model = IADETR.from_checkpoint("runs/detr/checkpoint.pt")
    >>> found = model.detect("street.jpg", "bicycle.png", threshold=0.5)
    >>> found.boxes.shape, found.scores.shape   # (K, 4) xyxy pixels of street.jpg, (K,)

Shapes:
    image tensors (3, H, W) float in [0, 1]; :class:`Detections` boxes (K, 4) xyxy, scores (K,).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert, clip_boxes_to_image

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from .model import IADETR

ImageLike: TypeAlias = Union[Tensor, "PILImage.Image", str, PathLike]
"""A (3, H, W) tensor (float in [0, 1] or uint8), a PIL image, or an image file's path."""

__all__ = [
    "Detections",
    "ImageLike",
    "InputSpec",
    "as_image",
    "crop_box",
    "default_input_spec",
    "detect",
    "detections_to_coco",
    "input_spec_from_extra",
    "parse_box",
    "prepare_query",
    "prepare_target",
    "read_image",
]


@dataclass(frozen=True)
class InputSpec:
    """The input sizes a model was trained with.

    Attributes:
        target_size: Longer side of a resized target, in model-input pixels.
        query_size: Side of the square resized query.
    """

    target_size: int
    query_size: int

    def __post_init__(self) -> None:
        if self.target_size < 1 or self.query_size < 1:
            raise ValueError(
                f"target_size and query_size must be >= 1, got {self.target_size}, "
                f"{self.query_size}"
            )
        if self.query_size > self.target_size:
            raise ValueError(
                f"query_size={self.query_size} is bigger than allowed: the query, shape "
                f"(3, {self.query_size}, {self.query_size}), is placed on the target canvas, "
                f"shape (3, {self.target_size}, {self.target_size}) at most; expected "
                f"query_size <= target_size={self.target_size}"
            )


def input_spec_from_extra(extra: dict[str, Any]) -> InputSpec:
    """The input sizes recorded in a training checkpoint's ``extra`` dict.

    Emoji runs feed the 256 px rendered episodes resized by ``scale``; real-data runs resize the
    target's longer side to ``max_size`` and the query to ``query_size`` (their defaults when a
    checkpoint predates these keys).
    """
    if extra.get("data", "emoji") == "emoji":
        from .data.emoji_episodes import EpisodeConfig

        episode, scale = EpisodeConfig(), float(extra.get("scale", 0.5))
        return InputSpec(round(episode.canvas_size * scale), round(episode.query_size * scale))
    return InputSpec(int(extra.get("max_size", 512)), int(extra.get("query_size", 192)))


def default_input_spec(backbone: str) -> InputSpec:
    """Sizes for a model that carries none: the emoji recipe (``small``) or the real-data one."""
    return input_spec_from_extra({"data": "emoji" if backbone == "small" else "coco"})


def read_image(path: str | PathLike) -> Tensor:
    """Decode an image file to (3, H, W) float in [0, 1] (EXIF rotation applied, RGB).

    Raises:
        ValueError: the file is missing, unreadable or not a decodable image (names the path).
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except FileNotFoundError:
        raise ValueError(f"image file {path} does not exist") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read image file {path}: {error}") from None
    return _from_pil(rgb)


def _from_pil(image: PILImage.Image) -> Tensor:
    import numpy as np

    pixels = np.array(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0


def as_image(image: ImageLike, *, name: str = "image") -> Tensor:
    """Accept a path, a PIL image or a (3, H, W) tensor (float in [0, 1], or uint8).

    Args:
        image: The image.
        name: The argument's name, for error messages.

    Returns:
        (3, H, W) float32 in [0, 1] on the CPU (tensors keep their device).

    Raises:
        ValueError: unreadable file, wrong tensor shape, empty image or values outside [0, 1].
        TypeError: any other type.
    """
    from PIL import Image

    if isinstance(image, (str, PathLike)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if not isinstance(image, Tensor):
        raise TypeError(
            f"{name} must be a path, a PIL image or a (3, H, W) tensor, got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"{name} must have shape (3, H, W), got {tuple(image.shape)}")
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(image.shape)}, expected H, W >= 1")
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if not image.is_floating_point():
        raise TypeError(f"{name} must be float in [0, 1] or uint8, got {image.dtype}")
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{name} values must lie in [0, 1], got [{low:.3g}, {high:.3g}]")
    return image.float()


def parse_box(text: str, *, name: str = "--query-box") -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` (pixels, x1 > x0, y1 > y0) -> a tuple of floats.

    Raises:
        ValueError: not four numbers, or a degenerate box (names ``name`` and the text).
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be four numbers x0,y0,x1,y1 (pixels), got {text!r}")
    x0, y0, x1, y1 = values
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"{name} {text!r} is degenerate: expected x1 > x0 and y1 > y0")
    return x0, y0, x1, y1


def crop_box(
    image: Tensor, box: tuple[float, float, float, float], *, name: str = "--query-box"
) -> Tensor:
    """The pixels of ``box`` (xyxy, rounded outwards to whole pixels, clipped to the image).

    Shapes:
        image (3, H, W) -> (3, y1 - y0, x1 - x0)

    Raises:
        ValueError: the box is degenerate or has no pixel inside the image.
    """
    x0, y0, x1, y1 = box
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"{name} {box} is degenerate: expected x1 > x0 and y1 > y0")
    height, width = image.shape[-2:]
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if right <= left or bottom <= top:
        raise ValueError(
            f"{name} {box} gives an empty crop: it has no pixel inside the {width}x{height} image"
        )
    return image[:, top:bottom, left:right]


def _resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear, antialiased resize of (3, H, W), as the training data were prepared."""
    if tuple(image.shape[-2:]) == size:
        return image
    resized = F.interpolate(
        image[None], size=size, mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].clamp(0.0, 1.0)


def prepare_target(
    image: Tensor, *, target_size: int, stride: int, min_side: int = 1
) -> tuple[Tensor, Tensor, tuple[float, float]]:
    """Resize the longer side to ``target_size`` and pad bottom-right onto the canvas.

    Args:
        image: (3, H, W) in [0, 1].
        target_size: Longer side after resizing.
        stride: Canvas sides are rounded up to a multiple of this.
        min_side: Smallest canvas side (the query's side, so the query fits the canvas).

    Returns:
        The canvas (3, Hc, Wc), its padding mask (Hc, Wc) bool (True = padding) and the
        (x, y) resize factors from original to model-input pixels.
    """
    height, width = image.shape[-2:]
    scale = target_size / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    resized = _resize(image, size)
    side = max(min_side, 1)
    canvas_h = -(-max(size[0], side) // stride) * stride
    canvas_w = -(-max(size[1], side) // stride) * stride
    canvas = image.new_zeros(3, canvas_h, canvas_w)
    canvas[:, : size[0], : size[1]] = resized
    padding = torch.ones(canvas_h, canvas_w, dtype=torch.bool, device=image.device)
    padding[: size[0], : size[1]] = False
    return canvas, padding, (size[1] / width, size[0] / height)


def prepare_query(image: Tensor, *, query_size: int) -> Tensor:
    """Resize a query to the trained square: (3, h, w) -> (3, query_size, query_size)."""
    return _resize(image, (query_size, query_size))


@dataclass
class Detections:
    """Detections of the query's class in one target, best first.

    Attributes:
        boxes: (K, 4) xyxy in the target's original pixels, within the image.
        scores: (K,) sigmoid scores in [0, 1], descending.
        image_size: (height, width) of the original target.
    """

    boxes: Tensor
    scores: Tensor
    image_size: tuple[int, int]


@torch.no_grad()
def detect(
    model: IADETR,
    target: ImageLike,
    query: ImageLike,
    *,
    threshold: float = 0.5,
    max_detections: int = 100,
    input_spec: InputSpec | None = None,
) -> Detections:
    """Find instances of the query's class in ``target`` (paper §6.2).

    Args:
        model: A trained detector (put in eval mode for the call, then restored).
        target: Path, PIL image or (3, H, W) tensor (float in [0, 1] or uint8).
        query: Same kinds; any size (it is resized to the model's query square).
        threshold: Keep detections scoring at least this, in [0, 1].
        max_detections: Keep at most this many (the model proposes Q).
        input_spec: Input sizes; default ``model.input_spec`` (set by
            :meth:`IADETR.from_checkpoint`) or :func:`default_input_spec`.

    Returns:
        :class:`Detections` on the CPU, boxes in the target's original pixels.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if max_detections < 1:
        raise ValueError(f"max_detections must be >= 1, got {max_detections}")
    spec = input_spec or getattr(model, "input_spec", None)
    spec = spec or default_input_spec(model.config.backbone)
    device = next(model.parameters()).device
    target_image = as_image(target, name="target").to(device)
    query_image = prepare_query(
        as_image(query, name="query").to(device), query_size=spec.query_size
    )
    canvas, padding, (scale_x, scale_y) = prepare_target(
        target_image,
        target_size=spec.target_size,
        stride=model.backbone.stride,
        min_side=spec.query_size,
    )
    was_training = model.training
    model.eval()
    output = model(canvas[None], query_image[None], padding[None])
    model.train(was_training)
    scores = output.logits[-1, 0].sigmoid()  # (Q,)
    canvas_h, canvas_w = canvas.shape[-2:]
    to_pixels = scores.new_tensor(
        [canvas_w / scale_x, canvas_h / scale_y, canvas_w / scale_x, canvas_h / scale_y]
    )
    boxes = box_convert(output.boxes[-1, 0], "cxcywh", "xyxy") * to_pixels  # (Q, 4)
    height, width = target_image.shape[-2:]
    boxes = clip_boxes_to_image(boxes, (height, width))
    order = scores.argsort(descending=True)
    order = order[scores[order] >= threshold][:max_detections]
    return Detections(boxes[order].cpu(), scores[order].cpu(), (int(height), int(width)))


def detections_to_coco(
    found: Detections, *, image_id: int, file_name: str, category_id: int | str = "query"
) -> list[dict[str, Any]]:
    """COCO results rows: ``image_id``, ``file_name``, ``category_id``, ``bbox`` [x, y, w, h]
    in original pixels and ``score``."""
    rows = []
    for box, score in zip(found.boxes.tolist(), found.scores.tolist(), strict=True):
        x0, y0, x1, y1 = box
        rows.append(
            {
                "image_id": image_id,
                "file_name": file_name,
                "category_id": category_id,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "score": score,
            }
        )
    return rows
