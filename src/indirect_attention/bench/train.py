"""``ia bench train``: training-step time of whole models, ratios against the same-run baseline.

- Synthetic tasks (paper §6.1, 6 layers, 4 heads, dim 128, batch 64): ``indirect`` and ``naive``
  against ``cross``, one AdamW step each.
- Detector decoders (paper §6.2), built by the detection package (:class:`DetrDecoder`, the
  decoders the detector trains): six indirect-attention layers with the box bias (BoxRPB, hidden
  512) and per-layer box refinement, against the double cross-attention stack: a fusion block in
  which the target tokens attend to the query image's tokens (the paper: "each of the
  cross-attention blocks consists of 6 cross-attention layers"; ``fusion_layers``), then a six-layer
  cross-attention decoder reads them. The stack with a single fusion layer, as in this project's
  emoji Table 1, is measured too, and so is ``ia-h64``: the IA decoder with the emoji recipe's
  BoxRPB width (64; the smaller bias is ablated for accuracy in ``docs/performance.md``). Dim 256,
  8 heads, Q object queries over an S×S target map.
- ``authors``: the IA decoder the detector trains against the authors' formulation of the same
  decoder (materialised logits + bias, BoxRPB MLPs that store their hidden layer), at the emoji
  recipe's shape and with Q object queries over an ``authors_size``² map (:mod:`.decoder`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..detection.decoder import DetrDecoder
from ..tasks import retrieval, sorting
from ..training import RunDir
from .decoder import settings, time_decoders
from .measure import (
    machine_info,
    peak_memory_mib,
    reset_peak_memory,
    run_in_subprocess,
    time_call,
)

__all__ = ["PARTS", "TrainBenchConfig", "run"]

PARTS = ("synthetic", "detector", "authors")
_BASELINES = {"vs_cross": "cross", "vs_double_cross": "double-cross", "vs_authors": "authors"}


@dataclass
class TrainBenchConfig:
    """Options of ``ia bench train``.

    Attributes:
        out: Run directory.
        batch: Synthetic-task batch size.
        detector_batch: Batch size of the detector decoders.
        queries: Object queries Q of the detector decoders.
        size: Target map side S of the detector decoders (N = S² tokens).
        repeats: Timed steps per model (after one warm-up step).
        threads: Torch threads (0 keeps the default).
        seed: Seed of weights and inputs.
        parts: Which parts to run: ``synthetic``, ``detector``, ``authors``.
        fusion_layers: Layers of the double cross-attention stack's fusion block (paper: 6); the
            ratios are against this stack. A one-layer stack is also measured when this is not 1.
        bias_hidden: BoxRPB hidden width of ``ia`` (authors: 512).
        light_bias_hidden: BoxRPB hidden width of ``ia-h64`` (0: not measured).
        authors_size: Target map side of the ``authors`` part's paper-sized setting.
    """

    out: str = "runs/bench-train"
    batch: int = 64
    detector_batch: int = 2
    queries: int = 300
    size: int = 32
    repeats: int = 5
    threads: int = 0
    seed: int = 0
    parts: list[str] = field(default_factory=lambda: list(PARTS))
    fusion_layers: int = 6
    bias_hidden: int = 512
    light_bias_hidden: int = 64
    authors_size: int = 64


def _step_timer(model: nn.Module, loss_fn: Callable[[], Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    return step


def _synthetic(config: TrainBenchConfig) -> list[dict]:
    rows = []
    generator = torch.Generator().manual_seed(config.seed)
    tasks = (
        ("sort", sorting, sorting.SortingConfig()),
        ("retrieval", retrieval, retrieval.RetrievalConfig()),
    )
    for task_name, module, task_config in tasks:
        layout = module.layout(task_config)
        conditioning = torch.randint(
            layout.conditioning_vocab, (config.batch, layout.conditioning_len), generator=generator
        )
        content = torch.randint(
            layout.content_vocab, (config.batch, layout.content_len), generator=generator
        )
        measured = {}
        for kind in ("cross", "naive", "indirect"):
            torch.manual_seed(config.seed)
            model = module.build_model(kind, task_config).train()

            def loss(
                model: nn.Module = model,
                conditioning: Tensor = conditioning,
                content: Tensor = content,
            ) -> Tensor:
                return model(conditioning, content).float().square().mean()

            measured[kind] = time_call(_step_timer(model, loss), repeats=config.repeats)
            row = {"part": "synthetic", "task": task_name, "model": kind, **measured[kind]}
            row["vs_cross"] = measured[kind]["median_ms"] / measured["cross"]["median_ms"]
            rows.append(row)
    return rows


def _decoder_setting(config: TrainBenchConfig, name: str) -> dict[str, int]:
    """What sets each detector decoder apart: its fusion layers or its BoxRPB width."""
    widths = {"ia": config.bias_hidden, "ia-h64": config.light_bias_hidden}
    if name in widths:
        return {"bias_hidden": widths[name]}
    return {"fusion_layers": 1 if name == "double-cross-1" else config.fusion_layers}


def _detector_model(config: TrainBenchConfig, name: str) -> dict:
    """Step time and peak resident memory of one detector decoder (run alone in its process)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    dim, heads = 256, 8
    generator = torch.Generator().manual_seed(config.seed)
    batch, tokens = config.detector_batch, config.size * config.size
    queries = torch.randn(batch, config.queries, dim, generator=generator)  # (B, Q, D)
    query_tokens = torch.randn(batch, tokens, dim, generator=generator)  # (B, N, D)
    target_tokens = torch.randn(batch, tokens, dim, generator=generator)  # (B, N, D)
    boxes = torch.rand(batch, config.queries, 4, generator=generator) * 0.4 + 0.1  # (B, Q, 4)
    torch.manual_seed(config.seed)
    # The decoders the detector trains (detection/decoder.py): BoxRPB offsets in feature cells
    # (stride 1), DETR's box refinement between layers, six layers, FFN 4 * dim.
    setting = {"bias_hidden": config.bias_hidden, "fusion_layers": 1}
    setting.update(_decoder_setting(config, name))
    model = DetrDecoder(
        "ia" if name.startswith("ia") else "double-cross",
        dim,
        heads,
        6,
        ffn_dim=4 * dim,
        bias_hidden=setting["bias_hidden"],
        stride=1.0,
        fusion_layers=setting["fusion_layers"],
    ).train()
    grid = (config.size, config.size)

    def loss() -> Tensor:
        out = model(queries, query_tokens, target_tokens, boxes, grid)
        return out.outputs.square().mean() + out.references.square().mean()

    parameters = sum(p.numel() for p in model.parameters())
    baseline = reset_peak_memory()  # weights and inputs are not counted
    measured = time_call(_step_timer(model, loss), repeats=config.repeats)
    return {**measured, "peak_mib": peak_memory_mib(baseline), "parameters": parameters}


