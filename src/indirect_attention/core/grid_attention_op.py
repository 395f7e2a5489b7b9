"""The chunked grid-biased attention as two custom operators, forward and backward (paper §6.2).

``indirect_attention::grid_attention`` computes ``softmax(q kᵀ/√Dh + rows ⊕ cols + mask) v`` a
chunk of queries at a time and returns the output with each query's log-sum-exp;
``indirect_attention::grid_attention_backward`` recomputes each chunk's probabilities from that
log-sum-exp and returns the five gradients, the bias gradients reduced straight to rows and
columns. Registered with :mod:`torch.library` (fake implementations for shape propagation, the
backward operator as their autograd), they appear to ``torch.compile``, ``torch.export`` and
``torch.jit.trace`` as single operators, whichever path runs inside:

- the compiled CPU loops of :mod:`.native` (where ``compiled`` is set and the library is built):
  for head widths up to 8 vectors (128 float32 lanes with AVX-512) one fused call per pass that
  runs the products too, register-blocked, with each chunk's logits kept in cache; for wider
  heads the element-wise passes between PyTorch's matrix products;
- the same steps as PyTorch operations otherwise: the reference path and the fallback.

Shapes:
    B batch, H heads, Lq queries, Lk = h·w keys on an h×w grid, Dh head dim, Dv value dim;
    mask (B, Lk) additive (0 or -inf) or None; lse (B, H, Lq).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import native

__all__ = ["grid_attention_backward_op", "grid_attention_op"]


def _chunk_logits(q_scaled, k_t, rows, cols, mask, start, stop) -> Tensor:
    """Biased, masked logits of queries [start, stop), (B·H, C, Lk), in a fresh buffer."""
    batch, heads = rows.shape[:2]
    bias = rows[:, :, start:stop, :, None] + cols[:, :, start:stop, None, :]  # (B, H, C, h, w)
    bias = bias.reshape(batch, heads, stop - start, -1)  # (B, H, C, Lk)
    if mask is not None:
        bias.add_(mask[:, None, None, :])  # (B, H, C, Lk)
    logits = bias.reshape(batch * heads, stop - start, -1)  # (B·H, C, Lk)
    return logits.baddbmm_(q_scaled[:, start:stop], k_t)  # += q·kᵀ in place, no copy of the bias


def _layout(rows: Tensor, cols: Tensor, start: int, stop: int) -> tuple[int, ...]:
    """The chunk's sizes as the fused kernels read them: BH, H, C, Lq, start, h, w."""
    batch, heads, num_queries, height = rows.shape
    return batch * heads, heads, stop - start, num_queries, start, height, cols.shape[-1]


def _part(buffer: Tensor, like: Tensor, start: int, stop: int) -> Tensor:
    """A contiguous (B·H, C, like's last size) view at the front of a flat work buffer."""
    shape = (like.shape[0], stop - start, like.shape[-1])
    return buffer[: shape[0] * shape[1] * shape[2]].view(shape)


