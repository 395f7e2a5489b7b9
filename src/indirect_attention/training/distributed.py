"""Data-parallel training across processes and machines (``torchrun`` + DistributedDataParallel).

``torchrun`` starts one process per device and sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``
(and the rendezvous address). :func:`init_distributed` reads them; without them (a plain
``python``/``ia`` call) everything here is a no-op for a world of one process, so training code
calls these helpers unconditionally.

The recipe that keeps a run of W processes equal to a run of one:

* every rank walks the *same* seeded order of global batches and takes its slice of each
  (:func:`shard_bounds`), so the global batch is the one-process batch;
* a loss summed over items is divided by :func:`mean_normaliser` (the global item count divided by
  W), because DDP averages gradients over ranks: ``mean_r(sum_r / (N / W)) = sum / N``;
* decisions that change the control flow (skip a step) are taken together (:func:`all_ranks_agree`)
  so that no rank waits in a collective the others never enter.

Example:
    >>> context = init_distributed(device_type="cpu")  # rank 0 of 1 without torchrun
    >>> start, stop = shard_bounds(16, rank=context.rank, world_size=context.world_size)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistributedContext",
    "all_ranks_agree",
    "average_across_ranks",
    "barrier",
    "broadcast_object",
    "context_from_env",
    "init_distributed",
    "local_main_first",
    "mean_normaliser",
    "resolve_device",
    "shard_bounds",
    "shutdown_distributed",
    "unwrap_model",
    "wrap_model",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits among the training processes.

    Attributes:
        rank: Global rank in ``[0, world_size)``.
        world_size: Number of processes.
        local_rank: Rank on this machine (the CUDA device index).
        owns_group: True when :func:`init_distributed` created the process group (and
            :func:`shutdown_distributed` should destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_distributed(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the only process that writes files."""
        return self.rank == 0


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from error


def context_from_env(environ: Mapping[str, str] | None = None) -> DistributedContext:
    """The rank, world size and local rank that ``torchrun`` exported (1 process without them)."""
    environ = os.environ if environ is None else environ
    world_size = _env_int(environ, "WORLD_SIZE", 1)
    rank = _env_int(environ, "RANK", 0)
    local_rank = _env_int(environ, "LOCAL_RANK", rank)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"expected 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0, got RANK={rank}, "
            f"WORLD_SIZE={world_size}, LOCAL_RANK={local_rank}"
        )
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank)


def resolve_device(name: str, context: DistributedContext) -> torch.device:
    """The device of this process: ``auto`` is ``cuda:LOCAL_RANK`` when CUDA exists, else CPU.

    ``cuda`` also means this process's own GPU, ``cuda:LOCAL_RANK``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    return device


def init_distributed(*, device_type: str = "cpu") -> DistributedContext:
    """Join the process group described by the environment (NCCL on CUDA, Gloo on CPU).

    A group that already exists (created by the caller) is used as is. With ``WORLD_SIZE`` unset
    or 1 nothing is initialised.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = _env_int(os.environ, "LOCAL_RANK", rank)
        return DistributedContext(rank=rank, world_size=world, local_rank=local_rank)
    context = context_from_env()
    if not context.is_distributed:
        return context
    if not dist.is_available():
        raise ValueError(f"WORLD_SIZE={context.world_size} but torch.distributed is unavailable")
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size)
    return DistributedContext(
        rank=context.rank,
        world_size=context.world_size,
        local_rank=context.local_rank,
        owns_group=True,
    )


def shutdown_distributed(context: DistributedContext) -> None:
    """Destroy the process group if :func:`init_distributed` created it.

    Every rank first waits for the others: a rank that tears its connections down while a peer
    still finishes its last collective makes gloo abort that peer (SIGABRT). The wait is bounded
    (gloo's monitored barrier, 60 s) so that a rank whose peer died still shuts down.
    """
    if not (context.owns_group and dist.is_initialized()):
        return
    with contextlib.suppress(RuntimeError):
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=60))
        else:
            dist.barrier()
    dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    if _active():
        dist.barrier()


@contextmanager
def local_main_first(context: DistributedContext) -> Iterator[None]:
    """Run the block on local rank 0 first, then on the other ranks (e.g. to fill a disk cache
    once per machine before the others read it)."""
    if context.local_rank != 0:
        barrier()
    yield
    if context.local_rank == 0:
        barrier()


def shard_bounds(size: int, *, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s slice of ``size`` items, as even as possible.

    The first ``size % world_size`` ranks get one item more (``torch.tensor_split``'s rule); a rank
    can get an empty slice when ``size < world_size``.
    """
    if size < 0 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"need size >= 0 and 0 <= rank < world_size, got size={size}, rank={rank}, "
            f"world_size={world_size}"
        )
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def mean_normaliser(local_count: int, *, device: torch.device | str = "cpu") -> float:
    """What a rank divides its summed loss by so that DDP's gradient average equals the
    one-process ``sum / max(1, N)`` over the global batch: ``max(1, N_global) / world_size``.

    For one process this is ``max(1, local_count)``.
    """
    if not _active():
        return float(max(1, local_count))
    total = torch.tensor([float(local_count)], dtype=torch.float64, device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return max(1.0, float(total.item())) / dist.get_world_size()


def all_ranks_agree(flag: bool, *, device: torch.device | str = "cpu") -> bool:
    """True when ``flag`` is True on every rank (a collective: every rank must call it)."""
    if not _active():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def average_across_ranks(values: Tensor) -> Tensor:
    """The element-wise mean of ``values`` over ranks (a collective; a copy for one process).

    Shapes:
        values (K,) -> (K,)
    """
    out = values.detach().clone()
    if _active():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= dist.get_world_size()
    return out


def broadcast_object(value: object, *, source: int = 0) -> object:
    """Rank ``source``'s picklable ``value`` on every rank (``value`` itself for one process)."""
    if not _active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def wrap_model(model: nn.Module, context: DistributedContext, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when several processes train, else ``model``.

    DDP broadcasts rank 0's parameters at construction, so every rank starts from the same weights.
    """
    if not context.is_distributed:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (``model`` itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
