"""Retrieval task: the label's start holds the query, leftmost occurrence, disjoint splits."""

import torch

from indirect_attention.tasks import retrieval
from indirect_attention.training import make_generator

CONFIG = retrieval.RetrievalConfig(num_train=300, num_test=100)


def test_label_start_holds_the_query_and_is_leftmost():
    train, test = retrieval.generate(CONFIG, generator=make_generator(0))
    repeated = 0
    for pairs in (train, test):
        for query, reference, start in zip(
            pairs.conditioning.tolist(), pairs.content.tolist(), pairs.labels.tolist(), strict=True
        ):
            assert 0 <= start <= CONFIG.reference_len - CONFIG.query_len
            assert reference[start : start + CONFIG.query_len] == query
            for earlier in range(start):
                assert reference[earlier : earlier + CONFIG.query_len] != query
            windows = range(CONFIG.reference_len - CONFIG.query_len + 1)
            repeated += sum(reference[s : s + CONFIG.query_len] == query for s in windows) > 1
    assert repeated > 0  # the leftmost rule was exercised


def test_first_occurrence_hand_examples():
    query = torch.tensor([[1, 2], [3, 3], [7, 7]])
    reference = torch.tensor([[0, 1, 2, 1, 2], [3, 3, 3, 0, 0], [1, 2, 3, 4, 5]])
    assert retrieval.first_occurrence(query, reference).tolist() == [1, 0, -1]


def test_starts_cover_every_position():
    train, _ = retrieval.generate(CONFIG, generator=make_generator(3))
    counts = torch.bincount(train.labels, minlength=CONFIG.reference_len)
    assert (counts[: CONFIG.reference_len - CONFIG.query_len + 1] > 0).all()


def test_train_and_test_pairs_are_disjoint():
    train, test = retrieval.generate(CONFIG, generator=make_generator(0))
    assert len(rows(train)) == CONFIG.num_train and len(rows(test)) == CONFIG.num_test
    assert not rows(train) & rows(test)


def rows(pairs):
    """The set of (conditioning, content) rows of a split."""
    return {tuple(r) for r in torch.cat([pairs.conditioning, pairs.content], 1).tolist()}
