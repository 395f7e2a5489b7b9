"""Exact attention with a factored grid bias, computed by query chunks (paper §6.2's hot path).

With a :class:`GridBias` (``bias[q, r·w + c] = rows[q, r] + cols[q, c]``) the logits are
``q·k/√Dh + rows + cols``. PyTorch's CPU flash kernel cannot return the gradient of an additive
mask, so a trainable bias sends SDPA down its math path, which materialises several (B, H, Lq, Lk)
tensors. Here the queries are processed a chunk at a time: each chunk's bias is fused into the
q·kᵀ product, its probabilities and their gradient live only while that chunk is computed (they
fit in cache), the backward pass recomputes them instead of storing them, and the bias gradients
are reduced straight to rows and columns. Peak memory is O(chunk·Lk) instead of O(Lq·Lk), and
nothing is approximated. On the CPU the element-wise passes (bias, mask, softmax, its backward
and the row/column sums) run in compiled loops (:mod:`.native`) between PyTorch's matrix
products; without a compiler, the same steps run as PyTorch operations.

Shapes:
    B batch, H heads, Lq queries, Lk = h·w keys on an h×w grid, Dh head dim, Dv value dim.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor

from . import native

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


def _layout(rows: Tensor, cols: Tensor, start: int, stop: int) -> tuple[int, ...]:
    """The chunk's sizes as the fused kernels read them: BH, H, C, Lq, start, h, w."""
    batch, heads, num_queries, height = rows.shape
    return batch * heads, heads, stop - start, num_queries, start, height, cols.shape[-1]


def _part(buffer: Tensor, like: Tensor, start: int, stop: int) -> Tensor:
    """A contiguous (B·H, C, like's last size) view at the front of a flat work buffer."""
    shape = (like.shape[0], stop - start, like.shape[-1])
    return buffer[: shape[0] * shape[1] * shape[2]].view(shape)


