"""The three models of the synthetic tasks and two ablations, built from the core (paper §6.1).

Every model embeds both token sequences with learned token and position embeddings, runs a 6-layer
decoder (self-attention among queries → attention over the two sequences → FFN) and reads out with a
head shared in form by all models:

* ``indirect``: keys from the conditioning sequence, values from the content sequence (both with
  positional codes: the value's position is how a query learns *where* it read), queries
  ``q_i = e_i + x_i`` (Definition 1, s(i) = i), a relative-position bias φ_l per layer and a point
  reference refined after every layer, ``P^(l+1) = g(P^l, O^l)``.
* ``naive``: the same without bias and references (naive misaligned attention).
* ``cross``: queries are one sequence's embeddings (the target in sorting, the query in retrieval),
  keys = values = the other sequence.
* ``indirect-nobias-update``: indirect with every layer's references fixed at P^0 (a purely
  positional bias at every layer, as layer 1 has).
* ``indirect-noenrich``: indirect with queries ``q_i = e_i`` (no content feature).

The conditioning sequence is padded to the content length for the two-sequence models. Only value
(content) padding would be masked: a padded key still addresses a real value through the bias, so
it is never masked (``docs/results.md``).

Readouts: ``slot`` (a linear classifier on every query state: sorting), ``pool`` (mean of the query
states, then a linear classifier; the same for all models) and ``pointer`` (one score per content
position, softmax over positions: for the two-sequence models a linear score of query slot j, which
was built from content position j; for cross, whose queries are the other sequence, the dot product
of the projected mean query state with the content embedding at j, a pointer-network readout).

Shapes:
    B batch, Lc conditioning length, Lx content length, Lq queries, C classes, D model dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..core import (
    ContentEnrichedQueries,
    DecoderOutput,
    IndirectDecoder,
    ReferenceUpdate,
    RelativePositionBias,
    position_references,
)

__all__ = ["KINDS", "READOUTS", "ModelConfig", "TaskLayout", "TwoSequenceModel"]

KINDS = ("indirect", "naive", "cross", "indirect-nobias-update", "indirect-noenrich")
READOUTS = ("slot", "pool", "pointer")


@dataclass
class ModelConfig:
    """Size of every model (paper §6.1: 6 layers, 4 heads, hidden 128).

    Attributes:
        dim: Model dim D.
        num_heads: Heads H.
        num_layers: Decoder layers.
        ffn_dim: FFN hidden width.
        dropout: Dropout in every layer.
    """

    dim: int = 128
    num_heads: int = 4
    num_layers: int = 6
    ffn_dim: int = 512
    dropout: float = 0.1


@dataclass
class TaskLayout:
    """What a task looks like to a model.

    Attributes:
        conditioning_vocab: Conditioning token ids in ``[0, conditioning_vocab)``; one more id is
            used for padding.
        conditioning_len: Conditioning length Lc (<= content length).
        content_vocab: Content token ids in ``[0, content_vocab)``.
        content_len: Content length Lx.
        num_classes: Classes C of the readout.
        readout: ``slot``, ``pool`` or ``pointer`` (``pointer`` needs C == Lx).
        cross_queries: Which sequence gives the cross model its queries: ``content`` or
            ``conditioning``; the other one gives its keys and values.
    """

    conditioning_vocab: int
    conditioning_len: int
    content_vocab: int
    content_len: int
    num_classes: int
    readout: str
    cross_queries: str


class TwoSequenceModel(nn.Module):
    """One of :data:`KINDS` over a (conditioning, content) pair.

    Args:
        kind: Model kind, one of :data:`KINDS`.
        layout: The task's :class:`TaskLayout`.
        config: Sizes (:class:`ModelConfig`).

    Shapes:
        conditioning (B, Lc) long, content (B, Lx) long -> logits (B, Lx, C) for ``slot``,
        (B, C) for ``pool`` and ``pointer``.
    """

    def __init__(self, kind: str, layout: TaskLayout, config: ModelConfig) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if layout.readout not in READOUTS or layout.cross_queries not in (
            "content",
            "conditioning",
        ):
            raise ValueError(f"bad readout/cross_queries in {layout}")
        if layout.conditioning_len > layout.content_len:
            raise ValueError(f"conditioning longer than content: {layout}")
        self.kind = kind
        self.layout = layout
        dim = config.dim
        self.pad_id = layout.conditioning_vocab
        self.conditioning_embed = nn.Embedding(layout.conditioning_vocab + 1, dim)
        self.conditioning_pos = nn.Embedding(layout.content_len, dim)
        self.content_embed = nn.Embedding(layout.content_vocab, dim)
        self.content_pos = nn.Embedding(layout.content_len, dim)
        two_sequence = kind != "cross"
        self.queries = (
            ContentEnrichedQueries(layout.content_len, dim, enrich=kind != "indirect-noenrich")
            if two_sequence
            else None
        )
        biased = kind in ("indirect", "indirect-nobias-update", "indirect-noenrich")
        updated = kind in ("indirect", "indirect-noenrich")
        self.decoder = IndirectDecoder(
            dim,
            config.num_heads,
            config.num_layers,
            ffn_dim=config.ffn_dim,
            dropout=config.dropout,
            position_bias=RelativePositionBias if biased else None,
            reference_update=ReferenceUpdate if updated else None,
        )
        self.uses_references = biased
        self.readout = layout.readout
        if self.readout == "pointer" and layout.num_classes != layout.content_len:
            raise ValueError(f"pointer readout needs num_classes == content_len, got {layout}")
        pointer_width = 1 if two_sequence else dim
        self.head = nn.Linear(
            dim, pointer_width if self.readout == "pointer" else layout.num_classes
        )

    def _embed(self, conditioning: Tensor, content: Tensor) -> tuple[Tensor, Tensor]:
        """Token + position embeddings; conditioning padded to the content length."""
        batch, length = content.shape
        pad = length - conditioning.shape[1]
        if pad > 0 and self.kind != "cross":
            fill = conditioning.new_full((batch, pad), self.pad_id)
            conditioning = torch.cat([conditioning, fill], dim=1)  # (B, Lx)
        cond_pos = torch.arange(conditioning.shape[1], device=content.device)
        content_pos = torch.arange(length, device=content.device)
        keys = self.conditioning_embed(conditioning) + self.conditioning_pos(cond_pos)  # (B, Lc, D)
        values = self.content_embed(content) + self.content_pos(content_pos)  # (B, Lx, D)
        return keys, values

    def decode(
        self, conditioning: Tensor, content: Tensor, *, return_maps: bool = False
    ) -> DecoderOutput:
        """Run the decoder; return every layer's states (and maps, references when asked)."""
        if (
            conditioning.dim() != 2
            or content.dim() != 2
            or conditioning.shape[0] != content.shape[0]
        ):
            raise ValueError(
                f"conditioning (B, Lc) and content (B, Lx) must be 2-D with one batch size, got "
                f"{tuple(conditioning.shape)} and {tuple(content.shape)}"
            )
        cond, cont = self._embed(conditioning, content)
        if self.queries is None:
            queries, memory = (
                (cont, cond) if self.layout.cross_queries == "content" else (cond, cont)
            )
            return self.decoder(queries, memory, memory, return_maps=return_maps)
        queries = self.queries(cont)  # (B, Lx, D): q_i = e_i + x_i
        references = None
        if self.uses_references:
            slots = torch.arange(content.shape[1], device=content.device)
            references = position_references(slots, content.shape[1])  # (Lx, 1)
            references = references.to(cont.dtype).expand(content.shape[0], -1, -1)  # (B, Lx, 1)
        return self.decoder(queries, cond, cont, references=references, return_maps=return_maps)

    def forward(self, conditioning: Tensor, content: Tensor) -> Tensor:
        """Class logits of the task's readout."""
        states = self.decode(conditioning, content).outputs[-1]  # (B, Lq, D)
        if self.readout == "slot":
            return self.head(states)  # (B, Lq, C)
        if self.readout == "pointer" and self.queries is not None:
            return self.head(states).squeeze(-1)  # (B, Lx)
        if self.readout == "pointer":
            _, content_keys = self._embed(conditioning, content)  # (B, Lx, D)
            probe = self.head(states.mean(dim=1))  # (B, D)
            return (
                torch.einsum("bd,bld->bl", probe, content_keys) / probe.shape[-1] ** 0.5
            )  # (B, Lx)
        return self.head(states.mean(dim=1))  # (B, C)
