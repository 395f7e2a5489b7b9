"""Relative offsets, the bias MLP φ and the reference update g against brute force."""

from __future__ import annotations

import math

import pytest
import torch

from indirect_attention import ContentEnrichedQueries, ReferenceUpdate, RelativePositionBias
from indirect_attention.core import (
    inverse_sigmoid,
    position_references,
    relative_offsets,
    value_positions,
)


def test_value_positions_are_cell_centres():
    torch.testing.assert_close(value_positions(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))


def test_position_references_point_and_interval():
    indices = torch.tensor([0, 3])
    torch.testing.assert_close(position_references(indices, 4), torch.tensor([[0.125], [0.875]]))
    interval = position_references(indices, 4, reference_size=2)
    torch.testing.assert_close(interval, torch.tensor([[0.125, 0.25], [0.875, 0.25]]))
    with pytest.raises(ValueError, match="reference_size must be 1"):
        position_references(indices, 4, reference_size=3)


@pytest.mark.parametrize("reference_size", [1, 2])
def test_relative_offsets_brute_force(generator, reference_size):
    references = torch.rand(2, 3, reference_size, generator=generator)
    positions = torch.rand(2, 5, generator=generator)
    offsets = relative_offsets(references, positions)
    assert offsets.shape == (2, 3, 5, reference_size)
    for b in range(2):
        for i in range(3):
            for j in range(5):
                centre = references[b, i, 0]
                if reference_size == 1:
                    expected = [positions[b, j] - centre]
                else:
                    half = references[b, i, 1] / 2
                    expected = [
                        positions[b, j] - (centre - half),
                        positions[b, j] - (centre + half),
                    ]
                torch.testing.assert_close(offsets[b, i, j], torch.stack(expected))


@pytest.mark.parametrize("log_offsets", [True, False])
def test_bias_equals_mlp_applied_per_pair(generator, log_offsets):
    torch.manual_seed(0)
    phi = RelativePositionBias(4, reference_size=2, hidden_dim=16, log_offsets=log_offsets)
    references = torch.rand(2, 3, 2, generator=generator)
    positions = value_positions(5)
    bias = phi(references, positions)
    assert bias.shape == (2, 4, 3, 5)
    first, second = phi.mlp[0], phi.mlp[2]
    for b in range(2):
        for i in range(3):
            for j in range(5):
                c, w = references[b, i].tolist()
                raw = torch.tensor([positions[j] - (c - w / 2), positions[j] - (c + w / 2)])
                x = raw * 8.0
                if log_offsets:
                    x = torch.sign(x) * torch.log2(1 + x.abs()) / math.log2(8.0)
                hidden = torch.relu(first.weight @ x + first.bias)
                torch.testing.assert_close(bias[b, :, i, j], second.weight @ hidden + second.bias)


def test_bias_depends_only_on_offsets(generator):
    """Shifting references and positions together leaves φ(P) unchanged (relative, not absolute)."""
    phi = RelativePositionBias(2, hidden_dim=8)
    references = torch.rand(1, 4, 1, generator=generator) * 0.5
    positions = value_positions(6) * 0.5
    torch.testing.assert_close(phi(references + 0.3, positions + 0.3), phi(references, positions))


def test_bias_rejects_bad_input():
    phi = RelativePositionBias(2, reference_size=1)
    with pytest.raises(
        ValueError, match=r"references must have shape \(B, Lq, 1\), got \(2, 3, 2\)"
    ):
        phi(torch.zeros(2, 3, 2), value_positions(4))
    with pytest.raises(ValueError, match=r"positions must have shape .*got \(3, 4\)"):
        phi(torch.zeros(2, 3, 1), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="reference_size must be 1"):
        RelativePositionBias(2, reference_size=4)


