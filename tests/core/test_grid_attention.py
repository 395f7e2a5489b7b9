"""Chunked grid-bias attention against attention with the dense bias: outputs and gradients."""

from __future__ import annotations

import warnings

import pytest
import torch

from indirect_attention import attend
from indirect_attention.core import GridBias, attend_reference, native
from indirect_attention.core.grid_attention import _flex_grid_attend, grid_attend
from indirect_attention.core.grid_attention_op import grid_attention_op

OPERATOR_NODE = "GeneratedBackwardFor_indirect_attention_grid_attention"


def tensors(generator, batch=2, heads=2, num_queries=7, height=3, width=4, head_dim=5):
    def draw(*shape):
        return torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_(True)

    keys = height * width
    return (
        draw(batch, heads, num_queries, head_dim),
        draw(batch, heads, keys, head_dim),
        draw(batch, heads, keys, 6),
        draw(batch, heads, num_queries, height),
        draw(1, heads, num_queries, width),  # broadcast over the batch
    )


def _graph_has(tensor, name: str) -> bool:
    """Whether the autograd graph that made ``tensor`` has a node whose type starts with name."""
    pending, seen = [tensor.grad_fn], set()
    while pending:
        node = pending.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__.startswith(name):
            return True
        pending.extend(next_node for next_node, _ in node.next_functions)
    return False


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
@pytest.mark.parametrize("masked", [False, True])
def test_chunked_equals_dense_bias_with_gradients(generator, calls, chunk_size, masked, path):
    q, k, v, rows, cols = tensors(generator)
    mask = None
    if masked:
        mask = torch.zeros(2, 12, dtype=torch.bool)
        mask[0, [1, 5, 11]] = True
        mask[1] = True  # a batch element with every key masked
    out = grid_attend(q, k, v, rows=rows, cols=cols, key_padding_mask=mask, chunk_size=chunk_size)
    assert ("attention_forward" in calls) == (path == "compiled" and native.kernels(q) is not None)
    dense = GridBias(rows=rows, cols=cols).dense()
    expected, _ = attend_reference(q, k, v, bias=dense, key_padding_mask=mask)
    torch.testing.assert_close(out, expected)
    cotangent = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    leaves = (q, k, v, rows, cols)
    mine = torch.autograd.grad((out * cotangent).sum(), leaves)
    theirs = torch.autograd.grad((expected * cotangent).sum(), leaves)
    for name, a, b in zip(["q", "k", "v", "rows", "cols"], mine, theirs, strict=True):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a, b, msg=name)


def test_gradcheck(generator, path):
    q, k, v, rows, cols = tensors(generator, 1, 1, 3, 2, 2, 2)
    mask = torch.tensor([[False, True, False, False]])

    def function(q, k, v, rows, cols):
        return grid_attend(q, k, v, rows=rows, cols=cols, key_padding_mask=mask, chunk_size=2)

    assert torch.autograd.gradcheck(function, (q, k, v, rows, cols))


def test_attend_dispatches_grid_bias_to_the_chunked_path(generator):
    q, k, v, rows, cols = tensors(generator)
    bias = GridBias(rows=rows, cols=cols)
    out = attend(q, k, v, bias=bias)
    assert out.grad_fn is not None and type(out.grad_fn).__name__.startswith(OPERATOR_NODE)
    with torch.no_grad():
        inference = attend(q, k, v, bias=bias)
    torch.testing.assert_close(inference, out.detach())


def test_chunk_size_must_be_positive(generator):
    q, k, v, rows, cols = tensors(generator)
    with pytest.raises(ValueError, match="chunk_size must be positive, got 0"):
        grid_attend(q, k, v, rows=rows, cols=cols, chunk_size=0)


