"""The paper's baselines, all on the same projections and the same :func:`attend` (paper §6).

- :class:`SelfAttention`: standard attention, queries, keys and values from one sequence.
- :class:`CrossAttention`: queries from one sequence, keys and values from another.
- :class:`NaiveMisalignedAttention`: keys and values from two different sequences, no bias; the
  "naive misaligned attention" of §6.1 and the "misaligned attention DETR" of Table 1.

The double cross-attention baseline of Table 1 is built from :class:`CrossAttention` layers, see
:class:`indirect_attention.core.decoder.CrossAttentionFusion`.

Shapes:
    B batch, H heads, Lq queries, Lk key/value length, D model dim.
"""

from __future__ import annotations

from torch import Tensor

from .functional import GridBias
from .indirect import IndirectAttention

__all__ = ["CrossAttention", "NaiveMisalignedAttention", "SelfAttention"]


class CrossAttention(IndirectAttention):
    """Cross-attention: keys and values projected from one ``source`` sequence.

    Args:
        dim: Model dim D of queries and output.
        num_heads: Number of heads H.
        source_dim: Feature size of ``source`` (default ``dim``).
        dropout: Dropout on the attention probabilities.
        proj_bias: Whether the projections have a bias term.

    Shapes:
        queries (B, Lq, D), source (B, Lk, Ds), bias broadcastable to (B, H, Lq, Lk),
        key_padding_mask (B, Lk) -> (B, Lq, D) [, attn (B, H, Lq, Lk)].
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        source_dim: int | None = None,
        dropout: float = 0.0,
        proj_bias: bool = True,
    ) -> None:
        super().__init__(
            dim,
            num_heads,
            key_dim=source_dim,
            value_dim=source_dim,
            dropout=dropout,
            proj_bias=proj_bias,
        )

    def forward(  # type: ignore[override]
        self,
        queries: Tensor,
        source: Tensor,
        *,
        bias: Tensor | GridBias | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend from ``queries`` to ``source`` (keys and values both from ``source``)."""
        return super().forward(
            queries,
            source,
            source,
            bias=bias,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
        )


class SelfAttention(CrossAttention):
    """Standard attention: queries, keys and values all from ``x`` (paper §3's setting).

    Shapes:
        x (B, L, D), key_padding_mask (B, L) -> (B, L, D) [, attn (B, H, L, L)].
    """

    def __init__(
        self, dim: int, num_heads: int, *, dropout: float = 0.0, proj_bias: bool = True
    ) -> None:
        super().__init__(dim, num_heads, dropout=dropout, proj_bias=proj_bias)

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        *,
        position: Tensor | None = None,
        bias: Tensor | GridBias | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend from ``x`` to itself; ``position`` (B, L, D), if given, is added to the queries
        and keys but not to the values (DETR's positional queries)."""
        if position is None:
            return super().forward(
                x, x, bias=bias, key_padding_mask=key_padding_mask, need_weights=need_weights
            )
        located = x + position  # (B, L, D)
        return super(CrossAttention, self).forward(
            located,
            located,
            x,
            bias=bias,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
        )


class NaiveMisalignedAttention(IndirectAttention):
    """Indirect attention without any bias: relevance from the keys alone (paper §4, §6).

    Keys come from ``key_source`` and values from ``value_source`` exactly as in
    :class:`IndirectAttention`, but nothing tells a query where the value matching a key lies, which
    the paper models as effective noise in the values (§4).

    Shapes:
        queries (B, Lq, D), key_source (B, Lk, Dk), value_source (B, Lk, Dv),
        key_padding_mask (B, Lk) -> (B, Lq, D) [, attn (B, H, Lq, Lk)].
    """

    def forward(  # type: ignore[override]
        self,
        queries: Tensor,
        key_source: Tensor,
        value_source: Tensor,
        *,
        bias: Tensor | GridBias | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """As :meth:`IndirectAttention.forward`; ``bias`` must stay None."""
        if bias is not None:
            raise ValueError(
                "NaiveMisalignedAttention takes no bias (got one of shape "
                f"{tuple(bias.shape)}); use IndirectAttention for a biased variant"
            )
        return super().forward(
            queries,
            key_source,
            value_source,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
        )
