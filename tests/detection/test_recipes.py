"""Named recipes (detection/train.py): ``paper`` changes exactly the documented fields, ``emoji``
is today's recipe unchanged, flags given win, the CLI offers every recipe, config.json records it,
and the paper recipe's training queries are the rendered query images (never crops of the target).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from indirect_attention.cli import build_parser
from indirect_attention.cli.detr import _train_config
from indirect_attention.detection.sources import EmojiSource, VocSource
from indirect_attention.detection.sources.emoji import load_train_cache, make_batch
from indirect_attention.detection.train import RECIPES, DetrTrainConfig, recipe, recipe_source, run

# The paper recipe's differences from ours, as docs/detection.md lists them.
PAPER = {
    ("model", "object_queries"): ("anchors", "two-stage"),
    ("model", "bias_unit"): ("cell", "pixel"),
    ("model", "fusion_layers"): (1, 6),
    ("model", "fused_bias"): (False, True),
    ("data", "crop_queries"): (0.5, 0.0),
    ("recipe",): ("emoji", "paper"),
}


def _flat(config: DetrTrainConfig) -> dict[tuple[str, ...], object]:
    record = asdict(config)
    flat: dict[tuple[str, ...], object] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update({(key, inner): v for inner, v in value.items()})
        else:
            flat[(key,)] = value
    return flat


def _cli(*argv: str, kind: str = "ia") -> DetrTrainConfig:
    args = build_parser().parse_args(["detr", "train", "--out", "x", *argv])
    return _train_config(args, out="x", kind=kind, seed=0)


def test_paper_recipe_changes_exactly_the_documented_fields() -> None:
    emoji, paper = _flat(_cli()), _flat(_cli("--recipe", "paper"))
    changed = {key: (emoji[key], paper[key]) for key in emoji if emoji[key] != paper[key]}
    assert changed == PAPER
    assert _cli("--recipe", "paper") == recipe(name="paper", out="x")


def test_emoji_recipe_is_unchanged() -> None:
    config = _cli()
    assert config == DetrTrainConfig(out="x") == recipe(out="x") == recipe(name="emoji", out="x")
    assert _cli("--recipe", "emoji") == config
    model = config.model
    assert (model.object_queries, model.num_queries, model.bias_unit) == ("anchors", 64, "cell")
    assert (model.fusion_layers, model.fused_bias, model.kind) == (1, False, "ia")
    assert config.data == EmojiSource() and config.data.crop_queries == 0.5
    assert (config.epochs, config.batch_size, config.pretrain_steps) == (8, 16, 2000)


def test_flags_given_win_over_the_recipe() -> None:
    config = _cli("--recipe", "paper", "--crop-queries", "0.3", "--fusion-layers", "2")
    assert config.data.crop_queries == 0.3 and config.model.fusion_layers == 2
    assert config.model.object_queries == "two-stage"  # the rest of the recipe stays
    config = _cli("--recipe", "paper", "--object-queries", "anchors", kind="double-cross")
    assert (config.model.object_queries, config.model.kind) == ("anchors", "double-cross")


def test_recipe_data_options_apply_only_where_the_source_has_them() -> None:
    assert recipe_source("paper", EmojiSource).crop_queries == 0.0
    assert recipe_source("paper", VocSource, data_root="r") == VocSource(data_root="r")


def test_cli_offers_every_recipe() -> None:
    parser = build_parser()
    for command in ("train", "table1"):
        for name in RECIPES:
            args = parser.parse_args(["detr", command, "--out", "x", "--recipe", name])
            assert args.recipe == name


def test_paper_recipe_queries_are_the_rendered_query_images(tmp_path: Path) -> None:
    """crop_queries=0: every training query is the episode's own rendered query image (the class
    in another artist's style on grey), never a crop of the target."""
    source = recipe_source("paper", EmojiSource, train_episodes=3, scale=0.25)
    cache = load_train_cache(3, 0.25, tmp_path)
    indices = torch.arange(3)
    _, queries, truth = make_batch(
        cache, indices, source.crop_queries, torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(queries, cache["queries"][indices].float() / 255.0)
    for row, boxes in enumerate(truth):  # the ground truth is the query class's boxes
        assert len(boxes) == int((cache["labels"][row] == 0).sum())


def test_config_json_records_the_recipe(tmp_path: Path) -> None:
    tiny = dict(dim=32, num_heads=2, num_layers=1, ffn_dim=64, num_queries=5, bias_hidden=16)
    data = recipe_source(
        "paper", EmojiSource, train_episodes=2, scale=0.25, cache_dir=str(tmp_path / "cache")
    )
    config = recipe(
        data,
        name="paper",
        model={**tiny, "kind": "double-cross"},
        out=str(tmp_path / "run"),
        epochs=1,
        batch_size=2,
        eval_episodes=2,
        pretrain_steps=0,
        progress=False,
    )
    result = run(config)
    assert result["steps"] == 1
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["recipe"] == "paper" and record["data_options"]["crop_queries"] == 0.0
    assert record["model"]["object_queries"] == "two-stage"
    assert record["model"]["fusion_layers"] == 6 and record["model"]["fused_bias"] is True
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().strip().split("\n")
    assert "proposal_loss" in json.loads(rows[-1])  # the proposals' own loss is trained
