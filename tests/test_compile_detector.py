"""The whole detector under PyTorch's tracers: torch.compile sees no graph break in it (the compiled
loops are custom operators, the padding masks are always passed), torch.export exports its forward,
and torch.jit.trace works instead of crashing."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import Tensor, nn

from indirect_attention.detection.decoder import DetrDecoder
from indirect_attention.detection.model import IADETR, DetrModelConfig

TINY = {
    "dim": 32,
    "num_heads": 2,
    "num_layers": 2,
    "ffn_dim": 64,
    "num_queries": 5,
    "bias_hidden": 16,
}


class _Predictions(nn.Module):
    """The detector's logits and boxes as a plain tuple (what the tracers take)."""

    def __init__(self, model: IADETR) -> None:
        super().__init__()
        self.model = model

    def forward(self, targets: Tensor, queries: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(targets, queries)
        return out.logits, out.boxes  # (Ly, B, Q), (Ly, B, Q, 4)


def _detector_and_inputs(**config) -> tuple[IADETR, tuple[Tensor, Tensor]]:
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(**{"kind": "ia", "query_mode": "pad", **TINY, **config}))
    return model, (torch.rand(2, 3, 64, 64), torch.rand(2, 3, 24, 24))


VARIANTS = [
    {},
    {"query_mode": "pad-features"},
    {"kind": "misaligned"},
    {"kind": "double-cross", "fused_bias": True},
    {"object_queries": "anchors", "num_queries": 4},
]


@pytest.mark.parametrize("config", VARIANTS)
def test_the_detector_compiles_without_a_graph_break(config):
    model, inputs = _detector_and_inputs(**config)
    explanation = torch._dynamo.explain(model)(*inputs)
    torch._dynamo.reset()
    reasons = [(r.reason, r.user_stack[-1:]) for r in explanation.break_reasons]
    assert explanation.graph_break_count == 0, reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("config", VARIANTS)
def test_the_exported_detector_gives_the_eager_outputs(config):
    model, inputs = _detector_and_inputs(**config)
    wrapped = _Predictions(model.eval())
    exported = torch.export.export(wrapped, inputs)
    targets = [str(node.target) for node in exported.graph.nodes]
    if config.get("kind", "ia") == "ia":
        assert "indirect_attention.grid_attention.default" in targets
    other = (torch.rand(2, 3, 64, 64), torch.rand(2, 3, 24, 24))  # not the inputs it was traced on
    for args in (inputs, other):
        with torch.no_grad():
            mine, theirs = exported.module()(*args), wrapped(*args)
        for a, b in zip(mine, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


class _DropEmptyMasks(nn.Module):
    """The detector's former call: a mask with no True entry was replaced by None."""

    def __init__(self, decoder: DetrDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, *args, **masks):
        masks = {name: m if m is not None and m.any() else None for name, m in masks.items()}
        return self.decoder(*args, **masks)


@pytest.mark.parametrize("kind", ["ia", "misaligned", "double-cross"])
def test_an_all_false_mask_gives_what_no_mask_gave(kind):
    """Always passing the masks (no data-dependent branch) leaves outputs and gradients as they
    were when empty masks were dropped; here every mask is empty (no target padding, the query
    fills the target)."""
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(kind=kind, query_mode="pad", **TINY))
    targets, queries = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    results = []
    for decoder in (model.decoder, _DropEmptyMasks(model.decoder)):
        model.decoder = decoder
        out = model(targets, queries)
        assert not out.key_padding_mask.any()
        model.zero_grad()
        (out.logits.sum() + out.boxes.square().sum()).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((out.logits.detach(), out.boxes.detach(), grads))
        model.decoder = decoder.decoder if isinstance(decoder, _DropEmptyMasks) else decoder
    (logits, boxes, grads), (old_logits, old_boxes, old_grads) = results
    torch.testing.assert_close(logits, old_logits, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(boxes, old_boxes, rtol=1e-6, atol=1e-6)
    assert len(grads) == len(old_grads) > 0
    for mine, theirs in zip(grads, old_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_the_detector_traces_with_the_compiled_loops():
    model, inputs = _detector_and_inputs()
    wrapped = _Predictions(model.eval())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit.trace's deprecation and shape-check warnings
        traced = torch.jit.trace(wrapped, inputs)
    graph = str(traced.inlined_graph)
    assert "indirect_attention::grid_attention" in graph
    assert "indirect_attention::grid_mlp" in graph
    for mine, theirs in zip(traced(*inputs), wrapped(*inputs), strict=True):
        torch.testing.assert_close(mine, theirs)
