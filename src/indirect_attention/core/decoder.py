"""Stacks of decoder layers that thread (queries, references) through the layers (paper §5).

:class:`IndirectDecoder` recomputes the position bias at every layer from the current references and
refines the references from each layer's output (P^(l+1) = g(P^l, O^l)). Without a bias producer it
is the naive misaligned decoder; called with ``key_source is value_source`` and no bias it is a
standard cross-attention decoder. :class:`CrossAttentionFusion` is the first block of the double
cross-attention baseline: a sequence attends to another before the decoder reads it.

Shapes:
    B batch, H heads, Lq queries, Lk key/value length, D model dim, R reference size, Ly number of
    layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .blocks import IndirectDecoderLayer
from .indirect import check_sequence
from .position_bias import ReferenceUpdate, RelativePositionBias, value_positions

__all__ = ["CrossAttentionFusion", "DecoderOutput", "IndirectDecoder"]


@dataclass
class DecoderOutput:
    """What :class:`IndirectDecoder` returns.

    Attributes:
        outputs: Every layer's queries after the shared final norm, (Ly, B, Lq, D); ``outputs[-1]``
            is the decoder's result, earlier layers feed auxiliary losses.
        references: The references used by each layer and the final refined one,
            (Ly + 1, B, Lq, R); ``references[0]`` is P^0. None when the decoder has no references.
        attn: Attention probabilities per layer, (Ly, B, H, Lq, Lk), when maps were requested.
        bias: Position bias per layer, (Ly, B, H, Lq, Lk), when maps were requested and a bias
            producer exists.
    """

    outputs: Tensor
    references: Tensor | None = None
    attn: Tensor | None = None
    bias: Tensor | None = None


def _shared(references: Tensor) -> Tensor:
    """One row for the whole batch when every example holds the same (expanded) references.

    P^0 is usually one set of references broadcast over the batch; φ then needs evaluating once,
    not once per example, and the bias broadcasts over B in :func:`attend`.
    """
    if references.dim() == 3 and references.shape[0] > 1 and references.stride(0) == 0:
        return references[:1]  # (1, Lq, R)
    return references


class IndirectDecoder(nn.Module):
    """``num_layers`` :class:`IndirectDecoderLayer` with a per-layer bias and reference update.

    Args:
        dim: Model dim D.
        num_heads: Number of heads H.
        num_layers: Number of layers Ly.
        ffn_dim: FFN hidden width (default ``4 * dim``).
        dropout: Dropout in every layer.
        key_dim: Feature size of ``key_source`` (default ``dim``).
        value_dim: Feature size of ``value_source`` (default ``dim``).
        reference_size: 1 for point references, 2 for intervals (centre, width).
        position_bias: Factory ``f(num_heads=, reference_size=) -> nn.Module`` called once per
            layer for that layer's bias MLP φ_l (default :class:`RelativePositionBias`); None gives
            the naive misaligned decoder (no bias).
        reference_update: Factory ``f(dim=, reference_size=) -> nn.Module`` called once per layer
            for the update g (default :class:`ReferenceUpdate`); None keeps every layer at P^0.

    Shapes:
        queries (B, Lq, D), key_source (B, Lk, Dk), value_source (B, Lk, Dv),
        references (B, Lq, R), positions (Lk,) or (B, Lk) (default ``(j + 0.5) / Lk``) or
        whatever the bias producer reads (a grid size (h, w) for the detector's box bias),
        key_padding_mask (B, Lk), query_pos (B, Lq, D) -> :class:`DecoderOutput`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_layers: int,
        *,
        ffn_dim: int | None = None,
        dropout: float = 0.0,
        key_dim: int | None = None,
        value_dim: int | None = None,
        reference_size: int = 1,
        position_bias: Callable[..., nn.Module] | None = RelativePositionBias,
        reference_update: Callable[..., nn.Module] | None = ReferenceUpdate,
    ) -> None:
        super().__init__()
        if num_layers <= 0:
            raise ValueError(f"num_layers must be positive, got {num_layers}")
        self.dim = dim
        self.num_heads = num_heads
        self.reference_size = reference_size
        self.layers = nn.ModuleList(
            IndirectDecoderLayer(
                dim,
                num_heads,
                ffn_dim=ffn_dim,
                dropout=dropout,
                key_dim=key_dim,
                value_dim=value_dim,
            )
            for _ in range(num_layers)
        )
        self.biases = (
            None
            if position_bias is None
            else nn.ModuleList(
                position_bias(num_heads=num_heads, reference_size=reference_size)
                for _ in range(num_layers)
            )
        )
        self.updates = (
            None
            if reference_update is None
            else nn.ModuleList(
                reference_update(dim=dim, reference_size=reference_size) for _ in range(num_layers)
            )
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self,
        queries: Tensor,
        key_source: Tensor,
        value_source: Tensor,
        *,
        references: Tensor | None = None,
        positions: Tensor | tuple[int, int] | None = None,
        key_padding_mask: Tensor | None = None,
        query_pos: Tensor | None = None,
        return_maps: bool = False,
    ) -> DecoderOutput:
        """Run every layer; the bias of layer l is φ_l(P^l) and P^(l+1) = g_l(P^l, O^l).

        ``query_pos`` (B, Lq, D) is an optional positional query given to every layer
        (:class:`IndirectDecoderLayer`); it is computed once and not updated with the references
        (Plain-DETR).
        """
        check_sequence("queries", queries, dim=self.dim)
        needs_references = self.biases is not None or self.updates is not None
        if needs_references:
            expected = (queries.shape[0], queries.shape[1], self.reference_size)
            if references is None or tuple(references.shape) != expected:
                got = None if references is None else tuple(references.shape)
                raise ValueError(f"references must have shape (B, Lq, R) = {expected}, got {got}")
        if positions is None:
            positions = value_positions(
                value_source.shape[1], device=queries.device, dtype=queries.dtype
            )
        x = queries
        outputs, all_references, attn_maps, bias_maps = [], [], [], []
        if references is not None:
            all_references.append(references)
        for index, layer in enumerate(self.layers):
            bias = None
            if self.biases is not None and references is not None:
                bias = self.biases[index](_shared(references), positions)  # (B|1, H, Lq, Lk)
            result = layer(
                x,
                key_source,
                value_source,
                bias=bias,
                key_padding_mask=key_padding_mask,
                query_pos=query_pos,
                need_weights=return_maps,
            )
            if return_maps:
                x, attn = result
                attn_maps.append(attn)
                if bias is not None:
                    bias_maps.append(bias.expand(x.shape[0], *bias.shape[1:]))
            else:
                x = result
            outputs.append(self.norm(x))
            if references is not None:
                if self.updates is not None:
                    references = self.updates[index](references, x)  # (B, Lq, R)
                all_references.append(references)
        return DecoderOutput(
            outputs=torch.stack(outputs),  # (Ly, B, Lq, D)
            references=torch.stack(all_references) if all_references else None,
            attn=torch.stack(attn_maps) if attn_maps else None,
            bias=torch.stack(bias_maps) if bias_maps else None,
        )


