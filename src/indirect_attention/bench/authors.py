"""The authors' formulation of the box bias (BoxRPB, paper §6.2), written afresh as a baseline.

The authors evaluate each axis MLP on the (B, Q, S, 2) pixel offsets of the box edges to the grid
centres, keeping its (B, Q, S, hidden) hidden layer for backward, broadcast the two axes to a
materialised (B, H, Q, h·w) bias and add it to the full logits. :func:`authors_box_bias` computes
that dense bias with the weights of one of our :class:`BoxRelativeBias` modules (so both compute
the same function, and one can be checked against the other); :class:`AuthorsBoxBias` puts it in
place of ours inside the detector's decoder. Given a dense bias that requires a gradient,
:func:`~indirect_attention.core.attend` runs PyTorch's math attention (materialised logits + bias,
softmax, @v: its fused CPU kernels cannot differentiate an additive mask), which is the authors'
attention.

Shapes:
    B batch, H heads, Q object queries, h×w target grid, N = h·w.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..detection.decoder import BoxRelativeBias

__all__ = ["AuthorsBoxBias", "authors_axis_mlp", "authors_box_bias"]


def authors_axis_mlp(mlp: nn.Sequential, intervals: Tensor, centres: Tensor) -> Tensor:
    """The authors' per-axis MLP on (edge - centre) pixel offsets; weights shared with ours.

    They feed ``(x1 - u, x2 - u)``; ours reads ``(u - x1, u - x2)``, so the first layer's weight
    enters with the opposite sign and both compute the same function.

    Shapes:
        intervals (B, Q, 2) as (centre, width) in pixels, centres (S,) -> (B, Q, S, H)
    """
    half = intervals[..., 1:] / 2
    edges = torch.cat([intervals[..., :1] - half, intervals[..., :1] + half], -1)  # (B, Q, 2)
    offsets = edges[:, :, None, :] - centres[None, None, :, None]  # (B, Q, S, 2)
    first, second = mlp[0], mlp[2]
    hidden = F.relu(F.linear(offsets, -first.weight, first.bias))  # (B, Q, S, hidden)
    return F.linear(hidden, second.weight, second.bias)  # (B, Q, S, H)


def authors_box_bias(box_bias: BoxRelativeBias, boxes: Tensor, grid: tuple[int, int]) -> Tensor:
    """The dense BoxRPB the authors add to the logits, with ``box_bias``'s weights.

    Shapes:
        boxes (B, Q, 4) normalised (cx, cy, w, h), grid (h, w) -> (B, H, Q, h·w)
    """
    height, width = grid
    stride = box_bias.stride
    x_centres = (torch.arange(width, dtype=boxes.dtype, device=boxes.device) + 0.5) * stride
    y_centres = (torch.arange(height, dtype=boxes.dtype, device=boxes.device) + 0.5) * stride
    x_intervals = torch.stack([boxes[..., 0], boxes[..., 2]], -1) * (width * stride)  # (B, Q, 2)
    y_intervals = torch.stack([boxes[..., 1], boxes[..., 3]], -1) * (height * stride)
    bias_x = authors_axis_mlp(box_bias.x_bias.mlp, x_intervals, x_centres)  # (B, Q, w, H)
    bias_y = authors_axis_mlp(box_bias.y_bias.mlp, y_intervals, y_centres)  # (B, Q, h, H)
    bias = bias_y[:, :, :, None, :] + bias_x[:, :, None, :, :]  # (B, Q, h, w, H)
    return bias.flatten(2, 3).permute(0, 3, 1, 2)  # (B, H, Q, N)


class AuthorsBoxBias(nn.Module):
    """A drop-in for :class:`BoxRelativeBias` that returns the authors' dense bias.

    It holds the wrapped module (same parameters, same names below ``.box_bias``), so a decoder
    whose biases are swapped for these computes the same function the authors' way.

    Args:
        box_bias: The module whose weights are used.

    Shapes:
        boxes (B, Q, 4), grid_size (h, w) -> (B, H, Q, h·w)
    """

    def __init__(self, box_bias: BoxRelativeBias) -> None:
        super().__init__()
        self.box_bias = box_bias

    def forward(self, boxes: Tensor, grid_size: tuple[int, int]) -> Tensor:
        """The dense bias of every query on every target cell."""
        return authors_box_bias(self.box_bias, boxes, grid_size)
