"""AdamW groups and the warm-up + cosine schedule."""

import itertools
import math

import pytest
from torch import nn

from indirect_attention.training import (
    build_adamw,
    param_groups,
    warmup_cosine_factor,
)


def test_norms_and_biases_are_not_decayed():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Embedding(5, 4))
    decay, rest = param_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert len(rest["params"]) == 3  # linear bias, norm weight, norm bias
    with pytest.raises(ValueError):
        build_adamw(model, lr=0.0)


def test_schedule_warms_up_then_decays_to_min():
    f = lambda step: warmup_cosine_factor(step, warmup_steps=4, total_steps=20, min_ratio=0.1)  # noqa: E731
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0)
    assert f(12) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(20) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)
    values = [f(s) for s in range(4, 21)]
    assert all(a >= b for a, b in itertools.pairwise(values))