class CrossAttentionFusion(nn.Module):
    """A sequence attends to another, layer after layer (no self-attention), then is normalised.

    The first block of the double cross-attention baseline (paper Table 1): target tokens gather
    information from the query image's tokens before a cross-attention decoder reads them.

    Args:
        dim: Model dim D of ``x``.
        num_heads: Number of heads H.
        num_layers: Number of cross-attention + FFN layers.
        ffn_dim: FFN hidden width (default ``4 * dim``).
        dropout: Dropout in every layer.
        memory_dim: Feature size of ``memory`` (default ``dim``).

    Shapes:
        x (B, L, D), memory (B, M, Dm), memory_padding_mask (B, M) -> (B, L, D)
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_layers: int,
        *,
        ffn_dim: int | None = None,
        dropout: float = 0.0,
        memory_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            IndirectDecoderLayer(
                dim,
                num_heads,
                ffn_dim=ffn_dim,
                dropout=dropout,
                key_dim=memory_dim,
                value_dim=memory_dim,
                self_attention=False,
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, x: Tensor, memory: Tensor, *, memory_padding_mask: Tensor | None = None
    ) -> Tensor:
        """Fuse ``memory`` into ``x``."""
        for layer in self.layers:
            x = layer(x, memory, memory, key_padding_mask=memory_padding_mask)
        return self.norm(x)  # (B, L, D)
