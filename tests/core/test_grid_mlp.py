"""The chunked grid MLP against the plain MLP: outputs and every gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from indirect_attention import RelativePositionBias
from indirect_attention.core import value_positions
from indirect_attention.core.grid_mlp import grid_mlp, grid_mlp_reference


def make_mlp(anchors: int, hidden: int, heads: int, *, output_bias: bool = True) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(anchors, hidden), nn.ReLU(), nn.Linear(hidden, heads, bias=output_bias)
    ).double()


@pytest.mark.parametrize("output_bias", [True, False])
@pytest.mark.parametrize("num_rows", [3, 301])  # one chunk, many chunks
def test_grid_mlp_matches_plain_mlp_and_gradients(generator, output_bias, num_rows, path):
    mlp = make_mlp(2, 64, 4, output_bias=output_bias)
    anchors = torch.rand(num_rows, 2, generator=generator, dtype=torch.float64).requires_grad_()
    grid = torch.cat([torch.linspace(-2, 2, 11), torch.tensor([2.0, -2.0])]).double()
    out = grid_mlp(anchors, grid, mlp, 3.0)
    expected = grid_mlp_reference(anchors, grid, mlp, 3.0)
    torch.testing.assert_close(out, expected)
    cotangent = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    leaves = [anchors, *mlp.parameters()]
    ours = torch.autograd.grad((out * cotangent).sum(), leaves)
    plain = torch.autograd.grad((expected * cotangent).sum(), leaves)
    for mine, theirs in zip(ours, plain, strict=True):
        torch.testing.assert_close(mine, theirs)


def test_grid_mlp_gradcheck(generator):
    mlp = make_mlp(1, 7, 3)
    grid = torch.linspace(0, 1, 6, dtype=torch.float64)
    anchors = torch.rand(2, 5, 1, generator=generator, dtype=torch.float64).requires_grad_()

    def function(anchors, *parameters):
        return grid_mlp(anchors, grid, mlp, 2.0)

    assert torch.autograd.gradcheck(function, (anchors, *mlp.parameters()))


def test_grid_mlp_float32_close_to_float64_at_pixel_scale(generator, path):
    """Pixel offsets (up to 1024) as in the detector: float32 stays within 1e-5 of float64."""
    mlp = make_mlp(2, 512, 8, output_bias=False)
    for layer in (mlp[0], mlp[2]):
        nn.init.trunc_normal_(layer.weight, std=0.02)
    anchors = (
        torch.rand(2, 30, 2, generator=generator, dtype=torch.float64) * 1024
    ).requires_grad_()
    grid = (torch.arange(64, dtype=torch.float64) + 0.5) * 16
    expected = grid_mlp_reference(anchors, grid, mlp, 1.0)
    expected_grads = torch.autograd.grad(expected.square().sum(), [anchors, *mlp.parameters()])
    mlp32 = mlp.float()
    anchors32 = anchors.detach().float().requires_grad_()
    out = grid_mlp(anchors32, grid.float(), mlp32, 1.0)
    grads = torch.autograd.grad(out.square().sum(), [anchors32, *mlp32.parameters()])
    for mine, theirs in zip([out, *grads], [expected, *expected_grads], strict=True):
        scale = theirs.abs().max().item()
        assert (mine.double() - theirs).abs().max().item() <= 1e-5 * scale


def test_grid_mlp_rejects_bad_input(generator):
    mlp = make_mlp(2, 4, 3)
    with pytest.raises(
        ValueError, match=r"anchors \(\.\.\., 2\) and grid \(G,\); got anchors \(2, 3\)"
    ):
        grid_mlp(torch.zeros(2, 3, dtype=torch.float64), torch.arange(3.0), mlp)


@pytest.mark.parametrize("reference_size", [1, 2])
@pytest.mark.parametrize("log_offsets", [False, True])
def test_position_bias_fast_path_equals_plain_path(generator, reference_size, log_offsets, path):
    torch.manual_seed(0)
    kwargs = {"reference_size": reference_size, "hidden_dim": 32, "offset_scale": 20.0}
    fast = RelativePositionBias(4, **kwargs, log_offsets=log_offsets).double()
    plain = RelativePositionBias(4, **kwargs, log_offsets=log_offsets, fast=False).double()
    plain.load_state_dict(fast.state_dict())
    references = torch.rand(2, 4, reference_size, generator=generator, dtype=torch.float64)
    references[0, 0] = 0.5  # on a position: the log code's slope is 0 there, as autograd's
    positions = value_positions(9, dtype=torch.float64)
    assert (positions == 0.5).any()
    cotangent = torch.randn(2, 4, 4, 9, generator=generator, dtype=torch.float64)
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


def test_grid_mlp_under_autocast_stays_float32(generator):
    mlp = make_mlp(2, 16, 4).float()
    anchors = torch.rand(5, 2, generator=generator)
    grid = torch.linspace(0, 1, 7)
    expected = grid_mlp(anchors, grid, mlp, 3.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = grid_mlp(anchors.bfloat16(), grid, mlp, 3.0)
        same = grid_mlp(anchors, grid, mlp, 3.0)
    assert got.dtype == torch.float32 and torch.equal(same, expected)
    torch.testing.assert_close(got, expected, rtol=1e-2, atol=1e-2)  # anchors rounded to bf16