def _prepare(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q/√Dh (B·H, Lq, Dh), kᵀ (B·H, Dh, Lk) and v (B·H, Lk, Dv), contiguous."""
    batch, heads, num_queries, head_dim = q.shape
    q_scaled = (q * head_dim**-0.5).reshape(batch * heads, num_queries, head_dim)
    k_t = k.reshape(batch * heads, -1, head_dim).transpose(1, 2).contiguous()  # (B·H, Dh, Lk)
    values = v.contiguous().reshape(batch * heads, -1, v.shape[-1])  # (B·H, Lk, Dv)
    return q_scaled, k_t, values


def _fused(library, q: Tensor, v: Tensor) -> bool:
    """Whether the fused attention of :mod:`.native` serves these sizes (not empty, heads of
    at most 8 vectors)."""
    if library is None or q.numel() == 0 or v.numel() == 0:
        return False
    return native.attention_covers(library, q.dtype, head_dim=q.shape[-1], value_dim=v.shape[-1])


def _sizes(q: Tensor, v: Tensor, rows: Tensor, cols: Tensor, chunk: int) -> tuple[int, ...]:
    """The sizes the fused attention reads: BH, H, Lq, h, w, Dh, Dv, chunk."""
    batch, heads, num_queries, head_dim = q.shape
    height, width = rows.shape[-1], cols.shape[-1]
    return batch * heads, heads, num_queries, height, width, head_dim, v.shape[-1], chunk


@torch.library.custom_op("indirect_attention::grid_attention", mutates_args=())
def grid_attention_op(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rows: Tensor,
    cols: Tensor,
    mask: Tensor | None,
    chunk: int,
    compiled: bool,
) -> tuple[Tensor, Tensor]:
    """Exact grid-biased attention by query chunks; returns ``(out, lse)``.

    Shapes:
        q (B, H, Lq, Dh), k (B, H, Lk, Dh), v (B, H, Lk, Dv), rows (B, H, Lq, h),
        cols (B, H, Lq, w), mask (B, Lk) or None -> out (B, H, Lq, Dv), lse (B, H, Lq)
    """
    batch, heads, num_queries, head_dim = q.shape
    rows, cols = rows.contiguous(), cols.contiguous()
    mask = None if mask is None else mask.contiguous()
    library = native.kernels(q, rows, cols) if compiled else None
    if _fused(library, q, v):
        # one compiled call: products, bias and softmax per head and chunk, in cache
        out = q.new_empty((batch, heads, num_queries, v.shape[-1]))  # (B, H, Lq, Dv)
        lse = q.new_empty((batch, heads, num_queries))  # (B, H, Lq)
        native.call(
            library, "attention_forward", q.dtype,
            q.contiguous(), k.contiguous(), v.contiguous(), rows, cols, mask,
            *_sizes(q, v, rows, cols, chunk), head_dim**-0.5, out, lse,
        )  # fmt: skip
        return out, lse
    q_scaled, k_t, values = _prepare(q, k, v)
    out = q.new_empty((batch * heads, num_queries, v.shape[-1]))  # (B·H, Lq, Dv)
    lse = q.new_empty((batch * heads, num_queries))  # (B·H, Lq)
    if library is None:
        for start in range(0, num_queries, chunk):
            stop = min(start + chunk, num_queries)
            logits = _chunk_logits(q_scaled, k_t, rows, cols, mask, start, stop)
            lse[:, start:stop] = torch.logsumexp(logits, dim=-1)
            probs = logits.sub_(lse[:, start:stop, None]).exp_()  # (B·H, C, Lk)
            torch.bmm(probs, values, out=out[:, start:stop])
        return out.view(batch, heads, num_queries, -1), lse.view(batch, heads, num_queries)
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
    return out.view(batch, heads, num_queries, -1), lse.view(batch, heads, num_queries)


@grid_attention_op.register_fake
def _grid_attention_fake(q, k, v, rows, cols, mask, chunk, compiled):
    batch, heads, num_queries, _ = q.shape
    out = q.new_empty((batch, heads, num_queries, v.shape[-1]))  # (B, H, Lq, Dv)
    return out, q.new_empty((batch, heads, num_queries))  # (B, H, Lq)


@torch.library.custom_op("indirect_attention::grid_attention_backward", mutates_args=())
def grid_attention_backward_op(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rows: Tensor,
    cols: Tensor,
    mask: Tensor | None,
    out: Tensor,
    lse: Tensor,
    chunk: int,
    compiled: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`grid_attention_op`'s output for q, k, v, rows and cols.

    d logits = P ∘ (dO vᵀ − δ) with δ = rowsum(dO ∘ out), per chunk, P recomputed from ``lse``.

    Shapes:
        grad_out and out (B, H, Lq, Dv), lse (B, H, Lq), the rest as :func:`grid_attention_op`
        -> the gradients of q, k, v, rows, cols in their shapes
    """
    batch, heads, num_queries, head_dim = q.shape
    rows, cols = rows.contiguous(), cols.contiguous()
    mask = None if mask is None else mask.contiguous()
    library = native.kernels(q, rows, cols) if compiled else None
    if _fused(library, q, v):
        grad_out = grad_out.contiguous()  # (B, H, Lq, Dv)
        delta = (grad_out * out).sum(-1).contiguous()  # (B, H, Lq)
        grads = [
            torch.empty(t.shape, dtype=t.dtype, device=t.device) for t in (q, k, v, rows, cols)
        ]
        native.call(
            library, "attention_backward", q.dtype,
            grad_out, q.contiguous(), k.contiguous(), v.contiguous(), rows, cols, mask,
            lse.contiguous(), delta, *_sizes(q, v, rows, cols, chunk), head_dim**-0.5, *grads,
        )  # fmt: skip
        return tuple(grads)
    q_scaled, k_t, values = _prepare(q, k, v)
    keys = k_t.transpose(1, 2)  # (B·H, Lk, Dh)
    v_t = values.transpose(1, 2).contiguous()  # (B·H, Dv, Lk)
    lse = lse.reshape(batch * heads, num_queries).contiguous()  # (B·H, Lq)
    # contiguous: a broadcast gradient (stride 0) would send the batched products below
    # down PyTorch's one-matrix-at-a-time path
    grad_out = grad_out.reshape(batch * heads, num_queries, -1).contiguous()  # (B·H, Lq, Dv)
    delta = (grad_out * out.reshape(grad_out.shape)).sum(-1).contiguous()  # (B·H, Lq)
    grad_q = torch.empty_like(q_scaled)
    grad_k = k_t.new_zeros(keys.shape)  # (B·H, Lk, Dh), contiguous (keys is a transpose)
    grad_v = values.new_zeros(values.shape)  # (B·H, Lk, Dv)
    grad_rows, grad_cols = torch.empty_like(rows), torch.empty_like(cols)
    size = batch * heads * min(chunk, num_queries) * k_t.shape[-1]
    probs_buffer, grad_buffer = q_scaled.new_empty(size), q_scaled.new_empty(size)
    result = q_scaled.new_empty(batch * heads * min(chunk, num_queries) * head_dim)
    for start in range(0, num_queries, chunk):
        stop = min(start + chunk, num_queries)
        layout = _layout(rows, cols, start, stop)
        if library is None:
            logits = _chunk_logits(q_scaled, k_t, rows, cols, mask, start, stop)
            probs = logits.sub_(lse[:, start:stop, None]).exp_()  # (B·H, C, Lk)
        else:
            probs = torch.bmm(
                q_scaled[:, start:stop], k_t, out=_part(probs_buffer, k_t, start, stop)
            )
            native.call(library, "softmax_recompute", q.dtype, probs, rows, cols, mask,
                        *layout, lse)  # fmt: skip
        # each product right after the pass that wrote its operand (the chunk is still in cache)
        grad_chunk = grad_out[:, start:stop]  # (B·H, C, Dv)
        grad_v.baddbmm_(probs.transpose(1, 2), grad_chunk)
        grad_logits = torch.bmm(grad_chunk, v_t, out=_part(grad_buffer, k_t, start, stop))
        if library is None:
            grad_logits.sub_(delta[:, start:stop, None]).mul_(probs)
            grid = grad_logits.view(batch, heads, stop - start, rows.shape[-1], cols.shape[-1])
            grad_rows[:, :, start:stop] = grid.sum(-1)
            grad_cols[:, :, start:stop] = grid.sum(-2)
        else:
            native.call(library, "softmax_backward", q.dtype, grad_logits, probs, delta,
                        *layout, grad_rows, grad_cols)  # fmt: skip
        product = torch.bmm(grad_logits, keys, out=_part(result, keys, start, stop))
        torch.mul(product, head_dim**-0.5, out=grad_q[:, start:stop])  # q was scaled
        grad_k.baddbmm_(grad_logits.transpose(1, 2), q_scaled[:, start:stop])
    return (
        grad_q.view(q.shape),
        grad_k.view(k.shape),
        grad_v.view(v.shape),
        grad_rows,
        grad_cols,
    )


@grid_attention_backward_op.register_fake
def _grid_attention_backward_fake(grad_out, q, k, v, rows, cols, mask, out, lse, chunk, compiled):
    return tuple(t.new_empty(t.shape) for t in (q, k, v, rows, cols))  # contiguous, as computed


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, rows, cols, mask, chunk, compiled = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, rows, cols, mask, out, lse)
    ctx.chunk, ctx.compiled = chunk, compiled


def _backward(ctx, grad_out, grad_lse):
    # lse is an internal result of the forward pass (the wrappers never return it): no gradient
    q, k, v, rows, cols, mask, out, lse = ctx.saved_tensors
    grads = grid_attention_backward_op(
        grad_out, q, k, v, rows, cols, mask, out, lse, ctx.chunk, ctx.compiled
    )
    return *grads, None, None, None


grid_attention_op.register_autograd(_backward, setup_context=_setup_context)