@pytest.mark.skipif(
    native._compiler() is None, reason="torch.compile of FlexAttention on the CPU needs a compiler"
)
def test_flex_attention_score_mod_reads_the_grid_bias_and_the_key_mask():
    """The FlexAttention path's score modification (the CUDA path) run forward on the CPU,
    against the dense formula, with and without a key mask (a mask no longer sends CUDA to the
    chunked path)."""
    generator = torch.Generator().manual_seed(0)
    q, k, _, rows, cols = (t.detach().float() for t in tensors(generator, 2, 2, 16, 4, 4, 16))
    v = torch.randn(2, 2, 16, 16, generator=generator)
    rows, cols = rows.contiguous(), cols.expand(2, -1, -1, -1).contiguous()
    bias = GridBias(rows=rows, cols=cols)
    padding = torch.zeros(2, 16, dtype=torch.bool)
    padding[1, 10:] = True
    additive = torch.zeros(2, 16).masked_fill(padding, float("-inf"))  # what grid_attend passes
    with torch.no_grad():
        masked = _flex_grid_attend(q, k, v, rows, cols, additive)
        free = _flex_grid_attend(q, k, v, rows, cols)
    expected, _ = attend_reference(q, k, v, bias=bias, key_padding_mask=padding)
    torch.testing.assert_close(masked, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(free, attend_reference(q, k, v, bias=bias)[0], rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention trains only on CUDA")
def test_flex_attention_path_equals_the_chunked_path_on_cuda():
    generator = torch.Generator().manual_seed(0)
    q, k, _, rows, cols = (
        t.detach().float().cuda().requires_grad_(True)
        for t in tensors(generator, 2, 2, 128, 8, 16, 16)
    )
    v = torch.randn(2, 2, 128, 16, generator=generator).cuda().requires_grad_(True)  # Dv == Dh
    with warnings.catch_warnings():
        # a silent fall-back to the chunked path fails the test (PyTorch's own deprecation
        # warnings from inside torch.compile do not)
        warnings.filterwarnings("error", message="FlexAttention failed")
        out = grid_attend(q, k, v, rows=rows, cols=cols)
    full_cols = cols.expand(2, -1, -1, -1).contiguous()  # the Function takes unbroadcast biases
    expected, _ = grid_attention_op(q, k, v, rows, full_cols, None, 32, False)
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=2e-3)
    leaves = (q, k, v, rows, cols)
    mine = torch.autograd.grad(out.sum(), leaves)
    theirs = torch.autograd.grad(expected.sum(), leaves)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3)
    narrow = v.detach()[..., :6].contiguous()  # Dv = 6: FlexAttention is not tried, no warning
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="FlexAttention failed")
        out = grid_attend(q, k, narrow, rows=rows, cols=cols)
    assert _graph_has(out, OPERATOR_NODE)  # the chunked path (CUDA has no compiled loops)
    expected, _ = grid_attention_op(q, k, narrow, rows, full_cols, None, 32, False)
    torch.testing.assert_close(out, expected)
    padding = torch.zeros(2, 128, dtype=torch.bool, device="cuda")
    padding[1, 100:] = True
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="FlexAttention failed")
        out = grid_attend(q, k, v, rows=rows, cols=cols, key_padding_mask=padding)
    assert not _graph_has(out, OPERATOR_NODE)  # a key mask stays on FlexAttention
    additive = torch.zeros(2, 128, device="cuda").masked_fill(padding, float("-inf"))
    expected, _ = grid_attention_op(q, k, v, rows, full_cols, additive, 32, False)
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_the_masked_softmax_in_float32(generator, dtype):
    q, k, v, rows, cols = (t.detach().float() for t in tensors(generator))
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[1, 5:] = True
    expected = grid_attend(q, k, v, rows=rows, cols=cols, key_padding_mask=mask)
    with torch.autocast("cpu", dtype=dtype):
        got = grid_attend(q, k, v, rows=rows, cols=cols, key_padding_mask=mask)
        low = grid_attend(q.to(dtype), k.to(dtype), v.to(dtype), rows=rows, cols=cols)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    assert low.dtype == torch.float32  # low-precision inputs are upcast, not rejected
