"""Exact, lean evaluation of a 2-layer ReLU MLP whose first layer is affine in a grid coordinate.

The position-bias MLPs of indirect attention (paper §5; BoxRPB per axis in the detector) read
offsets ``p_g - anchor`` from a fixed 1-D grid ``p_g`` of value positions. Without the log
compression their first layer folds into ``alpha_qk - beta_k * p_g`` (``alpha`` per row and unit,
``beta`` per unit), so the MLP output is

    y_qgh = sum_k weight_hk * relu(alpha_qk - beta_k * p_g) + bias_h.

Evaluated the ordinary way, the (rows, G, K) hidden layer is written to memory, read back, and kept
for the backward pass; for the detector it is the largest tensor of the whole attention step. Here
it is computed a few rows at a time, small enough to stay in cache, and recomputed in the backward
pass instead of stored. The arithmetic is the plain MLP's, so results match it to round-off.

Shapes:
    N rows (any leading dims, flattened), K hidden units, G grid points, H outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["grid_mlp", "grid_mlp_reference"]

_CHUNK_ELEMENTS = 2**17  # hidden-layer elements per chunk: 512 KiB in float32, fits in L2


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


class _GridMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha, beta, grid, weight, bias, chunk):  # type: ignore[override]
        slope = grid[:, None] * beta  # (G, K)
        out = alpha.new_empty((alpha.shape[0], grid.shape[0], weight.shape[0]))  # (N, G, H)
        for start in range(0, alpha.shape[0], chunk):
            stop = start + chunk
            hidden = (alpha[start:stop, None, :] - slope).clamp_(min=0)  # (C, G, K)
            torch.matmul(hidden, weight.t(), out=out[start:stop])
        if bias is not None:
            out += bias
        ctx.save_for_backward(alpha, beta, grid, weight)
        ctx.chunk, ctx.has_bias = chunk, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        alpha, beta, grid, weight = ctx.saved_tensors
        slope = grid[:, None] * beta  # (G, K)
        grad_alpha = torch.empty_like(alpha)  # (N, K)
        grad_weight = torch.zeros_like(weight)  # (H, K)
        grad_slope = alpha.new_zeros(slope.shape)  # (G, K): sum over rows of d/d(-slope)
        for start in range(0, alpha.shape[0], ctx.chunk):
            stop = start + ctx.chunk
            pre = alpha[start:stop, None, :] - slope  # (C, G, K)
            grad_chunk = grad_out[start:stop]  # (C, G, H)
            hidden = pre.clamp(min=0)
            grad_weight += grad_chunk.flatten(0, 1).t() @ hidden.flatten(0, 1)  # (H, K)
            grad_hidden = (grad_chunk @ weight).masked_fill_(pre <= 0, 0.0)  # (C, G, K)
            grad_alpha[start:stop] = grad_hidden.sum(1)
            grad_slope += grad_hidden.sum(0)
        grad_beta = -(grid @ grad_slope)  # (K,)
        grad_bias = grad_out.sum((0, 1)) if ctx.has_bias else None
        return grad_alpha, grad_beta, None, grad_weight, grad_bias, None


def grid_mlp(
    alpha: Tensor, beta: Tensor, grid: Tensor, weight: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Evaluate ``relu(alpha - beta p) @ weightᵀ + bias`` on every grid point, exactly and lean.

    Args:
        alpha: Per-row intercepts of the hidden units (first layer folded with the anchors).
        beta: Per-unit slopes in the grid coordinate.
        grid: Grid coordinates (no gradient flows to them).
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
    leading = alpha.shape[:-1]
    flat = alpha.reshape(-1, alpha.shape[-1])  # (N, K)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, grid.shape[0] * beta.shape[0]))
    dtype = torch.promote_types(alpha.dtype, weight.dtype)
    out = _GridMLP.apply(
        flat.to(dtype),
        beta.to(dtype),
        grid.detach().to(dtype),
        weight.to(dtype),
        None if bias is None else bias.to(dtype),
        chunk,
    )  # (N, G, H)
    return out.reshape(*leading, grid.shape[0], weight.shape[0])  # (..., G, H)
