"""Sorting task: generator invariants, disjoint splits, determinism."""

import torch

from indirect_attention.tasks import sorting
from indirect_attention.training import make_generator

CONFIG = sorting.SortingConfig(num_train=300, num_test=100)


def _data(seed: int = 0):
    return sorting.generate(CONFIG, generator=make_generator(seed))


def test_labels_sort_the_target_by_the_ordering():
    train, _ = _data()
    for ordering, target, labels in zip(
        train.conditioning, train.content, train.labels, strict=True
    ):
        assert sorted(labels.tolist()) == list(range(CONFIG.length))
        rank = {symbol: place for place, symbol in enumerate(ordering.tolist())}
        by_label = [0] * CONFIG.length
        for token, label in zip(target.tolist(), labels.tolist(), strict=True):
            by_label[label] = token
        ranks = [rank[token] for token in by_label]
        assert ranks == sorted(ranks)


def test_ties_keep_their_order():
    train, _ = _data()
    ties = 0
    for target, labels in zip(train.content.tolist(), train.labels.tolist(), strict=True):
        for i in range(len(target)):
            for j in range(i + 1, len(target)):
                if target[i] == target[j]:
                    ties += 1
                    assert labels[i] < labels[j]
    assert ties > 0


def test_sort_labels_on_a_hand_example():
    ordering = torch.tensor([[2, 0, 1]])
    target = torch.tensor([[0, 1, 2, 0]])
    # ranks: 2 -> 0, 0 -> 1, 1 -> 2; sorted: 2, 0 (i=0), 0 (i=3), 1
    assert sorting.sort_labels(target, ordering).tolist() == [[1, 3, 0, 2]]


def test_pool_of_distinct_permutations():
    train, test = _data()
    pool = {tuple(row) for row in torch.cat([train.conditioning, test.conditioning]).tolist()}
    assert len(pool) == CONFIG.num_orderings
    for ordering in pool:
        assert sorted(ordering) == list(range(CONFIG.vocab_size))


def test_train_and_test_pairs_are_disjoint_and_sized():
    train, test = _data()
    assert len(train) == CONFIG.num_train and len(test) == CONFIG.num_test
    assert len(rows(train)) == CONFIG.num_train
    assert not rows(train) & rows(test)


def test_seeded_and_deterministic():
    a, _ = _data(1)
    b, _ = _data(1)
    c, _ = _data(2)
    assert torch.equal(a.content, b.content) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.content, c.content)


def rows(pairs):
    """The set of (conditioning, content) rows of a split."""
    return {tuple(r) for r in torch.cat([pairs.conditioning, pairs.content], 1).tolist()}
