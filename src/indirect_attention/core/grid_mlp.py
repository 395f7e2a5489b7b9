"""Exact, fast evaluation of a 2-layer ReLU MLP whose first layer is affine in a grid coordinate.

The position-bias MLPs of indirect attention (paper §5; BoxRPB per axis in the detector) read
offsets ``p_g - anchor`` from a fixed 1-D grid ``p_g`` of value positions. Without the log
compression their first layer is affine in ``p_g``: hidden unit k of query q is
``a_qk(p) = alpha_qk - beta_k * p``. The MLP output

    y_qgh = sum_k weight_hk * relu(alpha_qk - beta_k * p_g) + bias_h

is therefore a piecewise-linear function of ``p`` with one kink per hidden unit at
``t_qk = alpha_qk / beta_k``. Along an ascending grid, unit k is active on a prefix (beta > 0) or a
suffix (beta < 0) of the grid, so sorting kinks and taking cumulative sums evaluates the MLP on the
whole grid in ``O(Lq·K·(H + log K) + Lq·G·H)`` work instead of ``O(Lq·G·K·H)``, and without ever
materialising the ``(Lq, G, K)`` hidden layer. The backward pass uses the same prefix structure.
Sums are accumulated in float64, so the result matches the plain MLP to float32 round-off.

Shapes:
    Lq rows (any leading dims, flattened), K hidden units, G grid points, H outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["grid_mlp", "grid_mlp_reference"]


def grid_mlp_reference(
    alpha: Tensor, beta: Tensor, grid: Tensor, weight: Tensor, bias: Tensor | None
) -> Tensor:
    """The plain evaluation ``relu(alpha - beta p) @ weightᵀ + bias`` (materialises the hidden layer).

    Shapes:
        alpha (..., K), beta (K,), grid (G,), weight (H, K), bias (H,) -> (..., G, H)
    """
    hidden = torch.relu(alpha[..., None, :] - grid[:, None] * beta)  # (..., G, K)
    out = hidden @ weight.t()  # (..., G, H)
    return out if bias is None else out + bias


def _active_ranges(alpha: Tensor, beta: Tensor, grid: Tensor) -> tuple[Tensor, Tensor]:
    """For each (row, unit), the grid index range [start, stop) where the unit is active (> 0).

    beta > 0: active while p < alpha / beta, a prefix. beta < 0: active once p > alpha / beta, a
    suffix. beta == 0: everywhere or nowhere, by the sign of alpha.

    Shapes:
        alpha (N, K), beta (K,), grid (G,) -> start (N, K), stop (N, K) int64.
    """
    num_points = grid.shape[0]
    safe_beta = torch.where(beta == 0, torch.ones_like(beta), beta)
    kinks = alpha / safe_beta  # (N, K)
    before = torch.searchsorted(grid, kinks.contiguous(), side="left")  # first p >= kink
    after = torch.searchsorted(grid, kinks.contiguous(), side="right")  # first p > kink
    full = torch.full_like(before, num_points)
    zero = torch.zeros_like(before)
    positive, negative = beta > 0, beta < 0
    start = torch.where(negative, after, zero)
    stop = torch.where(positive, before, full)
    flat = ~(positive | negative)
    stop = torch.where(flat & (alpha <= 0), zero, stop)
    return start, stop


def _flat_index(index: Tensor, num_points: int) -> Tensor:
    """Row-major positions of ``index[n, k]`` in an (N, G + 1) table, flattened: (N·K,)."""
    rows = torch.arange(index.shape[0], device=index.device)[:, None] * (num_points + 1)
    return (rows + index).reshape(-1)


def _range_sums(prefix: Tensor, start: Tensor, stop: Tensor) -> Tensor:
    """Sum of a sequence over [start, stop) from its exclusive prefix sums.

    Shapes:
        prefix (N, G + 1, H), start (N, K), stop (N, K) -> (N, K, H)
    """
    num_rows, table, heads = prefix.shape
    flat = prefix.reshape(num_rows * table, heads)  # (N·(G+1), H)
    upper = flat.index_select(0, _flat_index(stop, table - 1))  # (N·K, H)
    lower = flat.index_select(0, _flat_index(start, table - 1))  # (N·K, H)
    return (upper - lower).view(num_rows, -1, heads)  # (N, K, H)


class _GridMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha, beta, grid, weight, bias):  # type: ignore[override]
        dtype = alpha.dtype
        a64, b64, p64, w64 = (t.to(torch.float64) for t in (alpha, beta, grid, weight))
        start, stop = _active_ranges(a64, b64, p64)  # (N, K)
        # Each unit adds weight_hk * (alpha_qk - beta_k p) on its active range: scatter the
        # coefficients of 1 and of p at the range ends as differences, then cumulate along the grid.
        num_rows = a64.shape[0]
        num_points, heads = p64.shape[0], w64.shape[0]
        const = (a64[..., None] * w64.t()).reshape(-1, heads)  # (N·K, H)
        slope = (-b64[:, None] * w64.t()).repeat(num_rows, 1)  # (N·K, H)
        starts, stops = _flat_index(start, num_points), _flat_index(stop, num_points)
        diffs = []
        for term in (const, slope):
            diff = a64.new_zeros(num_rows * (num_points + 1), heads)
            diff.index_add_(0, starts, term).index_add_(0, stops, term, alpha=-1.0)
            diffs.append(diff.view(num_rows, num_points + 1, heads))
        diff_const, diff_slope = diffs
        const_sum = diff_const.cumsum(1)[:, :num_points]  # (N, G, H)
        slope_sum = diff_slope.cumsum(1)[:, :num_points]  # (N, G, H)
        out = const_sum + p64[:, None] * slope_sum  # (N, G, H)
        if bias is not None:
            out = out + bias.to(torch.float64)
        ctx.save_for_backward(alpha, beta, grid, weight, start, stop)
        ctx.has_bias = bias is not None
        return out.to(dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        alpha, beta, grid, weight, start, stop = ctx.saved_tensors
        a64, b64, p64, w64 = (t.to(torch.float64) for t in (alpha, beta, grid, weight))
        g64 = grad_out.to(torch.float64)  # (N, G, H)
        zeros = g64.new_zeros(g64.shape[0], 1, g64.shape[2])
        sum_g = torch.cat([zeros, g64.cumsum(1)], 1)  # (N, G+1, H)
        sum_pg = torch.cat([zeros, (p64[:, None] * g64).cumsum(1)], 1)  # (N, G+1, H)
        range_g = _range_sums(sum_g, start, stop)  # (N, K, H): sum of g over active points
        range_pg = _range_sums(sum_pg, start, stop)  # (N, K, H): sum of p g over them
        grad_alpha = (range_g * w64.t()).sum(-1)  # (N, K)
        grad_beta = -(range_pg * w64.t()).sum(-1).sum(0)  # (K,)
        grad_weight = (a64[..., None] * range_g - b64[:, None] * range_pg).sum(0).t()  # (H, K)
        grad_bias = g64.sum((0, 1)) if ctx.has_bias else None
        return (
            grad_alpha.to(alpha.dtype),
            grad_beta.to(beta.dtype),
            None,
            grad_weight.to(weight.dtype),
            None if grad_bias is None else grad_bias.to(weight.dtype),
        )


def grid_mlp(
    alpha: Tensor, beta: Tensor, grid: Tensor, weight: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Evaluate ``relu(alpha - beta p) @ weightᵀ + bias`` on every grid point, exactly and fast.

    Args:
        alpha: Per-row intercepts of the hidden units (first layer folded with the anchors).
        beta: Per-unit slopes in the grid coordinate.
        grid: Grid coordinates, ascending (no gradient flows to them).
        weight: Second-layer weight.
        bias: Second-layer bias.

    Returns:
        The MLP output on the grid; equal to :func:`grid_mlp_reference` up to round-off.

    Shapes:
        alpha (..., K), beta (K,), grid (G,), weight (H, K), bias (H,) -> (..., G, H)
    """
    if alpha.shape[-1] != beta.shape[0] or weight.shape[1] != beta.shape[0] or grid.dim() != 1:
        raise ValueError(
            f"grid_mlp needs alpha (..., K), beta (K,), grid (G,), weight (H, K); got alpha "
            f"{tuple(alpha.shape)}, beta {tuple(beta.shape)}, grid {tuple(grid.shape)}, "
            f"weight {tuple(weight.shape)}"
        )
    if grid.numel() > 1 and bool((grid[1:] < grid[:-1]).any()):
        raise ValueError("grid must be sorted in ascending order")
    leading = alpha.shape[:-1]
    flat = alpha.reshape(-1, alpha.shape[-1])  # (N, K)
    out = _GridMLP.apply(flat, beta, grid.detach(), weight, bias)  # (N, G, H)
    return out.reshape(*leading, grid.shape[0], weight.shape[0])  # (..., G, H)
