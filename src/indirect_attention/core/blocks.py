"""Pre-norm decoder layer with indirect attention (paper §5, §6.1).

One layer is: self-attention among the queries, indirect attention (keys from the conditioning
sequence, values from the content, plus the position bias), and a feed-forward network, each a
pre-norm residual branch. With ``key_source is value_source`` and no bias the middle branch is plain
cross-attention, which gives the cross-attention baselines the same layer.

Shapes:
    B batch, H heads, Lq queries, Lk key/value length, D model dim.
"""

from __future__ import annotations

from torch import Tensor, nn

from .baselines import SelfAttention
from .functional import GridBias
from .indirect import IndirectAttention

__all__ = ["FeedForward", "IndirectDecoderLayer"]


class FeedForward(nn.Module):
    """Linear → GELU → dropout → Linear.

    Args:
        dim: Model dim D.
        ffn_dim: Hidden width.
        dropout: Dropout after the activation.

    Shapes:
        x (B, L, D) -> (B, L, D)
    """

    def __init__(self, dim: int, ffn_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the network position-wise."""
        return self.net(x)


class IndirectDecoderLayer(nn.Module):
    """Self-attention → indirect attention (with bias) → FFN, each pre-norm and residual.

    Args:
        dim: Model dim D.
        num_heads: Number of heads H.
        ffn_dim: FFN hidden width (default ``4 * dim``).
        dropout: Dropout on attention probabilities and residual branches.
        key_dim: Feature size of ``key_source`` (default ``dim``).
        value_dim: Feature size of ``value_source`` (default ``dim``).
        self_attention: Include the self-attention branch among queries.

    Shapes:
        queries (B, Lq, D), key_source (B, Lk, Dk), value_source (B, Lk, Dv),
        bias broadcastable to (B, H, Lq, Lk), key_padding_mask (B, Lk),
        query_padding_mask (B, Lq), query_pos (B, Lq, D) -> (B, Lq, D) [, attn (B, H, Lq, Lk)].
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        ffn_dim: int | None = None,
        dropout: float = 0.0,
        key_dim: int | None = None,
        value_dim: int | None = None,
        self_attention: bool = True,
    ) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, num_heads, dropout=dropout) if self_attention else None
        self.self_norm = nn.LayerNorm(dim) if self_attention else None
        self.cross_attn = IndirectAttention(
            dim, num_heads, key_dim=key_dim, value_dim=value_dim, dropout=dropout
        )
        self.cross_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, 4 * dim if ffn_dim is None else ffn_dim, dropout=dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        queries: Tensor,
        key_source: Tensor,
        value_source: Tensor,
        *,
        bias: Tensor | GridBias | None = None,
        key_padding_mask: Tensor | None = None,
        query_padding_mask: Tensor | None = None,
        query_pos: Tensor | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Run the three residual branches; return the new queries (and attention if asked).

        ``query_pos`` (B, Lq, D), if given, is a positional query (DETR, Plain-DETR): added to the
        normalised queries of the cross-attention and to the queries and keys of the
        self-attention, never to the residual stream.
        """
        x = queries
        if self.self_attn is not None and self.self_norm is not None:
            x = x + self.drop(
                self.self_attn(
                    self.self_norm(x), position=query_pos, key_padding_mask=query_padding_mask
                )
            )
        normed = self.cross_norm(x)
        attended = self.cross_attn(
            normed if query_pos is None else normed + query_pos,
            key_source,
            value_source,
            bias=bias,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
        )
        attn = None
        if need_weights:
            attended, attn = attended
        x = x + self.drop(attended)
        x = x + self.drop(self.ffn(self.ffn_norm(x)))  # (B, Lq, D)
        return (x, attn) if need_weights else x
