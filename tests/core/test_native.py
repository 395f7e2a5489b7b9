"""The compiled CPU loops: the grid MLP and the grid-biased softmax against plain PyTorch.

Each test checks that the compiled path really ran (a recorded call that returned success), so a
silent fall-back to the PyTorch path cannot pass for it.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from indirect_attention.core import GridBias, attend_reference, native
from indirect_attention.core.grid_attention import grid_attend
from indirect_attention.core.grid_mlp import grid_mlp, grid_mlp_reference

needs_compiler = pytest.mark.skipif(
    native._compiler() is None, reason="no C++ compiler on this machine: the PyTorch path runs"
)


def make_mlp(inputs: int, hidden: int, heads: int, dtype: torch.dtype) -> nn.Sequential:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, heads))
    return mlp.to(dtype)


def mlp_results(function, anchors, grid, mlp, cotangent, scale=0.5, log_offsets=False):
    anchors = anchors.detach().clone().requires_grad_(True)
    out = function(anchors, grid, mlp, scale, log_offsets=log_offsets)
    grads = torch.autograd.grad((out * cotangent).sum(), [anchors, *mlp.parameters()])
    return [out, *grads]


@needs_compiler
@pytest.mark.parametrize("inputs", [1, 2])
@pytest.mark.parametrize("heads", [1, 4, 8, 16])
@pytest.mark.parametrize("points", [13, 16])  # an odd count: the forward pass pairs points
@pytest.mark.parametrize("log_offsets", [False, True])
def test_compiled_grid_mlp_matches_the_plain_mlp_in_float64(
    generator, calls, inputs, heads, points, log_offsets
):
    mlp = make_mlp(inputs, 32, heads, torch.float64)
    anchors = torch.rand(37, inputs, generator=generator, dtype=torch.float64) * 4 - 2
    grid = torch.linspace(-2, 2, points, dtype=torch.float64)
    anchors[5, 0] = grid[3]  # on a grid point: the log code's slope is 0 there
    cotangent = torch.randn(37, points, heads, generator=generator, dtype=torch.float64)
    scale = 3.0 if log_offsets else 0.5
    mine = mlp_results(grid_mlp, anchors, grid, mlp, cotangent, scale, log_offsets)
    theirs = mlp_results(grid_mlp_reference, anchors, grid, mlp, cotangent, scale, log_offsets)
    assert calls == ["mlp_forward", "mlp_backward"]
    for name, a, b in zip(["out", "anchors", "w1", "b1", "w2", "b2"], mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)


@needs_compiler
def test_compiled_grid_mlp_float32_at_pixel_scale_within_1e5(generator, calls):
    """The bench's sizes (600 rows, 64 points, 512 hidden units, offsets up to 1024 pixels):
    the output and every gradient within 1e-5 of the plain MLP in float32, the bench's criterion.
    """
    mlp = make_mlp(2, 512, 8, torch.float32)
    anchors = torch.rand(600, 2, generator=generator) * 1024
    grid = (torch.arange(64, dtype=torch.float32) + 0.5) * 16
    cotangent = torch.randn(600, 64, 8, generator=generator)
    expected = mlp_results(grid_mlp_reference, anchors, grid, mlp, cotangent)
    got = mlp_results(grid_mlp, anchors, grid, mlp, cotangent)
    assert calls == ["mlp_forward", "mlp_backward"]
    for mine, theirs in zip(got, expected, strict=True):
        error = (mine - theirs).abs().max() / theirs.abs().max()
        assert error <= 1e-5


@needs_compiler
@pytest.mark.parametrize(("hidden", "heads"), [(12, 4), (16, 3)])  # K not in lanes; H not built
def test_sizes_the_compiled_mlp_does_not_cover_take_the_plain_path(generator, calls, hidden, heads):
    mlp = make_mlp(2, hidden, heads, torch.float32)
    anchors = torch.rand(5, 2, generator=generator)
    grid = torch.linspace(0, 1, 7)
    cotangent = torch.randn(5, 7, heads, generator=generator)
    mine = mlp_results(grid_mlp, anchors, grid, mlp, cotangent)
    theirs = mlp_results(grid_mlp_reference, anchors, grid, mlp, cotangent)
    assert calls == []
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b)


@needs_compiler
def test_compiled_grid_mlp_gradcheck(generator):
    mlp = make_mlp(2, 8, 2, torch.float64)
    grid = torch.linspace(0, 1, 5, dtype=torch.float64)
    anchors = torch.rand(3, 2, generator=generator, dtype=torch.float64).requires_grad_()

    def function(anchors, *parameters):
        return grid_mlp(anchors, grid, mlp, 2.0)

    assert torch.autograd.gradcheck(function, (anchors, *mlp.parameters()))


def attention_inputs(
    generator, dtype, batch=2, heads=2, num_queries=7, height=3, width=5, head_dim=4, value_dim=6
):
    def draw(*shape, scale=1.0):
        tensor = torch.randn(shape, generator=generator, dtype=dtype) * scale
        return tensor.requires_grad_(True)

    keys = height * width
    return (
        draw(batch, heads, num_queries, head_dim),
        draw(batch, heads, keys, head_dim),
        draw(batch, heads, keys, value_dim),
        draw(batch, heads, num_queries, height, scale=30.0),  # logits far apart: exp's range
        draw(batch, heads, num_queries, width, scale=30.0),
    )


# (height, width, head_dim, value_dim) -> the compiled kernels that serve them: the fused
# attention reads the bias in place where a grid row holds whole vectors (width 64) and sums its
# gradient in the same pass where it holds whole blocks of 64 keys; heads wider than 8 vectors
# take the per-chunk loops between BLAS products
SHAPES = {
    (3, 5, 4, 6): {"attention_forward", "attention_backward"},
    (2, 64, 32, 32): {"attention_forward", "attention_backward"},
    (3, 48, 8, 5): {"attention_forward", "attention_backward"},
    (3, 5, 136, 6): {"softmax_forward", "softmax_recompute", "softmax_backward"},
}


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunk_size", [1, 3, 32])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_compiled_softmax_equals_dense_attention(
    generator, calls, dtype, chunk_size, masked, shape
):
    height, width, head_dim, value_dim = shape
    q, k, v, rows, cols = attention_inputs(
        generator, dtype, height=height, width=width, head_dim=head_dim, value_dim=value_dim
    )
    keys = height * width
    mask = None
    if masked:
        mask = torch.zeros(2, keys, dtype=torch.bool)
        mask[0, [0, 4, keys - 1]] = True
        mask[1] = True  # every key of this batch element masked
    out = grid_attend(q, k, v, rows=rows, cols=cols, key_padding_mask=mask, chunk_size=chunk_size)
    expected, _ = attend_reference(
        q, k, v, bias=GridBias(rows=rows, cols=cols).dense(), key_padding_mask=mask
    )
    cotangent = torch.randn(out.shape, generator=generator, dtype=dtype)
    leaves = (q, k, v, rows, cols)
    mine = torch.autograd.grad((out * cotangent).sum(), leaves)
    theirs = torch.autograd.grad((expected * cotangent).sum(), leaves)
    assert set(calls) == SHAPES[shape]
    tolerance = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {}
    torch.testing.assert_close(out, expected, **tolerance)
    for name, a, b in zip(["q", "k", "v", "rows", "cols"], mine, theirs, strict=True):
        torch.testing.assert_close(a, b, **tolerance, msg=name)
    if masked:  # a masked key's value gets no gradient at all, not a denormal one
        assert torch.all(mine[2][0, :, [0, 4, keys - 1]] == 0)


@needs_compiler
def test_compiled_attention_gradcheck(generator):
    q, k, v, rows, cols = attention_inputs(generator, torch.float64, 1, 1, 3, 2, 2)
    rows, cols = (t.detach().div(30).requires_grad_(True) for t in (rows, cols))
    mask = torch.tensor([[False, True, False, False]])

    def function(q, k, v, rows, cols):
        return grid_attend(q, k, v, rows=rows, cols=cols, key_padding_mask=mask, chunk_size=2)

    assert torch.autograd.gradcheck(function, (q, k, v, rows, cols))


@needs_compiler
def test_one_thread_and_two_threads_agree(generator):
    mlp = make_mlp(2, 64, 8, torch.float64)
    anchors = torch.rand(41, 2, generator=generator, dtype=torch.float64)
    grid = torch.linspace(0, 1, 9, dtype=torch.float64)
    cotangent = torch.randn(41, 9, 8, generator=generator, dtype=torch.float64)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = mlp_results(grid_mlp, anchors, grid, mlp, cotangent)
        torch.set_num_threads(2)
        double = mlp_results(grid_mlp, anchors, grid, mlp, cotangent)
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(single, double, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_attention_is_the_same_on_one_and_two_threads(generator, calls, dtype):
    """Each worker computes whole heads in the same order, so the thread count changes no bit."""
    q, k, v, rows, cols = attention_inputs(generator, dtype, heads=3, num_queries=37, width=16)
    cotangent = torch.randn(2, 3, 37, 6, generator=generator, dtype=dtype)
    previous, results = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = grid_attend(q, k, v, rows=rows, cols=cols, chunk_size=8)
            grads = torch.autograd.grad((out * cotangent).sum(), (q, k, v, rows, cols))
            results.append((out, *grads))
    finally:
        torch.set_num_threads(previous)
    assert set(calls) == {"attention_forward", "attention_backward"}
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_switched_off_by_the_environment_or_the_context(monkeypatch):
    tensor = torch.zeros(2)
    with native.native_disabled():
        assert native.kernels(tensor) is None
    monkeypatch.setenv("INDIRECT_ATTENTION_NATIVE", "0")
    assert native.kernels(tensor) is None


def test_tensors_it_cannot_serve_get_none():
    assert native.kernels(torch.zeros(2, dtype=torch.bfloat16)) is None
    assert native.kernels(torch.zeros(2), torch.zeros(2, dtype=torch.float64)) is None


def test_a_failing_compiler_warns_and_leaves_the_plain_path(monkeypatch, tmp_path, generator):
    failing = tmp_path / "broken-cxx"
    failing.write_text("#!/bin/sh\necho 'broken-cxx: cannot compile' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CXX", str(failing))
    monkeypatch.setenv("INDIRECT_ATTENTION_CACHE", str(tmp_path / "cache"))
    native._load.cache_clear()
    try:
        with pytest.warns(UserWarning, match="compiling the fused CPU kernels failed"):
            assert native.kernels(torch.zeros(2)) is None
        mlp = make_mlp(2, 16, 4, torch.float32)
        anchors, grid = torch.rand(3, 2, generator=generator), torch.linspace(0, 1, 5)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once, not on every call
            out = grid_mlp(anchors, grid, mlp)
        torch.testing.assert_close(out, grid_mlp_reference(anchors, grid, mlp, 1.0))
    finally:
        native._load.cache_clear()


@needs_compiler
def test_build_is_cached_and_written_atomically(monkeypatch, tmp_path):
    monkeypatch.setenv("INDIRECT_ATTENTION_CACHE", str(tmp_path))
    compiler = native._compiler()
    first = native._build(compiler)
    stamp = first.stat().st_mtime_ns
    second = native._build(compiler)
    assert second == first and second.stat().st_mtime_ns == stamp  # not compiled again
    assert [p.name for p in (tmp_path / "kernels").iterdir()] == [first.name]  # no temp left


@needs_compiler
def test_float32_probabilities_below_2_to_the_minus_64_are_exactly_zero(generator, calls):
    """The documented cut: such a term is far below float32 rounding of the output, and its
    products with small gradients would be denormal (slow); float64 keeps every term."""
    q, k = torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 4, 4)  # equal logits but for the bias
    v = torch.randn(1, 1, 4, 4, generator=generator)
    rows = torch.zeros(1, 1, 1, 2)
    cols = torch.tensor([[[[0.0, -40.0]]]])  # keys 1 and 3: e^-40 ≈ 4e-18 of the largest
    deep = torch.tensor([[[[0.0, -50.0]]]])  # e^-50 ≈ 2e-22: below the cut
    for bias, kept in ((cols, True), (deep, False)):
        v_grad = v.clone().requires_grad_(True)
        out = grid_attend(q, k, v_grad, rows=rows, cols=bias)
        out.sum().backward()
        assert (v_grad.grad[0, 0, [1, 3]] != 0).all() == kept
        assert (v_grad.grad[0, 0, [1, 3]] == 0).all() == (not kept)
        expected, _ = attend_reference(q, k, v, bias=GridBias(rows=rows, cols=bias).dense())
        torch.testing.assert_close(out, expected)
    q64, k64, v64 = (t.double() for t in (q, k, v))
    v64.requires_grad_(True)
    grid_attend(q64, k64, v64, rows=rows.double(), cols=deep.double()).sum().backward()
    assert (v64.grad[0, 0, [1, 3]] > 0).all()
    assert set(calls) >= {"attention_forward", "attention_backward"}


@pytest.fixture(scope="module")
def portable_cache(tmp_path_factory):
    """One cache folder for the portable build, so that it is compiled once."""
    return tmp_path_factory.mktemp("portable")


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_portable_build_serves_both_kernels(
    monkeypatch, portable_cache, generator, calls, dtype
):
    """Built without ``-march=native`` (the compiler's default target: on x86-64 no AVX and no
    FMA, 32-byte vectors), the paths other architectures take give the plain results."""
    monkeypatch.setenv("INDIRECT_ATTENTION_PORTABLE", "1")
    monkeypatch.setenv("INDIRECT_ATTENTION_CACHE", str(portable_cache))
    native._load.cache_clear()
    try:
        library = native.kernels(torch.zeros(1))
        assert library is not None and not any(f.startswith("-march") for f in native._flags())
        assert len(list((portable_cache / "kernels").iterdir())) == 1  # this build, not another
        # 32-byte vectors: 8 float lanes (an AVX-512 build of this machine's would want 16)
        assert native.mlp_covers(library, torch.float32, inputs=2, hidden=8, outputs=4)
        # float64 strict; float32 loose enough for its rounding of sums and of the cancellation
        # in the softmax backward, still far below a wrong exp or a wrong vector lane
        bound = 1e-10 if dtype == torch.float64 else 5e-5

        def check(a, b):
            assert (a - b).abs().max() <= bound * max(b.abs().max().item(), 1.0)

        mlp = make_mlp(2, 32, 8, dtype)
        anchors = torch.rand(21, 2, generator=generator, dtype=dtype) * 4 - 2
        grid = torch.linspace(-2, 2, 11, dtype=dtype)
        cotangent = torch.randn(21, 11, 8, generator=generator, dtype=dtype)
        for log_offsets in (False, True):
            mine = mlp_results(grid_mlp, anchors, grid, mlp, cotangent, 3.0, log_offsets)
            theirs = mlp_results(
                grid_mlp_reference, anchors, grid, mlp, cotangent, 3.0, log_offsets
            )
            for a, b in zip(mine, theirs, strict=True):
                check(a, b)
        q, k, v, rows, cols = attention_inputs(generator, dtype)
        mask = torch.zeros(2, 15, dtype=torch.bool)
        mask[0, [0, 4]] = True
        out = grid_attend(q, k, v, rows=rows, cols=cols, key_padding_mask=mask, chunk_size=3)
        expected, _ = attend_reference(
            q, k, v, bias=GridBias(rows=rows, cols=cols).dense(), key_padding_mask=mask
        )
        check(out, expected)
        leaves = (q, k, v, rows, cols)
        mine = torch.autograd.grad(out.sum(), leaves)
        theirs = torch.autograd.grad(expected.sum(), leaves)
        for a, b in zip(mine, theirs, strict=True):
            check(a, b)
        assert set(calls) == {"mlp_forward", "mlp_backward", "attention_forward",
                              "attention_backward"}  # fmt: skip
    finally:
        native._load.cache_clear()
