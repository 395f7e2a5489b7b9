"""Explicit generators and isolated global seeding."""

import pytest
import torch

from indirect_attention.training import isolated_rng, make_generator, seed_everything


def test_make_generator_is_deterministic():
    a = torch.rand(3, generator=make_generator(7))
    assert torch.equal(a, torch.rand(3, generator=make_generator(7)))
    assert not torch.equal(a, torch.rand(3, generator=make_generator(8)))
    with pytest.raises(ValueError):
        make_generator(-1)


def test_isolated_rng_repeats_and_restores_global_state():
    seed_everything(123)
    expected_next = torch.rand(2)
    seed_everything(123)
    with isolated_rng(5):
        first = torch.nn.Linear(3, 3).weight.clone()
    with isolated_rng(5):
        second = torch.nn.Linear(3, 3).weight.clone()
    assert torch.equal(first, second)
    assert torch.equal(torch.rand(2), expected_next)
