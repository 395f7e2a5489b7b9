"""Exact attention with a factored grid bias, computed by query chunks (paper §6.2's hot path).

With a :class:`GridBias` (``bias[q, r·w + c] = rows[q, r] + cols[q, c]``) the logits are
``q·k/√Dh + rows + cols``. PyTorch's CPU flash kernel cannot return the gradient of an additive
mask, so a trainable bias sends SDPA down its math path, which materialises several (B, H, Lq, Lk)
tensors. Here the queries are processed a chunk at a time: each chunk's logits, probabilities and
their gradient live only while that chunk is computed (they fit in cache), the backward pass
recomputes them from the saved log-sum-exp (as flash attention does), and the bias gradients are
reduced straight to rows and columns. Peak memory is O(chunk·Lk) instead of O(Lq·Lk), and nothing
is approximated.

Shapes:
    B batch, H heads, Lq queries, Lk = h·w keys on an h×w grid, Dh head dim, Dv value dim.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["grid_attend"]


def _chunk_logits(q, k, rows, cols, mask, start, stop, scale):
    """Logits of queries [start, stop) with the grid bias and the key mask, (B, H, C, Lk)."""
    logits = torch.matmul(q[:, :, start:stop], k.transpose(-2, -1)).mul_(scale)  # (B,H,C,Lk)
    height, width = rows.shape[-1], cols.shape[-1]
    grid = logits.view(*logits.shape[:3], height, width)  # (B, H, C, h, w)
    grid.add_(rows[:, :, start:stop, :, None]).add_(cols[:, :, start:stop, None, :])
    if mask is not None:
        logits.masked_fill_(mask[:, None, None, :], float("-inf"))
    return logits


def _finite(lse: Tensor) -> Tensor:
    """Rows with every key masked have lse = -inf; use 0 there so that exp gives zeros, not NaN."""
    return torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))


class _GridAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, rows, cols, mask, chunk):  # type: ignore[override]
        scale = q.shape[-1] ** -0.5
        out = q.new_empty((*q.shape[:3], v.shape[-1]))  # (B, H, Lq, Dv)
        lse = q.new_empty((*q.shape[:3], 1))  # (B, H, Lq, 1)
        for start in range(0, q.shape[2], chunk):
            stop = min(start + chunk, q.shape[2])
            logits = _chunk_logits(q, k, rows, cols, mask, start, stop, scale)
            chunk_lse = _finite(torch.logsumexp(logits, dim=-1, keepdim=True))  # (B, H, C, 1)
            probs = logits.sub_(chunk_lse).exp_()  # (B, H, C, Lk)
            torch.matmul(probs, v, out=out[:, :, start:stop])
            lse[:, :, start:stop] = chunk_lse
        ctx.save_for_backward(q, k, v, rows, cols, mask, out, lse)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        q, k, v, rows, cols, mask, out, lse = ctx.saved_tensors
        scale = q.shape[-1] ** -0.5
        grad_q, grad_rows, grad_cols = (
            torch.empty_like(q),
            torch.empty_like(rows),
            torch.empty_like(cols),
        )
        grad_k, grad_v = torch.zeros_like(k), torch.zeros_like(v)
        delta = (grad_out * out).sum(-1, keepdim=True)  # (B, H, Lq, 1)
        height, width = rows.shape[-1], cols.shape[-1]
        for start in range(0, q.shape[2], ctx.chunk):
            stop = min(start + ctx.chunk, q.shape[2])
            logits = _chunk_logits(q, k, rows, cols, mask, start, stop, scale)
            probs = logits.sub_(lse[:, :, start:stop]).exp_()  # (B, H, C, Lk)
            grad_chunk = grad_out[:, :, start:stop]  # (B, H, C, Dv)
            grad_v += probs.transpose(-2, -1) @ grad_chunk  # (B, H, Lk, Dv)
            grad_logits = torch.matmul(grad_chunk, v.transpose(-2, -1))  # (B, H, C, Lk)
            grad_logits.sub_(delta[:, :, start:stop]).mul_(probs)
            grid = grad_logits.view(*grad_logits.shape[:3], height, width)  # (B, H, C, h, w)
            grad_rows[:, :, start:stop] = grid.sum(-1)
            grad_cols[:, :, start:stop] = grid.sum(-2)
            torch.matmul(grad_logits, k, out=grad_q[:, :, start:stop])
            grad_k += grad_logits.transpose(-2, -1) @ q[:, :, start:stop]  # (B, H, Lk, Dh)
        grad_q.mul_(scale)
        grad_k.mul_(scale)
        return grad_q, grad_k, grad_v, grad_rows, grad_cols, None, None


def grid_attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    rows: Tensor,
    cols: Tensor,
    key_padding_mask: Tensor | None = None,
    chunk_size: int = 64,
) -> Tensor:
    """``softmax(q kᵀ/√Dh + rows ⊕ cols, masked) v`` by query chunks, exact, with low memory.

    Callers normally reach this through :func:`attend` with a :class:`GridBias`; shapes and dtypes
    are validated there.

    Args:
        q: Queries.
        k: Keys, one per grid cell in row-major order.
        v: Values, same cells.
        rows: Bias of each grid row.
        cols: Bias of each grid column.
        key_padding_mask: True marks a cell to ignore.
        chunk_size: Queries per chunk; memory grows with it, speed barely does.

    Shapes:
        q (B, H, Lq, Dh), k (B, H, h·w, Dh), v (B, H, h·w, Dv), rows (B, H, Lq, h),
        cols (B, H, Lq, w), key_padding_mask (B, h·w) -> (B, H, Lq, Dv)
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    shape = (*q.shape[:3],)
    rows = rows.to(q.dtype).expand(*shape, rows.shape[-1]).contiguous()  # (B, H, Lq, h)
    cols = cols.to(q.dtype).expand(*shape, cols.shape[-1]).contiguous()  # (B, H, Lq, w)
    return _GridAttention.apply(q, k, v, rows, cols, key_padding_mask, chunk_size)
