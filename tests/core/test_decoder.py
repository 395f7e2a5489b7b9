"""Decoder layer and stacks: threading of references and biases, maps, gradient reach, learning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from indirect_attention import (
    ContentEnrichedQueries,
    CrossAttentionFusion,
    IndirectDecoder,
    IndirectDecoderLayer,
)
from indirect_attention.core import position_references

DIM, HEADS = 16, 2


def inputs(generator, batch=2, num_queries=4, length=6):
    def draw(*shape):
        return torch.randn(shape, generator=generator)

    return draw(batch, num_queries, DIM), draw(batch, length, DIM), draw(batch, length, DIM)


def test_layer_weights_path_equals_fast_path(generator):
    layer = IndirectDecoderLayer(DIM, HEADS).eval()
    queries, keys, values = inputs(generator)
    bias = torch.randn(2, HEADS, 4, 6, generator=generator)
    out, attn = layer(queries, keys, values, bias=bias, need_weights=True)
    torch.testing.assert_close(layer(queries, keys, values, bias=bias), out)
    assert attn.shape == (2, HEADS, 4, 6)


def test_layer_without_self_attention_ignores_other_queries(generator):
    layer = IndirectDecoderLayer(DIM, HEADS, self_attention=False).eval()
    queries, keys, values = inputs(generator)
    out = layer(queries, keys, values)
    changed = queries.clone()
    changed[:, 1:] += 5.0
    torch.testing.assert_close(layer(changed, keys, values)[:, 0], out[:, 0])


def test_decoder_threads_references_and_recomputes_bias(generator):
    torch.manual_seed(0)
    decoder = IndirectDecoder(DIM, HEADS, 3, reference_size=2).eval()
    with torch.no_grad():  # move the references so that each layer sees different ones
        for update in decoder.updates:
            update.proj.weight.normal_(0.0, 0.5)
    queries, keys, values = inputs(generator)
    references = position_references(torch.arange(4), 6, reference_size=2).expand(2, -1, -1)
    result = decoder(queries, keys, values, references=references, return_maps=True)
    assert result.outputs.shape == (3, 2, 4, DIM)
    assert result.references.shape == (4, 2, 4, 2)
    assert result.attn.shape == result.bias.shape == (3, 2, HEADS, 4, 6)
    torch.testing.assert_close(result.references[0], references)
    positions = (torch.arange(6) + 0.5) / 6
    x = queries
    for index, layer in enumerate(decoder.layers):
        bias = decoder.biases[index](result.references[index], positions)
        torch.testing.assert_close(result.bias[index], bias)
        x = layer(x, keys, values, bias=bias)
        torch.testing.assert_close(result.outputs[index], decoder.norm(x))
        torch.testing.assert_close(
            result.references[index + 1], decoder.updates[index](result.references[index], x)
        )
    assert not torch.allclose(result.references[1], result.references[2])
    fast = decoder(queries, keys, values, references=references)
    torch.testing.assert_close(fast.outputs, result.outputs)


def test_static_and_naive_decoders(generator):
    queries, keys, values = inputs(generator)
    references = torch.rand(2, 4, 1, generator=generator)
    static = IndirectDecoder(DIM, HEADS, 2, reference_update=None)
    result = static(queries, keys, values, references=references)
    assert all(torch.equal(r, references) for r in result.references)
    naive = IndirectDecoder(DIM, HEADS, 2, position_bias=None, reference_update=None).eval()
    plain = naive(queries, keys, values, return_maps=True)
    assert plain.references is None and plain.bias is None and plain.attn.shape[0] == 2


def test_gradients_reach_every_bias_and_update_layer(generator):
    torch.manual_seed(0)
    decoder = IndirectDecoder(DIM, HEADS, 3)
    queries, keys, values = inputs(generator)
    references = torch.rand(2, 4, 1, generator=generator)
    out = decoder(queries, keys, values, references=references)
    loss = (out.outputs[-1] * torch.randn(2, 4, DIM, generator=generator)).sum()
    loss = loss + out.references[-1].sum()
    loss.backward()
    for index in range(3):
        assert decoder.biases[index].mlp[0].weight.grad.abs().sum() > 0, index
        assert decoder.updates[index].proj.weight.grad.abs().sum() > 0, index


def test_decoder_rejects_missing_references(generator):
    decoder = IndirectDecoder(DIM, HEADS, 1)
    queries, keys, values = inputs(generator)
    with pytest.raises(ValueError, match=r"references must have shape \(B, Lq, R\) = \(2, 4, 1\)"):
        decoder(queries, keys, values)
    with pytest.raises(ValueError, match=r"got \(2, 3, 1\)"):
        decoder(queries, keys, values, references=torch.rand(2, 3, 1))
    with pytest.raises(ValueError, match="num_layers must be positive"):
        IndirectDecoder(DIM, HEADS, 0)


def test_cross_attention_fusion_reads_memory(generator):
    fusion = CrossAttentionFusion(DIM, HEADS, 2, memory_dim=8).eval()
    x = torch.randn(2, 5, DIM, generator=generator)
    memory = torch.randn(2, 3, 8, generator=generator)
    mask = torch.tensor([[False, False, True], [False, False, False]])
    out = fusion(x, memory, memory_padding_mask=mask)
    assert out.shape == (2, 5, DIM)
    changed = memory.clone()
    changed[0, 2] += 10.0  # padded: no effect
    torch.testing.assert_close(fusion(x, changed, memory_padding_mask=mask), out)
    changed[0, 0] += 10.0  # real: an effect
    assert not torch.allclose(fusion(x, changed, memory_padding_mask=mask), out)


def _train_shift_task(position_bias: bool, steps: int = 250) -> float:
    """Query i must read the token at value position i + 2; the keys are pure noise.

    Only the position bias can find that position: naive attention has no way to address it. The
    queries are not enriched with content, or self-attention among them would leak the answer.
    """
    vocab, length, num_queries = 6, 8, 6
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    embed = nn.Embedding(vocab, DIM)
    queries = ContentEnrichedQueries(num_queries, DIM, enrich=False)
    decoder = IndirectDecoder(
        DIM,
        HEADS,
        1,
        position_bias=(lambda **kw: _bias(**kw)) if position_bias else None,
        reference_update=None,
    )
    readout = nn.Linear(DIM, vocab)
    modules = nn.ModuleList([embed, queries, decoder, readout])
    optimizer = torch.optim.Adam(modules.parameters(), lr=3e-3)
    references = position_references(torch.arange(num_queries), length)

    def batch(size):
        tokens = torch.randint(vocab, (size, length), generator=generator)
        noise = torch.randn(size, length, DIM, generator=generator)
        return tokens, noise

    for _ in range(steps):
        tokens, noise = batch(64)
        values = embed(tokens)
        out = decoder(
            queries(values), noise, values, references=references.expand(64, -1, -1)
        ).outputs[-1]
        loss = nn.functional.cross_entropy(readout(out).flatten(0, 1), tokens[:, 2:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        tokens, noise = batch(256)
        values = embed(tokens)
        out = decoder(
            queries(values), noise, values, references=references.expand(256, -1, -1)
        ).outputs[-1]
        return (readout(out).argmax(-1) == tokens[:, 2:]).float().mean().item()


def _bias(**kwargs):
    from indirect_attention import RelativePositionBias

    return RelativePositionBias(**kwargs, hidden_dim=32)


def test_position_bias_lets_indirect_attention_address_values():
    assert _train_shift_task(position_bias=True) > 0.95
    assert _train_shift_task(position_bias=False) < 0.5  # chance is 1/6


def test_bias_of_shared_references_is_computed_once_and_broadcast(generator):
    torch.manual_seed(0)
    decoder = IndirectDecoder(DIM, HEADS, 2, reference_update=None).eval()
    queries, keys, values = inputs(generator)
    shared = position_references(torch.arange(4), 6).expand(2, -1, -1)  # stride 0 over B
    copied = shared.clone()  # the same values, one row per example
    fast = decoder(queries, keys, values, references=shared, return_maps=True)
    slow = decoder(queries, keys, values, references=copied, return_maps=True)
    torch.testing.assert_close(fast.outputs, slow.outputs)
    torch.testing.assert_close(fast.bias, slow.bias)
    calls = []
    decoder.biases[0].register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    decoder(queries, keys, values, references=shared)
    assert calls == [(1, 4, 1)]


def test_self_attention_position_goes_to_queries_and_keys_not_values(generator):
    """DETR's positional query: softmax((x+p)Wq ((x+p)Wk)ᵀ) xWv, checked against PyTorch's MHA."""
    from indirect_attention.core.baselines import SelfAttention

    attention = SelfAttention(DIM, HEADS).eval()
    reference = nn.MultiheadAttention(DIM, HEADS, batch_first=True).eval()
    with torch.no_grad():
        weights = [attention.q_proj, attention.k_proj, attention.v_proj]
        reference.in_proj_weight.copy_(torch.cat([p.weight for p in weights]))
        reference.in_proj_bias.copy_(torch.cat([p.bias for p in weights]))
        reference.out_proj.weight.copy_(attention.out_proj.weight)
        reference.out_proj.bias.copy_(attention.out_proj.bias)
    x, _, _ = inputs(generator)
    position = torch.randn(x.shape, generator=generator)
    expected, _ = reference(x + position, x + position, x)
    torch.testing.assert_close(attention(x, position=position), expected)
    assert not torch.allclose(attention(x), expected)  # the position changes the result


def test_layer_query_pos_reaches_both_attentions_but_not_the_residual(generator):
    layer = IndirectDecoderLayer(DIM, HEADS).eval()
    queries, keys, values = inputs(generator)
    query_pos = torch.randn(queries.shape, generator=generator)
    seen = {}
    layer.cross_attn.register_forward_pre_hook(lambda _, args: seen.update(cross=args[0]))
    out = layer(queries, keys, values, query_pos=query_pos)
    after_self = queries + layer.self_attn(layer.self_norm(queries), position=query_pos)
    torch.testing.assert_close(seen["cross"], layer.cross_norm(after_self) + query_pos)
    assert not torch.allclose(out, layer(queries, keys, values))


def test_decoder_gives_query_pos_to_every_layer(generator):
    decoder = IndirectDecoder(DIM, HEADS, 3, reference_size=1).eval()
    queries, keys, values = inputs(generator)
    references = torch.rand(2, 4, 1, generator=generator)
    query_pos = torch.randn(queries.shape, generator=generator)
    given = []
    for layer in decoder.layers:
        layer.register_forward_pre_hook(
            lambda _, args, kwargs: given.append(kwargs["query_pos"]), with_kwargs=True
        )
    decoder(queries, keys, values, references=references, query_pos=query_pos)
    assert len(given) == 3 and all(p is query_pos for p in given)
