"""Data-parallel helpers: environment parsing, shards, and (2 Gloo processes on the CPU) the
collectives and the loss normaliser that make DDP gradients equal one process's."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from indirect_attention.training.distributed import (
    DistributedContext,
    all_ranks_agree,
    average_across_ranks,
    broadcast_object,
    context_from_env,
    init_distributed,
    mean_normaliser,
    shard_bounds,
    shutdown_distributed,
    unwrap_model,
    wrap_model,
)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def join_torchrun_env(rank: int, world_size: int, port: int) -> None:
    """Set what ``torchrun`` would export for this process."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world_size),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )


@pytest.mark.parametrize(("size", "world"), [(16, 2), (5, 2), (7, 3), (1, 4), (0, 2)])
def test_shards_cover_the_batch_once_in_order(size: int, world: int) -> None:
    bounds = [shard_bounds(size, rank=r, world_size=world) for r in range(world)]
    covered = [i for start, stop in bounds for i in range(start, stop)]
    assert covered == list(range(size))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="rank"):
        shard_bounds(size, rank=world, world_size=world)


def test_context_from_env_reads_torchrun_variables() -> None:
    assert context_from_env({}) == DistributedContext(rank=0, world_size=1, local_rank=0)
    context = context_from_env({"WORLD_SIZE": "16", "RANK": "9", "LOCAL_RANK": "1"})
    assert (context.rank, context.world_size, context.local_rank) == (9, 16, 1)
    assert context.is_distributed and not context.is_main
    with pytest.raises(ValueError, match="RANK=4, WORLD_SIZE=2"):
        context_from_env({"WORLD_SIZE": "2", "RANK": "4"})
    with pytest.raises(ValueError, match="integer"):
        context_from_env({"WORLD_SIZE": "two"})


def test_one_process_helpers_are_identities() -> None:
    assert mean_normaliser(0) == 1.0 and mean_normaliser(7) == 7.0
    assert all_ranks_agree(True) and not all_ranks_agree(False)
    values = torch.tensor([1.0, 2.0])
    assert torch.equal(average_across_ranks(values), values)
    assert broadcast_object({"a": 1}) == {"a": 1}
    model = nn.Linear(2, 1)
    assert wrap_model(model, DistributedContext(), torch.device("cpu")) is model
    assert unwrap_model(model) is model


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(5, 3, generator=generator), torch.randn(5, generator=generator)


def _collectives_worker(rank: int, world_size: int, port: int, out: str) -> None:
    join_torchrun_env(rank, world_size, port)
    torch.set_num_threads(1)
    context = init_distributed(device_type="cpu")
    try:
        inputs, targets = _data()
        start, stop = shard_bounds(len(inputs), rank=rank, world_size=world_size)  # 3 and 2 rows
        torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
        model = wrap_model(nn.Linear(3, 1), context, torch.device("cpu"))
        errors = (model(inputs[start:stop])[:, 0] - targets[start:stop]) ** 2
        (errors.sum() / mean_normaliser(stop - start)).backward()
        report = {
            "owns_group": context.owns_group,
            "normaliser": mean_normaliser(3 if rank == 0 else 0),
            "normaliser_empty": mean_normaliser(0),
            "agree_mixed": all_ranks_agree(rank == 0),
            "agree_all": all_ranks_agree(True),
            "average": average_across_ranks(torch.tensor([float(rank), 2.0 * rank])).tolist(),
            "broadcast": broadcast_object({"rank": rank}),
            "weight": unwrap_model(model).weight.tolist(),
            "grad": unwrap_model(model).weight.grad.tolist(),
        }
        Path(out.format(rank=rank)).write_text(json.dumps(report))
    finally:
        shutdown_distributed(context)


def test_two_gloo_processes_agree_and_match_one_process(tmp_path: Path) -> None:
    out = str(tmp_path / "rank{rank}.json")
    mp.spawn(_collectives_worker, args=(2, free_port(), out), nprocs=2)
    reports = [json.loads(Path(out.format(rank=r)).read_text()) for r in range(2)]
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    inputs, targets = _data()
    (((model(inputs)[:, 0] - targets) ** 2).sum() / len(inputs)).backward()
    for report in reports:
        assert report["owns_group"]
        assert report["normaliser"] == 1.5  # max(1, 3 + 0) / 2
        assert report["normaliser_empty"] == 0.5  # max(1, 0) / 2: the one-process floor of 1
        assert report["agree_mixed"] is False and report["agree_all"] is True
        assert report["average"] == [0.5, 1.0]
        assert report["broadcast"] == {"rank": 0}
        assert torch.equal(torch.tensor(report["weight"]), model.weight.detach())
        torch.testing.assert_close(
            torch.tensor(report["grad"]), model.weight.grad, rtol=1e-6, atol=1e-7
        )