def test_reference_update_starts_as_identity_and_learns(generator):
    update = ReferenceUpdate(8, reference_size=2)
    references = torch.rand(2, 3, 2, generator=generator) * 0.8 + 0.1
    outputs = torch.randn(2, 3, 8, generator=generator)
    torch.testing.assert_close(update(references, outputs), references)
    target = torch.full_like(references, 0.5)
    optimizer = torch.optim.Adam(update.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        loss = (update(references, outputs) - target).square().mean()
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-3
    moved = update(references, outputs)
    assert ((moved > 0) & (moved < 1)).all()


def test_reference_update_rejects_bad_shapes():
    update = ReferenceUpdate(4, reference_size=2)
    with pytest.raises(
        ValueError, match=r"references must have shape \(B, Lq, 2\), got \(1, 3, 1\)"
    ):
        update(torch.rand(1, 3, 1), torch.zeros(1, 3, 4))
    with pytest.raises(
        ValueError, match=r"outputs must have shape \(B, Lq, D\) = \(1, 3, 4\), got \(1, 2, 4\)"
    ):
        update(torch.rand(1, 3, 2), torch.zeros(1, 2, 4))


def test_reference_update_detach_blocks_gradient(generator):
    references = torch.rand(1, 2, 1, generator=generator).requires_grad_(True)
    outputs = torch.randn(1, 2, 4, generator=generator)
    ReferenceUpdate(4, detach=True)(references, outputs).sum().backward()
    assert references.grad is None
    ReferenceUpdate(4, detach=False)(references, outputs).sum().backward()
    assert references.grad is not None and references.grad.abs().sum() > 0


def test_inverse_sigmoid_round_trip():
    x = torch.tensor([1e-3, 0.2, 0.5, 0.9])
    torch.testing.assert_close(torch.sigmoid(inverse_sigmoid(x)), x)
    assert torch.isfinite(inverse_sigmoid(torch.tensor([0.0, 1.0]))).all()


def test_content_enriched_queries(generator):
    queries = ContentEnrichedQueries(3, 4)
    content = torch.randn(2, 5, 4, generator=generator)
    torch.testing.assert_close(queries(content), queries.embedding + content[:, :3])
    indices = torch.tensor([4, 0, 2])
    torch.testing.assert_close(
        queries(content, indices=indices), queries.embedding + content[:, indices]
    )
    plain = ContentEnrichedQueries(3, 4, enrich=False)
    torch.testing.assert_close(plain(content), plain.embedding.expand(2, -1, -1))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 5\)"):
        queries(content, indices=torch.tensor([0, 1, 5]))
    with pytest.raises(ValueError, match=r"content has length 2 .*\(2, 2, 4\)"):
        queries(content[:, :2])
    with pytest.raises(ValueError, match=r"content must have feature size 4"):
        queries(torch.zeros(2, 5, 3))


def test_pointer_update_blends_old_reference_with_the_pointed_position():
    from indirect_attention import PointerUpdate

    torch.manual_seed(0)
    update = PointerUpdate(6, num_positions=5)
    references = torch.rand(2, 3, 1)
    outputs = torch.randn(2, 3, 6)
    # the plain formula, written out independently of the module
    features = torch.nn.functional.layer_norm(outputs, (6,))
    weights = torch.softmax(features @ update.pointer.weight.T + update.pointer.bias, dim=-1)
    target = (weights * ((torch.arange(5) + 0.5) / 5)).sum(-1, keepdim=True)
    gate = torch.sigmoid(features @ update.gate.weight.T + update.gate.bias)
    expected = (1 - gate) * references + gate * target
    assert torch.allclose(update(references, outputs), expected, atol=1e-6)
    # the gate starts nearly closed: early training keeps P^0
    assert torch.allclose(gate, torch.full_like(gate, torch.sigmoid(torch.tensor(-3.0))))


def test_pointer_update_can_point_anywhere_whatever_the_old_reference():
    from indirect_attention import PointerUpdate

    update = PointerUpdate(4, num_positions=8)
    with torch.no_grad():
        update.gate.bias.fill_(50.0)  # fully open
        update.pointer.weight.zero_()
        update.pointer.bias.fill_(-50.0)
        update.pointer.bias[6] = 50.0  # one-hot on position 6
    references = torch.rand(3, 5, 1)
    out = update(references, torch.randn(3, 5, 4))
    assert torch.allclose(out, torch.full_like(out, 6.5 / 8), atol=1e-5)


def test_pointer_update_rejects_intervals_and_bad_shapes():
    from indirect_attention import PointerUpdate

    with pytest.raises(ValueError, match="point references"):
        PointerUpdate(4, num_positions=8, reference_size=2)
    with pytest.raises(ValueError, match=r"\(B, Lq, 1\)"):
        PointerUpdate(4, num_positions=8)(torch.rand(2, 3, 1), torch.randn(2, 4, 4))
