"""Tests of the sprite-classification pre-training stage (detection/pretrain.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from indirect_attention.detection import pretrain
from indirect_attention.detection.data import EmojiEpisodes, load_sprite_bank
from indirect_attention.detection.data.emoji_episodes import split_classes
from indirect_attention.detection.model import DetrModelConfig
from indirect_attention.detection.pretrain import (
    PretrainConfig,
    episode_classes,
    pretrained_backbone,
    random_crops,
)
from indirect_attention.detection.sources import EmojiSource, emoji
from indirect_attention.detection.sources.emoji import load_train_cache
from indirect_attention.detection.train import DetrTrainConfig, prepare_caches


def test_random_crops_without_jitter_are_the_square_around_the_box() -> None:
    """A 16-px box gives a 20-px square (object at 80 %); at output size 20 every sample lands on
    a pixel centre, so the crop must equal plain slicing."""
    images = torch.rand(2, 3, 64, 64)
    boxes = torch.tensor([[12.0, 20.0, 28.0, 30.0], [30.0, 8.0, 40.0, 24.0]])  # sides 16, 16
    crops = random_crops(images, boxes, 20, torch.Generator().manual_seed(0), jitter=0.0)
    torch.testing.assert_close(crops[0], images[0, :, 15:35, 10:30])
    torch.testing.assert_close(crops[1], images[1, :, 6:26, 25:45])


def test_random_crops_jitter_stays_within_its_bounds() -> None:
    images = torch.arange(64.0).repeat(64, 1)[None, None].repeat(1, 3, 1, 1)  # value = x
    boxes = torch.tensor([[24.0, 24.0, 40.0, 40.0]]).repeat(200, 1)
    images = images.repeat(200, 1, 1, 1)
    crops = random_crops(images, boxes, 8, torch.Generator().manual_seed(1), jitter=0.2)
    centre_x = crops[:, 0].mean(dim=(1, 2)) + 0.5  # pixel k covers [k, k + 1)
    width = crops[:, 0, 0, -1] - crops[:, 0, 0, 0]  # 7/8 of the side
    side = width * 8 / 7
    assert (side > 20 * 0.8 - 1e-3).all() and (side < 20 * 1.2 + 1e-3).all()
    assert ((centre_x - 32).abs() <= side * 0.1 + 1e-3).all()
    assert side.std() > 0.5  # the jitter does act


def test_episode_classes_follow_the_rendered_instances() -> None:
    seen, _ = split_classes(load_sprite_bank(), "train")
    rows = episode_classes("train", 4, seen)
    data = EmojiEpisodes("train", length=4)
    for index, row in enumerate(rows):
        episode = data.episode(index)
        names = [episode.spec.category] * len(episode.boxes) + list(episode.distractor_classes)
        assert [seen[k] for k in row] == names
        assert len(row) == len(episode.boxes) + len(episode.distractor_boxes)


def test_pretrained_backbone_is_cached_and_leaves_the_caller_rng_alone(
    tmp_path, monkeypatch
) -> None:
    cache = load_train_cache(6, 0.5, tmp_path)
    config = PretrainConfig(dim=32, steps=2, batch_size=8, check_episodes=2)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    state, report = pretrained_backbone(
        cache, config, scale=0.5, cache_dir=tmp_path, progress=False
    )
    assert torch.equal(torch.get_rng_state(), before)
    assert set(report["matching_accuracy"]) == {"seen", "unseen"}

    def fail(*args, **kwargs):
        raise AssertionError("a cached stage must not train again")

    monkeypatch.setattr(pretrain, "_pretrain", fail)
    again, report_again = pretrained_backbone(
        cache, config, scale=0.5, cache_dir=tmp_path, progress=False
    )
    assert report_again == report
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    with pytest.raises(AssertionError, match="must not train"):  # other settings: a new stage
        pretrained_backbone(
            cache, PretrainConfig(dim=32, steps=3), scale=0.5, cache_dir=tmp_path, progress=False
        )


def test_prepare_caches_leaves_nothing_for_the_runs_to_compute(tmp_path, monkeypatch) -> None:
    model = DetrModelConfig(dim=32, num_heads=2, num_layers=1, ffn_dim=64, num_queries=4)
    data = EmojiSource(train_episodes=6, cache_dir=str(tmp_path))
    config = DetrTrainConfig(data=data, model=model, pretrain_steps=2, progress=False)
    prepare_caches(config)

    def fail(*args, **kwargs):
        raise AssertionError("prepared caches must not be computed again")

    monkeypatch.setattr(pretrain, "_pretrain", fail)
    monkeypatch.setattr(emoji, "EmojiEpisodes", fail)
    cache = load_train_cache(6, data.scale, tmp_path)  # read back, not rendered
    settings = PretrainConfig(dim=32, steps=2, seed=config.seed)
    pretrained_backbone(cache, settings, scale=data.scale, cache_dir=tmp_path, progress=False)
    with pytest.raises(AssertionError, match="computed again"):  # another seed: not prepared
        prepare_caches(replace(config, seed=1))


def test_pre_training_reads_the_episodes_of_held_out_artists_as_they_were_rendered(
    tmp_path,
) -> None:
    """With artists held out, the training episodes are drawn from the other artists, which
    changes their instances; the stage must read them with the same settings (it read them with
    the full bank and refused the cache as stale at the first episode whose count differed)."""
    data = EmojiSource(
        train_episodes=24, cache_dir=str(tmp_path), held_out_styles=("emojione", "fxemoji")
    )
    settings = data.episode_config()
    seen, _ = split_classes(load_sprite_bank(), "train")
    rows = episode_classes("train", 24, seen, episodes=settings)
    rendered = EmojiEpisodes("train", length=24, config=settings)
    for index, row in enumerate(rows):
        episode = rendered.episode(index)
        names = [episode.spec.category] * len(episode.boxes) + list(episode.distractor_classes)
        assert [seen[k] for k in row] == names
    assert rows != episode_classes("train", 24, seen)  # the settings do matter here
    model = DetrModelConfig(dim=32, num_heads=2, num_layers=1, ffn_dim=64, num_queries=4)
    prepare_caches(DetrTrainConfig(data=data, model=model, pretrain_steps=2, progress=False))
    assert list((tmp_path / "without-emojione+fxemoji").glob("backbone-small-*.pt"))
