"""Task 2, sequence retrieval (paper §6.1, Figure 2 right, Figure 4).

A query of ``query_len`` tokens and a reference of ``reference_len`` tokens are drawn uniformly with
replacement from ``vocab_size`` tokens; the query is written into the reference at a uniformly drawn
start, so it is a contiguous subsequence. The label is the start index of the query in the
reference. When the query occurs more than once (the random part of the reference can repeat it),
the **leftmost** occurrence counts, so the label is a function of the two sequences alone. The query
is the conditioning sequence (keys), the reference the content (values).

Shapes:
    N items, Lq query length, Lr reference length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .models import ModelConfig, TaskLayout, TwoSequenceModel
from .pairs import SequencePairs, split_disjoint

__all__ = ["RetrievalConfig", "build_model", "first_occurrence", "generate", "layout"]


@dataclass
class RetrievalConfig:
    """The retrieval task.

    Attributes:
        query_len: Query length Lq.
        reference_len: Reference length Lr.
        vocab_size: Token vocabulary.
        num_train: Training pairs.
        num_test: Test pairs, disjoint from the training pairs.
        readout: ``pointer`` (one score per reference position, default) or ``pool`` (mean query
            state → linear classifier over positions); see :mod:`.models`.
    """

    query_len: int = 3
    reference_len: int = 10
    vocab_size: int = 10
    num_train: int = 1000
    num_test: int = 200
    readout: str = "pointer"


def first_occurrence(query: Tensor, reference: Tensor) -> Tensor:
    """Start of the leftmost occurrence of each query in its reference (-1 when absent).

    Shapes:
        query (N, Lq) long, reference (N, Lr) long -> (N,) long
    """
    windows = reference.unfold(1, query.shape[1], 1)  # (N, Lr - Lq + 1, Lq)
    hits = (windows == query[:, None, :]).all(dim=-1)  # (N, Lr - Lq + 1)
    first = hits.int().argmax(dim=1)  # (N,): first True, 0 when none
    return torch.where(hits.any(dim=1), first, torch.full_like(first, -1))


def generate(
    config: RetrievalConfig, *, generator: torch.Generator
) -> tuple[SequencePairs, SequencePairs]:
    """Disjoint training and test pairs (conditioning = query, content = reference)."""
    if not 0 < config.query_len <= config.reference_len:
        raise ValueError(f"need 0 < query_len <= reference_len, got {config}")
    count = 2 * (config.num_train + config.num_test)
    query = torch.randint(config.vocab_size, (count, config.query_len), generator=generator)
    reference = torch.randint(config.vocab_size, (count, config.reference_len), generator=generator)
    starts = torch.randint(
        config.reference_len - config.query_len + 1, (count,), generator=generator
    )
    columns = starts[:, None] + torch.arange(config.query_len)  # (count, Lq)
    reference.scatter_(1, columns, query)
    pairs = SequencePairs(query, reference, first_occurrence(query, reference))
    train, test = split_disjoint(pairs, config.num_train, config.num_test)
    return train, test


def layout(config: RetrievalConfig) -> TaskLayout:
    """One class per reference position (cross queries = the query sequence)."""
    return TaskLayout(
        conditioning_vocab=config.vocab_size,
        conditioning_len=config.query_len,
        content_vocab=config.vocab_size,
        content_len=config.reference_len,
        num_classes=config.reference_len,
        readout=config.readout,
        cross_queries="conditioning",
    )


def build_model(
    kind: str, config: RetrievalConfig, model: ModelConfig | None = None
) -> TwoSequenceModel:
    """A :class:`TwoSequenceModel` of ``kind`` for this task."""
    return TwoSequenceModel(kind, layout(config), model or ModelConfig())
