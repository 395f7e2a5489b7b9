"""The whole detector under PyTorch's tracers: no graph break comes from the core (its compiled
loops are custom operators), and torch.jit.trace works instead of crashing."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

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


def _detector_and_inputs() -> tuple[IADETR, tuple[Tensor, Tensor]]:
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(kind="ia", query_mode="pad", **TINY))
    return model, (torch.rand(2, 3, 64, 64), torch.rand(2, 3, 24, 24))


def test_no_graph_break_of_the_detector_comes_from_the_core():
    model, inputs = _detector_and_inputs()
    explanation = torch._dynamo.explain(model)(*inputs)
    frames = [r.user_stack[-1].filename for r in explanation.break_reasons if r.user_stack]
    assert len(frames) == explanation.graph_break_count  # every break is located
    assert not [name for name in frames if "indirect_attention/core/" in name]
    torch._dynamo.reset()


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
