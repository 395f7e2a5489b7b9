"""IndirectAttention and the baselines: equivalences, invariances and input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from indirect_attention import (
    CrossAttention,
    IndirectAttention,
    NaiveMisalignedAttention,
    SelfAttention,
)

DIM, HEADS = 12, 3


def copy_into_multihead(ours: IndirectAttention) -> nn.MultiheadAttention:
    theirs = nn.MultiheadAttention(ours.dim, ours.num_heads, batch_first=True).double()
    with torch.no_grad():
        weights = [ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]
        theirs.in_proj_weight.copy_(torch.cat(weights))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)
    return theirs.eval()


def draw(generator, *shape):
    return torch.randn(shape, generator=generator, dtype=torch.float64)


@pytest.fixture
def module(generator):
    torch.manual_seed(0)
    attention = IndirectAttention(DIM, HEADS).double().eval()
    with torch.no_grad():  # non-zero projection biases so that they are tested too
        for proj in (attention.q_proj, attention.k_proj, attention.v_proj, attention.out_proj):
            proj.bias.copy_(draw(generator, DIM))
    return attention


@pytest.mark.parametrize("masked", [False, True])
def test_same_source_equals_multihead_attention(module, generator, masked):
    queries, source = draw(generator, 2, 4, DIM), draw(generator, 2, 6, DIM)
    mask = torch.tensor([[0, 0, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    mask = mask if masked else None
    theirs = copy_into_multihead(module)
    expected, expected_attn = theirs(
        queries, source, source, key_padding_mask=mask, average_attn_weights=False
    )
    torch.testing.assert_close(module(queries, source, source, key_padding_mask=mask), expected)
    out, attn = module(queries, source, source, key_padding_mask=mask, need_weights=True)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(attn, expected_attn)
    cross = CrossAttention(DIM, HEADS).double().eval()
    cross.load_state_dict(module.state_dict())
    torch.testing.assert_close(cross(queries, source, key_padding_mask=mask), expected)


def test_self_attention_equals_multihead_self_attention(module, generator):
    x = draw(generator, 2, 5, DIM)
    attention = SelfAttention(DIM, HEADS).double().eval()
    attention.load_state_dict(module.state_dict())
    expected, _ = copy_into_multihead(module)(x, x, x)
    torch.testing.assert_close(attention(x), expected)


def test_permuting_queries_permutes_outputs(module, generator):
    queries = draw(generator, 2, 7, DIM)
    keys, values = draw(generator, 2, 5, DIM), draw(generator, 2, 5, DIM)
    bias = draw(generator, 2, HEADS, 7, 5)
    order = torch.randperm(7, generator=generator)
    out = module(queries, keys, values, bias=bias)
    permuted = module(queries[:, order], keys, values, bias=bias[:, :, order])
    torch.testing.assert_close(permuted, out[:, order])


def test_padded_values_do_not_change_outputs(module, generator):
    queries = draw(generator, 2, 4, DIM)
    keys, values = draw(generator, 2, 6, DIM), draw(generator, 2, 6, DIM)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, 4:] = True
    out = module(queries, keys, values, key_padding_mask=mask)
    keys2, values2 = keys.clone(), values.clone()
    keys2[:, 4:] = 1e3 * draw(generator, 2, 2, DIM)
    values2[:, 4:] = 1e3 * draw(generator, 2, 2, DIM)
    torch.testing.assert_close(module(queries, keys2, values2, key_padding_mask=mask), out)
    # and dropping the padded tail altogether gives the same result
    torch.testing.assert_close(module(queries, keys[:, :4], values[:, :4]), out)


def test_keys_decide_weights_values_decide_content(module, generator):
    queries = draw(generator, 1, 3, DIM)
    keys, values = draw(generator, 1, 5, DIM), draw(generator, 1, 5, DIM)
    _, attn = module(queries, keys, values, need_weights=True)
    _, attn_other_values = module(queries, keys, draw(generator, 1, 5, DIM), need_weights=True)
    _, attn_other_keys = module(queries, draw(generator, 1, 5, DIM), values, need_weights=True)
    torch.testing.assert_close(attn_other_values, attn)
    assert not torch.allclose(attn_other_keys, attn)


def test_large_bias_moves_attention_to_one_position(module, generator):
    queries = draw(generator, 2, 3, DIM)
    keys, values = draw(generator, 2, 6, DIM), draw(generator, 2, 6, DIM)
    target = 4
    bias = torch.zeros(1, 1, 1, 6, dtype=torch.float64)
    bias[..., target] = 80.0
    out, attn = module(queries, keys, values, bias=bias, need_weights=True)
    assert (attn[..., target] > 1 - 1e-12).all()
    expected = module.out_proj(module.v_proj(values[:, target]))[:, None].expand(-1, 3, -1)
    torch.testing.assert_close(out, expected)


def test_key_and_value_dims_can_differ(generator):
    attention = IndirectAttention(8, 2, key_dim=5, value_dim=3).double()
    out = attention(draw(generator, 2, 4, 8), draw(generator, 2, 6, 5), draw(generator, 2, 6, 3))
    assert out.shape == (2, 4, 8)


def test_gradients_reach_every_projection_and_the_bias(module, generator):
    module.train()
    bias = draw(generator, 2, HEADS, 4, 6).requires_grad_(True)
    out = module(
        draw(generator, 2, 4, DIM),
        draw(generator, 2, 6, DIM),
        draw(generator, 2, 6, DIM),
        bias=bias,
    )
    (out * draw(generator, 2, 4, DIM)).sum().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert bias.grad.abs().sum() > 0


def test_naive_misaligned_takes_no_bias(module, generator):
    naive = NaiveMisalignedAttention(DIM, HEADS).double().eval()
    naive.load_state_dict(module.state_dict())
    args = (draw(generator, 1, 2, DIM), draw(generator, 1, 3, DIM), draw(generator, 1, 3, DIM))
    torch.testing.assert_close(naive(*args), module(*args))
    with pytest.raises(ValueError, match=r"takes no bias .*\(1, 3, 2, 3\)"):
        naive(*args, bias=torch.zeros(1, 3, 2, 3, dtype=torch.float64))


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((2, 4, DIM), (2, 6, DIM), (2, 5, DIM)), r"same length Lk.*Lk=6.*Lk=5"),
        (((2, DIM), (2, 6, DIM), (2, 6, DIM)), r"queries must have 3 dims .*got shape \(2, 12\)"),
        (
            ((2, 4, DIM), (2, 6, 7), (2, 6, DIM)),
            r"key_source must have feature size 12.*\(2, 6, 7\)",
        ),
        (((2, 4, DIM), (2, 6, DIM), (2, 6, 5)), r"value_source must have feature size 12"),
        (((2, 4, DIM), (3, 6, DIM), (3, 6, DIM)), r"key_source has batch size 3 .*expected 2"),
    ],
)
def test_bad_shapes_name_the_argument(module, shapes, message):
    tensors = [torch.zeros(shape, dtype=torch.float64) for shape in shapes]
    with pytest.raises(ValueError, match=message):
        module(*tensors)


def test_bad_bias_and_mask_and_dtype(module, generator):
    args = (draw(generator, 2, 4, DIM), draw(generator, 2, 6, DIM), draw(generator, 2, 6, DIM))
    with pytest.raises(ValueError, match=r"bias of shape \(2, 4, 6\) does not broadcast"):
        module(*args, bias=torch.zeros(2, 4, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, Lk\) = \(2, 6\)"):
        module(*args, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="floating-point"):
        module(args[0].long(), *args[1:])


def test_bad_constructor_arguments():
    with pytest.raises(
        ValueError, match=r"dim \(10\) must be a positive multiple of num_heads \(3\)"
    ):
        IndirectAttention(10, 3)
    with pytest.raises(ValueError, match="dropout"):
        IndirectAttention(12, 3, dropout=1.5)
