"""The one path from pixels to IA-DETR's input (paper §6.2): training, evaluation, detect.

A **target** is resized (bilinear, antialiased) so its longer side is
:attr:`InputSpec.target_size`, then zero-padded bottom-right onto a canvas whose sides are multiples
of the backbone stride, with a padding mask; a batch shares one canvas. A **query** is resized to an
:attr:`InputSpec.query_size` square (aspect not kept, as the authors do); the model places it
top-left on the target canvas, so the canvas is never smaller than the query. The per-axis resize
factors map the model's boxes back to the original pixels (:mod:`.predict`).

Shapes:
    images (3, H, W) float in [0, 1]; :class:`ModelInput` targets (B, 3, Hc, Wc), target_padding
    (B, Hc, Wc) bool (True = padding), queries (B, 3, q, q), factors (B, 2) as (x, y).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, TypeAlias, Union

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from PIL import Image as PILImage

ImageLike: TypeAlias = Union[Tensor, "PILImage.Image", str, PathLike]
"""A (3, H, W) tensor (float in [0, 1] or uint8), a PIL image, or an image file's path."""

__all__ = [
    "ImageLike",
    "InputSpec",
    "ModelInput",
    "as_image",
    "crop_box",
    "model_input",
    "query_cells",
    "random_offsets",
    "read_image",
    "resize",
    "round_up",
]


@dataclass(frozen=True)
class InputSpec:
    """The input sizes a model is trained with (recorded in its checkpoint and export).

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


@dataclass
class ModelInput:
    """A batch ready for :class:`~.model.IADETR` and the factors that map its boxes back.

    Attributes:
        targets: (B, 3, Hc, Wc) canvases in [0, 1].
        target_padding: (B, Hc, Wc) bool, True = padding; None when no cell is padding.
        queries: (B, 3, q, q) in [0, 1].
        factors: (B, 2) per-axis (x, y) resize factors from original to model-input pixels.
        image_sizes: (height, width) of each original target.
        query_offsets: (B, 2) int feature cells (row, column) of each query's top-left corner on
            the key canvas; None: the corner (the authors' layout).
    """

    targets: Tensor
    target_padding: Tensor | None
    queries: Tensor
    factors: Tensor
    image_sizes: list[tuple[int, int]]
    query_offsets: Tensor | None = None


def round_up(size: int, stride: int) -> int:
    """The smallest multiple of ``stride`` that is at least ``size``."""
    return -(-size // stride) * stride


def read_image(path: str | PathLike, *, exif_transpose: bool = True) -> Tensor:
    """Decode an image file to (3, H, W) float in [0, 1] (RGB); transparent pixels are drawn on
    white (a PNG or WebP with alpha, a GIF with a transparent colour).

    Args:
        path: The file.
        exif_transpose: Apply the EXIF rotation (a user's photo). Data set images keep their
            stored orientation, which their annotations refer to.

    Raises:
        ValueError: the file is missing, unreadable or not a decodable image (names the path).
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            rgb = _on_white(ImageOps.exif_transpose(image) if exif_transpose else image)
    except FileNotFoundError:
        raise ValueError(f"image file {path} does not exist") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read image file {path}: {error}") from None
    return _from_pil(rgb)


def _on_white(image: PILImage.Image) -> PILImage.Image:
    """RGB, with any transparency composited on white (``convert("RGB")`` alone would show the
    colour stored under transparent pixels, often black)."""
    from PIL import Image

    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _from_pil(image: PILImage.Image) -> Tensor:
    import numpy as np

    pixels = np.array(_on_white(image), dtype=np.uint8)  # (H, W, 3)
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


def crop_box(image: Tensor, box: tuple[float, float, float, float], *, name: str = "box") -> Tensor:
    """The pixels of ``box`` (xyxy, rounded outwards to whole pixels, clipped to the image).

    Shapes:
        image (3, H, W) -> (3, y1 - y0, x1 - x0)

    Raises:
        ValueError: the box is degenerate or has no pixel inside the image (names ``name``).
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


def resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear, antialiased resize of (3, H, W) or (B, 3, H, W) to ``size`` = (height, width).

    Every image of the package is resized here (training cache, batches, evaluation, detect).
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    batch = images if images.ndim == 4 else images[None]
    out = F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out if images.ndim == 4 else out[0]


def _fit(image: Tensor, target_size: int) -> tuple[Tensor, tuple[float, float]]:
    """Resize so the longer side is ``target_size``; return the (x, y) resize factors."""
    height, width = image.shape[-2:]
    scale = target_size / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return resize(image, size), (size[1] / width, size[0] / height)


def model_input(
    targets: Sequence[Tensor], queries: Sequence[Tensor], spec: InputSpec, *, stride: int
) -> ModelInput:
    """Resize and pad a batch of (target, query) images onto one canvas.

    Args:
        targets: B images (3, H_b, W_b) in [0, 1], any sizes.
        queries: B images (3, h_b, w_b) in [0, 1], any sizes.
        spec: The sizes the model was trained at.
        stride: The backbone stride; canvas sides are multiples of it.

    Returns:
        The batch; ``target_padding`` is None when every target fills the canvas.
    """
    if len(targets) != len(queries) or not targets:
        raise ValueError(
            f"need as many targets as queries (at least one), got {len(targets)} and {len(queries)}"
        )
    fitted = [_fit(image, spec.target_size) for image in targets]
    side = spec.query_size  # the query is placed on the canvas: never smaller than it
    height = round_up(max(side, *(image.shape[-2] for image, _ in fitted)), stride)
    width = round_up(max(side, *(image.shape[-1] for image, _ in fitted)), stride)
    canvas = fitted[0][0].new_zeros(len(fitted), 3, height, width)
    padding = torch.ones(len(fitted), height, width, dtype=torch.bool, device=canvas.device)
    for b, (image, _) in enumerate(fitted):
        canvas[b, :, : image.shape[-2], : image.shape[-1]] = image
        padding[b, : image.shape[-2], : image.shape[-1]] = False
    return ModelInput(
        targets=canvas,
        target_padding=padding if bool(padding.any()) else None,
        queries=torch.stack([resize(q, (side, side)) for q in queries]),
        factors=torch.tensor([factors for _, factors in fitted], dtype=torch.float32),
        image_sizes=[(int(t.shape[-2]), int(t.shape[-1])) for t in targets],
    )


def query_cells(canvas: Sequence[int], size: Sequence[int], stride: int) -> tuple[int, int]:
    """How many feature-cell rows and columns the top-left corner of a ``size`` (h, w) query
    can take on a ``canvas`` (H, W) with the query still inside it."""
    return (canvas[0] - size[0]) // stride + 1, (canvas[1] - size[1]) // stride + 1


def random_offsets(
    canvas_shape: Sequence[int], query_shape: Sequence[int], stride: int, generator: torch.Generator
) -> Tensor:
    """A uniform feature cell (row, column) per query at which it still fits the key canvas:
    where :class:`~.model.IADETR` places it when given ``query_offsets`` (the authors' layout is
    the cell (0, 0)).

    Args:
        canvas_shape: The targets' shape (B, 3, H, W).
        query_shape: The queries' shape (B, 3, q, q).
        stride: The backbone's stride (pixels per feature cell).
        generator: Draws the cells.

    Shapes:
        -> (B, 2) int64
    """
    rows, cols = (max(n, 1) for n in query_cells(canvas_shape[-2:], query_shape[-2:], stride))
    count = canvas_shape[0]
    return torch.stack(
        [
            torch.randint(rows, (count,), generator=generator),
            torch.randint(cols, (count,), generator=generator),
        ],
        dim=1,
    )
