"""Box-relative position bias (BoxRPB) of IA-DETR's indirect attention (paper §6.2, appendix B.2).

Each object query holds a reference box. The bias of query i on target cell (r, c) is
``φ_x(dx(i, c)) + φ_y(dy(i, r))``: φ_x reads the offsets of the box's left and right edges to the
centre of column c, φ_y those of its top and bottom edges to the centre of row r, both in pixels,
each a 2-layer ReLU MLP with one output per head. The bias depends only on the box and the target
(value) grid, never on key content: it tells each query *where* in the target to read.

Each axis is exactly the core's 1-D interval bias (:class:`RelativePositionBias` with an interval
reference), so the bias comes out factored as a :class:`GridBias` (one term per row, one per
column) and is never evaluated per cell; on the shared pixel grid the MLPs run through
:func:`grid_mlp`, which never stores their hidden layer.

Shapes:
    B batch, H heads, Q object queries, h×w target feature grid, N = h·w target tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core import GridBias, RelativePositionBias, value_positions

__all__ = ["BoxRelativeBias"]


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
