"""The data-source seam (detection/sources): the emoji source's sizes and pairs, and the worked
example of docs/data_sources.md (a folder of images) run as written there, through the CLI."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indirect_attention.cli import detr as cli_detr
from indirect_attention.cli import main
from indirect_attention.detection.data import EmojiEpisodes, EpisodeConfig, load_sprite_bank
from indirect_attention.detection.data.emoji_episodes import sample_episode
from indirect_attention.detection.preprocess import InputSpec
from indirect_attention.detection.release import load_detector
from indirect_attention.detection.sources import EmojiSource, build_eval_set, eval_set_pairs

DOC = Path(__file__).resolve().parents[2] / "docs" / "data_sources.md"
COLOURS = {"blue": (30, 30, 220), "gold": (230, 190, 0), "red": (220, 30, 30)}


def test_emoji_source_sizes_and_pairs() -> None:
    assert EmojiSource(scale=0.5).input_spec() == InputSpec(128, 48)
    assert EmojiSource(scale=0.25).input_spec() == InputSpec(64, 24)
    eval_set = build_eval_set("val", 3, draws=2, seed=0)
    pairs = eval_set_pairs(eval_set)
    assert len(pairs.right) == len(pairs.wrong) == 2 and len(pairs.right[0]) == 3
    for e, (right, wrong) in enumerate(zip(pairs.right[1], pairs.wrong[1], strict=True)):
        assert right.image_id == wrong.image_id == e and right.category == wrong.category
        assert torch.equal(right.target(), eval_set.targets[e].float() / 255)
        assert torch.equal(right.query(), eval_set.queries[1][e].float() / 255)
        assert torch.equal(wrong.query(), eval_set.wrong[1][e].float() / 255)
        boxes = [o.box for o in pairs.ground_truth[e].objects]
        assert boxes == [tuple(b) for b in eval_set.boxes[e].tolist()]
        everything = torch.cat([eval_set.boxes[e], eval_set.others[e]]).tolist()
        assert [o.box for o in pairs.objects[e]] == [tuple(b) for b in everything]
        classes = [right.category] * len(eval_set.boxes[e]) + list(eval_set.other_classes[e])
        assert [o.category for o in pairs.objects[e]] == classes
    assert EmojiSource().eval_pairs("val", count=1, draws=1, seed=0) is not None
    with pytest.raises(ValueError, match="unknown split 'train'"):
        EmojiSource().eval_pairs("train", count=1, draws=1, seed=0)


def _folder_source_module(tmp_path: Path):
    """The code block of step 1 of the worked example, as a module of its own."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    path = tmp_path / "folder_source.py"
    path.write_text(blocks[0], encoding="utf-8")
    spec = importlib.util.spec_from_file_location("folder_source", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["folder_source"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _write_folder(root: Path, images: int, seed: int) -> None:
    """64 x 80 noise images with two coloured squares each; train.csv and test.csv."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    root.mkdir(parents=True)
    rows = []
    for k in range(images):
        pixels = rng.integers(0, 60, (64, 80, 3), dtype=np.uint8)
        for slot, name in enumerate((names[k % 3], names[(k + 1) % 3])):
            x, y, side = 8 + 36 * slot, int(rng.integers(4, 30)), int(rng.integers(14, 26))
            pixels[y : y + side, x : x + side] = COLOURS[name]
            rows.append([f"{k}.png", name, x, y, x + side, y + side])
        Image.fromarray(pixels).save(root / f"{k}.png")
    for name in ("train.csv", "test.csv"):
        with open(root / name, "w", newline="") as table:
            csv.writer(table).writerows(rows)


def test_worked_example_folder_source_trains_and_evaluates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    folder = _folder_source_module(tmp_path)
    _write_folder(tmp_path / "data", 8, seed=0)
    registered = cli_detr._sources()
    monkeypatch.setattr(  # the one registration line
        cli_detr, "_sources", lambda: {**registered, "folder": folder.FolderSource}
    )
    out = tmp_path / "run"
    argv = ["detr", "train", "--data", "folder", "--data-root", str(tmp_path / "data")]
    argv += ["--unseen-classes", "gold", "--backbone", "small", "--max-size", "64"]
    argv += ["--query-size", "32", "--dim", "32", "--layers", "1", "--queries", "4"]
    argv += ["--epochs", "1", "--batch-size", "4", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "results.json").read_text())["steps"] == 2  # 8 images, no val
    config = json.loads((out / "config.json").read_text())
    assert config["data"] == "folder" and config["data_options"]["unseen_classes"] == ["gold"]
    assert load_detector(out).input_spec == InputSpec(64, 32)
    argv = ["detr", "eval", "--checkpoint", str(out), "--data", "folder"]
    argv += ["--data-root", str(tmp_path / "data"), "--unseen-classes", "gold", "--draws", "2"]
    assert main([*argv, "--out", str(tmp_path / "eval")]) == 0
    result = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert result["draws"] == 2 and result["split"] == "unseen"
    assert 0.0 < result["oracle_boxes"] <= 1.0


def test_held_out_artists_never_reach_training_and_are_all_the_new_artist_splits_show(
    tmp_path: Path,
) -> None:
    held = ("emojione", "fxemoji")
    source = EmojiSource(
        train_episodes=6, scale=0.25, cache_dir=str(tmp_path), held_out_styles=held
    )
    assert source.test_splits() == ("seen", "unseen", "seen-new-artists", "unseen-new-artists")
    assert source.cache_root() == tmp_path / "without-emojione+fxemoji"
    trained = source.episode_config().styles
    assert trained is not None and not set(trained) & set(held) and len(trained) == 5
    data = EmojiEpisodes("train", length=12, config=source.episode_config())
    for index in range(12):
        spec = data.episode(index).spec
        used = {spec.query_style} | {i.style for i in spec.positives + spec.distractors}
        assert not used & set(held)
    source.training_set(seed=0)
    assert (source.cache_root() / "emoji-train-n6-s0.25.pt").exists()
    for split, new in (("seen", False), ("unseen-new-artists", True)):
        pairs = source.eval_pairs(split, count=8, draws=2, seed=0)
        assert pairs is not None and pairs.split == split
        config = source.episode_config(new_artists=new)
        eval_set = build_eval_set(
            "test" if "unseen" in split else "test_seen", 8, draws=2, config=config
        )
        styles = {s for draw in eval_set.styles for s in draw}
        styles |= {s for draw in eval_set.wrong_styles for _, s in draw}
        assert (styles <= set(held)) if new else not (styles & set(held))
    with pytest.raises(ValueError, match="needs held-out artists"):
        EmojiSource().eval_pairs("seen-new-artists", count=1, draws=1, seed=0)
    with pytest.raises(ValueError, match="held_out_styles: got \\['emojione'\\]"):
        EmojiSource(held_out_styles=("emojione",))


def test_episodes_with_every_style_allowed_are_the_default_episodes() -> None:
    bank = load_sprite_bank()
    everything = EpisodeConfig(styles=bank.styles)
    for index in range(20):
        assert sample_episode(bank, "test", index) == sample_episode(
            bank, "test", index, config=everything
        )
