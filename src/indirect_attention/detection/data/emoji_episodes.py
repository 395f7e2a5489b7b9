"""One-shot episodes of the embedded emoji benchmark: sampling specs and rendering them.

An episode (paper §6.2, one-shot detection) is a query image showing one class in one artist's style
and a target canvas holding 1-3 instances of that class in *other* styles plus 2-4 distractors of
other classes, scaled, slightly rotated and pasted without overlap on a real photo from
scikit-image. The boxes are tight to each pasted sprite's alpha (``alpha >= ALPHA_THRESHOLD``).

Everything is a pure function of ``(seed, split, index)``: the same triple always gives the same
pixels, so the train / val / test sets are fixed without storing them.

Splits (classes from the bank's fixed seen/unseen split):
    ``train``      seen query classes, seen distractors only (no unseen pixel reaches training);
    ``val``        seen query classes, seen distractors, a separate stream;
    ``test``       unseen query classes, distractors from every class;
    ``test_seen``  seen query classes, distractors from every class (the paper's "seen" column).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .emoji import (
    ALPHA_THRESHOLD,
    BACKGROUNDS,
    SpriteBank,
    alpha_box,
    background_photo,
    load_sprite_bank,
    transform_sprite,
)

__all__ = [
    "SPLITS",
    "EpisodeConfig",
    "EpisodeSpec",
    "InstanceSpec",
    "RenderedEpisode",
    "render_episode",
    "sample_episode",
    "split_classes",
]

# split name -> (stream id, query classes "seen"/"unseen", distractor pool "seen"/"all", length)
SPLITS: dict[str, tuple[int, str, str, int]] = {
    "train": (1, "seen", "seen", 20000),
    "val": (2, "seen", "seen", 500),
    "test": (3, "unseen", "all", 1000),
    "test_seen": (4, "seen", "all", 500),
}


@dataclass(frozen=True)
class EpisodeConfig:
    """How episodes are drawn.

    Attributes:
        canvas_size: side of the square target image, in pixels.
        query_size: side of the square query image, in pixels.
        positives: inclusive range of query-class instances in the target.
        distractors: inclusive range of other-class instances in the target.
        object_size: range of an object's longer side as a fraction of ``canvas_size``.
        max_angle: rotations are uniform in ``[-max_angle, max_angle]`` degrees.
        gap: minimum free pixels between two objects' boxes.
        styles: the artists (sprite styles) episodes draw from; None: all of the bank's. A
            query class needs two of them (the query's and another for its instances), a
            distractor class one.
    """

    canvas_size: int = 256
    query_size: int = 96
    positives: tuple[int, int] = (1, 3)
    distractors: tuple[int, int] = (2, 4)
    object_size: tuple[float, float] = (0.12, 0.32)
    max_angle: float = 15.0
    gap: int = 2
    styles: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.canvas_size < 32 or self.query_size < 16:
            raise ValueError(
                f"canvas_size must be >= 32 and query_size >= 16, got {self.canvas_size}, "
                f"{self.query_size}"
            )
        if not 1 <= self.positives[0] <= self.positives[1]:
            raise ValueError(
                f"positives must be a range (lo, hi) with 1 <= lo <= hi, got {self.positives}"
            )
        if not 0 < self.object_size[0] <= self.object_size[1] <= 0.6:
            raise ValueError(
                f"object_size must satisfy 0 < lo <= hi <= 0.6, got {self.object_size}"
            )


@dataclass(frozen=True)
class InstanceSpec:
    """One pasted sprite: class, style, longer side (px), angle (degrees) and centre (px)."""

    category: str
    style: str
    size: float
    angle: float
    center: tuple[float, float]


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything needed to render one episode; a pure function of ``(seed, split, index)``."""

    split: str
    index: int
    seed: int
    category: str
    query_style: str
    positives: tuple[InstanceSpec, ...]
    distractors: tuple[InstanceSpec, ...]
    background: str
    crop: tuple[int, int, int]  # (top, left, side) of the square background crop
    tint: tuple[float, float, float]
    query_gray: float


@dataclass
class RenderedEpisode:
    """A rendered episode.

    Attributes:
        target: ``(H, W, 3)`` uint8 target canvas.
        query: ``(h, w, 3)`` uint8 query image.
        boxes: ``(K, 4)`` float32 xyxy pixel boxes of the query-class instances.
        distractor_boxes: ``(M, 4)`` float32 xyxy boxes of the distractors.
        masks: ``(K + M, H, W)`` uint8 alpha of each instance (positives first), for checks.
        spec: the episode's spec.
    """

    target: np.ndarray
    query: np.ndarray
    boxes: np.ndarray
    distractor_boxes: np.ndarray
    masks: np.ndarray
    spec: EpisodeSpec
    distractor_classes: tuple[str, ...] = field(default=())


def split_classes(bank: SpriteBank, split: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (query classes, distractor classes) of a split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {sorted(SPLITS)}")
    _, query_kind, pool_kind, _ = SPLITS[split]
    queries = bank.unseen if query_kind == "unseen" else bank.seen
    pool = bank.seen if pool_kind == "seen" else bank.classes
    return tuple(queries), tuple(pool)


def _extent(size: float, aspect: float, angle: float) -> tuple[float, float]:
    """Width and height of the rotated box of a sprite with longer side ``size``."""
    w, h = (size, size / aspect) if aspect >= 1 else (size * aspect, size)
    a = math.radians(angle)
    return abs(w * math.cos(a)) + abs(h * math.sin(a)), abs(w * math.sin(a)) + abs(h * math.cos(a))


def _place(
    rng: np.random.Generator,
    taken: list[tuple[float, float, float, float]],
    extent: tuple[float, float],
    canvas: int,
    gap: int,
) -> tuple[float, float] | None:
    w, h = extent[0] + 2, extent[1] + 2  # one pixel of slack per side for resampling
    if w >= canvas - 2 or h >= canvas - 2:
        return None
    for _ in range(60):
        cx = rng.uniform(w / 2 + 1, canvas - w / 2 - 1)
        cy = rng.uniform(h / 2 + 1, canvas - h / 2 - 1)
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if all(
            box[2] + gap <= t[0]
            or t[2] + gap <= box[0]
            or box[3] + gap <= t[1]
            or t[3] + gap <= box[1]
            for t in taken
        ):
            taken.append(box)
            return (cx, cy)
    return None


def sample_episode(
    bank: SpriteBank, split: str, index: int, *, seed: int = 0, config: EpisodeConfig | None = None
) -> EpisodeSpec:
    """Draw the spec of episode ``index`` of ``split``; deterministic in ``(seed, split, index)``.

    The query class cycles through the split's classes (``index mod n``) so every fixed set is
    class-balanced; everything else comes from a generator seeded with ``(seed, split, index)``.
    """
    config = config or EpisodeConfig()
    queries, pool = split_classes(bank, split)
    if index < 0:
        raise ValueError(f"episode index must be >= 0, got {index}")

    def allowed(cat: str) -> tuple[str, ...]:
        styles = bank.styles_of(cat)
        return styles if config.styles is None else tuple(s for s in styles if s in config.styles)

    queries = tuple(c for c in queries if len(allowed(c)) >= 2)
    if not queries:
        raise ValueError(f"no {split} class has two of the styles {config.styles}")
    rng = np.random.default_rng([seed, SPLITS[split][0], index])
    category = queries[index % len(queries)]
    styles = allowed(category)
    query_style = str(rng.choice(styles))
    others = [s for s in styles if s != query_style]
    n_pos = int(rng.integers(config.positives[0], config.positives[1] + 1))
    pos_styles = [str(s) for s in rng.choice(others, size=min(n_pos, len(others)), replace=False)]
    candidates = [c for c in pool if c != category and allowed(c)]
    n_dis = int(rng.integers(config.distractors[0], config.distractors[1] + 1))
    canvas, taken = config.canvas_size, []

    def instance(cat: str, style: str) -> InstanceSpec | None:
        sprite = bank.sprite(cat, style)
        aspect = sprite.shape[1] / sprite.shape[0]
        size = canvas * rng.uniform(*config.object_size)
        angle = float(rng.uniform(-config.max_angle, config.max_angle))
        center = _place(rng, taken, _extent(size, aspect, angle), canvas, config.gap)
        if center is None:
            return None
        return InstanceSpec(cat, style, float(size), angle, (float(center[0]), float(center[1])))

    positives = [p for p in (instance(category, s) for s in pos_styles) if p is not None]
    if not positives:  # cannot happen with a valid config: the first one lands on an empty canvas
        raise ValueError(
            f"episode {split}/{index}: no {category} fits a {canvas}px canvas; lower object_size"
        )
    distractors = []
    for cat in rng.choice(candidates, size=n_dis, replace=False):
        style = str(rng.choice(allowed(str(cat))))
        placed = instance(str(cat), style)
        if placed is not None:
            distractors.append(placed)
    background = str(rng.choice(BACKGROUNDS))
    photo_h, photo_w = background_photo(background).shape[:2]
    side = int(rng.integers(min(photo_h, photo_w) // 2, min(photo_h, photo_w) + 1))
    crop = (
        int(rng.integers(0, photo_h - side + 1)),
        int(rng.integers(0, photo_w - side + 1)),
        side,
    )
    tint = tuple(float(t) for t in rng.uniform(0.6, 1.0, size=3))
    return EpisodeSpec(
        split=split,
        index=index,
        seed=seed,
        category=category,
        query_style=query_style,
        positives=tuple(positives),
        distractors=tuple(distractors),
        background=background,
        crop=crop,
        tint=(tint[0], tint[1], tint[2]),
        query_gray=float(rng.uniform(0.75, 0.95)),
    )


def _background(spec: EpisodeSpec, canvas: int) -> np.ndarray:
    from PIL import Image

    top, left, side = spec.crop
    patch = background_photo(spec.background)[top : top + side, left : left + side]
    image = Image.fromarray((patch * 255).astype(np.uint8)).resize(
        (canvas, canvas), Image.Resampling.BILINEAR
    )
    return np.asarray(image, dtype=np.float32) / 255.0 * np.asarray(spec.tint, dtype=np.float32)


def render_episode(
    spec: EpisodeSpec, bank: SpriteBank | None = None, *, config: EpisodeConfig | None = None
) -> RenderedEpisode:
    """Render a spec to pixels (target canvas, query image, tight boxes and instance masks)."""
    bank = bank or load_sprite_bank()
    config = config or EpisodeConfig()
    canvas = config.canvas_size
    image = _background(spec, canvas)
    instances = spec.positives + spec.distractors
    masks = np.zeros((len(instances), canvas, canvas), dtype=np.uint8)
    boxes = np.zeros((len(instances), 4), dtype=np.float32)
    for k, inst in enumerate(instances):
        patch = transform_sprite(bank.sprite(inst.category, inst.style), inst.size, inst.angle)
        h, w = patch.shape[:2]
        x0, y0 = round(inst.center[0] - w / 2), round(inst.center[1] - h / 2)
        # Clip the paste to the canvas; placement keeps a margin so this is a no-op in practice.
        sx, sy = max(0, -x0), max(0, -y0)
        ex, ey = min(w, canvas - x0), min(h, canvas - y0)
        masks[k, y0 + sy : y0 + ey, x0 + sx : x0 + ex] = patch[sy:ey, sx:ex, 3]
        alpha = patch[sy:ey, sx:ex, 3:4].astype(np.float32) / 255.0
        rgb = patch[sy:ey, sx:ex, :3].astype(np.float32) / 255.0
        region = image[y0 + sy : y0 + ey, x0 + sx : x0 + ex]
        image[y0 + sy : y0 + ey, x0 + sx : x0 + ex] = alpha * rgb + (1 - alpha) * region
        box = alpha_box(masks[k], ALPHA_THRESHOLD)
        if box is None:
            raise ValueError(
                f"episode {spec.split}/{spec.index}: instance {k} has no visible pixel"
            )
        boxes[k] = box
    n_pos = len(spec.positives)
    return RenderedEpisode(
        target=(np.clip(image, 0, 1) * 255).round().astype(np.uint8),
        query=render_query(
            bank.sprite(spec.category, spec.query_style), config.query_size, spec.query_gray
        ),
        boxes=boxes[:n_pos],
        distractor_boxes=boxes[n_pos:],
        masks=masks,
        spec=spec,
        distractor_classes=tuple(d.category for d in spec.distractors),
    )


def render_query(sprite: np.ndarray, size: int, gray: float) -> np.ndarray:
    """The query image ``(size, size, 3)`` uint8: the sprite (longer side 80%) centred on grey."""
    patch = transform_sprite(sprite, 0.8 * size, 0.0)
    image = np.full((size, size, 3), gray, dtype=np.float32)
    h, w = patch.shape[:2]
    y0, x0 = (size - h) // 2, (size - w) // 2
    alpha = patch[..., 3:4].astype(np.float32) / 255.0
    region = image[y0 : y0 + h, x0 : x0 + w]
    image[y0 : y0 + h, x0 : x0 + w] = (
        alpha * patch[..., :3].astype(np.float32) / 255.0 + (1 - alpha) * region
    )
    return (image * 255).round().astype(np.uint8)