class _FusedGridAttention(torch.autograd.Function):
    """The chunked computation with the element-wise passes in compiled loops (CPU).

    Per chunk, the forward pass is q·kᵀ (BLAS); a compiled pass for each row's maximum of the
    biased, masked logits and one for their exponentials, sum and log-sum-exp; then P·v (BLAS),
    divided by the sums. The backward pass recomputes the probabilities in one compiled pass
    from the saved log-sum-exp, and turns dO·vᵀ into the logit gradient and its row and column
    sums in another; the five products are BLAS's.
    """

    @staticmethod
    def forward(ctx, q, k, v, rows, cols, mask, chunk, library):  # type: ignore[override]
        batch, heads, num_queries, head_dim = q.shape
        q_scaled = (q * head_dim**-0.5).reshape(batch * heads, num_queries, head_dim)
        k_t = k.reshape(batch * heads, -1, head_dim).transpose(1, 2).contiguous()  # (B·H, Dh, Lk)
        values = v.reshape(batch * heads, -1, v.shape[-1])  # (B·H, Lk, Dv)
        out = q.new_empty((batch * heads, num_queries, v.shape[-1]))  # (B·H, Lq, Dv)
        lse = q.new_empty((batch * heads, num_queries))  # (B·H, Lq)
        inverse = torch.empty_like(lse)  # (B·H, Lq), 1 / the softmax's sum
        buffer = q.new_empty(batch * heads * min(chunk, num_queries) * k_t.shape[-1])
        result = q.new_empty(batch * heads * min(chunk, num_queries) * values.shape[-1])
        for start in range(0, num_queries, chunk):
            stop = min(start + chunk, num_queries)
            probs = torch.bmm(q_scaled[:, start:stop], k_t, out=_part(buffer, k_t, start, stop))
            native.call(
                library, "softmax_forward", q.dtype,
                probs, rows, cols, mask, *_layout(rows, cols, start, stop), lse, inverse,
            )  # fmt: skip
            # probs holds exp(logit - max) unnormalised; the division comes after the product
            # (written to a contiguous buffer: BLAS is slower into a strided slice)
            product = torch.bmm(probs, values, out=_part(result, values, start, stop))
            torch.mul(product, inverse[:, start:stop, None], out=out[:, start:stop])
        out = out.view(batch, heads, num_queries, -1)  # (B, H, Lq, Dv)
        ctx.save_for_backward(q_scaled, k_t, v, rows, cols, mask, out, lse)
        ctx.chunk, ctx.library = chunk, library
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        q_scaled, k_t, v, rows, cols, mask, out, lse = ctx.saved_tensors
        library = ctx.library
        batch, heads, num_queries, head_dim = out.shape[0], out.shape[1], *q_scaled.shape[1:]
        keys = k_t.transpose(1, 2)  # (B·H, Lk, Dh)
        values = v.reshape(batch * heads, -1, v.shape[-1])  # (B·H, Lk, Dv)
        v_t = values.transpose(1, 2).contiguous()  # (B·H, Dv, Lk)
        # contiguous: a broadcast gradient (stride 0) would send the batched products below
        # down PyTorch's one-matrix-at-a-time path
        grad_out = grad_out.reshape(batch * heads, num_queries, -1).contiguous()  # (B·H, Lq, Dv)
        delta = (grad_out * out.reshape(grad_out.shape)).sum(-1).contiguous()  # (B·H, Lq)
        grad_q = torch.empty_like(q_scaled)
        grad_k = k_t.new_zeros(keys.shape)  # (B·H, Lk, Dh), contiguous (keys is a transpose)
        grad_v = v.new_zeros(values.shape)  # (B·H, Lk, Dv)
        grad_rows, grad_cols = torch.empty_like(rows), torch.empty_like(cols)
        size = batch * heads * min(ctx.chunk, num_queries) * k_t.shape[-1]
        probs_buffer, grad_buffer = q_scaled.new_empty(size), q_scaled.new_empty(size)
        result = q_scaled.new_empty(batch * heads * min(ctx.chunk, num_queries) * head_dim)
        for start in range(0, num_queries, ctx.chunk):
            stop = min(start + ctx.chunk, num_queries)
            layout = _layout(rows, cols, start, stop)
            probs = torch.bmm(
                q_scaled[:, start:stop], k_t, out=_part(probs_buffer, k_t, start, stop)
            )
            native.call(library, "softmax_recompute", q_scaled.dtype, probs, rows, cols, mask,
                        *layout, lse)  # fmt: skip
            grad_chunk = grad_out[:, start:stop]  # (B·H, C, Dv)
            grad_v.baddbmm_(probs.transpose(1, 2), grad_chunk)
            grad_logits = torch.bmm(grad_chunk, v_t, out=_part(grad_buffer, k_t, start, stop))
            native.call(library, "softmax_backward", q_scaled.dtype, grad_logits, probs, delta,
                        *layout, grad_rows, grad_cols)  # fmt: skip
            product = torch.bmm(grad_logits, keys, out=_part(result, keys, start, stop))
            torch.mul(product, head_dim**-0.5, out=grad_q[:, start:stop])  # q was scaled
            grad_k.baddbmm_(grad_logits.transpose(1, 2), q_scaled[:, start:stop])
        grad_q = grad_q.view(batch, heads, num_queries, head_dim)
        grad_k = grad_k.view(batch, heads, -1, head_dim)
        grad_v = grad_v.view(batch, heads, -1, v.shape[-1])
        return grad_q, grad_k, grad_v, grad_rows, grad_cols, None, None, None


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

    On CUDA without a key mask (and with Dh = Dv ≥ 16) the computation goes to compiled
    FlexAttention with the bias as a score modification; elsewhere (and if compilation fails, with
    a warning) to the chunked path.

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
    # FlexAttention's compiled kernel wants equal query and value widths of at least 16
    flex_sizes = q.shape[-1] == v.shape[-1] >= 16
    if q.is_cuda and mask_bias is None and flex_sizes and _compiled_flex_attention() is not None:
        try:
            out = _flex_grid_attend(q, k, v, rows, cols)
        except Exception as error:  # a compiler failure must not stop training: say so, go on
            warnings.warn(f"FlexAttention failed ({error!r}); using the chunked path", stacklevel=2)
    library = native.kernels(q, k, v, rows) if out is None else None
    if library is not None:
        mask = None if mask_bias is None else mask_bias.reshape(mask_bias.shape[0], -1)
        out = _FusedGridAttention.apply(
            q.contiguous(), k.contiguous(), v.contiguous(), rows, cols, mask, chunk_size, library
        )  # (B, H, Lq, Dv)
    elif out is None:
        out = _GridAttention.apply(q, k, v, rows, cols, mask_bias, chunk_size)  # (B, H, Lq, Dv)
    return out if alive is None else out * alive
