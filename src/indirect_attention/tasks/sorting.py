"""Task 1, sorting by an arbitrary ordering (paper §6.1, Figure 2 left).

A target of ``length`` letters is drawn with replacement from an alphabet of ``vocab_size`` symbols;
an ordering is one of a pool of ``num_orderings`` fixed random permutations of the alphabet. The label
of target token i is its index in the *stable* sort of the target by the ordering (equal letters keep
their order). The ordering is the conditioning sequence (keys), the target the content (values).

Shapes:
    N items, L target length, V alphabet size, K orderings in the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .models import ModelConfig, TaskLayout, TwoSequenceModel
from .pairs import SequencePairs, split_disjoint

__all__ = ["SortingConfig", "build_model", "generate", "layout", "make_orderings", "sort_labels"]


@dataclass
class SortingConfig:
    """The sorting task.

    Attributes:
        length: Target length L.
        vocab_size: Alphabet size V (the ordering has length V; V <= L).
        num_orderings: Pool size K of fixed permutations.
        num_train: Training pairs.
        num_test: Test pairs, disjoint from the training pairs.
    """

    length: int = 10
    vocab_size: int = 10
    num_orderings: int = 5
    num_train: int = 1000
    num_test: int = 200


def make_orderings(config: SortingConfig, *, generator: torch.Generator) -> Tensor:
    """``num_orderings`` distinct random permutations; row k lists the symbols from first to last.

    Shapes:
        -> (K, V) long
    """
    orderings: list[list[int]] = []
    while len(orderings) < config.num_orderings:
        perm = torch.randperm(config.vocab_size, generator=generator).tolist()
        if perm not in orderings:
            orderings.append(perm)
    return torch.tensor(orderings)


def sort_labels(target: Tensor, ordering: Tensor) -> Tensor:
    """Index of every target token in the stable sort of the target by ``ordering``.

    ``ordering[n, k]`` is the symbol of rank k, so a symbol's rank is its position in the ordering.

    Shapes:
        target (N, L) long, ordering (N, V) long -> (N, L) long
    """
    ranks = ordering.argsort(dim=1)  # (N, V): ranks[n, s] = rank of symbol s
    keys = ranks.gather(1, target)  # (N, L)
    order = keys.argsort(dim=1, stable=True)  # (N, L): order[n, p] = token at sorted place p
    places = torch.arange(target.shape[1]).expand_as(target)  # (N, L)
    return torch.empty_like(target).scatter_(1, order, places)  # (N, L)


def generate(
    config: SortingConfig, *, generator: torch.Generator
) -> tuple[SequencePairs, SequencePairs]:
    """Disjoint training and test pairs (conditioning = ordering, content = target)."""
    if config.vocab_size > config.length:
        raise ValueError(
            f"the ordering (length {config.vocab_size}) must not be longer than the target "
            f"(length {config.length})"
        )
    pool = make_orderings(config, generator=generator)  # (K, V)
    count = 2 * (config.num_train + config.num_test)
    target = torch.randint(config.vocab_size, (count, config.length), generator=generator)
    choice = torch.randint(config.num_orderings, (count,), generator=generator)
    ordering = pool[choice]  # (count, V)
    pairs = SequencePairs(ordering, target, sort_labels(target, ordering))
    train, test = split_disjoint(pairs, config.num_train, config.num_test)
    return train, test


def layout(config: SortingConfig) -> TaskLayout:
    """One class per target slot: its sorted index (readout ``slot``, cross queries = target)."""
    return TaskLayout(
        conditioning_vocab=config.vocab_size,
        conditioning_len=config.vocab_size,
        content_vocab=config.vocab_size,
        content_len=config.length,
        num_classes=config.length,
        readout="slot",
        cross_queries="content",
    )


def build_model(
    kind: str, config: SortingConfig, model: ModelConfig | None = None
) -> TwoSequenceModel:
    """A :class:`TwoSequenceModel` of ``kind`` for this task."""
    return TwoSequenceModel(kind, layout(config), model or ModelConfig())
