"""Build the embedded emoji sprite bank from pinned npm ``@iconify-json`` sets (developer tool).

This is the only part of the benchmark that needs npm, cairosvg and the network; the library at run
time reads the committed result (``emoji/bank.png``, ``emoji/bank.json``, ``emoji/ATTRIBUTION.md``)
through :mod:`indirect_attention.detection.data.emoji`. Run it with ``ia data build-emoji``.

Each class is one concrete object drawn by 6-7 independent artists (the seven permissively licensed
sets below; the share-alike OpenMoji set is deliberately left out), so a query in one style must find
the same class in other styles: the one-shot setting of the paper (§6.2, one-shot detection).

Steps: ``npm pack`` the pinned tarballs into a temporary folder (or reuse ``npm_dir``), read
``package/icons.json`` straight from each tarball, wrap each icon body in an ``<svg>`` and rasterise
it with cairosvg at ``size`` px, crop to the alpha box, and paste the sprites into one RGBA atlas
(rows = classes, columns = styles) with a JSON index and the attribution file.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "PACKAGES", "UNSEEN", "IconSet", "build_emoji_bank", "render_icon"]

# (set prefix, npm version, artist, licence SPDX, licence URL, source URL)
PACKAGES: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("twemoji", "1.2.5", "Twitter, Inc. and other contributors (Twemoji)", "CC-BY-4.0",
     "https://creativecommons.org/licenses/by/4.0/", "https://github.com/jdecked/twemoji"),
    ("fluent-emoji-flat", "1.2.6", "Microsoft Corporation (Fluent Emoji, flat)", "MIT",
     "https://github.com/microsoft/fluentui-emoji/blob/main/LICENSE",
     "https://github.com/microsoft/fluentui-emoji"),
    ("noto", "1.2.9", "Google Inc. (Noto Emoji)", "Apache-2.0",
     "https://www.apache.org/licenses/LICENSE-2.0", "https://github.com/googlefonts/noto-emoji"),
    ("noto-v1", "1.2.5", "Google Inc. (Noto Emoji v1)", "Apache-2.0",
     "https://www.apache.org/licenses/LICENSE-2.0", "https://github.com/googlefonts/noto-emoji"),
    ("emojione", "1.2.3", "Emoji One (EmojiOne 2)", "CC-BY-4.0",
     "https://creativecommons.org/licenses/by/4.0/", "https://github.com/EmojiTwo/emojitwo"),
    ("fxemoji", "1.2.2", "Mozilla (Firefox OS emoji)", "Apache-2.0",
     "https://www.apache.org/licenses/LICENSE-2.0", "https://github.com/mozilla/fxemoji"),
    ("streamline-emojis", "1.2.4", "Streamline (webalys)", "CC-BY-4.0",
     "https://creativecommons.org/licenses/by/4.0/",
     "https://github.com/webalys-hq/streamline-vectors"),
)  # fmt: skip

# 93 concrete-object classes (CLDR names), each present in at least 6 of the 7 sets, chosen to avoid
# near-duplicates (dog/poodle, cow/ox, red/green apple, ...), grouped for a stratified split.
CLASSES: tuple[tuple[str, str], ...] = tuple(
    (name, group)
    for group, names in (
        ("mammal", "dog cat horse cow pig elephant rabbit mouse monkey tiger camel goat koala"),
        ("bird", "rooster bird penguin baby-chick"),
        ("animal", "crocodile turtle snake dolphin tropical-fish octopus snail ant honeybee"),
        ("plant", "rose sunflower tulip cactus palm-tree christmas-tree four-leaf-clover mushroom"),
        ("fruit", "grapes watermelon lemon banana pineapple red-apple pear cherries strawberry"),
        ("food", "bread hamburger french-fries pizza doughnut birthday-cake sushi wine-glass"),
        ("vehicle", "bus ambulance tractor motorcycle bicycle sailboat airplane helicopter rocket"),
        ("sport", "soccer-ball basketball american-football trophy crystal-ball balloon"),
        ("clothing", "glasses t-shirt jeans dress crown running-shoe handbag"),
        ("music", "guitar violin saxophone trumpet microphone"),
        ("object", "telephone battery television camera light-bulb open-book key hammer"),
        ("object", "wrench umbrella watch alarm-clock microscope door money-bag"),
    )
    for name in names.split()
)

# 19 of 93 classes (seen:unseen about 4:1), at least one per group, never seen in training.
UNSEEN: tuple[str, ...] = (
    "elephant", "tiger", "penguin", "octopus", "honeybee", "sunflower", "pear", "strawberry",
    "pizza", "helicopter", "bicycle", "basketball", "crown", "guitar", "light-bulb", "umbrella",
    "rabbit", "rocket", "watch",
)  # fmt: skip


@dataclass(frozen=True)
class IconSet:
    """One ``@iconify-json`` set: default view box and raw icon entries (``icons`` and ``aliases``)."""

    prefix: str
    width: int
    height: int
    icons: dict[str, dict]
    aliases: dict[str, dict]

    @classmethod
    def from_tarball(cls, path: str | Path) -> IconSet:
        """Read ``package/icons.json`` from an ``npm pack`` tarball without unpacking it to disk."""
        with tarfile.open(path, "r:gz") as archive:
            member = archive.extractfile("package/icons.json")
            if member is None:
                raise ValueError(f"{path}: no package/icons.json in the tarball")
            data = json.load(member)
        return cls(
            prefix=data["prefix"],
            width=int(data.get("width", 16)),
            height=int(data.get("height", 16)),
            icons=data["icons"],
            aliases=data.get("aliases", {}),
        )

    def lookup(self, name: str) -> str | None:
        """The icon name for a CLDR class name: exact, ``name-1`` (Streamline) or unhyphenated (fxemoji)."""
        for candidate in (name, f"{name}-1", name.replace("-", "")):
            if candidate in self.icons:
                return candidate
            alias = self.aliases.get(candidate)
            if alias is not None and set(alias) == {"parent"} and alias["parent"] in self.icons:
                return alias["parent"]
        return None

    def svg(self, icon_name: str) -> str:
        """A standalone SVG document for one icon, honouring per-icon view-box overrides."""
        icon = self.icons[icon_name]
        left, top = icon.get("left", 0), icon.get("top", 0)
        width, height = icon.get("width", self.width), icon.get("height", self.height)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{left} {top} {width} {height}" width="{width}" height="{height}">'
            f"{icon['body']}</svg>"
        )


def render_icon(svg: str, size: int) -> np.ndarray:
    """Rasterise an SVG so its longer side is ``size`` px; return the alpha-cropped RGBA uint8 array."""
    import cairosvg  # build-time only
    from PIL import Image

    png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), output_width=size, output_height=size)
    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    rows = np.flatnonzero(rgba[..., 3].max(axis=1) > 0)
    cols = np.flatnonzero(rgba[..., 3].max(axis=0) > 0)
    if rows.size == 0:
        raise ValueError("the icon rendered fully transparent")
    return rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _npm_pack(folder: Path) -> dict[str, Path]:
    specs = [f"@iconify-json/{prefix}@{version}" for prefix, version, *_ in PACKAGES]
    subprocess.run(["npm", "pack", "--silent", *specs], cwd=folder, check=True, capture_output=True)
    return _find_tarballs(folder)


def _find_tarballs(folder: Path) -> dict[str, Path]:
    found = {}
    for prefix, version, *_ in PACKAGES:
        path = folder / f"iconify-json-{prefix}-{version}.tgz"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: missing; run npm pack @iconify-json/{prefix}@{version}"
            )
        found[prefix] = path
    return found


def _attribution(counts: dict[str, int]) -> str:
    lines = [
        "Emoji sprite bank: attribution and licences",
        "",
        "bank.png holds raster renderings (cairosvg) of vector emoji from the npm packages below,",
        "cropped and resized; no other change. Each artist's work stays under its own licence.",
        "The share-alike OpenMoji set is not used.",
        "",
    ]
    for prefix, version, artist, spdx, url, source in PACKAGES:
        lines += [
            f"* @iconify-json/{prefix}@{version}: {artist}. Licence {spdx} ({url}).",
            f"  Source: {source}. Sprites used: {counts.get(prefix, 0)}.",
        ]
    lines += [
        "",
        "CC-BY-4.0 sets (Twemoji, EmojiOne, Streamline): attribution as above is required.",
        "Apache-2.0 sets (Noto, Noto v1, fxemoji): the sprites are a modified (rasterised) form of the",
        "originals; the licence text is at https://www.apache.org/licenses/LICENSE-2.0.",
        "MIT set (Fluent Emoji): Copyright (c) Microsoft Corporation. Permission is hereby granted,",
        "free of charge, to any person obtaining a copy of this software and associated documentation",
        "files, to deal in the Software without restriction, subject to including this notice.",
        "",
    ]
    return "\n".join(lines)


def build_emoji_bank(
    out_dir: str | Path, *, size: int = 80, npm_dir: str | Path | None = None
) -> dict:
    """Fetch the pinned sets, render every (class, style) sprite and write the bank to ``out_dir``.

    Args:
        out_dir: destination folder (the package's ``detection/data/emoji`` when committing).
        size: the longer side of each rendered icon before cropping to its alpha box, in pixels.
        npm_dir: a folder that already holds the ``npm pack`` tarballs (offline rebuild); when
            ``None`` they are fetched with ``npm pack`` into a temporary folder.

    Returns:
        The JSON index that was written (``bank.json``).
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tarballs = _find_tarballs(Path(npm_dir)) if npm_dir else _npm_pack(Path(tmp))
        sets = {prefix: IconSet.from_tarball(path) for prefix, path in tarballs.items()}
    styles = [prefix for prefix, *_ in PACKAGES]
    atlas = np.zeros((len(CLASSES) * size, len(styles) * size, 4), dtype=np.uint8)
    index_classes, counts = [], {s: 0 for s in styles}
    for row, (name, group) in enumerate(CLASSES):
        present = []
        for col, style in enumerate(styles):
            icon = sets[style].lookup(name)
            if icon is None:
                continue
            sprite = render_icon(sets[style].svg(icon), size)
            h, w = sprite.shape[:2]
            atlas[row * size : row * size + h, col * size : col * size + w] = sprite
            present.append({"style": style, "icon": icon, "height": h, "width": w})
            counts[style] += 1
        if len(present) < 6:
            raise ValueError(f"class {name!r} has only {len(present)} styles; need at least 6")
        index_classes.append({"name": name, "group": group, "sprites": present})
    index = {
        "format": 1,
        "cell": size,
        "styles": styles,
        "packages": {p: f"@iconify-json/{p}@{v}" for p, v, *_ in PACKAGES},
        "licences": {p: spdx for p, _, _, spdx, *_ in PACKAGES},
        "classes": index_classes,
        "unseen": sorted(UNSEEN),
        "seen": sorted(n for n, _ in CLASSES if n not in UNSEEN),
    }
    Image.fromarray(atlas, "RGBA").save(out / "bank.png", optimize=True)
    (out / "bank.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    (out / "ATTRIBUTION.md").write_text(_attribution(counts), encoding="utf-8")
    return index
