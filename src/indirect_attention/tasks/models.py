"""The three models of the synthetic tasks and two ablations, built from the core (paper §6.1).

Every model embeds both token sequences with learned token and position embeddings (the sequence read
as values without positions when ``ModelConfig.value_positions`` is off), runs a 6-layer
decoder (self-attention among queries → attention over the two sequences → FFN) and reads out with a
head shared in form by all models:

* ``indirect``: keys from the conditioning sequence, values from the content sequence (both with
  positional codes: the value's position is how a query learns *where* it read), queries
  ``q_i = e_i + x_i`` (Definition 1, s(i) = i), a relative-position bias φ_l per layer and a point
  reference refined after every layer, ``P^(l+1) = g(P^l, O^l)``.
* ``naive``: the same without bias and references (naive misaligned attention).
* ``cross``: queries are one sequence's embeddings (the target in sorting, the query in retrieval),
  keys = values = the other sequence.
* ``indirect-pointer``: indirect with :class:`~indirect_attention.core.PointerUpdate` as g, which
  points each reference at an absolute position named by the layer output (it can move a query to
  "the marker's position plus s", which a shift of the old reference expresses only awkwardly).
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
from functools import partial

import torch
from torch import Tensor, nn

from ..core import (
    ContentEnrichedQueries,
    DecoderOutput,
    IndirectDecoder,
    PointerUpdate,
    ReferenceUpdate,
    RelativePositionBias,
    position_references,
)

__all__ = ["BIASED", "KINDS", "READOUTS", "ModelConfig", "TaskLayout", "TwoSequenceModel"]

KINDS = (
    "indirect",
    "naive",
    "cross",
    "indirect-pointer",
    "indirect-nobias-update",
    "indirect-noenrich",
)
#: Kinds with a position bias (and references); the first three also update their references.
BIASED = ("indirect", "indirect-pointer", "indirect-noenrich", "indirect-nobias-update")
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
        value_positions: Whether the sequences read as values carry their position codes. With
            them a value tells its own position, so naive attention can read *where* it looked
            from the value; without them only the bias can say where a value sits (the setting
            the paper's argument is about, §4-5). Keys and queries always carry positions.
    """

    dim: int = 128
    num_heads: int = 4
    num_layers: int = 6
    ffn_dim: int = 512
    dropout: float = 0.1
    value_positions: bool = True


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
        biased = kind in BIASED
        update = {
            "indirect": ReferenceUpdate,
            "indirect-noenrich": ReferenceUpdate,
            "indirect-pointer": partial(PointerUpdate, num_positions=layout.content_len),
        }.get(kind)
        self.decoder = IndirectDecoder(
            dim,
            config.num_heads,
            config.num_layers,
            ffn_dim=config.ffn_dim,
            dropout=config.dropout,
            position_bias=RelativePositionBias if biased else None,
            reference_update=update,
        )
        self.uses_references = biased
        self.value_positions = config.value_positions
        self.readout = layout.readout
        if self.readout == "pointer" and layout.num_classes != layout.content_len:
            raise ValueError(f"pointer readout needs num_classes == content_len, got {layout}")
        pointer_width = 1 if two_sequence else dim
        self.head = nn.Linear(
            dim, pointer_width if self.readout == "pointer" else layout.num_classes
        )

    def _padded(self, conditioning: Tensor, length: int) -> Tensor:
        """The conditioning ids padded to ``length`` (the two-sequence models' key index grid)."""
        pad = length - conditioning.shape[1]
        if pad <= 0 or self.kind == "cross":
            return conditioning
        fill = conditioning.new_full((conditioning.shape[0], pad), self.pad_id)
        return torch.cat([conditioning, fill], dim=1)  # (B, Lx)

    def _embed(
        self, conditioning: Tensor, content: Tensor, *, positions: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Token (+ position, unless ``positions`` is off) embeddings of both sequences.

        Shapes:
            conditioning (B, Lc), content (B, Lx) -> (B, Lc or Lx, D), (B, Lx, D)
        """
        conditioning = self._padded(conditioning, content.shape[1])
        cond = self.conditioning_embed(conditioning)  # (B, Lc, D)
        cont = self.content_embed(content)  # (B, Lx, D)
        if positions:
            cond = cond + self.conditioning_pos(torch.arange(cond.shape[1], device=cond.device))
            cont = cont + self.content_pos(torch.arange(cont.shape[1], device=cont.device))
        return cond, cont

    def decode(
        self, conditioning: Tensor, content: Tensor, *, return_maps: bool = False
    ) -> DecoderOutput:
        """Run the decoder; return every layer's states (and maps, references when asked).

        Keys and queries carry position codes; the sequence read as values carries them only
        when ``ModelConfig.value_positions`` is on.
        """
        if (
            conditioning.dim() != 2
            or content.dim() != 2
            or conditioning.shape[0] != content.shape[0]
        ):
            raise ValueError(
                f"conditioning (B, Lc) and content (B, Lx) must be 2-D with one batch size, got "
                f"{tuple(conditioning.shape)} and {tuple(content.shape)}"
            )
        cond, cont = self._embed(conditioning, content)  # (B, Lc, D), (B, Lx, D)
        cond_v, cont_v = (
            (cond, cont)
            if self.value_positions
            else self._embed(conditioning, content, positions=False)
        )
        if self.queries is None:
            if self.layout.cross_queries == "content":
                return self.decoder(cont, cond, cond_v, return_maps=return_maps)
            return self.decoder(cond, cont, cont_v, return_maps=return_maps)
        queries = self.queries(cont)  # (B, Lx, D): q_i = e_i + x_i
        references = None
        if self.uses_references:
            slots = torch.arange(content.shape[1], device=content.device)
            references = position_references(slots, content.shape[1])  # (Lx, 1)
            references = references.to(cont.dtype).expand(content.shape[0], -1, -1)  # (B, Lx, 1)
        return self.decoder(queries, cond, cont_v, references=references, return_maps=return_maps)

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
