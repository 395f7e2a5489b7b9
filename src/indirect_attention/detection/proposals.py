"""Two-stage proposals and mixed query selection: the authors' object queries (paper §6.2).

IA-DETR is built on Plain-DETR, whose decoder starts from *proposals* rather than from learned
boxes (``reference/ia-detr-official.md`` §2.4). Every cell of the target memory proposes one box:
a score (is an object of the sampled class here) and a box predicted relative to the cell's own
anchor box (centre at the cell centre, side 0.1 of the canvas, the authors' size for the level
their memory sits at). The Q best-scoring proposals seed the decoder, and *mixed selection* splits
what they seed:

* content query c_i: a learned embedding, the same for every image (the image reaches the decoder
  only through attention);
* positional query p_i = LN(Linear(sine(r_i))) and reference box r_i: from the selected proposal,
  detached, so the decoder's losses never reach the proposal head through the selection.

The proposals get their own set loss (the same Hungarian matching and weights) in training, as in
two-stage DETRs; :class:`ProposalOutput` carries what that loss needs.

**The memory.** The authors have no encoder: their memory is the projected backbone features of
the target. Ours is the same: the target tokens after the backbone (whose last layer is the
projection to ``dim``), before the sine position code is added. For ``double-cross`` the authors
compute proposals from the query-conditioned memory (the output of the fusion block), and so does
:class:`~.model.IADETR`. One level only: the authors expand their stride-16 memory into 4
levels (strides 8-64); we propose at the backbone's one stride.

Shapes:
    memory (B, N, D), padding_mask (B, N) bool (True = padding), grid (h, w) with N = h·w
    -> :class:`ProposalOutput` with Q = ``num_queries`` selected of the N proposals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..core import inverse_sigmoid
from .position import sine_code

__all__ = ["ANCHOR_SIZE", "ProposalOutput", "TwoStageProposals", "box_sine_embedding"]

ANCHOR_SIZE = 0.1  # the authors' proposal side 0.05 · 2^level at the level of their memory (1)
_PADDING_LOGIT = -1e4  # a padded cell is never selected and is a sure negative of the loss


@dataclass
class ProposalOutput:
    """What :class:`TwoStageProposals` returns.

    Attributes:
        content: Content queries (learned, image-independent), (B, Q, D).
        position: Positional queries from the selected boxes, (B, Q, D).
        boxes: Selected proposal boxes, detached: the decoder's first references, (B, Q, 4).
        indices: Which cells were selected, (B, Q) long, best score first.
        logits: Score logits of every proposal, (B, N); padded cells hold a large negative value.
        proposal_boxes: Boxes of every proposal, (B, N, 4), (cx, cy, w, h) normalised by the canvas.
    """

    content: Tensor
    position: Tensor
    boxes: Tensor
    indices: Tensor
    logits: Tensor
    proposal_boxes: Tensor


def box_sine_embedding(boxes: Tensor, dim: int, *, temperature: float = 10000.0) -> Tensor:
    """Sine/cosine code of each of (cx, cy, w, h) times 2π, ``dim // 2`` features each.

    Shapes:
        boxes (B, Q, 4) in (0, 1) -> (B, Q, 2·dim)
    """
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4, got {dim}")
    code = sine_code(boxes.float(), dim // 2, temperature=temperature)  # (B, Q, 4, dim / 2)
    return code.flatten(-2).to(boxes.dtype)


def _cell_anchors(grid: tuple[int, int], *, device: torch.device) -> Tensor:
    """The anchor box of every cell, row-major, as logits: (N, 4)."""
    height, width = grid
    rows = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    cols = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    cy, cx = torch.meshgrid(rows, cols, indexing="ij")
    sides = torch.full_like(cx, ANCHOR_SIZE)
    anchors = torch.stack([cx, cy, sides, sides], dim=-1).flatten(0, 1)  # (N, 4)
    return inverse_sigmoid(anchors)


class TwoStageProposals(nn.Module):
    """Per-cell proposals, top-Q selection by score, and mixed query selection.

    Args:
        dim: Model dim D.
        num_queries: Object queries Q selected from the N proposals (needs N >= Q).

    Shapes:
        memory (B, N, D), padding_mask (B, N) or None, grid (h, w) -> :class:`ProposalOutput`.
    """

    def __init__(self, dim: int, num_queries: int) -> None:
        super().__init__()
        self.num_queries = num_queries
        self.memory_proj = nn.Linear(dim, dim)
        self.memory_norm = nn.LayerNorm(dim)
        self.score_head = nn.Linear(dim, 1)
        nn.init.constant_(self.score_head.bias, -math.log((1 - 0.01) / 0.01))  # prior 0.01
        self.box_head = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 4)
        )
        nn.init.zeros_(self.box_head[-1].weight)  # every proposal starts as its cell's anchor
        nn.init.zeros_(self.box_head[-1].bias)
        self.content = nn.Embedding(num_queries, dim)
        self.position = nn.Sequential(nn.Linear(2 * dim, dim), nn.LayerNorm(dim))

    def forward(
        self, memory: Tensor, padding_mask: Tensor | None, grid: tuple[int, int]
    ) -> ProposalOutput:
        """Propose a box per cell, select the Q best, build the decoder's queries from them."""
        batch, length, dim = memory.shape
        if length != grid[0] * grid[1]:
            raise ValueError(
                f"memory has {length} tokens but the grid {grid} has {grid[0] * grid[1]}"
            )
        if length < self.num_queries:
            raise ValueError(
                f"two-stage queries select {self.num_queries} of the {length} cells of a "
                f"{grid[0]}×{grid[1]} grid; use at most {length} queries or larger images"
            )
        if padding_mask is not None:
            memory = memory.masked_fill(padding_mask[..., None], 0.0)
        hidden = self.memory_norm(self.memory_proj(memory))  # (B, N, D)
        logits = self.score_head(hidden)[..., 0]  # (B, N)
        if padding_mask is not None:
            logits = logits.masked_fill(padding_mask, _PADDING_LOGIT)
        anchors = _cell_anchors(grid, device=memory.device).to(hidden.dtype)  # (N, 4)
        proposal_boxes = torch.sigmoid(self.box_head(hidden) + anchors)  # (B, N, 4)
        indices = torch.topk(logits.detach(), self.num_queries, dim=1).indices  # (B, Q)
        picked = torch.gather(proposal_boxes, 1, indices[..., None].expand(-1, -1, 4))
        boxes = picked.detach()  # (B, Q, 4)
        position = self.position(box_sine_embedding(boxes, dim))  # (B, Q, D)
        content = self.content.weight.to(memory.dtype).expand(batch, -1, -1)  # (B, Q, D)
        return ProposalOutput(content, position, boxes, indices, logits, proposal_boxes)
