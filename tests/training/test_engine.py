"""The task-agnostic training epoch (training/engine.py): the same weights as a hand-written
loop, the learning-rate schedule per step, and non-finite steps skipped and counted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from indirect_attention.training.engine import EpochState, train_one_epoch


def _batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        (torch.randn(4, 3, generator=generator), torch.randn(4, 1, generator=generator))
        for _ in range(count)
    ]


def _forward(model: nn.Module, batch):
    return model(batch[0])


def _loss(output, batch) -> dict[str, torch.Tensor]:
    error = ((output - batch[1]) ** 2).mean()
    return {"loss": 2.0 * error, "mse": error.detach()}


def _epoch(model: nn.Module, batches, state: EpochState, *, clip: float | None, **kwargs):
    """``train_one_epoch`` with SGD (lr 0.1), fp32 on the CPU."""
    return train_one_epoch(
        model,
        kwargs.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=0.1),
        torch.amp.GradScaler("cpu", enabled=False),
        batches,
        state,
        forward=_forward,
        loss=_loss,
        clip=clip,
        precision="32",
        device=torch.device("cpu"),
        **kwargs,
    )


def test_one_epoch_equals_a_plain_loop_with_the_schedule() -> None:
    torch.manual_seed(0)
    model, reference = nn.Linear(3, 1), nn.Linear(3, 1)
    reference.load_state_dict(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plain = torch.optim.SGD(reference.parameters(), lr=0.1)
    factor = lambda step, epoch: 1.0 / (step + 1)  # noqa: E731
    state = _epoch(
        model,
        _batches(3),
        EpochState(epoch=0, step=0),
        clip=None,
        optimizer=optimizer,
        lr_factor=factor,
        base_lrs=[0.1],
    )
    losses = []
    for step, (x, y) in enumerate(_batches(3)):
        plain.param_groups[0]["lr"] = 0.1 * factor(step, 0)
        loss = 2.0 * ((reference(x) - y) ** 2).mean()
        losses.append(loss.item() / 2.0)
        plain.zero_grad()
        loss.backward()
        plain.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert (state.step, state.batch, state.count, state.skipped) == (3, 3, 3, 0)
    assert state.means()["mse"] == pytest.approx(sum(losses) / 3)


def test_a_non_finite_loss_skips_the_step() -> None:
    model = nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    batches = _batches(2)
    batches[1] = (batches[1][0], torch.full((4, 1), float("nan")))
    state = _epoch(model, batches[1:], EpochState(epoch=0, step=5, skipped=1), clip=1.0)
    assert (state.step, state.count, state.skipped, state.sums) == (6, 0, 2, {})
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before, strict=True))


def test_lr_factor_needs_one_base_rate_per_group() -> None:
    model = nn.Linear(3, 1)
    with pytest.raises(ValueError, match="one base learning rate per parameter group"):
        _epoch(model, [], EpochState(epoch=0, step=0), clip=1.0, lr_factor=lambda s, e: 1.0)


def test_progress_round_trips_through_a_checkpoint(tmp_path) -> None:
    from indirect_attention.training.engine import load_progress, save_progress

    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = EpochState(epoch=2, step=9, batch=3, sums={"loss": 1.5}, count=2, skipped=1)
    generator = torch.Generator().manual_seed(4)
    save_progress(
        tmp_path / "mid.pt", model, optimizer, scaler, state, minutes=1.5, generator=generator
    )
    save_progress(tmp_path / "end.pt", model, optimizer, scaler, state, minutes=2.0)
    loaded, minutes, order = load_progress(tmp_path / "mid.pt", model, optimizer, scaler)
    assert (loaded, minutes) == (state, 1.5)
    assert order is not None and torch.equal(order, generator.get_state())
    loaded, minutes, order = load_progress(tmp_path / "end.pt", model, optimizer, scaler)
    assert (loaded, minutes, order) == (EpochState(epoch=3, step=9, skipped=1), 2.0, None)
