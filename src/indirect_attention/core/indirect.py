"""Indirect attention: keys from one sequence, values from another (paper §5, Definition 1).

Shapes:
    B batch, H heads, Lq queries, Lk key/value length, D model dim, Dk key-source dim,
    Dv value-source dim.
"""

from __future__ import annotations

from torch import Tensor, nn

from .functional import GridBias, attend, attend_reference, merge_heads, split_heads

__all__ = ["IndirectAttention", "check_sequence"]


def check_sequence(name: str, x: Tensor, *, dim: int, batch: int | None = None) -> None:
    """Raise a clear error unless ``x`` is a float (B, L, dim) tensor with the expected batch."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(
            f"{name} must have 3 dims (B, L, {dim}), got shape {tuple(x.shape)} ({x.dim()} dims)"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[-1] != dim:
        raise ValueError(
            f"{name} must have feature size {dim} (shape (B, L, {dim})), got shape {tuple(x.shape)}"
        )
    if batch is not None and x.shape[0] != batch:
        raise ValueError(
            f"{name} has batch size {x.shape[0]} (shape {tuple(x.shape)}), expected {batch}"
        )


class IndirectAttention(nn.Module):
    """Multi-head attention whose keys and values come from two different sequences.

    ``q = W_q queries``, ``k = W_k key_source``, ``v = W_v value_source`` and
    ``out = W_o softmax(q kᵀ/√Dh + bias) v`` (paper Eq. 3-4). Key j and value j share an index but
    not a meaning; the additive ``bias`` (e.g. :class:`RelativePositionBias`) lets a query address
    value positions directly. With ``key_source is value_source`` and no bias this is ordinary
    cross-attention, identical to ``nn.MultiheadAttention``.

    Args:
        dim: Model dim D of the queries and of the output.
        num_heads: Number of heads H; must divide ``dim``.
        key_dim: Feature size Dk of ``key_source`` (default ``dim``).
        value_dim: Feature size Dv of ``value_source`` (default ``dim``).
        dropout: Dropout on the attention probabilities while training.
        proj_bias: Whether the four projections have a bias term.

    Shapes:
        queries (B, Lq, D), key_source (B, Lk, Dk), value_source (B, Lk, Dv),
        bias broadcastable to (B, H, Lq, Lk), key_padding_mask (B, Lk) bool (True = ignore)
        -> out (B, Lq, D), and attn (B, H, Lq, Lk) when ``need_weights``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        key_dim: int | None = None,
        value_dim: int | None = None,
        dropout: float = 0.0,
        proj_bias: bool = True,
    ) -> None:
        super().__init__()
        if dim <= 0 or num_heads <= 0 or dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = dim if key_dim is None else key_dim
        self.value_dim = dim if value_dim is None else value_dim
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim, bias=proj_bias)
        self.k_proj = nn.Linear(self.key_dim, dim, bias=proj_bias)
        self.v_proj = nn.Linear(self.value_dim, dim, bias=proj_bias)
        self.out_proj = nn.Linear(dim, dim, bias=proj_bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases, as ``nn.MultiheadAttention`` initialises them."""
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)
        if self.out_proj.bias is not None:
            nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        queries: Tensor,
        key_source: Tensor,
        value_source: Tensor,
        *,
        bias: Tensor | GridBias | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend from ``queries`` over ``key_source`` and read ``value_source``.

        Args:
            queries: The queries (e.g. learned embeddings enriched with content, Definition 1).
            key_source: The conditioning sequence; keys come only from here.
            value_source: The content sequence; values come only from here. Same length Lk.
            bias: Additive logit bias.
            key_padding_mask: True marks a padded *value* position to ignore. A position where
                only the conditioning sequence is padding holds a real value: leave it False.
            need_weights: Also return the attention probabilities (slower, reference path).

        Returns:
            ``out``, or ``(out, attn)`` when ``need_weights``.
        """
        check_sequence("queries", queries, dim=self.dim)
        batch = queries.shape[0]
        check_sequence("key_source", key_source, dim=self.key_dim, batch=batch)
        check_sequence("value_source", value_source, dim=self.value_dim, batch=batch)
        if key_source.shape[1] != value_source.shape[1]:
            raise ValueError(
                "key_source and value_source must have the same length Lk (pad the shorter): "
                f"key_source {tuple(key_source.shape)} has Lk={key_source.shape[1]}, "
                f"value_source {tuple(value_source.shape)} has Lk={value_source.shape[1]}"
            )
        q = split_heads(self.q_proj(queries), self.num_heads)  # (B, H, Lq, Dh)
        k = split_heads(self.k_proj(key_source), self.num_heads)  # (B, H, Lk, Dh)
        v = split_heads(self.v_proj(value_source), self.num_heads)  # (B, H, Lk, Dh)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            out, attn = attend_reference(
                q, k, v, bias=bias, key_padding_mask=key_padding_mask, dropout_p=dropout_p
            )
            return self.out_proj(merge_heads(out)), attn  # (B, Lq, D), (B, H, Lq, Lk)
        out = attend(q, k, v, bias=bias, key_padding_mask=key_padding_mask, dropout_p=dropout_p)
        return self.out_proj(merge_heads(out))  # (B, Lq, D)
