"""The custom operators: PyTorch's operator checks, equality of their two paths, failure statuses,
and the box bias + indirect attention under torch.compile, torch.export and torch.jit.trace."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import Tensor, nn

from indirect_attention.core import GridBias, IndirectAttention, RelativePositionBias, native
from indirect_attention.core.grid_attention_op import grid_attention_op
from indirect_attention.core.grid_mlp import grid_mlp_op

needs_compiler = pytest.mark.skipif(
    native._compiler() is None, reason="no C++ compiler on this machine: the PyTorch path runs"
)


def attention_arguments(generator, *, masked: bool) -> tuple:
    def draw(*shape, scale=1.0):
        tensor = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
        return tensor.requires_grad_(True)

    batch, heads, queries, height, width = 2, 2, 7, 3, 4
    mask = None
    if masked:
        mask = torch.zeros(batch, height * width, dtype=torch.float64)
        mask[0, [1, 5]] = float("-inf")
    return (
        draw(batch, heads, queries, 4),
        draw(batch, heads, height * width, 4),
        draw(batch, heads, height * width, 6),
        draw(batch, heads, queries, height, scale=5.0),
        draw(batch, heads, queries, width, scale=5.0),
        mask,
        3,  # chunk
    )


def mlp_arguments(generator, *, log_offsets: bool) -> tuple:
    def draw(*shape):
        return torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_(True)

    grid = torch.linspace(-1, 1, 5, dtype=torch.float64)
    scale, log_base = (4.0, 2.0) if log_offsets else (2.0, 0.0)
    return (draw(9, 2), grid, draw(16, 2), draw(16), draw(4, 16), scale, log_base, 4)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_grid_attention_passes_opcheck(generator, compiled, masked):
    arguments = (*attention_arguments(generator, masked=masked), compiled)
    torch.library.opcheck(grid_attention_op, arguments)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("log_offsets", [False, True])
def test_grid_mlp_passes_opcheck(generator, compiled, log_offsets):
    arguments = (*mlp_arguments(generator, log_offsets=log_offsets), compiled)
    torch.library.opcheck(grid_mlp_op, arguments)


def _values_and_grads(op, arguments: tuple, leaves: list[Tensor], generator) -> list[Tensor]:
    out = op(*arguments)
    first = out[0] if isinstance(out, tuple) else out  # grid attention: (out, lse)
    cotangent = torch.randn(first.shape, generator=generator, dtype=first.dtype)
    return [first, *torch.autograd.grad((first * cotangent).sum(), leaves)]


@needs_compiler
@pytest.mark.parametrize("masked", [False, True])
def test_compiled_attention_op_equals_its_pytorch_path_in_float64(generator, calls, masked):
    arguments = attention_arguments(generator, masked=masked)
    leaves = list(arguments[:5])
    seed = torch.Generator().manual_seed(1)
    mine = _values_and_grads(grid_attention_op, (*arguments, True), leaves, seed)
    assert set(calls) == {"attention_forward", "attention_backward"}
    seed = torch.Generator().manual_seed(1)
    reference = _values_and_grads(grid_attention_op, (*arguments, False), leaves, seed)
    for name, a, b in zip(["out", "q", "k", "v", "rows", "cols"], mine, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)


@needs_compiler
@pytest.mark.parametrize("log_offsets", [False, True])
def test_compiled_mlp_op_equals_its_pytorch_path_in_float64(generator, calls, log_offsets):
    arguments = mlp_arguments(generator, log_offsets=log_offsets)
    leaves = [arguments[0], *arguments[2:5]]
    seed = torch.Generator().manual_seed(1)
    mine = _values_and_grads(grid_mlp_op, (*arguments, True), leaves, seed)
    assert calls == ["mlp_forward", "mlp_backward"]
    seed = torch.Generator().manual_seed(1)
    reference = _values_and_grads(grid_mlp_op, (*arguments, False), leaves, seed)
    for name, a, b in zip(["out", "anchors", "w1", "b1", "w2"], mine, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)


@needs_compiler
def test_a_failing_kernel_raises_a_clear_error():
    """Three outputs are not among the compiled sizes: the kernel's status 1 is an error."""
    library = native.kernels(torch.zeros(1))
    anchors, grid, out = torch.zeros(2, 2), torch.zeros(3), torch.zeros(2, 3, 3)
    w1, b1, w2 = torch.zeros(16, 2), torch.zeros(16), torch.zeros(3, 16)
    assert not native.mlp_covers(library, torch.float32, inputs=2, hidden=16, outputs=3)
    with pytest.raises(RuntimeError, match=r"ia_mlp_forward_f32 failed with status 1"):
        native.call(library, "mlp_forward", torch.float32,
                    anchors, 2, 2, grid, 3, w1, b1, w2, 16, 3, 1.0, 0.0, out)  # fmt: skip


