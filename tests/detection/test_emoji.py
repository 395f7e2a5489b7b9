"""The embedded emoji benchmark: packaged sprite bank, episodes, tight boxes, torch dataset."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from indirect_attention.detection.data.emoji import (
    ALPHA_THRESHOLD,
    _read_bank,
    alpha_box,
    load_sprite_bank,
    transform_sprite,
)
from indirect_attention.detection.data.emoji_dataset import EmojiEpisodes, collate_episodes
from indirect_attention.detection.data.emoji_episodes import (
    EpisodeConfig,
    render_episode,
    sample_episode,
)

PERMISSIVE = {"CC-BY-4.0", "MIT", "Apache-2.0"}


@pytest.fixture(scope="module")
def bank():
    return load_sprite_bank()


def test_bank_loads_from_the_package_without_network(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the sprite bank tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    folder = resources.files("indirect_attention.detection.data") / "emoji"
    bank = _read_bank(Path(str(folder / "bank.json")), Path(str(folder / "bank.png")))  # uncached
    assert len(bank.classes) >= 60
    assert all(len(bank.styles_of(c)) >= 6 for c in bank.classes)
    assert "openmoji" not in bank.styles and set(bank.licences.values()) <= PERMISSIVE
    attribution = (folder / "ATTRIBUTION.md").read_text()
    for style in bank.styles:
        assert f"@iconify-json/{style}@" in attribution
    for licence in PERMISSIVE:
        assert licence in attribution


def test_bank_split_is_fixed_about_four_to_one(bank) -> None:
    assert set(bank.seen).isdisjoint(bank.unseen)
    assert set(bank.seen) | set(bank.unseen) == set(bank.classes)
    assert 3.5 <= len(bank.seen) / len(bank.unseen) <= 4.5
    index = json.loads(
        (resources.files("indirect_attention.detection.data") / "emoji" / "bank.json").read_text()
    )
    assert sorted(index["unseen"]) == sorted(bank.unseen)


def test_sprites_are_tight_rgba(bank) -> None:
    for (category, style), sprite in list(bank.sprites.items())[::37]:
        assert sprite.dtype == np.uint8 and sprite.ndim == 3 and sprite.shape[2] == 4
        alpha = sprite[..., 3]
        # every border row/column of a tight sprite holds some alpha
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any(), (
            category,
            style,
        )


def test_transform_sprite_scales_and_rotates(bank) -> None:
    sprite = bank.sprite("dog", bank.styles_of("dog")[0])
    patch = transform_sprite(sprite, 40, 0.0)
    assert max(patch.shape[:2]) in (39, 40, 41)
    rotated = transform_sprite(sprite, 40, 15.0)
    assert rotated.shape[0] * rotated.shape[1] > patch.shape[0] * patch.shape[1]
    with pytest.raises(ValueError, match="no sprite for class 'dog' in style 'nope'"):
        bank.sprite("dog", "nope")


def test_episode_is_deterministic_in_seed(bank) -> None:
    a = render_episode(sample_episode(bank, "test", 5, seed=1), bank)
    b = render_episode(sample_episode(bank, "test", 5, seed=1), bank)
    c = render_episode(sample_episode(bank, "test", 5, seed=2), bank)
    assert np.array_equal(a.target, b.target) and np.array_equal(a.query, b.query)
    assert np.array_equal(a.boxes, b.boxes) and a.spec == b.spec
    assert not np.array_equal(a.target, c.target)


@pytest.mark.parametrize("split", ["train", "test"])
def test_episode_content_and_tight_boxes(bank, split) -> None:
    config = EpisodeConfig()
    for index in range(6):
        spec = sample_episode(bank, split, index, seed=0, config=config)
        episode = render_episode(spec, bank, config=config)
        assert episode.target.shape == (256, 256, 3) and episode.query.shape == (96, 96, 3)
        assert 1 <= len(spec.positives) <= 3 and len(episode.boxes) == len(spec.positives)
        styles = [p.style for p in spec.positives]
        assert spec.query_style not in styles and len(set(styles)) == len(styles)
        assert all(d.category != spec.category for d in spec.distractors)
        boxes = np.concatenate([episode.boxes, episode.distractor_boxes])
        for mask, box in zip(episode.masks, boxes, strict=True):
            # independent check of tightness: the extreme rows/cols of alpha >= threshold
            ys, xs = np.nonzero(mask >= ALPHA_THRESHOLD)
            assert tuple(box) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            x1, y1, x2, y2 = box.astype(int)
            outside = mask.copy()
            outside[y1:y2, x1:x2] = 0
            assert outside.max() < ALPHA_THRESHOLD
        # instances do not overlap, so every box shows its whole object
        visible = (episode.masks > 0).sum(axis=0)
        assert visible.max() <= 1


def test_splits_respect_seen_and_unseen(bank) -> None:
    unseen = set(bank.unseen)
    for index in range(40):
        spec = sample_episode(bank, "train", index)
        assert spec.category not in unseen
        assert not any(i.category in unseen for i in spec.positives + spec.distractors)
        assert sample_episode(bank, "val", index).category not in unseen
        assert sample_episode(bank, "test", index).category in unseen
    classes = {sample_episode(bank, "test", i).category for i in range(len(bank.unseen))}
    assert classes == unseen  # fixed sets cycle through the classes


def test_torch_dataset_shapes_and_collate() -> None:
    data = EmojiEpisodes("val", length=3)
    assert len(data) == 3
    sample = data[2]
    assert sample.target.shape == (3, 256, 256) and sample.target.dtype == torch.float32
    assert sample.query.shape == (3, 96, 96)
    assert float(sample.target.min()) >= 0.0 and float(sample.target.max()) <= 1.0
    assert sample.boxes.ndim == 2 and sample.boxes.shape[1] == 4
    assert torch.all(sample.boxes[:, 2:] > sample.boxes[:, :2])
    batch = collate_episodes([data[0], data[1]])
    assert batch.targets.shape == (2, 3, 256, 256) and batch.queries.shape == (2, 3, 96, 96)
    assert len(batch.boxes) == 2 and batch.indices == [0, 1]
    with pytest.raises(IndexError):
        data[3]
    with pytest.raises(ValueError, match="unknown split"):
        EmojiEpisodes("holdout")
    small = EmojiEpisodes("test", length=1, config=EpisodeConfig(canvas_size=128, query_size=64))
    assert small[0].target.shape == (3, 128, 128) and small[0].query.shape == (3, 64, 64)


def test_alpha_box() -> None:
    alpha = np.zeros((10, 12), dtype=np.uint8)
    assert alpha_box(alpha) is None
    alpha[2:5, 3:9] = 255
    alpha[7, 0] = ALPHA_THRESHOLD - 1  # faint pixel: outside the box
    assert alpha_box(alpha) == (3, 2, 9, 5)


def test_build_reads_iconify_tarballs(tmp_path: Path) -> None:
    """The build step on a hand-made tarball (no npm, no network); needs the build extra."""
    pytest.importorskip("cairosvg")
    from indirect_attention.detection.data.emoji_build import IconSet, render_icon

    icons = {
        "prefix": "toy",
        "width": 16,
        "height": 16,
        "icons": {"redapple": {"body": '<rect x="4" y="2" width="8" height="12" fill="red"/>'}},
        "aliases": {"red-apple-1": {"parent": "redapple"}},
    }
    payload = json.dumps(icons).encode()
    path = tmp_path / "toy.tgz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("package/icons.json")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    icon_set = IconSet.from_tarball(path)
    assert icon_set.lookup("red-apple") == "redapple" and icon_set.lookup("pear") is None
    sprite = render_icon(icon_set.svg("redapple"), 32)
    assert sprite.shape == (24, 16, 4)  # the 8x12 rect of a 16 box at 2x, cropped to its alpha
    assert sprite[12, 8, 0] == 255 and sprite[12, 8, 3] == 255


def test_bank_files_are_declared_package_data() -> None:
    """The committed bank and splits match pyproject's package-data globs, so wheels carry them."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["indirect_attention"]
    package = root / "src" / "indirect_attention"
    files = [
        *(package / "detection" / "data" / "emoji").iterdir(),
        *(package / "detection" / "data" / "splits").iterdir(),
    ]
    assert len(files) >= 5
    for path in files:
        relative = path.relative_to(package).as_posix()
        assert any(
            fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(path.name, p.split("/")[-1])
            for p in patterns
        ), relative
    size = sum(p.stat().st_size for p in (package / "detection" / "data" / "emoji").iterdir())
    assert size < 4_000_000  # "a few MB"
