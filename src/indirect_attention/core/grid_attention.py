"""Exact attention with a factored grid bias, computed by query chunks (paper §6.2's hot path).

With a :class:`GridBias` (``bias[q, r·w + c] = rows[q, r] + cols[q, c]``) the logits are
``q·k/√Dh + rows + cols``. PyTorch's CPU flash kernel cannot return the gradient of an additive
mask, so a trainable bias sends SDPA down its math path, which materialises several (B, H, Lq, Lk)
tensors. Here the queries are processed a chunk at a time: each chunk's bias is fused into the
q·kᵀ product, its probabilities and their gradient live only while that chunk is computed (they
fit in cache), the backward pass recomputes them instead of storing them, and the bias gradients
are reduced straight to rows and columns. Peak memory is O(chunk·Lk) instead of O(Lq·Lk), and
nothing is approximated. On the CPU the whole chunk (its matrix products register-blocked, with
the bias, mask, softmax, its backward and the row/column sums applied to each block of logits in
registers) runs in compiled loops (:mod:`.native`); without a compiler, the same steps run as
PyTorch operations. Both paths sit behind
one custom operator (:mod:`.grid_attention_op`), so ``torch.compile`` and ``torch.export`` trace
through this function without a graph break.

Shapes:
    B batch, H heads, Lq queries, Lk = h·w keys on an h×w grid, Dh head dim, Dv value dim.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor

from . import native
from .grid_attention_op import grid_attention_op

__all__ = ["grid_attend"]


@functools.cache
def _compiled_flex_attention():
    """``torch.compile``d FlexAttention, or None where this PyTorch has none."""
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError:
        return None
    return torch.compile(flex_attention, dynamic=False)


def _flex_grid_attend(
    q: Tensor, k: Tensor, v: Tensor, rows: Tensor, cols: Tensor, mask: Tensor | None = None
) -> Tensor:
    """FlexAttention with the grid bias as a score modification (CUDA; trains through rows/cols).

    The bias is read per (query, key) from the factored rows and columns inside the fused kernel,
    and the additive key mask (B, Lk) (0 or -inf, no row all -inf) per key; no (B, H, Lq, Lk)
    tensor is ever materialised.
    """
    flex = _compiled_flex_attention()
    width = cols.shape[-1]

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + rows[b, h, q_idx, kv_idx // width] + cols[b, h, q_idx, kv_idx % width]

    if mask is not None:

        def masked_score_mod(score, b, h, q_idx, kv_idx):
            return score_mod(score, b, h, q_idx, kv_idx) + mask[b, kv_idx]

        return flex(q, k, v, score_mod=masked_score_mod)

    return flex(q, k, v, score_mod=score_mod)


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

    On CUDA (with Dh = Dv ≥ 16) the computation goes to compiled
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
    mask, alive = None, None
    if key_padding_mask is not None:
        # A batch element with every key masked attends freely and is zeroed afterwards, so that
        # neither its output nor its gradients are NaN.
        dead = key_padding_mask.all(dim=-1)  # (B,)
        keep = key_padding_mask & ~dead[:, None]  # (B, Lk) True = ignore
        mask = torch.zeros(keep.shape, dtype=q.dtype, device=q.device)
        mask = mask.masked_fill(keep, float("-inf"))  # (B, Lk) additive
        alive = (~dead).to(q.dtype)[:, None, None, None]  # (B, 1, 1, 1)
    out = None
    # FlexAttention's compiled kernel wants equal query and value widths of at least 16
    flex_sizes = q.shape[-1] == v.shape[-1] >= 16
    if q.is_cuda and flex_sizes and _compiled_flex_attention() is not None:
        try:
            out = _flex_grid_attend(q, k, v, rows, cols, mask)
        except Exception as error:  # a compiler failure must not stop training: say so, go on
            warnings.warn(f"FlexAttention failed ({error!r}); using the chunked path", stacklevel=2)
    if out is None:
        compiled = native.serves(q, k, v, rows)
        out, _ = grid_attention_op(q, k, v, rows, cols, mask, chunk_size, compiled)  # (B,H,Lq,Dv)
    return out if alive is None else out * alive
