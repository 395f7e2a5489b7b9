"""Exact attention with a factored grid bias, computed by query chunks (paper §6.2's hot path).

With a :class:`GridBias` (``bias[q, r·w + c] = rows[q, r] + cols[q, c]``) the logits are
``q·k/√Dh + rows + cols``. PyTorch's CPU flash kernel cannot return the gradient of an additive
mask, so a trainable bias sends SDPA down its math path, which materialises several (B, H, Lq, Lk)
tensors. Here the queries are processed a chunk at a time: each chunk's bias is fused into the
q·kᵀ product, its probabilities and their gradient live only while that chunk is computed (they
fit in cache), the backward pass recomputes them instead of storing them, and the bias gradients
are reduced straight to rows and columns. Peak memory is O(chunk·Lk) instead of O(Lq·Lk), and
nothing is approximated.

Shapes:
    B batch, H heads, Lq queries, Lk = h·w keys on an h×w grid, Dh head dim, Dv value dim.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor

__all__ = ["grid_attend"]


@functools.cache
def _compiled_flex_attention():
    """``torch.compile``d FlexAttention, or None where this PyTorch has none."""
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError:
        return None
    return torch.compile(flex_attention, dynamic=False)


def _flex_grid_attend(q: Tensor, k: Tensor, v: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """FlexAttention with the grid bias as a score modification (CUDA; trains through rows/cols).

    The bias is read per (query, key) from the factored rows and columns inside the fused kernel;
    no (B, H, Lq, Lk) tensor is ever materialised.
    """
    flex = _compiled_flex_attention()
    width = cols.shape[-1]

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + rows[b, h, q_idx, kv_idx // width] + cols[b, h, q_idx, kv_idx % width]

    return flex(q, k, v, score_mod=score_mod)


def _chunk_probs(q_scaled, k_t, rows, cols, mask_bias, start, stop):
    """Attention probabilities of queries [start, stop), (B·H, C, Lk).

    The dense bias of the chunk is built once and the q·kᵀ product is accumulated into it.
    """
    batch, heads = rows.shape[:2]
    bias = rows[:, :, start:stop, :, None] + cols[:, :, start:stop, None, :]  # (B, H, C, h, w)
    bias = bias.reshape(batch, heads, stop - start, -1)  # (B, H, C, Lk)
    if mask_bias is not None:
        bias.add_(mask_bias)  # (B, H, C, Lk)
    logits = bias.reshape(batch * heads, stop - start, -1)  # (B·H, C, Lk), a fresh buffer
    logits.baddbmm_(q_scaled[:, start:stop], k_t)  # += q·kᵀ in place, no copy of the bias
    return logits.softmax(dim=-1)  # (B·H, C, Lk)


class _GridAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, rows, cols, mask_bias, chunk):  # type: ignore[override]
        batch, heads, num_queries, head_dim = q.shape
        q_scaled = (q * head_dim**-0.5).reshape(batch * heads, num_queries, head_dim)
        k_t = k.reshape(batch * heads, -1, head_dim).transpose(1, 2).contiguous()  # (B·H, Dh, Lk)
        values = v.reshape(batch * heads, -1, v.shape[-1])  # (B·H, Lk, Dv)
        out = q.new_empty((batch * heads, num_queries, v.shape[-1]))  # (B·H, Lq, Dv)
        for start in range(0, num_queries, chunk):
            stop = min(start + chunk, num_queries)
            probs = _chunk_probs(q_scaled, k_t, rows, cols, mask_bias, start, stop)
            torch.bmm(probs, values, out=out[:, start:stop])
        out = out.view(batch, heads, num_queries, -1)  # (B, H, Lq, Dv)
        ctx.save_for_backward(q, k, v, rows, cols, mask_bias, out)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        q, k, v, rows, cols, mask_bias, out = ctx.saved_tensors
        batch, heads, num_queries, head_dim = q.shape
        height, width = rows.shape[-1], cols.shape[-1]
        scale = head_dim**-0.5
        q_scaled = (q * scale).reshape(batch * heads, num_queries, head_dim)
        keys = k.reshape(batch * heads, -1, head_dim)  # (B·H, Lk, Dh)
        values = v.reshape(batch * heads, -1, v.shape[-1])  # (B·H, Lk, Dv)
        k_t = keys.transpose(1, 2).contiguous()  # (B·H, Dh, Lk)
        v_t = values.transpose(1, 2).contiguous()  # (B·H, Dv, Lk)
        grad_out = grad_out.reshape(batch * heads, num_queries, -1)  # (B·H, Lq, Dv)
        delta = (grad_out * out.reshape(grad_out.shape)).sum(-1, keepdim=True)  # (B·H, Lq, 1)
        grad_q = torch.empty_like(q_scaled)
        grad_k, grad_v = torch.zeros_like(keys), torch.zeros_like(values)
        grad_rows, grad_cols = torch.empty_like(rows), torch.empty_like(cols)
        for start in range(0, num_queries, ctx.chunk):
            stop = min(start + ctx.chunk, num_queries)
            probs = _chunk_probs(q_scaled, k_t, rows, cols, mask_bias, start, stop)
            grad_chunk = grad_out[:, start:stop]  # (B·H, C, Dv)
            grad_v.baddbmm_(probs.transpose(1, 2), grad_chunk)
            # d logits = P ∘ (dO vᵀ − δ), the softmax backward
            grad_logits = torch.bmm(grad_chunk, v_t).sub_(delta[:, start:stop]).mul_(probs)
            grid = grad_logits.view(batch, heads, stop - start, height, width)
            grad_rows[:, :, start:stop] = grid.sum(-1)
            grad_cols[:, :, start:stop] = grid.sum(-2)
            torch.bmm(grad_logits, keys, out=grad_q[:, start:stop])
            grad_k.baddbmm_(grad_logits.transpose(1, 2), q_scaled[:, start:stop])
        grad_q = (grad_q * scale).view_as(q)
        return grad_q, grad_k.view_as(k), grad_v.view_as(v), grad_rows, grad_cols, None, None


def grid_attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    rows: Tensor,
    cols: Tensor,
    key_padding_mask: Tensor | None = None,
    chunk_size: int = 32,
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

    On CUDA without a key mask the computation goes to compiled FlexAttention with the bias as a
    score modification; elsewhere (and if compilation fails, with a warning) to the chunked path.

    Shapes:
        q (B, H, Lq, Dh), k (B, H, h·w, Dh), v (B, H, h·w, Dv), rows (B, H, Lq, h),
        cols (B, H, Lq, w), key_padding_mask (B, h·w) -> (B, H, Lq, Dv)
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    device_type = q.device.type
    if torch.is_autocast_enabled(device_type):
        # Mixed precision: the biased, masked softmax runs in float32 (a bf16 logit near 50 is
        # off by 0.1); autocast is switched off so the chunked kernel sees one dtype throughout.
        with torch.autocast(device_type=device_type, enabled=False):
            return grid_attend(
                q.float(),
                k.float(),
                v.float(),
                rows=rows.float(),
                cols=cols.float(),
                key_padding_mask=key_padding_mask,
                chunk_size=chunk_size,
            )
    shape = (*q.shape[:3],)
    rows = rows.to(q.dtype).expand(*shape, rows.shape[-1]).contiguous()  # (B, H, Lq, h)
    cols = cols.to(q.dtype).expand(*shape, cols.shape[-1]).contiguous()  # (B, H, Lq, w)
    mask_bias, alive = None, None
    if key_padding_mask is not None:
        # A batch element with every key masked attends freely and is zeroed afterwards, so that
        # neither its output nor its gradients are NaN.
        dead = key_padding_mask.all(dim=-1)  # (B,)
        keep = key_padding_mask & ~dead[:, None]  # (B, Lk) True = ignore
        mask_bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device)
        mask_bias = mask_bias.masked_fill(keep, float("-inf"))[:, None, None, :]  # (B, 1, 1, Lk)
        alive = (~dead).to(q.dtype)[:, None, None, None]  # (B, 1, 1, 1)
    out = None
    if q.is_cuda and mask_bias is None and _compiled_flex_attention() is not None:
        try:
            out = _flex_grid_attend(q, k, v, rows, cols)
        except Exception as error:  # a compiler failure must not stop training: say so, go on
            warnings.warn(f"FlexAttention failed ({error!r}); using the chunked path", stacklevel=2)
    if out is None:
        out = _GridAttention.apply(q, k, v, rows, cols, mask_bias, chunk_size)  # (B, H, Lq, Dv)
    return out if alive is None else out * alive
