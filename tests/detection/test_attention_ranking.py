"""Figure 7's per-object-query attention score (detection/attention_map.py)."""

from __future__ import annotations

import math

import torch

from indirect_attention.detection.attention_map import alignment_scores
from indirect_attention.detection.model import IADETR, DetrModelConfig
from indirect_attention.detection.preprocess import InputSpec, model_input

TINY = {"dim": 32, "num_heads": 2, "num_layers": 2, "ffn_dim": 64, "num_queries": 9}


def _batch(queries: list[torch.Tensor]):
    targets = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))] * len(queries)
    return model_input(targets, queries, InputSpec(64, 24), stride=8)


def test_scores_are_the_softmax_over_object_queries_averaged_over_query_image_keys() -> None:
    torch.manual_seed(0)
    model = IADETR(DetrModelConfig(object_queries="anchors", **TINY)).eval()
    queries = [torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(s)) for s in (2, 3)]
    batch = _batch(queries)
    scores = alignment_scores(model, batch)
    assert scores.shape == (2, 9)
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(2))
    assert not torch.allclose(scores[0], scores[1])  # the query image decides the ranking
    again = alignment_scores(model, batch)
    assert torch.equal(scores, again)  # the hook is removed, the model unchanged

    # Brute force for target 0, layer 0: the cross-attention's inputs rebuilt by running the
    # decoder layer's own norm on the first layer's input, logits per (head, query, key).
    attention = model.decoder.decoder.layers[0].cross_attn
    seen = {}
    handle = attention.register_forward_pre_hook(
        lambda m, a, k: seen.update(q=a[0].clone(), k=a[1].clone()), with_kwargs=True
    )
    with torch.no_grad():
        model(batch.targets, batch.queries)
    handle.remove()
    first = alignment_scores(model, batch, layer=0)
    heads, dim = attention.num_heads, TINY["dim"]
    head_dim = dim // heads
    q = attention.q_proj(seen["q"][0]).detach()
    k = attention.k_proj(seen["k"][0]).detach()
    covered = [n for n in range(64) if (n // 8) < 3 and (n % 8) < 3]  # the 24-px query: 3 × 3 cells
    expected = torch.zeros(9)
    for h in range(heads):
        qs = q[:, h * head_dim : (h + 1) * head_dim]
        ks = k[:, h * head_dim : (h + 1) * head_dim]
        for n in covered:
            logits = torch.tensor([float(qs[i] @ ks[n]) / math.sqrt(head_dim) for i in range(9)])
            expected += logits.softmax(dim=0) / (heads * len(covered))
    torch.testing.assert_close(first[0], expected, rtol=1e-5, atol=1e-6)
