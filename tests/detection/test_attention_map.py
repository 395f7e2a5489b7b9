"""``detection.attention_map`` and ``ia detr detect --draw-attention``: the last decoder layer's
attention, checked against the decoder's own ``return_maps`` path, its masks and its weighting."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from indirect_attention.cli import main
from indirect_attention.core import IndirectDecoder
from indirect_attention.detection.attention_map import attention_map, last_layer_attention
from indirect_attention.detection.detect import detect
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.preprocess import InputSpec, model_input
from indirect_attention.training.checkpoint import save_checkpoint

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=9, bias_hidden=16)


def _model(kind: str) -> IADETR:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return IADETR(DetrModelConfig(kind=kind, **TINY), input_spec=InputSpec(64, 24)).eval()


def test_captured_attention_equals_the_decoders_own_maps() -> None:
    """``misaligned`` has no bias, so the decoder's ``return_maps`` path runs; the hook on the
    last layer must give the same probabilities, and the model must come back unchanged."""
    model = _model("misaligned")
    batch = model_input(
        [torch.rand(3, 40, 64)], [torch.rand(3, 20, 20)], InputSpec(64, 24), stride=8
    )
    with torch.no_grad():
        before = model(batch.targets, batch.queries, batch.target_padding).logits
    attn, scores = last_layer_attention(model, batch)
    decoder = next(m for m in model.modules() if isinstance(m, IndirectDecoder))
    maps = []
    pre = decoder.register_forward_pre_hook(
        lambda _, a, k: (a, {**k, "return_maps": True}), with_kwargs=True
    )
    post = decoder.register_forward_hook(lambda _, __, out: maps.append(out.attn[-1]))
    with torch.no_grad():
        model(batch.targets, batch.queries, batch.target_padding)
    pre.remove(), post.remove()
    assert torch.allclose(attn, maps[0], atol=1e-6)
    with torch.no_grad():
        after = model(batch.targets, batch.queries, batch.target_padding).logits
    assert torch.equal(before, after)  # the hooks are gone: the fused path again
    assert torch.allclose(scores, before[-1].sigmoid(), atol=1e-5)
    assert not decoder.layers[-1]._forward_hooks and not decoder.layers[-1]._forward_pre_hooks


@pytest.mark.parametrize("kind", ["ia", "double-cross"])
def test_rows_are_probabilities_and_padding_gets_none(kind: str) -> None:
    model = _model(kind)
    # 80 x 10 -> 64 x 8 on a 64 x 24 canvas (the query's side): cells of rows 1-2 are padding.
    target, query = torch.rand(3, 10, 80), torch.rand(3, 20, 20)
    batch = model_input([target], [query], InputSpec(64, 24), stride=8)
    attn, scores = last_layer_attention(model, batch)
    assert attn.shape == (1, 2, 9, 3 * 8) and scores.shape == (1, 9)
    assert torch.allclose(attn.sum(dim=-1), torch.ones(1, 2, 9), atol=1e-5)
    assert (attn.reshape(1, 2, 9, 3, 8)[..., 1:, :] == 0).all()
    heat = attention_map(model, target, query)  # the valid row only, stretched to 10 x 80
    assert heat.shape == (10, 80) and heat.max() == pytest.approx(1.0)


def test_map_is_the_weighted_grid_at_the_targets_size() -> None:
    model = _model("ia")
    target, query = torch.rand(3, 48, 48), torch.rand(3, 20, 20)  # resized to 64 x 64, no padding
    found = detect(model, target, query, threshold=0.0, max_detections=3)
    heat = attention_map(model, target, query, queries=found.queries, weights=found.scores)
    assert heat.shape == (48, 48) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    batch = model_input([target], [query], InputSpec(64, 24), stride=8)
    attn, _ = last_layer_attention(model, batch)
    grid = (found.scores[:, None] * attn[0].mean(dim=0)[found.queries]).sum(dim=0).reshape(8, 8)
    expected = F.interpolate(grid[None, None], size=(64, 64), mode="nearest")
    expected = F.interpolate(expected, size=(48, 48), mode="bilinear", antialias=True)[0, 0]
    assert torch.allclose(heat, expected / expected.max(), atol=1e-5)
    # With no detections given, every query counts by its own score.
    everything = attention_map(model, target, query)
    assert everything.shape == (48, 48) and everything.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"queries \(3\) and weights \(2\) differ"):
        attention_map(model, target, query, queries=found.queries, weights=found.scores[:2])


def test_cli_draw_attention(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = _model("ia")
    extra = {"model_config": asdict(model.config), "input_spec": asdict(model.input_spec)}
    save_checkpoint(tmp_path / "checkpoint.pt", model, extra=extra)
    pixels = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "t.png")
    base = ["detr", "detect", "--checkpoint", str(tmp_path / "checkpoint.pt")]
    base += ["--query", str(tmp_path / "t.png"), "--target", str(tmp_path / "t.png")]
    base += ["--threshold", "0.99", "--out", str(tmp_path / "d.json")]  # no detection kept
    assert main([*base, "--draw", str(tmp_path / "plain")]) == 0
    again = [*base, "--overwrite"]  # the second run replaces the first one's d.json
    assert main([*again, "--draw", str(tmp_path / "heat"), "--draw-attention"]) == 0
    plain = np.asarray(Image.open(tmp_path / "plain" / "t.png"))
    heat = np.asarray(Image.open(tmp_path / "heat" / "t.png"))
    assert plain.shape == heat.shape
    assert (plain[:, :80] == pixels).all()  # nothing drawn without detections
    tinted = heat[:, :80].astype(int) - pixels
    assert (tinted[..., 0] >= -1).all() and (tinted[..., 0] > 5).any()  # redder where attended
    assert main([*again, "--draw-attention"]) == 2
    assert "--draw-attention needs --draw DIR" in capsys.readouterr().err
