"""Where the query matched: the decoder's attention over the target, as a heat map (paper §6.2).

In IA-DETR's last decoder layer each object query attends over the N = h·w target cells (indirect
attention: keys from the query image, values from the target, plus the box bias; the baselines:
their own cross-attention). :func:`attention_map` takes those probabilities, averaged over heads,
sums them over the object queries behind the given detections weighted by their scores (all
queries by score when none is given), and maps the grid back to the target's original pixels.
It asks the last decoder layer for the probabilities it computes on request (``need_weights``,
the reference attention path) through hooks removed afterwards, so the model is unchanged.

Shapes:
    target (3, H, W), query (3, h, w) in [0, 1] -> heat (H, W) in [0, 1] (1 at the hottest cell).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import IndirectDecoder
from .model import IADETR
from .predict import model_output
from .preprocess import ImageLike, InputSpec, ModelInput, as_image, model_input

__all__ = ["attention_map", "last_layer_attention"]


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
