"""Marked lookup: one marker per conditioning sequence, the label is the offset payload."""

import pytest
import torch

from indirect_attention.tasks import lookup
from indirect_attention.training import make_generator


@pytest.mark.parametrize("offset", [0, 3])
def test_label_is_the_payload_after_the_marker(offset):
    config = lookup.LookupConfig(offset=offset, num_train=200, num_test=50)
    train, test = lookup.generate(config, generator=make_generator(0))
    for pairs in (train, test):
        for marks, payload, label in zip(
            pairs.conditioning.tolist(), pairs.content.tolist(), pairs.labels.tolist(), strict=True
        ):
            assert marks.count(config.vocab_size) == 1
            position = marks.index(config.vocab_size)
            assert label == payload[(position + offset) % config.length]


def test_cross_queries_flag_swaps_the_query_sequence():
    from indirect_attention.tasks import ModelConfig
    from indirect_attention.training import isolated_rng

    tiny = ModelConfig(dim=16, num_heads=2, num_layers=1, ffn_dim=32, dropout=0.0)
    outputs = {}
    for cross_queries in ("conditioning", "content"):
        config = lookup.LookupConfig(num_train=20, num_test=10, cross_queries=cross_queries)
        train, _ = lookup.generate(config, generator=make_generator(0))
        with isolated_rng(0):
            model = lookup.build_model("cross", config, tiny).eval()
        states = model.decode(train.conditioning[:2], train.content[:2]).outputs[-1]
        cond, cont = model._embed(train.conditioning[:2], train.content[:2])
        queries, memory = (cond, cont) if cross_queries == "conditioning" else (cont, cond)
        expected = model.decoder(queries, memory, memory).outputs[-1]
        outputs[cross_queries] = (states, expected)
    for states, expected in outputs.values():
        assert torch.allclose(states, expected)
    # the same weights on swapped roles give different states, so the flag is not ignored
    assert not torch.allclose(outputs["conditioning"][0], outputs["content"][0])
