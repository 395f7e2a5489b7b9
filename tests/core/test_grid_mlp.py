"""The chunked grid MLP against the plain MLP: outputs and every gradient."""

from __future__ import annotations

import pytest
import torch

from indirect_attention import RelativePositionBias
from indirect_attention.core import value_positions
from indirect_attention.core.grid_mlp import grid_mlp, grid_mlp_reference


def draw(generator, *shape, scale=1.0):
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * scale).requires_grad_()


@pytest.mark.parametrize("with_bias", [True, False])
def test_grid_mlp_matches_plain_mlp_and_gradients(generator, with_bias):
    alpha, beta = draw(generator, 3, 5, 16), draw(generator, 16)
    with torch.no_grad():
        beta[:3] = 0.0  # flat units: active everywhere or nowhere
    weight = draw(generator, 4, 16)
    bias = draw(generator, 4) if with_bias else None
    grid = torch.linspace(-2, 2, 11, dtype=torch.float64)
    grid = torch.cat([grid, grid[-1:], grid[:1]])  # a repeated point, not sorted
    args = (alpha, beta, grid, weight, bias)
    out = grid_mlp(*args)
    expected = grid_mlp_reference(*args)
    torch.testing.assert_close(out, expected)
    cotangent = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    leaves = [t for t in (alpha, beta, weight, bias) if t is not None]
    ours = torch.autograd.grad((out * cotangent).sum(), leaves)
    plain = torch.autograd.grad((expected * cotangent).sum(), leaves)
    for mine, theirs in zip(ours, plain, strict=True):
        torch.testing.assert_close(mine, theirs)


def test_grid_mlp_gradcheck(generator):
    grid = torch.linspace(0, 1, 6, dtype=torch.float64)

    def function(alpha, beta, weight, bias):
        return grid_mlp(alpha, beta, grid, weight, bias)

    inputs = (draw(generator, 2, 7), draw(generator, 7), draw(generator, 3, 7), draw(generator, 3))
    assert torch.autograd.gradcheck(function, inputs)


def test_grid_mlp_float32_close_to_float64_at_pixel_scale(generator):
    """Pixel-sized offsets (hundreds) as in the detector: float32 stays within round-off."""
    alpha = draw(generator, 2, 30, 512, scale=200.0)
    beta = draw(generator, 512)
    weight = draw(generator, 8, 512, scale=0.05)
    grid = (torch.arange(64, dtype=torch.float64) + 0.5) * 16
    expected = grid_mlp_reference(alpha, beta, grid, weight, None)
    out = grid_mlp(alpha.float(), beta.float(), grid.float(), weight.float(), None)
    torch.testing.assert_close(
        out.double(), expected, atol=1e-5 * expected.abs().max().item(), rtol=1e-5
    )


def test_grid_mlp_rejects_bad_input(generator):
    alpha, weight = draw(generator, 2, 4), draw(generator, 3, 4)
    with pytest.raises(ValueError, match=r"alpha \(2, 4\), beta \(5,\)"):
        grid_mlp(alpha, draw(generator, 5), torch.arange(3.0), weight)


def test_grid_mlp_chunks_many_rows(generator):
    """More rows than one chunk holds: every chunk boundary must line up."""
    alpha, beta = draw(generator, 301, 512), draw(generator, 512)
    weight = draw(generator, 2, 512)
    grid = torch.linspace(0, 1, 9, dtype=torch.float64)
    out = grid_mlp(alpha, beta, grid, weight)
    torch.testing.assert_close(out, grid_mlp_reference(alpha, beta, grid, weight, None))
    (grad,) = torch.autograd.grad(out.sum(), alpha)
    (expected,) = torch.autograd.grad(
        grid_mlp_reference(alpha, beta, grid, weight, None).sum(), alpha
    )
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("reference_size", [1, 2])
def test_position_bias_fast_path_equals_plain_path(generator, reference_size):
    torch.manual_seed(0)
    fast = RelativePositionBias(
        3, reference_size=reference_size, hidden_dim=32, offset_scale=20.0, log_offsets=False
    ).double()
    plain = RelativePositionBias(
        3,
        reference_size=reference_size,
        hidden_dim=32,
        offset_scale=20.0,
        log_offsets=False,
        fast=False,
    ).double()
    plain.load_state_dict(fast.state_dict())
    references = torch.rand(2, 4, reference_size, generator=generator, dtype=torch.float64)
    positions = value_positions(9, dtype=torch.float64)
    cotangent = torch.randn(2, 3, 4, 9, generator=generator, dtype=torch.float64)
    results = []
    for module in (fast, plain):
        refs = references.clone().requires_grad_(True)
        out = module(refs, positions)
        (out * cotangent).sum().backward()
        results.append((out, refs.grad, [p.grad for p in module.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    for mine, theirs in zip(results[0][2], results[1][2], strict=True):
        torch.testing.assert_close(mine, theirs)
