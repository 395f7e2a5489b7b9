"""IA-DETR model: shapes of the three kinds, the padding/mask rule, position code, post-processing."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from indirect_attention.detection.decoder import BoxRefinement
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.position import sine_position_embedding

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=5, bias_hidden=16)


@pytest.mark.parametrize("kind", ["ia", "misaligned", "double-cross"])
@pytest.mark.parametrize("query_mode", ["pad", "pad-features", "resize"])
def test_output_shapes(kind: str, query_mode: str) -> None:
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(kind=kind, query_mode=query_mode, **TINY))
    out = model(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 24, 24))
    assert out.logits.shape == (2, 2, 5) and out.boxes.shape == (2, 2, 5, 4)
    assert out.grid == (8, 8)
    assert ((out.boxes > 0) & (out.boxes < 1)).all()


def _perturb_padded_target_features(model: IADETR, cells: torch.Tensor) -> None:
    """Add noise to the *target* backbone features at ``cells`` (B, h, w) on every call."""

    def hook(module, inputs, output):
        noisy = output.clone()
        batch = cells.shape[0]
        noisy[:batch] += 50.0 * cells[:, None].float() * torch.randn_like(noisy[:batch])
        return noisy

    model.backbone.register_forward_hook(hook)


@pytest.mark.parametrize("kind", ["ia", "misaligned", "double-cross"])
def test_target_padding_is_masked_but_query_padding_is_attendable(kind: str) -> None:
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(kind=kind, query_mode="pad", **TINY)).eval()
    targets, queries = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 24, 24)
    padding = torch.zeros(1, 64, 64, dtype=torch.bool)
    padding[:, :, 48:] = True  # the target's last two columns of cells are padding
    base = model(targets, queries, padding)
    # The key mask is the target's padding only; query padding (all but 3×3 cells) stays open.
    cells = torch.zeros(1, 8, 8, dtype=torch.bool)
    cells[:, :, 6:] = True
    assert torch.equal(base.key_padding_mask, cells.flatten(1))
    # Target padding: whatever its features hold, nothing changes.
    _perturb_padded_target_features(model, cells)
    again = model(targets, queries, padding)
    assert torch.allclose(again.logits, base.logits, atol=1e-5)
    assert torch.allclose(again.boxes, base.boxes, atol=1e-5)
    # A valid target region where only the query image is padding is read by the decoder.
    changed = targets.clone()
    changed[:, :, 32:48, 32:48] = 1.0 - changed[:, :, 32:48, 32:48]
    moved = model(changed, queries, padding)
    assert not torch.allclose(moved.logits, base.logits, atol=1e-4)


def test_pad_features_matches_pad_layout() -> None:
    torch.manual_seed(0)
    config = DetrModelConfig(query_mode="pad-features", **TINY)
    model = IADETR(config).eval()
    queries = torch.rand(2, 3, 24, 24)
    _, padding = model.canvas_query(queries, (64, 64))
    assert (~padding).sum().item() == 2 * 24 * 24
    assert not padding[:, :24, :24].any()


def test_sine_position_embedding_is_finite_on_padding() -> None:
    valid = torch.zeros(2, 4, 6, dtype=torch.bool)
    valid[0] = True
    valid[1, :2, :3] = True
    pos = sine_position_embedding(valid, 16)
    assert pos.shape == (2, 24, 16) and torch.isfinite(pos).all() and pos.abs().max() <= 1


def test_box_refinement_starts_at_identity_and_detaches() -> None:
    refine = BoxRefinement(8)
    boxes = (torch.rand(2, 3, 4) * 0.5 + 0.25).requires_grad_()
    out = refine(boxes, torch.randn(2, 3, 8))
    assert torch.allclose(out, boxes, atol=1e-5)
    out.sum().backward()
    assert boxes.grad is None  # the stop-gradient between layers


def test_double_cross_with_fused_bias_has_box_bias() -> None:
    plain = IADETR(DetrModelConfig(kind="double-cross", **TINY))
    fused = IADETR(DetrModelConfig(kind="double-cross", fused_bias=True, **TINY))
    assert plain.decoder.decoder.biases is None and fused.decoder.decoder.biases is not None
    out = fused(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 24, 24))
    assert torch.isfinite(out.logits).all()


def test_anchor_queries_are_embedding_plus_target_feature_at_their_cell() -> None:
    """Definition 1 (q_i = e_i + x_s(i)): each anchor query reads the target token under its
    lattice point, checked against a brute-force search for the cell that contains it."""
    torch.manual_seed(0)
    config = DetrModelConfig(dim=32, num_heads=2, num_layers=1, ffn_dim=64, num_queries=16)
    model = IADETR(replace(config, object_queries="anchors")).eval()
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, args, _output) -> None:
        captured["queries"], captured["values"] = args[0], args[2]

    model.decoder.register_forward_hook(grab)
    # a 12 × 9 grid: no lattice point of the 4 × 4 anchors falls on a cell border (with 8 columns,
    # 0.125 · 8 = 1 would, and float rounding of the starting boxes would pick either side)
    model(torch.rand(2, 3, 96, 72), torch.rand(2, 3, 32, 32))
    grid_h, grid_w = 12, 9
    centres = torch.sigmoid(model.reference_logits)[:, :2]  # (Q, 2) starting boxes
    for i, (cx, cy) in enumerate(centres.tolist()):
        inside = [
            j
            for j in range(grid_h * grid_w)
            if j % grid_w <= cx * grid_w < j % grid_w + 1
            and j // grid_w <= cy * grid_h < j // grid_w + 1
        ]  # the one cell whose extent contains the lattice point
        assert len(inside) == 1
        best = inside[0]
        expected = model.anchor_queries.embedding[i] + captured["values"][:, best]
        torch.testing.assert_close(captured["queries"][:, i], expected)
    assert torch.allclose(torch.sigmoid(model.reference_logits)[:, 2:], torch.tensor(0.15))


def test_anchor_queries_need_a_square_count() -> None:
    with pytest.raises(ValueError, match=r"square num_queries.*got 30"):
        DetrModelConfig(object_queries="anchors", num_queries=30)
    with pytest.raises(ValueError, match="unknown object_queries 'grid'"):
        DetrModelConfig(object_queries="grid")


@pytest.mark.parametrize("query_mode", ["pad", "pad-features"])
def test_query_offsets_move_the_query_on_the_key_canvas(query_mode: str) -> None:
    """Offsets (0, 0) are the authors' top-left layout; another cell moves the query there (the
    canvas is the top-left one shifted by whole cells), changes the output, and a cell where the
    query would not fit is refused."""
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(query_mode=query_mode, **TINY)).eval()
    stride = model.backbone.stride
    targets, queries = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 24, 24)
    zero = torch.zeros(2, 2, dtype=torch.long)
    offsets = torch.tensor([[1, 2], [0, 1]])
    with torch.no_grad():
        plain = model(targets, queries)
        at_zero = model(targets, queries, query_offsets=zero)
        moved = model(targets, queries, query_offsets=offsets)
    assert torch.equal(plain.logits, at_zero.logits) and torch.equal(plain.boxes, at_zero.boxes)
    assert not torch.allclose(plain.logits, moved.logits)
    corner, corner_padding = model.canvas_query(queries, (64, 64))
    shifted, shifted_padding = model.canvas_query(queries, (64, 64), offsets)
    for b, (row, col) in enumerate(offsets.tolist()):
        expected = torch.roll(corner[b], shifts=(row * stride, col * stride), dims=(1, 2))
        assert torch.equal(shifted[b], expected)
        assert torch.equal(
            shifted_padding[b],
            torch.roll(corner_padding[b], shifts=(row * stride, col * stride), dims=(0, 1)),
        )
    too_far = torch.tensor([[0, 0], [0, (64 - 24) // stride + 1]])
    with pytest.raises(ValueError, match="query_offsets: got cell"):
        model(targets, queries, query_offsets=too_far)
