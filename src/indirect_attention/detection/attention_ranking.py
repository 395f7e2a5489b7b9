"""Figure 7's ranking of the object queries as the paper computes it (Appendix B.2.1).

In a decoder layer's cross-attention the logits q_i · k_j pair object query i with key j of the
query image (in indirect attention the keys come only from it: this is the alignment term of
§4). The paper normalises them with a softmax along the *object-query* axis (which object queries
a key selects), averages over the keys and the heads, and ranks the object queries by the result:
one score per object query, which it reports agrees with the final confidence.

Computed here from the layer's own projections on the inputs its cross-attention received
(a forward pre-hook; the model runs unchanged), averaged over the keys of the cells the query
image covers (not its padding) and over the heads. The scores of one target sum to 1 over the
object queries.

Shapes:
    targets (B, 3, H, W), queries (B, 3, q, q) -> scores (B, Q)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .model import IADETR, feature_mask
from .predict import model_output
from .preprocess import ModelInput

__all__ = ["alignment_scores"]


@torch.no_grad()
def alignment_scores(model: IADETR, batch: ModelInput, *, layer: int = -1) -> Tensor:
    """The per-object-query attention score of Figure 7 in decoder layer ``layer``.

    Args:
        model: The detector (its mode is left as it is; call ``eval()`` first).
        batch: Targets and queries as :func:`.preprocess.model_input` makes them.
        layer: The decoder layer (default the last).

    Returns:
        (B, Q) scores; each row sums to 1.
    """
    attention = model.decoder.decoder.layers[layer].cross_attn
    captured: dict[str, Tensor] = {}

    def keep(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        captured["queries"], captured["keys"] = args[0], args[1]

    handle = attention.register_forward_pre_hook(keep, with_kwargs=True)
    device = next(model.parameters()).device
    try:
        output = model_output(model, batch)
    finally:
        handle.remove()
    heads = attention.num_heads
    q = attention.q_proj(captured["queries"])  # (B, Q, D)
    k = attention.k_proj(captured["keys"])  # (B, N, D)
    batch_size, num_queries, dim = q.shape
    q = q.view(batch_size, num_queries, heads, dim // heads).transpose(1, 2)  # (B, H, Q, Dh)
    k = k.view(batch_size, k.shape[1], heads, dim // heads).transpose(1, 2)  # (B, H, N, Dh)
    logits = q @ k.transpose(-1, -2) / math.sqrt(dim // heads)  # (B, H, Q, N)
    per_key = logits.softmax(dim=2)  # along the object queries
    canvas = tuple(batch.targets.shape[-2:])
    _, query_padding = model.canvas_query(batch.queries.to(device), canvas, batch.query_offsets)
    covered = ~feature_mask(query_padding, output.grid).flatten(1)  # (B, N)
    weights = covered.float() / covered.float().sum(dim=1, keepdim=True).clamp_min(1.0)
    return torch.einsum("bhqn,bn->bq", per_key, weights) / heads  # (B, Q)
