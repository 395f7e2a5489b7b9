"""The attention math, in one place (paper §3 and Definition 1, §5).

Every attention module of the package projects its inputs, splits heads and calls :func:`attend`;
nothing else scales, biases, masks or softmaxes logits. :func:`attend` has a fused path (PyTorch's
``scaled_dot_product_attention``) and :func:`attend_reference`, a plain formula that also returns the
attention probabilities. The two are tested equal, gradients included.

Shapes:
    B batch, H heads, Lq queries, Lk key/value length, Dh head dim, Dv value head dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .grid_attention import grid_attend

__all__ = [
    "GridBias",
    "attend",
    "attend_reference",
    "attention_map",
    "merge_heads",
    "padding_mask_to_bias",
    "split_heads",
    "validate_attention_inputs",
]


@dataclass(frozen=True)
class GridBias:
    """A separable bias over keys laid out on an h×w grid (row-major): the factored form.

    ``bias[..., r * w + c] = rows[..., r] + cols[..., c]``. The detector's box bias has this form
    (one MLP per axis, paper §6.2 / BoxRPB): it is produced per row and per column, never per cell,
    and :func:`attend` materialises it only when attention dropout is asked for.

    Attributes:
        rows: Bias of each grid row, (B, H, Lq, h) or broadcastable.
        cols: Bias of each grid column, (B, H, Lq, w) or broadcastable.
    """

    rows: Tensor
    cols: Tensor

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w)."""
        return self.rows.shape[-1], self.cols.shape[-1]

    @property
    def shape(self) -> torch.Size:
        """The shape of the dense bias, (..., Lq, h * w)."""
        lead = torch.broadcast_shapes(self.rows.shape[:-1], self.cols.shape[:-1])
        return torch.Size((*lead, self.rows.shape[-1] * self.cols.shape[-1]))

    def is_floating_point(self) -> bool:
        return self.rows.is_floating_point() and self.cols.is_floating_point()

    def dense(self) -> Tensor:
        """The full bias, (..., Lq, h * w)."""
        return (self.rows[..., :, None] + self.cols[..., None, :]).flatten(-2)  # (B, H, Lq, h*w)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """Split the feature axis into heads.

    Shapes:
        x: (B, L, H * Dh) -> (B, H, L, Dh)
    """
    batch, length, dim = x.shape
    return x.view(batch, length, num_heads, dim // num_heads).transpose(1, 2)  # (B, H, L, Dh)


def merge_heads(x: Tensor) -> Tensor:
    """Inverse of :func:`split_heads`.

    Shapes:
        x: (B, H, L, Dh) -> (B, L, H * Dh)
    """
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)  # (B, L, H*Dh)


def padding_mask_to_bias(key_padding_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Turn a boolean padding mask (True = ignore) into an additive logit bias.

    Shapes:
        key_padding_mask: (B, Lk) bool -> (B, 1, 1, Lk) with 0 where kept and -inf where padded.
    """
    bias = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
    bias = bias.masked_fill(key_padding_mask, float("-inf"))
    return bias[:, None, None, :]  # (B, 1, 1, Lk)


def _shape(t: Tensor | None) -> str:
    return "None" if t is None else str(tuple(t.shape))


