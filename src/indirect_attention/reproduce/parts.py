"""The parts of ``ia reproduce`` that need no detector and no training: core check, theory, benchmarks.

Each part takes the reproduction's config (its sizes in ``config.settings``) and its own run
directory, runs one experiment there (which writes ``config.json``, ``metrics.jsonl`` and
``results.json``) and returns a short summary for ``part.json``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import torch
from torch import nn

from ..bench.attention import VARIANTS as BENCH_VARIANTS
from ..bench.attention import AttentionBenchConfig
from ..bench.attention import run as run_attention_bench
from ..bench.train import TrainBenchConfig
from ..bench.train import run as run_train_bench
from ..core import IndirectAttention, attend, attend_reference
from ..theory import TheoryConfig
from ..theory import run as run_theory
from ..training import RunDir
from .config import ReproduceConfig
from .profiles import ProfileSettings

__all__ = ["bench_attention", "bench_train", "core_check", "theory"]


def _settings(config: ReproduceConfig) -> ProfileSettings:
    if config.settings is None:
        raise ValueError("config.settings is None: run parts through reproduce.run()")
    return config.settings


def core_check(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
    """§5: the fused :func:`attend` against the plain formula, and :class:`IndirectAttention`
    with one source against ``nn.MultiheadAttention`` given the same weights, in float64."""
    generator = torch.Generator().manual_seed(config.seed)
    rows = []
    sizes = [(2, 4, 10, 10, 16), (2, 4, 300, 256, 32)][: _settings(config).core_sizes]
    for batch, heads, num_queries, num_keys, head_dim in sizes:
        shape_q = (batch, heads, num_queries, head_dim)
        shape_k = (batch, heads, num_keys, head_dim)
        q = torch.randn(shape_q, generator=generator, dtype=torch.float64)
        k = torch.randn(shape_k, generator=generator, dtype=torch.float64)
        v = torch.randn(shape_k, generator=generator, dtype=torch.float64)
        bias = torch.randn((batch, heads, num_queries, num_keys), generator=generator).double()
        mask = torch.rand((batch, num_keys), generator=generator) < 0.3
        fused = attend(q, k, v, bias=bias, key_padding_mask=mask)
        plain, _ = attend_reference(q, k, v, bias=bias, key_padding_mask=mask)
        dim = heads * head_dim
        torch.manual_seed(config.seed)
        ours = IndirectAttention(dim, heads).double().eval()
        theirs = nn.MultiheadAttention(dim, heads, batch_first=True).double().eval()
        with torch.no_grad():
            theirs.in_proj_weight.copy_(
                torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight])
            )
            theirs.in_proj_bias.copy_(
                torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias])
            )
            theirs.out_proj.weight.copy_(ours.out_proj.weight)
            theirs.out_proj.bias.copy_(ours.out_proj.bias)
            x = torch.randn((batch, num_queries, dim), generator=generator, dtype=torch.float64)
            src = torch.randn((batch, num_keys, dim), generator=generator, dtype=torch.float64)
            mha_diff = (ours(x, src, src) - theirs(x, src, src, need_weights=False)[0]).abs().max()
        row = {
            "batch": batch,
            "heads": heads,
            "num_queries": num_queries,
            "num_keys": num_keys,
            "head_dim": head_dim,
            "attend_vs_formula_max_abs": float((fused - plain).abs().max()),
            "indirect_vs_multihead_max_abs": float(mha_diff),
        }
        run_dir.log_metrics(row)
        rows.append(row)
    worst = max(
        max(r["attend_vs_formula_max_abs"], r["indirect_vs_multihead_max_abs"]) for r in rows
    )
    results = {"checks": rows, "worst_max_abs": worst, "passed": worst < 1e-10}
    run_dir.write_config({"part": "core_check", "seed": config.seed, "sizes": sizes})
    run_dir.write_results(results)
    return {"worst_max_abs": worst, "passed": results["passed"]}


def theory(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
    """§3-4, Figure 1: the closed forms against float64 Monte Carlo, with the theory's verdicts."""
    settings = _settings(config)
    base = TheoryConfig(out=str(run_dir.root), quick=settings.theory_quick, seed=config.seed)
    results = run_theory(replace(base, **settings.theory))
    return {"verdicts": {name: v["verdict"] for name, v in results["verdicts"].items()}}


def bench_attention(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
    """§6.2: box bias + indirect attention, ours against the authors' formulation and SDPA."""
    settings = _settings(config)
    results = run_attention_bench(
        AttentionBenchConfig(
            out=str(run_dir.root),
            sizes=list(settings.bench_sizes),
            queries=list(settings.bench_queries),
            repeats=settings.bench_repeats,
            seed=config.seed,
            variants=list(settings.bench_variants or BENCH_VARIANTS),
        )
    )
    train = [r for r in results["rows"] if r["mode"] == "train"]
    return {
        "equal": all(check["passed"] for check in results["equality"].values()),
        "train_ms": {
            f"S={r['size']},Q={r['queries']},{r['variant']}": r["median_ms"] for r in train
        },
    }


def bench_train(config: ReproduceConfig, run_dir: RunDir) -> dict[str, Any]:
    """§6.2, Figure 6: training-step time of the IA decoder against double cross-attention."""
    settings = _settings(config)
    base = TrainBenchConfig(out=str(run_dir.root), seed=config.seed)
    results = run_train_bench(replace(base, **settings.bench_train))
    ratios = {
        f"{r['part']}:{r.get('task', r.get('setting', ''))}:{r['model']}": next(
            (r[key] for key in ("vs_cross", "vs_double_cross", "vs_authors") if key in r), None
        )
        for r in results["rows"]
    }
    return {"ratios": ratios, "config": asdict(replace(base, **settings.bench_train))}
