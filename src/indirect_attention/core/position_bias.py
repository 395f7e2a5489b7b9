"""The learned position bias of indirect attention and its per-layer update (paper §5).

Each query holds a *reference* in normalised coordinates [0, 1]: a point (its centre) or an interval
(centre, width), the 1-D analogue of the detector's reference box. The bias of query i on value j is
``B_ij = φ(P_ij)`` where ``P_ij`` are the offsets from the reference to the centre of value position j
(one offset for a point, one per interval edge for an interval, as BoxRPB uses the box edges) and φ
is a 2-layer ReLU MLP with one output per head. After each layer the references are refined from the
layer's output, ``P^(l+1) = g(P^l, O^l)``; :class:`ReferenceUpdate` (a shift of the old reference)
and :class:`PointerUpdate` (an absolute position predicted from the output) are our choices of g
(see ``docs/paper_map.md``), and any module with the same ``forward(references, outputs)`` can
replace them.

Shapes:
    B batch, H heads, Lq queries, Lk value positions, D model dim, R reference size (1 point,
    2 interval as (centre, width)).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .grid_mlp import grid_mlp

__all__ = [
    "PointerUpdate",
    "ReferenceUpdate",
    "RelativePositionBias",
    "inverse_sigmoid",
    "position_references",
    "relative_offsets",
    "value_positions",
]


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """logit(x) with x clamped to [eps, 1 - eps] so that it stays finite."""
    x = x.clamp(eps, 1.0 - eps)
    return torch.log(x / (1.0 - x))


def value_positions(
    length: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Normalised centres ``(j + 0.5) / length`` of the ``length`` value positions.

    Shapes:
        -> (Lk,)
    """
    return (torch.arange(length, device=device, dtype=dtype) + 0.5) / length


def position_references(
    indices: Tensor, length: int, *, reference_size: int = 1, width: float | None = None
) -> Tensor:
    """Initial references P^0 at the value positions ``indices`` (Definition 1's s(i)).

    Args:
        indices: Integer position s(i) in the content sequence for each query.
        length: Length Lk of the content sequence.
        reference_size: 1 for a point, 2 for an interval (centre, width).
        width: Interval width in normalised units (default one position, ``1 / length``).

    Shapes:
        indices (Lq,) -> (Lq, R)
    """
    if reference_size not in (1, 2):
        raise ValueError(f"reference_size must be 1 (point) or 2 (interval), got {reference_size}")
    centres = (indices.to(torch.float32) + 0.5) / length  # (Lq,)
    if reference_size == 1:
        return centres[:, None]  # (Lq, 1)
    widths = torch.full_like(centres, 1.0 / length if width is None else width)
    return torch.stack([centres, widths], dim=-1)  # (Lq, 2)


def _anchors(references: Tensor) -> Tensor:
    """The point (centre) or the two interval edges each offset is measured from, (B, Lq, R)."""
    centre = references[..., :1]  # (B, Lq, 1)
    if references.shape[-1] == 1:
        return centre
    half = references[..., 1:2] / 2  # (B, Lq, 1)
    return torch.cat([centre - half, centre + half], dim=-1)  # (B, Lq, 2)


def relative_offsets(references: Tensor, positions: Tensor) -> Tensor:
    """Offsets from each query's reference to each value position, P_ij (paper §5).

    For a point reference c: ``p_j - c``. For an interval (c, w): ``(p_j - (c - w/2), p_j - (c + w/2))``,
    the offsets to its two edges.

    Shapes:
        references (B, Lq, R), positions (Lk,) or (B, Lk) -> (B, Lq, Lk, R)
    """
    if references.dim() != 3 or references.shape[-1] not in (1, 2):
        raise ValueError(
            f"references must have shape (B, Lq, 1) or (B, Lq, 2), got {tuple(references.shape)}"
        )
    if positions.dim() == 1:
        positions = positions[None, :]  # (1, Lk)
    if positions.dim() != 2 or positions.shape[0] not in (1, references.shape[0]):
        raise ValueError(
            f"positions must have shape (Lk,) or (B, Lk) with B={references.shape[0]}, "
            f"got {tuple(positions.shape)}"
        )
    anchors = _anchors(references)  # (B, Lq, R)
    return positions[:, None, :, None] - anchors[:, :, None, :]  # (B, Lq, Lk, R)