def validate_attention_inputs(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    bias: Tensor | GridBias | None,
    key_padding_mask: Tensor | None,
) -> None:
    """Check ranks, sizes and dtypes of :func:`attend`'s arguments; raise a clear error otherwise."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name} must have 4 dims (B, H, L, Dh), got shape {_shape(t)} ({t.dim()} dims)"
            )
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if k.shape[:2] != q.shape[:2] or v.shape[:2] != q.shape[:2]:
        raise ValueError(
            f"q, k, v must agree on (B, H): q {_shape(q)}, k {_shape(k)}, v {_shape(v)}"
        )
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k head dim must equal q head dim: k {_shape(k)} has Dh={k.shape[-1]}, "
            f"q {_shape(q)} has Dh={q.shape[-1]}"
        )
    if v.shape[2] != k.shape[2]:
        raise ValueError(
            f"k and v must have the same length Lk: k {_shape(k)} has Lk={k.shape[2]}, "
            f"v {_shape(v)} has Lk={v.shape[2]}"
        )
    batch, heads, num_queries, _ = q.shape
    num_keys = k.shape[2]
    expected = (batch, heads, num_queries, num_keys)
    if isinstance(bias, GridBias):
        rows, cols = bias.rows, bias.cols
        if rows.dim() > 4 or cols.dim() > 4 or rows.shape[-2:-1] != cols.shape[-2:-1]:
            raise ValueError(
                f"GridBias rows {_shape(rows)} and cols {_shape(cols)} must be (B, H, Lq, h) and "
                "(B, H, Lq, w)"
            )
        if rows.shape[-1] * cols.shape[-1] != num_keys:
            raise ValueError(
                f"GridBias grid h×w = {rows.shape[-1]}×{cols.shape[-1]} does not cover the "
                f"Lk = {num_keys} keys"
            )
    if bias is not None:
        if not isinstance(bias, (Tensor, GridBias)) or not bias.is_floating_point():
            raise TypeError(f"bias must be a floating-point tensor, got {type(bias).__name__}")
        try:
            broadcast = torch.broadcast_shapes(bias.shape, expected)
        except RuntimeError:
            broadcast = None
        if broadcast != expected:
            raise ValueError(
                f"bias of shape {_shape(bias)} does not broadcast to (B, H, Lq, Lk) = {expected}"
            )
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, Tensor) or key_padding_mask.dtype != torch.bool:
            dtype = getattr(key_padding_mask, "dtype", type(key_padding_mask).__name__)
            raise TypeError(f"key_padding_mask must be a bool tensor (True = ignore), got {dtype}")
        if tuple(key_padding_mask.shape) != (batch, num_keys):
            raise ValueError(
                f"key_padding_mask must have shape (B, Lk) = {(batch, num_keys)}, "
                f"got {_shape(key_padding_mask)}"
            )


def _logits(
    q: Tensor, k: Tensor, bias: Tensor | GridBias | None, key_padding_mask: Tensor | None
) -> Tensor:
    """Scaled, biased and masked logits (B, H, Lq, Lk); padded keys hold -inf."""
    logits = torch.matmul(q, k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, H, Lq, Lk)
    if isinstance(bias, GridBias):
        bias = bias.dense()
    if bias is not None:
        logits = logits + bias.to(logits.dtype)
    if key_padding_mask is not None:
        logits = logits + padding_mask_to_bias(key_padding_mask, logits.dtype)
    return logits


def _safe_softmax(logits: Tensor) -> Tensor:
    """Softmax over the last axis that returns an all-zero row where every logit is -inf."""
    row_max = logits.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = torch.exp(logits - row_max.detach())
    total = weights.sum(dim=-1, keepdim=True)
    return weights / torch.where(total > 0, total, torch.ones_like(total))


def attention_map(
    q: Tensor,
    k: Tensor,
    *,
    bias: Tensor | GridBias | None = None,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Attention probabilities softmax(q kᵀ/√Dh + bias) over unmasked keys.

    A row with every key masked is all zeros (it sums to 0, not 1).

    Shapes:
        q: (B, H, Lq, Dh); k: (B, H, Lk, Dh); bias: broadcastable to (B, H, Lq, Lk);
        key_padding_mask: (B, Lk) bool, True = ignore. Returns (B, H, Lq, Lk).
    """
    v_stub = k[..., :1]  # (B, H, Lk, 1): only its length is checked
    validate_attention_inputs(q, k, v_stub, bias=bias, key_padding_mask=key_padding_mask)
    return _safe_softmax(_logits(q, k, bias, key_padding_mask))