def _detector(config: TrainBenchConfig) -> list[dict]:
    """The decoders, each in a fresh process so that its peak memory is its own."""
    rows, measured = [], {}
    names = ["double-cross", "ia"]
    if config.fusion_layers != 1:
        names.insert(1, "double-cross-1")
    if config.light_bias_hidden:
        names.append("ia-h64")
    for name in names:
        arguments = [name, json.dumps(asdict(config))]
        measured[name] = run_in_subprocess("indirect_attention.bench.train", arguments)
        row = {"part": "detector", "model": name, "queries": config.queries, "size": config.size}
        row.update(_decoder_setting(config, name))
        row.update(measured[name])
        row["vs_double_cross"] = measured[name]["median_ms"] / measured["double-cross"]["median_ms"]
        row["memory_vs_double_cross"] = measured[name]["peak_mib"] / max(
            measured["double-cross"]["peak_mib"], 1e-9
        )
        rows.append(row)
    return rows


def run(config: TrainBenchConfig) -> dict:
    """Time every model's training step; print and write the ratios."""
    unknown = set(config.parts) - set(PARTS)
    if unknown:
        raise ValueError(f"parts: unknown {sorted(unknown)}; choose from {', '.join(PARTS)}")
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = RunDir(config.out)
    run_dir.write_config(asdict(config))
    rows = []
    if "synthetic" in config.parts:
        rows += _synthetic(config)
    if "detector" in config.parts:
        rows += _detector(config)
    if "authors" in config.parts:
        rows += time_decoders(
            settings(config.queries, config.authors_size, config.detector_batch),
            repeats=config.repeats,
            seed=config.seed,
            threads=config.threads,
        )
    for row in rows:
        run_dir.log_metrics(row)
        label = row.get("task", f"Q={row.get('queries')}, S={row.get('size')}")
        ratio, baseline = next((row[k], name) for k, name in _BASELINES.items() if k in row)
        if "setting" in row:
            label = f"{row['setting']} B={row['batch']}"
        memory = f"  peak +{row['peak_mib']:.0f} MiB" if "peak_mib" in row else ""
        if "equal" in row:
            state = "equal" if row["equal"] else "NOT EQUAL"
            memory += f" ({row['memory_vs_authors']:.2f}×); CPU time {row['median_cpu_ms']:.0f} ms"
            memory += f" ({1 / row['cpu_speedup_vs_authors']:.2f}× authors); {state} in float64"
            memory += f" ({row['equality_max_relative_error']:.1e})"
        print(
            f"{row['part']:<10} {label:<18} {row['model']:<14} {row['median_ms']:>9.1f} ms/step "
            f"{ratio:>6.2f}× {baseline}{memory}"
        )
    results = {
        "machine": machine_info(),
        "rows": rows,
    }
    run_dir.write_results(results)
    return results


if __name__ == "__main__":  # worker of _detector: python -m ... NAME CONFIG_JSON
    _name, _settings = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(_detector_model(TrainBenchConfig(**_settings), _name)))