class RelativePositionBias(nn.Module):
    """φ: a 2-layer ReLU MLP from relative offsets to one logit bias per head (paper §5).

    Offsets are in normalised units; they are multiplied by ``offset_scale`` and, when
    ``log_offsets``, compressed as ``sign(x) log2(1 + |x|) / log2(offset_scale)`` so that near
    offsets are resolved finely and far ones coarsely (the detector's BoxRPB does the same per axis).

    Args:
        num_heads: Number of heads H (outputs of the MLP).
        reference_size: 1 for point references, 2 for intervals.
        hidden_dim: Width of the MLP's hidden layer.
        offset_scale: Multiplier applied to normalised offsets before the MLP.
        log_offsets: Whether to apply the signed log compression.
        output_bias: Whether φ's last layer has a bias. A per-head constant does not change the
            softmax (its gradient is zero), so a bias only matters if φ is read elsewhere.
        fast: On positions shared by the batch, evaluate the MLP through :func:`grid_mlp`,
            which never stores its (B, Lq, Lk, hidden) hidden layer (same result, less memory,
            faster).

    Shapes:
        references (B, Lq, R), positions (Lk,) or (B, Lk) -> bias (B, H, Lq, Lk)
    """

    def __init__(
        self,
        num_heads: int,
        *,
        reference_size: int = 1,
        hidden_dim: int = 128,
        offset_scale: float = 8.0,
        log_offsets: bool = True,
        output_bias: bool = True,
        fast: bool = True,
    ) -> None:
        super().__init__()
        if reference_size not in (1, 2):
            raise ValueError(
                f"reference_size must be 1 (point) or 2 (interval), got {reference_size}"
            )
        if num_heads <= 0 or hidden_dim <= 0 or (log_offsets and offset_scale <= 1.0):
            raise ValueError(
                f"need num_heads > 0, hidden_dim > 0 and offset_scale > 1 with log offsets; got "
                f"{num_heads}, {hidden_dim}, {offset_scale}"
            )
        self.num_heads = num_heads
        self.reference_size = reference_size
        self.offset_scale = offset_scale
        self.log_offsets = log_offsets
        self.fast = fast
        self.mlp = nn.Sequential(
            nn.Linear(reference_size, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, num_heads, bias=output_bias),
        )

    def encode_offsets(self, offsets: Tensor) -> Tensor:
        """The MLP's input features for raw normalised offsets (same shape)."""
        scaled = offsets * self.offset_scale
        if not self.log_offsets:
            return scaled
        return torch.sign(scaled) * torch.log2(1.0 + scaled.abs()) / math.log2(self.offset_scale)

    def forward(self, references: Tensor, positions: Tensor) -> Tensor:
        """The bias B = φ(P) for every query and value position."""
        if references.dim() != 3 or references.shape[-1] != self.reference_size:
            raise ValueError(
                f"references must have shape (B, Lq, {self.reference_size}), "
                f"got {tuple(references.shape)}"
            )
        positions = positions.to(references.dtype)
        if self.fast and positions.dim() == 1:
            return self._forward_on_grid(references, positions)
        offsets = relative_offsets(references, positions)  # (B, Lq, Lk, R)
        bias = self.mlp(self.encode_offsets(offsets))  # (B, Lq, Lk, H)
        return bias.permute(0, 3, 1, 2)  # (B, H, Lq, Lk)

    def _forward_on_grid(self, references: Tensor, positions: Tensor) -> Tensor:
        """Same result through :func:`grid_mlp`, which never stores the hidden layer."""
        bias = grid_mlp(
            _anchors(references),
            positions,
            self.mlp,
            self.offset_scale,
            log_offsets=self.log_offsets,
        )  # (B, Lq, Lk, H)
        return bias.permute(0, 3, 1, 2)  # (B, H, Lq, Lk)