def attend_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    bias: Tensor | GridBias | None = None,
    key_padding_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = True,
) -> tuple[Tensor, Tensor]:
    """The plain formula: ``out = softmax(q kᵀ/√Dh + bias, masked) v``, with its weights.

    Args:
        q: Queries.
        k: Keys (in indirect attention, from the conditioning sequence).
        v: Values (in indirect attention, from the content sequence).
        bias: Additive logit bias, e.g. a relative-position bias (paper Eq. 3).
        key_padding_mask: True marks a key/value position to ignore.
        dropout_p: Dropout on the attention probabilities.
        training: Dropout is applied only when True.

    Returns:
        ``(out, attn)``: the output and the probabilities before dropout.

    Shapes:
        q (B, H, Lq, Dh), k (B, H, Lk, Dh), v (B, H, Lk, Dv) -> out (B, H, Lq, Dv),
        attn (B, H, Lq, Lk).
    """
    validate_attention_inputs(q, k, v, bias=bias, key_padding_mask=key_padding_mask)
    attn = _safe_softmax(_logits(q, k, bias, key_padding_mask))  # (B, H, Lq, Lk)
    dropped = F.dropout(attn, p=dropout_p, training=training) if dropout_p > 0 else attn
    return torch.matmul(dropped, v), attn  # (B, H, Lq, Dv)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    bias: Tensor | GridBias | None = None,
    key_padding_mask: Tensor | None = None,
    dropout_p: float = 0.0,
) -> Tensor:
    """Scaled dot-product attention with an additive bias and a key padding mask.

    Computes ``softmax(q kᵀ/√Dh + bias, masked) v`` with PyTorch's fused kernel. In indirect
    attention (paper §5, Definition 1) ``k`` comes from the conditioning sequence, ``v`` from the
    content sequence and ``bias`` is the learned position bias B_ij = φ(P_ij).

    A row whose keys are all masked returns zeros, never NaN, in the output and in the gradients.
    ``dropout_p`` is applied as given: pass 0.0 at evaluation time.

    Args:
        q: Queries.
        k: Keys.
        v: Values; key j and value j share an index.
        bias: Additive logit bias, broadcastable to (B, H, Lq, Lk), or a :class:`GridBias`.
        key_padding_mask: Bool, True marks a position to ignore (``nn.MultiheadAttention``'s
            polarity).
        dropout_p: Dropout probability on the attention weights.

    Returns:
        The attention output.

    Shapes:
        q (B, H, Lq, Dh), k (B, H, Lk, Dh), v (B, H, Lk, Dv), bias broadcastable to
        (B, H, Lq, Lk), key_padding_mask (B, Lk) -> (B, H, Lq, Dv).
    """
    validate_attention_inputs(q, k, v, bias=bias, key_padding_mask=key_padding_mask)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    dead_rows = None
    if isinstance(bias, GridBias):
        if dropout_p == 0.0:
            # Never materialise the (B, H, Lq, Lk) bias; SDPA could not differentiate it anyway.
            return grid_attend(
                q, k, v, rows=bias.rows, cols=bias.cols, key_padding_mask=key_padding_mask
            )
        bias = bias.dense()
    attn_mask = None if bias is None else bias.to(q.dtype)
    if key_padding_mask is not None:
        # A batch element with every key masked would make SDPA divide 0 by 0; let it attend
        # freely and zero its output afterwards, which also zeroes its gradients.
        dead_rows = key_padding_mask.all(dim=-1)  # (B,)
        keep = ~(key_padding_mask & ~dead_rows[:, None])  # (B, Lk) True = take part
        if attn_mask is None:
            attn_mask = keep[:, None, None, :]  # (B, 1, 1, Lk) bool
        else:
            attn_mask = attn_mask + padding_mask_to_bias(~keep, q.dtype)
    if attn_mask is not None and attn_mask.dim() < 4:
        attn_mask = attn_mask.view((1,) * (4 - attn_mask.dim()) + tuple(attn_mask.shape))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    if dead_rows is not None:
        out = out * (~dead_rows).to(out.dtype)[:, None, None, None]  # (B, H, Lq, Dv)
    return out  # (B, H, Lq, Dv)
