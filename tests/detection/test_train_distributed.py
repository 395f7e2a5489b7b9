"""IA-DETR under DDP: two Gloo processes on the CPU, each training half of every global batch,
end with the weights of one process trained on the same global batches; rank 0 alone writes."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from indirect_attention.detection.model import DetrModelConfig
from indirect_attention.detection.sources import EmojiSource
from indirect_attention.detection.train import DetrTrainConfig, run
from indirect_attention.training import read_jsonl
from indirect_attention.training.records import to_jsonable

TINY = dict(dim=32, num_heads=2, num_layers=2, ffn_dim=64, num_queries=5, bias_hidden=16)


def _gauge(name: str) -> bool:
    """Parameters whose exact gradient is zero, so that AdamW turns round-off (which differs
    between one and two processes) into lr-sized steps: a key bias (softmax is shift-invariant)
    and the bias of a convolution followed by a GroupNorm of one channel per group."""
    return name.endswith("k_proj.bias") or name == "backbone.proj.0.bias"


def _config(tmp_path: Path, name: str) -> DetrTrainConfig:
    """Two epochs of two global batches of four episodes, with query crops."""
    return DetrTrainConfig(
        out=str(tmp_path / name),
        model=DetrModelConfig(**TINY),
        data=EmojiSource(train_episodes=8, scale=0.25, cache_dir=str(tmp_path / "cache")),
        epochs=2,
        batch_size=4,
        eval_every=1,
        eval_episodes=2,
        warmup_steps=2,
        pretrain_steps=0,
        progress=False,
        device="cpu",
    )


def _worker(rank: int, world_size: int, port: int, config: DetrTrainConfig, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world_size),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    result = run(config)
    Path(out.format(rank=rank)).write_text(json.dumps(to_jsonable(result)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_processes_train_like_one_on_the_same_global_batch(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    single = run(_config(tmp_path, "single"))
    returned = str(tmp_path / "returned-{rank}.json")
    mp.spawn(_worker, args=(2, _free_port(), _config(tmp_path, "ddp"), returned), nprocs=2)
    one = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)
    two = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    assert one["model"].keys() == two["model"].keys()
    compared = [key for key in one["model"] if not _gauge(key)]
    assert len(compared) > 0.9 * len(one["model"])
    for key in compared:
        torch.testing.assert_close(two["model"][key], one["model"][key], rtol=1e-4, atol=1e-5)
    for index, state in one["optimizer"]["state"].items():
        torch.testing.assert_close(two["optimizer"]["state"][index]["exp_avg"], state["exp_avg"])
    # the normalised losses of the global batch, averaged over ranks, are the one-process losses
    rows_one = read_jsonl(tmp_path / "single" / "metrics.jsonl")
    rows_two = read_jsonl(tmp_path / "ddp" / "metrics.jsonl")
    assert [row["epoch"] for row in rows_two] == [1, 2]  # rank 1 appended nothing
    for a, b in zip(rows_one, rows_two, strict=True):
        for key in ("loss", "focal", "l1", "giou"):
            assert abs(a[key] - b[key]) <= 1e-4 * abs(a[key]), key
    # rank 0 evaluated every validation episode once; every rank returned its results
    results = [json.loads(Path(returned.format(rank=r)).read_text()) for r in range(2)]
    assert results[0] == results[1]
    assert results[0]["steps"] == single["steps"] == 4
    assert results[0]["episodes"] == single["episodes"] == 2
