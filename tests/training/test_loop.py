"""The task-agnostic loop: minibatches cover the data, the engine trains on them, evaluation restores
mode."""

import pytest
import torch
from torch import nn

from indirect_attention.training import (
    build_adamw,
    classification_step,
    evaluate,
    iterate_minibatches,
    make_generator,
    take,
)


def test_minibatches_cover_every_item_once():
    batches = list(iterate_minibatches(10, 4, generator=make_generator(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    again = list(iterate_minibatches(10, 4, generator=make_generator(0)))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    assert torch.cat(list(iterate_minibatches(5, 2, shuffle=False))).tolist() == [0, 1, 2, 3, 4]


def test_classification_step_counts():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [3.0, 0.0]]])  # (2, 2, 2)
    labels = torch.tensor([[0, 1], [1, 0]])
    loss, correct, count = classification_step(logits, labels)
    assert int(correct) == 3 and count == 4
    assert torch.isclose(loss, nn.functional.cross_entropy(logits.reshape(4, 2), labels.reshape(4)))
    with pytest.raises(ValueError, match="must match"):
        classification_step(logits, labels[:, :1])


def test_engine_learns_a_linear_problem_on_these_minibatches_and_evaluate_keeps_mode():
    from indirect_attention.training.engine import EpochState, train_one_epoch
    from indirect_attention.training.precision import grad_scaler

    gen = make_generator(0)
    x = torch.randn(256, 4, generator=gen)
    data = {"x": x, "y": (x[:, 0] > 0).long()}
    torch.manual_seed(0)
    model = nn.Linear(4, 2)

    def step(m, batch):
        return classification_step(m(batch["x"]), batch["y"])

    optimizer = build_adamw(model, lr=0.05, weight_decay=0.0)
    first = evaluate(model, data, step)
    state = EpochState(epoch=0, step=0)
    for _ in range(20):
        order = iterate_minibatches(256, 32, generator=gen)
        train_one_epoch(
            model,
            optimizer,
            grad_scaler("32", "cpu"),
            (take(data, index) for index in order),
            state,
            forward=lambda m, batch: m(batch["x"]),
            loss=lambda logits, batch: {"loss": nn.functional.cross_entropy(logits, batch["y"])},
            clip=1.0,
            precision="32",
            device=torch.device("cpu"),
        )
    assert state.step == 20 * 8  # every minibatch of every pass
    model.train()
    final = evaluate(model, data, step)
    assert model.training
    assert final.loss < first.loss and final.accuracy > 0.95
