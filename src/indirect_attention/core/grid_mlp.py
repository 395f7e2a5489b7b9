"""Exact, lean evaluation of a 2-layer ReLU MLP on the offsets from anchors to a shared grid.

The position-bias MLPs of indirect attention (paper §5; BoxRPB per axis in the detector) read the
offsets ``p_g - a_qr`` from each query's anchors (a point, or an interval's two edges) to a grid of
value positions shared by the batch:

    y_qgh = sum_k W2_hk relu(sum_r W1_kr (p_g - a_qr) * scale + b1_k) + b2_h.

Evaluated the ordinary way, the (rows, G, K) hidden layer is written to memory, read back, and kept
for the backward pass; for the detector it is the largest tensor of the whole attention step. Here
it is computed a few rows at a time, small enough to stay in cache, and recomputed in the backward
pass instead of stored. Offsets are measured from each row's own centre so that nothing large
cancels, and the results match the plain MLP to float32 round-off.

Shapes:
    N rows (any leading dims, flattened), R anchors per row, G grid points, K hidden units,
    H outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["grid_mlp", "grid_mlp_reference"]

_CHUNK_ELEMENTS = 2**17  # hidden-layer elements per chunk: 512 KiB in float32, fits in L2


def grid_mlp_reference(anchors: Tensor, grid: Tensor, mlp: nn.Sequential, scale: float) -> Tensor:
    """The plain evaluation (materialises the hidden layer).

    Shapes:
        anchors (..., R), grid (G,) -> (..., G, H)
    """
    offsets = (grid[:, None] - anchors[..., None, :]) * scale  # (..., G, R)
    return mlp(offsets)  # (..., G, H)


class _GridMLP(torch.autograd.Function):
    """``relu(alpha[n, None, :] + d[n, :, None] * beta) @ w2ᵀ + b2``, chunked over rows n."""

    @staticmethod
    def forward(ctx, alpha, beta, distance, w2, b2, chunk):  # type: ignore[override]
        num_rows, num_points = distance.shape
        out = alpha.new_empty((num_rows, num_points, w2.shape[0]))  # (N, G, H)
        for start in range(0, num_rows, chunk):
            stop = min(start + chunk, num_rows)
            hidden = torch.addcmul(
                alpha[start:stop, None, :], distance[start:stop, :, None], beta
            ).clamp_(min=0)  # (C, G, K)
            torch.matmul(hidden, w2.t(), out=out[start:stop])
        if b2 is not None:
            out += b2
        ctx.save_for_backward(alpha, beta, distance, w2)
        ctx.chunk, ctx.has_b2 = chunk, b2 is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        alpha, beta, distance, w2 = ctx.saved_tensors
        grad_alpha = torch.empty_like(alpha)  # (N, K)
        grad_distance = torch.empty_like(distance)  # (N, G)
        grad_beta = torch.zeros_like(beta)  # (K,)
        grad_w2 = torch.zeros_like(w2)  # (H, K)
        for start in range(0, alpha.shape[0], ctx.chunk):
            stop = min(start + ctx.chunk, alpha.shape[0])
            pre = torch.addcmul(alpha[start:stop, None, :], distance[start:stop, :, None], beta)
            grad_chunk = grad_out[start:stop]  # (C, G, H)
            grad_w2 += grad_chunk.flatten(0, 1).t() @ pre.clamp(min=0).flatten(0, 1)
            grad_pre = (grad_chunk @ w2).masked_fill_(pre <= 0, 0.0)  # (C, G, K)
            grad_alpha[start:stop] = grad_pre.sum(1)
            grad_distance[start:stop] = grad_pre @ beta
            grad_beta += torch.einsum("cgk,cg->k", grad_pre, distance[start:stop])
        grad_b2 = grad_out.sum((0, 1)) if ctx.has_b2 else None
        return grad_alpha, grad_beta, grad_distance, grad_w2, grad_b2, None


def grid_mlp(anchors: Tensor, grid: Tensor, mlp: nn.Sequential, scale: float = 1.0) -> Tensor:
    """Evaluate ``mlp((p_g - anchors) * scale)`` for every grid point, exactly and lean.

    Args:
        anchors: Each row's anchor coordinates (a point, or an interval's two edges).
        grid: Grid coordinates shared by every row (no gradient flows to them).
        mlp: ``Sequential(Linear(R, K), ReLU, Linear(K, H))``; its parameters get gradients.
        scale: Multiplier of the offsets.

    Returns:
        The MLP output on the grid; equal to :func:`grid_mlp_reference` up to round-off.

    Shapes:
        anchors (..., R), grid (G,) -> (..., G, H)
    """
    first, second = mlp[0], mlp[2]
    if anchors.shape[-1] != first.in_features or grid.dim() != 1:
        raise ValueError(
            f"grid_mlp needs anchors (..., {first.in_features}) and grid (G,); got anchors "
            f"{tuple(anchors.shape)}, grid {tuple(grid.shape)}"
        )
    if first.bias is None:
        raise ValueError("grid_mlp needs a bias in the first layer")
    leading = anchors.shape[:-1]
    flat = anchors.reshape(-1, anchors.shape[-1])  # (N, R)
    # Measure every offset from the row's own centre c: the first layer is
    # W1 (p - a) + b1 = (W1·1)(p - c) + (b1 + W1 (c - a)), so nothing large cancels in float32.
    weight = first.weight * scale  # (K, R)
    centre = flat.mean(dim=-1, keepdim=True)  # (N, 1)
    alpha = torch.addmm(first.bias, centre - flat, weight.t())  # (N, K)
    beta = weight.sum(dim=1)  # (K,)
    distance = grid.detach().to(flat.dtype)[None, :] - centre  # (N, G)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, grid.shape[0] * first.out_features))
    out = _GridMLP.apply(alpha, beta, distance, second.weight, second.bias, chunk)  # (N, G, H)
    return out.reshape(*leading, grid.shape[0], second.out_features)  # (..., G, H)
