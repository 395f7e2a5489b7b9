"""What the decoder's attention shows, read through hooks removed afterwards (the model runs
unchanged): where the query matched (paper §6.2) and Figure 7's ranking (Appendix B.2.1).

:func:`attention_map`: in IA-DETR's last decoder layer each object query attends over the N = h·w
target cells (indirect attention: keys from the query image, values from the target, plus the box
bias; the baselines: their own cross-attention). It takes those probabilities, averaged over
heads, sums them over the object queries behind the given detections weighted by their scores
(all queries by score when none is given), and maps the grid back to the target's original
pixels. The last decoder layer computes the probabilities on request (``need_weights``, the
reference attention path).

:func:`alignment_scores`: in a decoder layer's cross-attention the logits q_i · k_j pair object
query i with key j of the query image (in indirect attention the keys come only from it: this is
the alignment term of §4). The paper normalises them with a softmax along the *object-query* axis
(which object queries a key selects), averages over the keys and the heads, and ranks the object
queries by the result: one score per object query, which it reports agrees with the final
confidence. Computed here from the layer's own projections on the inputs its cross-attention
received (a forward pre-hook), averaged over the keys of the cells the query image covers (not
its padding) and over the heads; the scores of one target sum to 1 over the object queries.

Shapes:
    target (3, H, W), query (3, h, w) in [0, 1] -> heat (H, W) in [0, 1] (1 at the hottest cell);
    targets (B, 3, H, W), queries (B, 3, q, q) -> scores (B, Q)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import IndirectDecoder
from .model import IADETR, feature_mask
from .predict import model_output
from .preprocess import ImageLike, InputSpec, ModelInput, as_image, model_input

__all__ = ["alignment_scores", "attention_map", "last_layer_attention"]


@torch.no_grad()
def last_layer_attention(model: IADETR, batch: ModelInput) -> tuple[Tensor, Tensor]:
    """The last decoder layer's attention probabilities and the final scores of ``batch``.

    Returns:
        attn (B, H, Q, N) over the target cells (rows sum to 1 over unmasked cells) and scores
        (B, Q), both on the CPU.
    """
    decoder = next(m for m in model.modules() if isinstance(m, IndirectDecoder))
    maps: list[Tensor] = []

    def capture(_module, _args, result: tuple[Tensor, Tensor]) -> Tensor:
        out, attn = result
        maps.append(attn)  # (B, H, Q, N)
        return out  # the decoder goes on as without weights

    last = decoder.layers[-1]
    handles = [
        last.register_forward_pre_hook(
            lambda _, args, kwargs: (args, {**kwargs, "need_weights": True}), with_kwargs=True
        ),
        last.register_forward_hook(capture),
    ]
    was_training = model.training
    model.eval()
    try:
        output = model_output(model, batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return maps[0].float().cpu(), output.logits[-1].float().sigmoid().cpu()


@torch.no_grad()
def attention_map(
    model: IADETR,
    target: ImageLike,
    query: ImageLike,
    *,
    queries: Tensor | None = None,
    weights: Tensor | None = None,
    input_spec: InputSpec | None = None,
) -> Tensor:
    """The last decoder layer's attention over ``target``, at its original size.

    Args:
        model: The detector (run in eval mode, then its mode is restored).
        target: Path, PIL image or (3, H, W) tensor.
        query: Same kinds.
        queries: (K,) long, the object queries to show (``Detections.queries``); None: all Q.
        weights: (K,) their weights (``Detections.scores``); None: every query's own score.
        input_spec: Input sizes; default ``model.input_spec``.

    Returns:
        (H, W) float in [0, 1] on the CPU; all zeros when the weights are.

    Raises:
        ValueError: a model without input sizes, or ``queries`` and ``weights`` of other lengths.
    """
    spec = input_spec or model.input_spec
    if spec is None:
        raise ValueError("the model records no input sizes (model.input_spec is None)")
    if queries is not None and weights is not None and len(queries) != len(weights):
        raise ValueError(f"queries ({len(queries)}) and weights ({len(weights)}) differ in length")
    image = as_image(target, name="target")
    batch = model_input(
        [image], [as_image(query, name="query")], spec, stride=model.backbone.stride
    )
    attn, scores = last_layer_attention(model, batch)
    attn, scores = attn[0].mean(dim=0), scores[0]  # (Q, N) averaged over heads, (Q,)
    index = torch.arange(len(scores)) if queries is None else queries.long().cpu()
    weight = scores[index] if weights is None else weights.float().cpu()
    canvas_h, canvas_w = batch.targets.shape[-2:]
    stride = model.backbone.stride
    grid = (weight[:, None] * attn[index]).sum(dim=0)  # (N,)
    grid = grid.reshape(canvas_h // stride, canvas_w // stride)  # (h, w)
    height, width = image.shape[-2:]
    valid = (canvas_h, canvas_w)  # the resized target, top-left on the canvas
    if batch.target_padding is not None:
        content = ~batch.target_padding[0]
        valid = (int(content.any(dim=1).sum()), int(content.any(dim=0).sum()))
    full = F.interpolate(grid[None, None], size=(canvas_h, canvas_w), mode="nearest")
    heat = F.interpolate(
        full[..., : valid[0], : valid[1]], size=(height, width), mode="bilinear", antialias=True
    )[0, 0].clamp(min=0.0)
    peak = heat.max()
    return heat / peak if peak > 0 else heat


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
