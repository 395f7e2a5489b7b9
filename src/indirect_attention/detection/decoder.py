"""The IA-DETR decoder assembly and its per-layer box refinement (paper §6.2, appendix B.2).

Three kinds share one decoder skeleton (:class:`~indirect_attention.core.IndirectDecoder`: self-
attention → cross-attention → FFN, pre-norm, shared final norm, per-layer box refinement):

* ``ia``: indirect attention, keys from the query image's tokens, values from the target's, with
  the box-relative bias (BoxRPB) recomputed from each layer's boxes;
* ``misaligned``: the same keys and values without the bias;
* ``double-cross``: the target tokens first attend to the query image's tokens
  (:class:`~indirect_attention.core.CrossAttentionFusion`), then a standard cross-attention decoder
  (keys = values = fused target tokens, no bias) reads them.

**BoxRPB** (:class:`BoxRelativeBias`). Each object query holds a reference box. The bias of query
i on target cell (r, c) is ``φ_x(dx(i, c)) + φ_y(dy(i, r))``: φ_x reads the offsets of the box's
left and right edges to the centre of column c, φ_y those of its top and bottom edges to the
centre of row r, both in pixels, each a 2-layer ReLU MLP with one output per head. The bias
depends only on the box and the target (value) grid, never on key content: it tells each query
*where* in the target to read. Each axis is exactly the core's 1-D interval bias
(:class:`~indirect_attention.core.RelativePositionBias` with an interval reference), so the bias
comes out factored as a :class:`~indirect_attention.core.GridBias` (one term per row, one per
column) and is never evaluated per cell; on the shared pixel grid the MLPs run through
:func:`~indirect_attention.core.grid_mlp`, which never stores their hidden layer.

Shapes:
    B batch, Q object queries, N = h·w tokens, D model dim, Ly layers, H heads, h×w target grid.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from ..core import (
    CrossAttentionFusion,
    DecoderOutput,
    GridBias,
    IndirectDecoder,
    RelativePositionBias,
    inverse_sigmoid,
    value_positions,
)

__all__ = ["KINDS", "BoxRefinement", "BoxRelativeBias", "DetrDecoder"]

KINDS = ("ia", "misaligned", "double-cross")


def _axis_bias(num_heads: int, *, hidden_dim: int, fast: bool) -> RelativePositionBias:
    """One axis of BoxRPB: the interval bias over raw pixel offsets, no output bias (as the authors)."""
    return RelativePositionBias(
        num_heads,
        reference_size=2,
        hidden_dim=hidden_dim,
        offset_scale=1.0,
        log_offsets=False,
        output_bias=False,
        fast=fast,
    )


class BoxRelativeBias(nn.Module):
    """BoxRPB as two per-axis interval biases, returned in factored form.

    Args:
        num_heads: Number of heads H.
        hidden_dim: Hidden width of each axis MLP (the authors use 512).
        stride: Pixels per feature cell; offsets are measured in pixels of the input.
        fast: Evaluate the MLPs with :func:`grid_mlp` (same result, lean).

    Shapes:
        boxes (B, Q, 4) as normalised (cx, cy, w, h) over the h×w grid -> GridBias with rows
        (B, H, Q, h) and cols (B, H, Q, w).
    """

    def __init__(
        self, num_heads: int, *, hidden_dim: int = 512, stride: float = 16.0, fast: bool = True
    ) -> None:
        super().__init__()
        if stride <= 0:
            raise ValueError(f"stride must be positive, got {stride}")
        self.stride = stride
        self.x_bias = _axis_bias(num_heads, hidden_dim=hidden_dim, fast=fast)  # φ_x
        self.y_bias = _axis_bias(num_heads, hidden_dim=hidden_dim, fast=fast)  # φ_y

    def forward(self, boxes: Tensor, grid_size: tuple[int, int]) -> GridBias:
        """The bias of every query on every target cell, factored by rows and columns."""
        if boxes.dim() != 3 or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must have shape (B, Q, 4), got {tuple(boxes.shape)}")
        height, width = grid_size
        if height <= 0 or width <= 0:
            raise ValueError(f"grid_size must be positive, got {grid_size}")
        pixels_x, pixels_y = width * self.stride, height * self.stride
        x_intervals = torch.stack([boxes[..., 0], boxes[..., 2]], dim=-1) * pixels_x  # (B, Q, 2)
        y_intervals = torch.stack([boxes[..., 1], boxes[..., 3]], dim=-1) * pixels_y  # (B, Q, 2)
        columns = value_positions(width, device=boxes.device, dtype=boxes.dtype) * pixels_x
        rows = value_positions(height, device=boxes.device, dtype=boxes.dtype) * pixels_y
        return GridBias(
            rows=self.y_bias(y_intervals, rows),  # (B, H, Q, h)
            cols=self.x_bias(x_intervals, columns),  # (B, H, Q, w)
        )


class BoxRefinement(nn.Module):
    """Deformable-DETR iterative box refinement: ``r' = σ(logit(sg(r)) + MLP(LN(o)))``.

    The incoming box is detached (the authors' stop-gradient between layers), the 3-layer MLP's last
    layer starts at zero so every layer starts by keeping its box. The refined box is both the
    layer's prediction and the next layer's reference.

    Args:
        dim: Model dim D.
        reference_size: 4 (cx, cy, w, h).

    Shapes:
        references (B, Q, 4) in (0, 1), outputs (B, Q, D) -> (B, Q, 4)
    """

    def __init__(self, dim: int, reference_size: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim),
            nn.ReLU(),
            nn.Linear(dim, dim),
            nn.ReLU(),
            nn.Linear(dim, reference_size),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, references: Tensor, outputs: Tensor) -> Tensor:
        """Refine the boxes from the layer's output."""
        return torch.sigmoid(inverse_sigmoid(references.detach()) + self.mlp(self.norm(outputs)))


def _box_bias(num_heads: int, reference_size: int, *, hidden_dim: int, stride: float) -> nn.Module:
    del reference_size  # always 4 for boxes
    return BoxRelativeBias(num_heads, hidden_dim=hidden_dim, stride=stride)


class DetrDecoder(nn.Module):
    """One of the three decoders of Table 1 behind one call signature.

    Args:
        kind, dim, num_heads, num_layers, ffn_dim, bias_hidden, fusion_layers, fused_bias: As in
            :class:`~.model.DetrModelConfig`.
        stride: Input pixels per feature cell (the BoxRPB offsets are in input pixels).

    Shapes:
        queries (B, Q, D), query_tokens (B, N, D) keys, target_tokens (B, N, D) values,
        boxes (B, Q, 4), grid (h, w), key_padding_mask (B, N), query_padding_mask (B, N),
        target_padding_mask (B, N), query_pos (B, Q, D), memory (B, N, D)
        -> :class:`~indirect_attention.core.DecoderOutput`.
    """

    def __init__(
        self,
        kind: str,
        dim: int,
        num_heads: int,
        num_layers: int,
        *,
        ffn_dim: int,
        bias_hidden: int,
        stride: float,
        fusion_layers: int = 1,
        fused_bias: bool = False,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
        self.kind = kind
        bias = (
            partial(_box_bias, hidden_dim=bias_hidden, stride=stride)
            if kind == "ia" or (kind == "double-cross" and fused_bias)
            else None
        )
        self.fusion = (
            CrossAttentionFusion(dim, num_heads, fusion_layers, ffn_dim=ffn_dim)
            if kind == "double-cross"
            else None
        )
        self.decoder = IndirectDecoder(
            dim,
            num_heads,
            num_layers,
            ffn_dim=ffn_dim,
            reference_size=4,
            position_bias=bias,
            reference_update=BoxRefinement,
        )

    def forward(
        self,
        queries: Tensor,
        query_tokens: Tensor,
        target_tokens: Tensor,
        boxes: Tensor,
        grid: tuple[int, int],
        *,
        key_padding_mask: Tensor | None = None,
        query_padding_mask: Tensor | None = None,
        target_padding_mask: Tensor | None = None,
        query_pos: Tensor | None = None,
        memory: Tensor | None = None,
    ) -> DecoderOutput:
        """Decode; ``key_padding_mask`` masks IA/misaligned keys, the other two double-cross.

        ``query_pos`` is the positional query of two-stage object queries (:mod:`.proposals`);
        ``memory`` is the output of :meth:`fuse` when the caller has already computed it
        (``double-cross`` with two-stage queries, whose proposals read the fused tokens).
        """
        keys, values, mask = query_tokens, target_tokens, key_padding_mask
        if self.fusion is not None:  # the decoder reads the fused target tokens only
            if memory is None:
                memory = self.fuse(
                    target_tokens, query_tokens, query_padding_mask=query_padding_mask
                )
            keys, values, mask = memory, memory, target_padding_mask
        return self.decoder(
            queries,
            keys,
            values,
            references=boxes,
            positions=grid,
            key_padding_mask=mask,
            query_pos=query_pos,
        )

    def fuse(
        self, target_tokens: Tensor, query_tokens: Tensor, *, query_padding_mask: Tensor | None
    ) -> Tensor:
        """``double-cross``'s first block: the target tokens attend to the query image's tokens
        in ``fusion_layers`` cross-attention + FFN layers (no self-attention).

        Shapes:
            target_tokens (B, N, D), query_tokens (B, N, D), query_padding_mask (B, N)
            -> (B, N, D)
        """
        if self.fusion is None:
            raise ValueError(f"only double-cross fuses the tokens, this decoder is {self.kind!r}")
        return self.fusion(target_tokens, query_tokens, memory_padding_mask=query_padding_mask)