class ReferenceUpdate(nn.Module):
    """g(P^l, O^l): refine each query's reference from the layer output (paper §5).

    ``r' = sigmoid(logit(r) + Linear(LayerNorm(o)))``, the 1-D analogue of DETR's iterative box
    refinement. The last linear layer starts at zero, so layer 1's bias is purely positional and
    later layers become content-informed as training moves the references (Figure 4). Gradients flow
    through the update unless ``detach``; without a loss on the references themselves a detached
    update would receive no gradient at all.

    Args:
        dim: Model dim D of the layer outputs.
        reference_size: 1 for points, 2 for intervals.
        detach: Stop gradients from later layers into earlier references.

    Shapes:
        references (B, Lq, R), outputs (B, Lq, D) -> (B, Lq, R)
    """

    def __init__(self, dim: int, *, reference_size: int = 1, detach: bool = False) -> None:
        super().__init__()
        self.detach = detach
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, reference_size)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, references: Tensor, outputs: Tensor) -> Tensor:
        """The refined references."""
        size = self.proj.out_features
        if references.dim() != 3 or references.shape[-1] != size:
            raise ValueError(
                f"references must have shape (B, Lq, {size}), got {tuple(references.shape)}"
            )
        expected = (*references.shape[:2], self.norm.normalized_shape[0])
        if tuple(outputs.shape) != expected:
            raise ValueError(
                f"outputs must have shape (B, Lq, D) = {expected}, got {tuple(outputs.shape)}"
            )
        if self.detach:
            references = references.detach()
        delta = self.proj(self.norm(outputs))  # (B, Lq, R)
        return torch.sigmoid(inverse_sigmoid(references) + delta.to(references.dtype))


class PointerUpdate(nn.Module):
    """g(P^l, O^l) that can move a reference to any position the layer output names (paper §5).

    :class:`ReferenceUpdate` shifts the old reference by ``Linear(LayerNorm(o))`` in logit space,
    so moving query i to a position k that depends on the data (e.g. "the marker's position plus
    s") needs the shift ``logit(c_k) - logit(c_i)``: an additive, query-specific and non-linear
    target. This g instead points at a position: a softmax over the ``num_positions`` value
    positions, read from the output, gives an absolute point ``sum_k pi_k c_k``, and a learned gate
    β in (0, 1) blends it with the old reference,

        r' = (1 - β) r + β sum_k softmax(W LayerNorm(o))_k c_k,   β = sigmoid(w · LayerNorm(o) + b).

    Any map from output features to positions is one linear layer away. The gate starts nearly
    closed (b = ``initial_gate_logit``), so early training keeps P^0. Points only (R = 1).

    Args:
        dim: Model dim D of the layer outputs.
        num_positions: Number of value positions Lk it can point at (centres ``(k + 0.5) / Lk``).
        reference_size: Must be 1 (point references).
        initial_gate_logit: Initial gate bias b.

    Shapes:
        references (B, Lq, 1), outputs (B, Lq, D) -> (B, Lq, 1)
    """

    def __init__(
        self,
        dim: int,
        *,
        num_positions: int,
        reference_size: int = 1,
        initial_gate_logit: float = -3.0,
    ) -> None:
        super().__init__()
        if reference_size != 1 or num_positions <= 0:
            raise ValueError(
                f"PointerUpdate needs point references (reference_size 1) and num_positions > 0, "
                f"got {reference_size} and {num_positions}"
            )
        self.norm = nn.LayerNorm(dim)
        self.pointer = nn.Linear(dim, num_positions)
        self.gate = nn.Linear(dim, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, initial_gate_logit)
        self.register_buffer("centres", value_positions(num_positions), persistent=False)

    def forward(self, references: Tensor, outputs: Tensor) -> Tensor:
        """The refined references."""
        expected = (*references.shape[:2], self.norm.normalized_shape[0])
        if references.dim() != 3 or references.shape[-1] != 1 or tuple(outputs.shape) != expected:
            raise ValueError(
                f"references (B, Lq, 1) and outputs (B, Lq, D) = {expected} expected, got "
                f"{tuple(references.shape)} and {tuple(outputs.shape)}"
            )
        features = self.norm(outputs)  # (B, Lq, D)
        weights = torch.softmax(self.pointer(features), dim=-1)  # (B, Lq, Lk)
        target = weights @ self.centres.to(weights.dtype)[:, None]  # (B, Lq, 1)
        gate = torch.sigmoid(self.gate(features))  # (B, Lq, 1)
        return (1.0 - gate) * references + gate * target.to(references.dtype)
