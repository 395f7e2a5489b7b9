"""IA-DETR: the one-shot detector of paper §6.2 and its two Table-1 baselines.

A shared backbone encodes the target image and the query image; a decoder of learned object queries
with per-layer box refinement reads the target through one of three attention schemes (see
:mod:`.decoder`); heads give a binary score ("an instance of the query's class") and a box.

**Bringing the query to the target's length.** Indirect attention needs one key per value. As the
authors do, the query image is zero-padded (after normalisation, i.e. mean colour) at the bottom and
right onto the target-sized canvas (``query_mode="pad"``); key cell j and value cell j then share a
grid index but not a meaning. Only cells that are padding in the *target* are masked: a cell where
just the query image is padding still holds real target content in its value, which the box bias
can address (masking it would hide every target region outside the query's extent). The key mask
is therefore the target's padding alone; the authors' ``target_pad AND query_pad`` differs only
where the query image sticks out past the target's valid area, where it would let the decoder read
target padding. The measured alternative, ``query_mode="resize"``,
resizes the query image to the target's canvas so every key cell has content. ``"pad-features"``
is a cheaper equivalent of ``"pad"`` (paper: the query costs as much as the target): the query is
encoded at its own size and its features are placed top-left on the grid, the other cells holding
the features of an all-padding canvas (they differ from ``"pad"`` only within the receptive field
of the query's border).

Boxes are (cx, cy, w, h) normalised by the padded canvas.

Shapes:
    targets (B, 3, H, W) in [0, 1], target_padding (B, H, W) bool (True = padding),
    queries (B, 3, h, w) in [0, 1] with h <= H, w <= W -> :class:`DetrOutput`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import ContentEnrichedQueries, inverse_sigmoid
from .backbone import Backbone
from .decoder import KINDS, DetrDecoder
from .hub import DetectorHubMixin
from .position import sine_position_embedding
from .preprocess import InputSpec, query_cells
from .proposals import ProposalOutput, TwoStageProposals

__all__ = ["IADETR", "OBJECT_QUERIES", "QUERY_MODES", "DetrModelConfig", "DetrOutput"]

QUERY_MODES = ("pad", "pad-features", "resize")
OBJECT_QUERIES = ("learned", "anchors", "two-stage")


@dataclass
class DetrModelConfig:
    """Architecture of :class:`IADETR`.

    Attributes:
        kind: ``ia``, ``misaligned`` or ``double-cross``.
        backbone: ``small`` (emoji) or ``resnet50`` (VOC/COCO).
        backbone_weights: Local state dict for the ResNet-50 body (random init when None).
        dim: Model dim D.
        num_heads: Attention heads.
        num_layers: Decoder layers.
        ffn_dim: FFN width.
        num_queries: Object queries Q.
        bias_hidden: BoxRPB MLP hidden width (authors: 512).
        fusion_layers: Target-to-query cross-attention layers before the ``double-cross``
            decoder (the authors': 6).
        fused_bias: ``double-cross`` only: BoxRPB in its decoder as well (the authors' version).
        bias_unit: Unit of the BoxRPB offsets: ``pixel`` (input pixels, the authors' choice;
            biases of std ≈ 12 at initialisation) or ``cell`` (feature cells; std ≈ 1).
        query_mode: ``pad`` (authors), ``pad-features`` (same layout, query encoded at its own
            size) or ``resize`` (every key cell has content).
        object_queries: ``learned`` (DETR: learned embeddings and reference boxes) or ``anchors``
            (the paper's Definition 1, q_i = e_i + x_s(i): a learned embedding plus the target
            feature at anchor cell s(i) of a √Q × √Q lattice, whose reference box starts there)
            or ``two-stage`` (the authors' Plain-DETR queries, :mod:`.proposals`: per-cell
            proposals from the target memory, the Q best seed the reference boxes and positional
            queries; the content queries are learned and image-independent).
    """

    kind: str = "ia"
    backbone: str = "small"
    backbone_weights: str | None = None
    dim: int = 128
    num_heads: int = 4
    num_layers: int = 4
    ffn_dim: int = 512
    num_queries: int = 30
    bias_hidden: int = 64
    fusion_layers: int = 1
    fused_bias: bool = False
    bias_unit: str = "pixel"
    query_mode: str = "pad-features"
    object_queries: str = "learned"

    def __post_init__(self) -> None:
        for name, choices in (
            ("object_queries", OBJECT_QUERIES),
            ("kind", KINDS),
            ("query_mode", QUERY_MODES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose from {choices}")
        if self.object_queries == "anchors" and math.isqrt(self.num_queries) ** 2 != (
            self.num_queries
        ):
            raise ValueError(
                f"object_queries='anchors' needs a square num_queries (a √Q × √Q lattice), "
                f"got {self.num_queries}"
            )
        if self.bias_unit not in ("cell", "pixel"):
            raise ValueError(f"bias_unit must be 'cell' or 'pixel', got {self.bias_unit!r}")


@dataclass
class DetrOutput:
    """What :class:`IADETR` returns.

    Attributes:
        logits: Binary score logits of every layer, (Ly, B, Q); ``[-1]`` is the prediction.
        boxes: Boxes of every layer, (Ly, B, Q, 4), (cx, cy, w, h) normalised by the canvas.
        key_padding_mask: The key mask used by IA/misaligned, (B, N), or None.
        grid: Feature grid (h, w).
        proposal_logits: Two-stage queries only: score logits of every proposal, (B, N).
        proposal_boxes: Two-stage queries only: box of every proposal, (B, N, 4); these two
            get their own set loss in training (:func:`.train.detr_loss`).
    """

    logits: Tensor
    boxes: Tensor
    key_padding_mask: Tensor | None
    grid: tuple[int, int]
    proposal_logits: Tensor | None = None
    proposal_boxes: Tensor | None = None


def _box_logits(centres: Tensor, side: float) -> Tensor:
    """Reference boxes of width and height ``side`` at ``centres``, as logits: (Q, 2) -> (Q, 4)."""
    return inverse_sigmoid(torch.cat([centres, torch.full_like(centres, side)], dim=-1))


def _anchor_lattice(num_queries: int) -> Tensor:
    """Centres of a √Q × √Q lattice over the canvas, row-major, (Q, 2) as (cx, cy) in (0, 1)."""
    side = math.isqrt(num_queries)
    steps = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    cy, cx = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([cx.flatten(), cy.flatten()], dim=-1)


def _anchor_cells(centres: Tensor, grid: tuple[int, int]) -> Tensor:
    """Flat index of the feature cell under each anchor centre: (Q, 2) -> (Q,) long."""
    height, width = grid
    cols = (centres[:, 0] * width).long().clamp(0, width - 1)
    rows = (centres[:, 1] * height).long().clamp(0, height - 1)
    return rows * width + cols


def _checked_offsets(
    offsets: Tensor, canvas: tuple[int, int], size: tuple[int, int], stride: int
) -> list[tuple[int, int]]:
    """``offsets`` (B, 2) as (row, column) cells, refused unless the query fits the canvas."""
    rows, cols = (n - 1 for n in query_cells(canvas, size, stride))  # the last valid cells
    cells = [(int(r), int(c)) for r, c in offsets.tolist()]
    for row, col in cells:
        if not (0 <= row <= rows and 0 <= col <= cols):
            raise ValueError(
                f"query_offsets: got cell ({row}, {col}); expected rows 0..{rows} and columns "
                f"0..{cols} (a {size[0]}x{size[1]} query on a {canvas[0]}x{canvas[1]} canvas, "
                f"stride {stride})"
            )
    return cells


def feature_mask(padding: Tensor, size: tuple[int, int]) -> Tensor:
    """Pixel padding (B, H, W) -> cell padding (B, h, w): a cell is padding if all its pixels are."""
    valid = F.adaptive_max_pool2d((~padding).float()[:, None], size)[:, 0]
    return valid < 0.5


class IADETR(nn.Module, DetectorHubMixin):
    """The one-shot detector (paper §6.2); the kind is an explicit argument.

    Loading a trained model is :func:`.release.load_detector` or ``IADETR.from_pretrained(dir)``
    (``model.save_pretrained(dir)`` writes one, :mod:`.hub`); finding objects in images of one's
    own is :func:`.detect.detect`. The module itself reads no file.

    Args:
        config: Architecture.
        input_spec: The input sizes the model is trained at (:mod:`.preprocess`); recorded in
            checkpoints and exports, and read by :func:`.detect.detect`. None: not known yet.
        seed: Seed of the initial reference boxes.

    Attributes:
        score_threshold: The score threshold recommended for this model's weights (chosen on
            validation when it was exported, :mod:`.pretrained`); :func:`.detect.detect` uses
            it when none is given. None: not known (detect then uses 0.5).
    """

    def __init__(
        self, config: DetrModelConfig, *, input_spec: InputSpec | None = None, seed: int = 0
    ) -> None:
        super().__init__()
        self.config = config
        self.input_spec = input_spec
        self.score_threshold: float | None = None
        dim = config.dim
        self.backbone = Backbone(dim, name=config.backbone, weights=config.backbone_weights)
        self.level_embed = nn.Parameter(torch.randn(dim) * 0.02)
        self.decoder = DetrDecoder(
            config.kind,
            dim,
            config.num_heads,
            config.num_layers,
            ffn_dim=config.ffn_dim,
            bias_hidden=config.bias_hidden,
            stride=float(self.backbone.stride) if config.bias_unit == "pixel" else 1.0,
            fusion_layers=config.fusion_layers,
            fused_bias=config.fused_bias,
        )
        generator = torch.Generator().manual_seed(seed)
        if config.object_queries == "anchors":
            self.anchor_queries = ContentEnrichedQueries(config.num_queries, dim)
            centres = _anchor_lattice(config.num_queries)
            self.register_buffer("anchor_centres", centres, persistent=False)
            initial = _box_logits(centres, 0.15)
        elif config.object_queries == "two-stage":
            self.proposals = TwoStageProposals(dim, config.num_queries)
        else:
            self.query_embed = nn.Embedding(config.num_queries, dim)
            # spread over the canvas: random centres in [0.1, 0.9]
            initial = _box_logits(
                0.1 + 0.8 * torch.rand(config.num_queries, 2, generator=generator), 0.2
            )
        if config.object_queries != "two-stage":  # two-stage boxes come from the proposals
            self.reference_logits = nn.Parameter(initial)
        self.class_head = nn.Linear(dim, 1)
        nn.init.constant_(self.class_head.bias, -math.log((1 - 0.01) / 0.01))

    def canvas_query(
        self, queries: Tensor, canvas: tuple[int, int], offsets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Normalised query images on the target canvas, and their padding (True = padding).

        The query sits at the top-left corner (the authors' layout), or ``offsets`` feature cells
        (row, column) from it; a ``resize`` query fills the canvas and ignores them.

        Shapes:
            queries (B, 3, h, w), offsets (B, 2) -> (B, 3, H, W), (B, H, W)
        """
        height, width = canvas
        normed = self.backbone.normalize(queries)
        batch = queries.shape[0]
        if (
            self.config.query_mode == "resize"
            or queries.shape[-2] > height
            or queries.shape[-1] > width
        ):
            if self.config.query_mode == "pad":  # too large: shrink to fit, keep the aspect
                scale = min(height / queries.shape[-2], width / queries.shape[-1])
                size = (int(queries.shape[-2] * scale), int(queries.shape[-1] * scale))
            else:
                size = (height, width)
            normed = F.interpolate(normed, size=size, mode="bilinear", align_corners=False)
        qh, qw = normed.shape[-2:]
        canvas_images = normed.new_zeros(batch, 3, height, width)
        padding = torch.ones(batch, height, width, dtype=torch.bool, device=queries.device)
        if offsets is None or (qh, qw) == (height, width):
            canvas_images[:, :, :qh, :qw] = normed
            padding[:, :qh, :qw] = False
            return canvas_images, padding
        stride = self.backbone.stride
        for b, (row, col) in enumerate(
            _checked_offsets(offsets, (height, width), (qh, qw), stride)
        ):
            top, left = row * stride, col * stride
            canvas_images[b, :, top : top + qh, left : left + qw] = normed[b]
            padding[b, top : top + qh, left : left + qw] = False
        return canvas_images, padding

    def _place_query_features(
        self, target_images: Tensor, queries: Tensor, offsets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Target features, and query features encoded at the query's size placed top-left (or
        ``offsets`` cells from it) on a grid of all-padding features (``pad-features``)."""
        batch, stride = target_images.shape[0], self.backbone.stride
        target_features = self.backbone(target_images)  # (B, D, h, w)
        padding = self.backbone(torch.zeros_like(target_images[:1]))  # (1, D, h, w)
        own = self.backbone(self.backbone.normalize(queries))  # (B, D, hq, wq)
        qh, qw = math.ceil(queries.shape[-2] / stride), math.ceil(queries.shape[-1] / stride)
        query_features = padding.expand(batch, -1, -1, -1).clone()
        if offsets is None:
            query_features[:, :, :qh, :qw] = own[:, :, :qh, :qw]
            return target_features, query_features
        canvas = tuple(target_images.shape[-2:])
        size = tuple(queries.shape[-2:])
        for b, (row, col) in enumerate(_checked_offsets(offsets, canvas, size, stride)):
            query_features[b, :, row : row + qh, col : col + qw] = own[b, :, :qh, :qw]
        return target_features, query_features

    def forward(
        self,
        targets: Tensor,
        queries: Tensor,
        target_padding: Tensor | None = None,
        query_offsets: Tensor | None = None,
    ) -> DetrOutput:
        """Detect the query's class in each target.

        Args:
            targets: (B, 3, H, W) canvases in [0, 1].
            queries: (B, 3, h, w) query images in [0, 1].
            target_padding: (B, H, W) bool, True = padding; None: no padding.
            query_offsets: (B, 2) int (row, column) in feature cells of the query's top-left
                corner on the key canvas; None: the corner itself (the authors' layout).
        """
        batch, _, height, width = targets.shape
        if target_padding is None:
            target_padding = targets.new_zeros(batch, height, width, dtype=torch.bool)
        target_images = self.backbone.normalize(targets).masked_fill(target_padding[:, None], 0.0)
        query_images, query_padding = self.canvas_query(queries, (height, width), query_offsets)
        fits = queries.shape[-2] <= height and queries.shape[-1] <= width
        if self.config.query_mode == "pad-features" and fits:
            target_features, query_features = self._place_query_features(
                target_images, queries, query_offsets
            )
        else:
            features = self.backbone(torch.cat([target_images, query_images]))  # (2B, D, h, w)
            target_features, query_features = features[:batch], features[batch:]
        grid = (target_features.shape[-2], target_features.shape[-1])
        target_memory = target_features.flatten(2).transpose(1, 2)  # (B, N, D)
        query_tokens = query_features.flatten(2).transpose(1, 2)  # (B, N, D)
        target_cells = feature_mask(target_padding, grid)  # (B, h, w)
        query_cells = feature_mask(query_padding, grid)
        dim = self.config.dim
        position = sine_position_embedding(~target_cells, dim)
        target_tokens = target_memory + position + self.level_embed  # (B, N, D)
        query_tokens = query_tokens + sine_position_embedding(~query_cells, dim)
        # The keys are masked by the target's padding alone: a cell where only the query image is
        # padding stays attendable (module docstring).
        target_mask, query_mask = target_cells.flatten(1), query_cells.flatten(1)  # (B, N)
        object_queries, boxes, query_pos, memory, proposals = self._object_queries(
            target_memory, target_tokens, query_tokens, (target_mask, query_mask), grid
        )
        result = self.decoder(
            object_queries,
            query_tokens,
            target_tokens,
            boxes,
            grid,
            # always passed: a mask with no True entry gives the same result as none, and
            # choosing None by its content would be a data-dependent branch (a graph break
            # under torch.compile, a failure under torch.export)
            key_padding_mask=target_mask,
            query_padding_mask=query_mask,
            target_padding_mask=target_mask,
            query_pos=query_pos,
            memory=memory,
        )
        assert result.references is not None
        return DetrOutput(
            logits=self.class_head(result.outputs)[..., 0],  # (Ly, B, Q)
            boxes=result.references[1:],  # (Ly, B, Q, 4)
            key_padding_mask=target_mask,
            grid=grid,
            proposal_logits=None if proposals is None else proposals.logits,
            proposal_boxes=None if proposals is None else proposals.proposal_boxes,
        )

    def _object_queries(
        self,
        target_memory: Tensor,
        target_tokens: Tensor,
        query_tokens: Tensor,
        masks: tuple[Tensor, Tensor],
        grid: tuple[int, int],
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, ProposalOutput | None]:
        """The decoder's object queries and first boxes, with what two-stage queries add: their
        positional queries, the fused memory (``double-cross``: the proposals read it, and the
        decoder then reads it as is) and the proposals themselves (None otherwise).

        Shapes:
            target_memory, target_tokens, query_tokens (B, N, D); masks: target and query
            padding, (B, N) each -> (B, Q, D), (B, Q, 4), (B, Q, D) or None, (B, N, D) or None
        """
        batch = target_memory.shape[0]
        if self.config.object_queries == "two-stage":
            target_mask, query_mask = masks
            memory = None
            if self.decoder.fusion is not None:
                memory = self.decoder.fuse(
                    target_tokens, query_tokens, query_padding_mask=query_mask
                )
            proposals = self.proposals(
                target_memory if memory is None else memory, target_mask, grid
            )
            return proposals.content, proposals.boxes, proposals.position, memory, proposals
        boxes = torch.sigmoid(self.reference_logits).expand(batch, -1, -1)
        if self.config.object_queries == "anchors":
            cells = _anchor_cells(self.anchor_centres, grid)
            return self.anchor_queries(target_tokens, indices=cells), boxes, None, None, None
        return self.query_embed.weight.expand(batch, -1, -1), boxes, None, None, None
