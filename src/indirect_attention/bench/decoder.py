"""The IA decoder the detector trains, ours against the authors' formulation (``ia bench train``).

The decoder is the detector's own: :class:`IADETR` is built from a :class:`DetrModelConfig` and its
``.decoder`` taken (BoxRPB per layer, DETR's box refinement, the stride the model config implies).
The authors' formulation is the same decoder, same weights, with each layer's box bias swapped for
:class:`~.authors.AuthorsBoxBias`: the two BoxRPB MLPs evaluated on (B, Q, S, 2) pixel offsets
with their hidden layer stored, a materialised (B, H, Q, N) bias, and attention over materialised
logits + bias. Both get what the detector passes: a (B, N) key padding mask (all False here).
``ia-no-bias`` is the same decoder without the box bias (the ``misaligned`` kind, PyTorch's
fused attention): what the rest of the decoder costs, a floor under both.

Settings (:func:`settings`):

- ``emoji``: the emoji recipe (``DetrTrainConfig()``'s model, batch and input size; BoxRPB 64
  wide); ``emoji-h512`` the same with the authors' 512-wide MLPs;
- ``q<Q>-s<S>``: dim 256, 8 heads, 6 layers, FFN 1024, BoxRPB 512 wide in pixels, Q object
  queries over an S×S map, batch ``detector_batch``.

Before timing, each setting checks that the two compute the same function: outputs, refined boxes
and every parameter's gradient, in float64, on one batch element and at most two layers, to 1e-10
relative (:func:`check_decoder`; a gradient that is zero in exact arithmetic is judged against
the other tensors' scale).

Shapes:
    B batch, H heads, Q object queries, N = S² target tokens, D model dim.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from ..detection.model import IADETR, DetrModelConfig
from ..detection.train import DetrTrainConfig
from .authors import AuthorsBoxBias
from .measure import peak_memory_mib, reset_peak_memory, run_in_subprocess, time_call

__all__ = ["DecoderSetting", "check_decoder", "settings", "time_decoders"]

IMPLEMENTATIONS = ("ours", "authors", "no-bias")
FLOAT64_LIMIT = 1e-10


@dataclass(frozen=True)
class DecoderSetting:
    """One decoder shape: the model config, the target map side and the batch."""

    name: str
    model: DetrModelConfig
    size: int
    batch: int


def settings(queries: int, size: int, batch: int) -> list[DecoderSetting]:
    """The emoji recipe (its BoxRPB width and the authors' 512), then Q queries on an S×S map."""
    recipe = DetrTrainConfig()
    stride = IADETR(recipe.model).backbone.stride
    emoji_size = recipe.data.input_spec().target_size // stride
    paper = DetrModelConfig(
        dim=256,
        num_heads=8,
        num_layers=6,
        ffn_dim=1024,
        num_queries=queries,
        bias_hidden=512,
        bias_unit="pixel",
    )
    return [
        DecoderSetting("emoji", recipe.model, emoji_size, recipe.batch_size),
        DecoderSetting(
            "emoji-h512", replace(recipe.model, bias_hidden=512), emoji_size, recipe.batch_size
        ),
        DecoderSetting(f"q{queries}-s{size}", paper, size, batch),
    ]


def _decoders(model: DetrModelConfig, seed: int) -> tuple[nn.Module, nn.Module]:
    """The detector's decoder and the same one, same weights, with the authors' box bias."""
    torch.manual_seed(seed)
    ours = IADETR(model).decoder
    authors = copy.deepcopy(ours)
    stack = authors.decoder
    stack.biases = nn.ModuleList(AuthorsBoxBias(bias) for bias in stack.biases)
    return ours, authors


def _inputs(setting: DecoderSetting, seed: int, dtype: torch.dtype) -> dict:
    """Random decoder inputs shaped as the detector's (reference boxes shared over the batch)."""
    generator = torch.Generator().manual_seed(seed)
    batch, queries, dim = setting.batch, setting.model.num_queries, setting.model.dim
    tokens = setting.size * setting.size

    def draw(*shape: int) -> Tensor:
        return torch.randn(shape, generator=generator).to(dtype)

    centres = torch.rand(queries, 2, generator=generator) * 0.8 + 0.1
    sides = torch.rand(queries, 2, generator=generator) * 0.45 + 0.05
    boxes = torch.cat([centres, sides], -1).to(dtype).expand(batch, -1, -1)  # (B, Q, 4)
    return {
        "queries": draw(batch, queries, dim),  # (B, Q, D)
        "query_tokens": draw(batch, tokens, dim),  # (B, N, D)
        "target_tokens": draw(batch, tokens, dim),  # (B, N, D)
        "boxes": boxes,
        "grid": (setting.size, setting.size),
        "key_padding_mask": torch.zeros(batch, tokens, dtype=torch.bool),  # (B, N)
    }


def _loss(decoder: nn.Module, inputs: dict) -> Tensor:
    out = decoder(**inputs)
    return out.outputs.square().mean() + out.references.square().mean()


def check_decoder(setting: DecoderSetting, seed: int = 0) -> dict:
    """Ours against the authors' formulation in float64: outputs, boxes, every gradient.

    One batch element and at most two layers keep the authors' dense tensors small.
    """
    small = replace(
        setting, batch=1, model=replace(setting.model, num_layers=min(2, setting.model.num_layers))
    )
    inputs = _inputs(small, seed, torch.float64)
    results = []
    for decoder in _decoders(small.model, seed):
        decoder = decoder.double()
        out = decoder(**inputs)
        loss = out.outputs.square().mean() + out.references.square().mean()
        grads = torch.autograd.grad(loss, list(decoder.parameters()), allow_unused=True)
        grads = [torch.zeros(()) if g is None else g for g in grads]
        results.append([t.detach() for t in (out.outputs, out.references, *grads)])
    # Relative to each tensor's largest entry, or to a millionth of the largest entry of any
    # tensor where that is larger: a gradient that is zero in exact arithmetic (the key
    # projection's bias: softmax ignores a shift shared by all keys) is rounding noise, ~1e-24.
    scale = 1e-6 * max(t.abs().max().item() for t in results[1])
    errors = [
        ((mine - theirs).abs().max() / max(theirs.abs().max().item(), scale)).item()
        for mine, theirs in zip(*results, strict=True)
    ]
    worst = max(errors)
    return {"max_relative_error": worst, "tensors": len(errors), "passed": worst <= FLOAT64_LIMIT}


def _step(setting: DecoderSetting, implementation: str, repeats: int, seed: int) -> dict:
    """Step time and peak resident memory of one implementation (run alone in its process)."""
    if implementation == "no-bias":  # the same decoder without the box bias: a floor for both
        torch.manual_seed(seed)
        decoder = IADETR(replace(setting.model, kind="misaligned")).decoder.train()
    else:
        ours, authors = _decoders(setting.model, seed)
        decoder = (ours if implementation == "ours" else authors).train()
    inputs = _inputs(setting, seed, torch.float32)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        _loss(decoder, inputs).backward()
        optimizer.step()

    baseline = reset_peak_memory()  # weights and inputs are not counted
    measured = time_call(step, repeats=repeats)
    return {**measured, "peak_mib": peak_memory_mib(baseline)}


def time_decoders(
    decoder_settings: list[DecoderSetting], *, repeats: int, seed: int, threads: int
) -> list[dict]:
    """Every setting: the equality check, then each implementation in its own process."""
    rows = []
    for setting in decoder_settings:
        check = check_decoder(setting, seed)
        measured = {}
        for implementation in IMPLEMENTATIONS:
            arguments = [json.dumps(asdict(setting)), implementation, str(repeats), str(seed)]
            arguments.append(str(threads))
            measured[implementation] = run_in_subprocess(
                "indirect_attention.bench.decoder", arguments
            )
        for implementation in IMPLEMENTATIONS:
            row = {
                "part": "authors",
                "setting": setting.name,
                "model": f"ia-{implementation}",
                "queries": setting.model.num_queries,
                "size": setting.size,
                "batch": setting.batch,
                "bias_hidden": setting.model.bias_hidden,
                "equality_max_relative_error": check["max_relative_error"],
                "equal": check["passed"],
                **measured[implementation],
            }
            row["vs_authors"] = row["median_ms"] / measured["authors"]["median_ms"]
            row["speedup_vs_authors"] = measured["authors"]["median_ms"] / row["median_ms"]
            row["cpu_speedup_vs_authors"] = (
                measured["authors"]["median_cpu_ms"] / row["median_cpu_ms"]
            )
            row["memory_vs_authors"] = row["peak_mib"] / max(measured["authors"]["peak_mib"], 1e-9)
            rows.append(row)
    return rows


def _setting_from_json(text: str) -> DecoderSetting:
    fields = json.loads(text)
    fields["model"] = DetrModelConfig(**fields["model"])
    return DecoderSetting(**fields)


if (
    __name__ == "__main__"
):  # worker of time_decoders: SETTING_JSON IMPLEMENTATION REPEATS SEED THREADS
    _threads = int(sys.argv[5])
    if _threads:
        torch.set_num_threads(_threads)
    _result = _step(
        _setting_from_json(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    )
    print(json.dumps(_result))
