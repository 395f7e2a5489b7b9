"""attend / attend_reference / attention_map against an independent plain formula (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from indirect_attention import attend, attend_reference, attention_map
from indirect_attention.core import GridBias, merge_heads, padding_mask_to_bias, split_heads


def formula(q, k, v, bias=None, key_padding_mask=None):
    """softmax(q kᵀ/√d + bias) v written out by hand, masked rows set to zero."""
    logits = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + bias
    if key_padding_mask is not None:
        logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    weights = torch.exp(logits - logits.amax(-1, keepdim=True).nan_to_num(neginf=0.0))
    weights = weights.nan_to_num(0.0)
    total = weights.sum(-1, keepdim=True)
    weights = torch.where(total > 0, weights / total.clamp_min(1e-300), 0.0)
    return torch.einsum("bhqk,bhkd->bhqd", weights, v), weights


def make(generator, batch=2, heads=3, num_queries=5, num_keys=7, head_dim=4, value_dim=6):
    def draw(*shape):
        return torch.randn(shape, generator=generator, dtype=torch.float64)

    return (
        draw(batch, heads, num_queries, head_dim),
        draw(batch, heads, num_keys, head_dim),
        draw(batch, heads, num_keys, value_dim),
    )


@pytest.mark.parametrize(
    "bias_shape",
    [None, (2, 3, 5, 7), (3, 5, 7), (5, 7), (2, 1, 1, 7), (1, 3, 5, 1), (7,)],
)
@pytest.mark.parametrize("masked", [False, True])
def test_attend_matches_formula(generator, bias_shape, masked):
    q, k, v = make(generator)
    bias = None if bias_shape is None else torch.randn(bias_shape, generator=generator).double()
    mask = None
    if masked:
        mask = torch.tensor([[0, 1, 0, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    expected, weights = formula(q, k, v, bias, mask)
    torch.testing.assert_close(attend(q, k, v, bias=bias, key_padding_mask=mask), expected)
    out, attn = attend_reference(q, k, v, bias=bias, key_padding_mask=mask)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(attn, weights)
    torch.testing.assert_close(attention_map(q, k, bias=bias, key_padding_mask=mask), weights)


def test_fully_masked_rows_give_zeros_and_finite_gradients(generator):
    q, k, v = make(generator)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1] = True  # every key of batch element 1 is padding
    bias = torch.randn(2, 3, 5, 7, generator=generator, dtype=torch.float64)
    for path in ("fused", "reference"):
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v, bias)]
        if path == "fused":
            out = attend(*leaves[:3], bias=leaves[3], key_padding_mask=mask)
        else:
            out = attend_reference(*leaves[:3], bias=leaves[3], key_padding_mask=mask)[0]
        assert torch.isfinite(out).all()
        assert torch.equal(out[1], torch.zeros_like(out[1]))
        expected, _ = formula(q, k, v, bias, mask)
        torch.testing.assert_close(out, expected)
        out.square().sum().backward()
        for leaf in leaves:
            assert torch.isfinite(leaf.grad).all()
        assert torch.equal(leaves[0].grad[1], torch.zeros_like(leaves[0].grad[1]))
    weights = attention_map(q, k, key_padding_mask=mask)
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(3, 5, dtype=torch.float64))
    assert torch.equal(weights[1], torch.zeros_like(weights[1]))


def test_rows_masked_by_bias_alone_give_zeros(generator):
    q, k, v = make(generator)
    bias = torch.zeros(2, 3, 5, 7, dtype=torch.float64)
    bias[0, 1, 2] = float("-inf")  # one (batch, head, query) row sees no key
    for out in (attend(q, k, v, bias=bias), attend_reference(q, k, v, bias=bias)[0]):
        assert torch.equal(out[0, 1, 2], torch.zeros(6, dtype=torch.float64))
        torch.testing.assert_close(out, formula(q, k, v, bias)[0])


@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_fused_and_reference(generator, masked):
    q, k, v = (t.requires_grad_(True) for t in make(generator, 1, 2, 3, 4, 3, 2))
    bias = torch.randn(1, 2, 3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[False, True, False, False]]) if masked else None

    def fused(q, k, v, bias):
        return attend(q, k, v, bias=bias, key_padding_mask=mask)

    def reference(q, k, v, bias):
        return attend_reference(q, k, v, bias=bias, key_padding_mask=mask)[0]

    assert torch.autograd.gradcheck(fused, (q, k, v, bias))
    assert torch.autograd.gradcheck(reference, (q, k, v, bias))


def test_fused_and_reference_gradients_agree(generator):
    q, k, v = make(generator)
    bias = torch.randn(3, 5, 7, generator=generator, dtype=torch.float64)
    mask = torch.rand(2, 7, generator=generator) < 0.4
    cotangent = torch.randn(2, 3, 5, 6, generator=generator, dtype=torch.float64)
    grads = []
    for use_fused in (True, False):
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v, bias)]
        if use_fused:
            out = attend(*leaves[:3], bias=leaves[3], key_padding_mask=mask)
        else:
            out = attend_reference(*leaves[:3], bias=leaves[3], key_padding_mask=mask)[0]
        (out * cotangent).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for fused_grad, reference_grad in zip(*grads, strict=True):
        torch.testing.assert_close(fused_grad, reference_grad)


def test_float32_fast_path_close_to_float64_formula(generator):
    q, k, v = make(generator, 2, 4, 30, 50, 16, 16)
    bias = torch.randn(2, 4, 30, 50, generator=generator, dtype=torch.float64)
    expected, _ = formula(q, k, v, bias)
    out = attend(q.float(), k.float(), v.float(), bias=bias.float())
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


def test_dropout_is_unbiased_and_zero_dropout_is_exact(generator):
    q, k, v = make(generator, 1, 1, 2, 4, 3, 2)
    expected = formula(q, k, v)[0]
    torch.manual_seed(0)
    samples = torch.stack([attend(q, k, v, dropout_p=0.5) for _ in range(4000)])
    assert not torch.allclose(samples[0], expected)  # dropout really happened
    torch.testing.assert_close(samples.mean(0), expected, atol=0.1, rtol=0.0)
    with pytest.raises(ValueError, match="dropout_p"):
        attend(q, k, v, dropout_p=1.0)


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 3),
    heads=st.integers(1, 3),
    num_queries=st.integers(1, 6),
    num_keys=st.integers(1, 6),
    head_dim=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_attend_property(batch, heads, num_queries, num_keys, head_dim, seed):
    generator = torch.Generator().manual_seed(seed)
    q, k, v = make(generator, batch, heads, num_queries, num_keys, head_dim, head_dim)
    bias = torch.randn(batch, heads, num_queries, num_keys, generator=generator).double()
    mask = torch.rand(batch, num_keys, generator=generator) < 0.5
    expected = formula(q, k, v, bias, mask)[0]
    torch.testing.assert_close(attend(q, k, v, bias=bias, key_padding_mask=mask), expected)


def test_split_and_merge_heads_round_trip(generator):
    x = torch.randn(2, 5, 12, generator=generator)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    torch.testing.assert_close(heads[:, 1], x[..., 4:8])
    torch.testing.assert_close(merge_heads(heads), x)


def test_padding_mask_to_bias():
    mask = torch.tensor([[True, False]])
    bias = padding_mask_to_bias(mask, torch.float32)
    assert bias.shape == (1, 1, 1, 2)
    assert bias[0, 0, 0, 0] == float("-inf") and bias[0, 0, 0, 1] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"q": (2, 3, 5)}, r"q must have 4 dims .*\(2, 3, 5\)"),
        ({"k": (2, 3, 7, 5)}, r"k head dim must equal q head dim.*Dh=5.*Dh=4"),
        ({"v": (2, 3, 6, 6)}, r"same length Lk.*Lk=7.*Lk=6"),
        ({"k": (1, 3, 7, 4)}, r"agree on \(B, H\)"),
        ({"bias": (4, 7)}, r"bias of shape \(4, 7\) does not broadcast to .*\(2, 3, 5, 7\)"),
        ({"mask": (2, 6)}, r"key_padding_mask must have shape \(B, Lk\) = \(2, 7\), got \(2, 6\)"),
    ],
)
def test_bad_shapes_are_named(generator, change, message):
    q, k, v = make(generator)
    args = {"q": q, "k": k, "v": v, "bias": None, "mask": None}
    for name, shape in change.items():
        args[name] = torch.zeros(shape, dtype=torch.float64)
        if name == "mask":
            args[name] = args[name].bool()
    with pytest.raises(ValueError, match=message):
        attend(args["q"], args["k"], args["v"], bias=args["bias"], key_padding_mask=args["mask"])


def test_bad_dtypes_are_named(generator):
    q, k, v = make(generator)
    with pytest.raises(TypeError, match="key_padding_mask must be a bool tensor"):
        attend(q, k, v, key_padding_mask=torch.zeros(2, 7))
    with pytest.raises(TypeError, match="share one dtype"):
        attend(q, k.float(), v)
    with pytest.raises(TypeError, match="floating-point"):
        attend(q.long(), k.long(), v.long())
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        attend(q.tolist(), k, v)


def test_grid_bias_equals_its_dense_form(generator):
    q, k, v = make(generator, 2, 3, 5, 12, 4, 6)
    rows = torch.randn(2, 3, 5, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    cols = torch.randn(1, 3, 5, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    grid = GridBias(rows=rows, cols=cols)
    dense = torch.stack(
        [rows[..., r] + cols[..., c] for r in range(3) for c in range(4)], dim=-1
    )  # brute force, row-major cells
    torch.testing.assert_close(grid.dense(), dense)
    mask = torch.rand(2, 12, generator=generator) < 0.3
    expected = formula(q, k, v, dense, mask)[0]
    out = attend(q, k, v, bias=grid, key_padding_mask=mask)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(
        attend_reference(q, k, v, bias=grid, key_padding_mask=mask)[0], expected
    )
    out.sum().backward()
    assert rows.grad.abs().sum() > 0 and cols.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"grid h×w = 3×4 does not cover the Lk = 7 keys"):
        attend(*make(generator, 2, 3, 5, 7, 4, 6), bias=grid)