@needs_compiler
def test_kernel_arguments_are_checked_before_the_call():
    library = native.kernels(torch.zeros(1))
    strided = torch.zeros(4, 4).t()
    with pytest.raises(ValueError, match=r"contiguous CPU torch\.float32"):
        native.call(library, "softmax_backward", torch.float32, strided, strided, strided,
                    1, 1, 1, 1, 0, 4, 4, strided, strided)  # fmt: skip
    with pytest.raises(ValueError, match=r"contiguous CPU torch\.float32"):
        native.call(library, "mlp_covers", torch.float32, torch.zeros(2, dtype=torch.float64))


class BoxBiasAttention(nn.Module):
    """Indirect attention with a box bias made of two interval biases (the detector's BoxRPB)."""

    def __init__(self, *, dim: int = 32, num_heads: int = 4, hidden_dim: int = 16) -> None:
        super().__init__()
        settings = {"reference_size": 2, "hidden_dim": hidden_dim, "offset_scale": 1.0,
                    "log_offsets": False, "output_bias": False}  # fmt: skip
        self.x_bias = RelativePositionBias(num_heads, **settings)
        self.y_bias = RelativePositionBias(num_heads, **settings)
        self.attention = IndirectAttention(dim, num_heads)

    def forward(
        self, queries: Tensor, key_source: Tensor, value_source: Tensor, boxes: Tensor
    ) -> Tensor:
        side = 6
        positions = (torch.arange(side, dtype=boxes.dtype) + 0.5) / side  # (S,)
        bias = GridBias(
            rows=self.y_bias(boxes[..., 1::2], positions),  # (B, H, Q, S)
            cols=self.x_bias(boxes[..., 0::2], positions),  # (B, H, Q, S)
        )
        return self.attention(queries, key_source, value_source, bias=bias)  # (B, Q, D)


def box_bias_inputs(generator) -> tuple[Tensor, ...]:
    return (
        torch.randn(2, 10, 32, generator=generator),
        torch.randn(2, 36, 32, generator=generator),
        torch.randn(2, 36, 32, generator=generator),
        torch.rand(2, 10, 4, generator=generator),
    )


def _outputs_and_grads(model: nn.Module, function, inputs) -> list[Tensor]:
    model.zero_grad()
    out = function(*inputs)
    out.square().sum().backward()
    return [out.detach(), *(p.grad.clone() for p in model.parameters())]


def test_box_bias_attention_has_no_graph_break(generator, path):
    torch.manual_seed(0)
    model = BoxBiasAttention()
    inputs = box_bias_inputs(generator)
    explanation = torch._dynamo.explain(model)(*inputs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    # fullgraph refuses any break; aot_eager runs the fake kernels and the registered autograd
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    expected = _outputs_and_grads(model, model, inputs)
    got = _outputs_and_grads(model, compiled, inputs)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
    torch._dynamo.reset()


def test_box_bias_attention_exports(generator):
    torch.manual_seed(0)
    model = BoxBiasAttention()
    inputs = box_bias_inputs(generator)
    program = torch.export.export(model, inputs)
    targets = {str(node.target) for node in program.graph.nodes}
    assert {"indirect_attention.grid_mlp.default", "indirect_attention.grid_attention.default"} <= (
        targets
    )
    torch.testing.assert_close(program.module()(*inputs), model(*inputs))


def test_box_bias_attention_traces(generator):
    torch.manual_seed(0)
    model = BoxBiasAttention()
    inputs = box_bias_inputs(generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit.trace's deprecation and shape-check warnings
        traced = torch.jit.trace(model, inputs)
    assert "indirect_attention::grid_attention" in str(traced.inlined_graph)
    other = box_bias_inputs(generator)
    torch.testing.assert_close(traced(*other), model(*other))
