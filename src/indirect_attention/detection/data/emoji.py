"""The embedded emoji sprite bank and the pieces episodes are drawn with (offline, no npm).

The bank is committed package data (``emoji/bank.png`` atlas, ``emoji/bank.json`` index,
``emoji/ATTRIBUTION.md``), built once by :mod:`.emoji_build`. Each of its 93 concrete-object
classes is drawn by 6-7 artists (styles), so a query in one style must find the class in other
styles: the one-shot detection setting of the paper (§6.2). Backgrounds are real photographs and
textures bundled in scikit-image's wheel (``grass``, ``gravel``, ``brick``, ...), read offline.

A sprite is stored tight to its alpha channel. :func:`transform_sprite` scales and rotates one,
and :func:`alpha_box` gives the tight box of the pixels with ``alpha >= ALPHA_THRESHOLD``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "ALPHA_THRESHOLD",
    "BACKGROUNDS",
    "SpriteBank",
    "alpha_box",
    "background_photo",
    "load_sprite_bank",
    "transform_sprite",
]

# A pixel belongs to an object when its alpha is at least this (of 255); boxes are tight to it.
ALPHA_THRESHOLD = 32

# scikit-image's bundled images used as backgrounds (all ship inside its wheel; no pooch fetch).
BACKGROUNDS: tuple[str, ...] = (
    "grass", "gravel", "brick", "moon", "coffee", "rocket", "hubble_deep_field",
    "immunohistochemistry",
)  # fmt: skip


@dataclass(frozen=True)
class SpriteBank:
    """Emoji sprites by (class, style), with the fixed seen/unseen class split.

    Attributes:
        classes: class names, in bank order.
        groups: class name to its group (``mammal``, ``fruit``, ``vehicle``, ...).
        styles: the artist sets (npm ``@iconify-json`` prefixes).
        sprites: ``(class, style)`` to an RGBA uint8 array ``(h, w, 4)`` tight to its alpha.
        seen: classes used for training and validation.
        unseen: classes used only at test time.
        licences: style to SPDX licence identifier.
    """

    classes: tuple[str, ...]
    groups: dict[str, str]
    styles: tuple[str, ...]
    sprites: dict[tuple[str, str], np.ndarray]
    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    licences: dict[str, str]

    def styles_of(self, category: str) -> tuple[str, ...]:
        """The styles that draw ``category``, in bank order."""
        if category not in self.groups:
            raise ValueError(f"unknown emoji class {category!r}; the bank has {len(self.classes)}")
        return tuple(s for s in self.styles if (category, s) in self.sprites)

    def sprite(self, category: str, style: str) -> np.ndarray:
        """The RGBA sprite ``(h, w, 4)`` uint8 of one class in one style."""
        try:
            return self.sprites[(category, style)]
        except KeyError:
            raise ValueError(
                f"no sprite for class {category!r} in style {style!r}; "
                f"styles of this class: {self.styles_of(category)}"
            ) from None


def _bank_files() -> tuple[Path, Path]:
    folder = resources.files("indirect_attention.detection.data") / "emoji"
    return Path(str(folder / "bank.json")), Path(str(folder / "bank.png"))


def _read_bank(index_path: Path, atlas_path: Path) -> SpriteBank:
    from PIL import Image

    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{index_path}: cannot read the sprite-bank index ({error})") from None
    with Image.open(atlas_path) as image:
        atlas = np.asarray(image.convert("RGBA"))
    cell, styles = int(index["cell"]), tuple(index["styles"])
    expected = (len(index["classes"]) * cell, len(styles) * cell, 4)
    if atlas.shape != expected:
        raise ValueError(f"{atlas_path}: atlas shape {atlas.shape}, index expects {expected}")
    sprites: dict[tuple[str, str], np.ndarray] = {}
    for row, entry in enumerate(index["classes"]):
        for item in entry["sprites"]:
            col = styles.index(item["style"])
            y, x = row * cell, col * cell
            sprite = atlas[y : y + item["height"], x : x + item["width"]].copy()
            sprite.setflags(write=False)
            sprites[(entry["name"], item["style"])] = sprite
    return SpriteBank(
        classes=tuple(e["name"] for e in index["classes"]),
        groups={e["name"]: e["group"] for e in index["classes"]},
        styles=styles,
        sprites=sprites,
        seen=tuple(index["seen"]),
        unseen=tuple(index["unseen"]),
        licences=dict(index["licences"]),
    )


@functools.lru_cache(maxsize=1)
def _default_bank() -> SpriteBank:
    return _read_bank(*_bank_files())


def load_sprite_bank(folder: str | Path | None = None) -> SpriteBank:
    """Load the sprite bank: the packaged one (cached), or ``folder/bank.{json,png}`` if given."""
    if folder is None:
        return _default_bank()
    folder = Path(folder)
    return _read_bank(folder / "bank.json", folder / "bank.png")


@functools.lru_cache(maxsize=len(BACKGROUNDS))
def background_photo(name: str) -> np.ndarray:
    """A scikit-image bundled photo as ``(H, W, 3)`` float32 in [0, 1] (grey ones repeated)."""
    if name not in BACKGROUNDS:
        raise ValueError(f"unknown background {name!r}; choose from {BACKGROUNDS}")
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3]
    image.setflags(write=False)
    return image


def transform_sprite(sprite: np.ndarray, longer_side: float, angle: float) -> np.ndarray:
    """Scale a sprite so its longer side is ``longer_side`` px, then rotate it by ``angle`` degrees.

    Resampling is done on premultiplied alpha (PIL mode ``RGBa``) so edges get no dark fringe.

    Args:
        sprite: RGBA uint8 ``(h, w, 4)``.
        longer_side: target length of the longer side before rotation, in pixels.
        angle: counter-clockwise rotation in degrees; the canvas grows to hold the result.

    Returns:
        RGBA uint8 ``(h', w', 4)``, cropped to the pixels with any alpha.
    """
    from PIL import Image

    h, w = sprite.shape[:2]
    scale = longer_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = Image.fromarray(np.ascontiguousarray(sprite), "RGBA").convert("RGBa")
    image = image.resize(size, Image.Resampling.BICUBIC)
    if angle:
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    out = np.asarray(image.convert("RGBA"))
    box = alpha_box(out[..., 3], threshold=1)
    if box is None:
        raise ValueError(f"sprite vanished after scaling to {longer_side:.1f} px")
    x1, y1, x2, y2 = box
    return out[y1:y2, x1:x2]


def alpha_box(
    alpha: np.ndarray, threshold: int = ALPHA_THRESHOLD
) -> tuple[int, int, int, int] | None:
    """The tight ``(x1, y1, x2, y2)`` box (exclusive ends) of ``alpha >= threshold``, or ``None``."""
    mask = alpha >= threshold
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
