"""One training step of the paper-scale IA-DETR, for ``ia bench gpu --parts detector``.

The detector of paper §6.2 at the authors' scale: a ResNet-50 backbone (random initialisation;
nothing is downloaded), 800-pixel targets, batch 8, six decoder layers, Q = 300 object queries,
dim 256, 8 heads, BoxRPB MLPs 512 wide, built by the ``paper`` recipe (:data:`..detection.train.
RECIPES`: two-stage queries, BoxRPB offsets in pixels, ``double-cross`` with its 6-layer fusion
block and BoxRPB in its decoder) over a real-data source's implied defaults (ResNet-50).

The step is the one the detector trains with: :class:`~..detection.model.IADETR`, the set
criterion with Hungarian matching and the recipe's loss weights (:func:`~..detection.train.
detr_loss`), and :func:`~..training.engine.train_step` (forward under autocast, float32 loss,
backward, gradient clipping, the AdamW step), with DETR's two parameter groups. The batch is
random images and boxes drawn once from ``seed``; only its shapes matter to the time.

Shapes:
    B batch, T target side (pixels), q query side, K boxes per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..detection.model import IADETR, DetrOutput
from ..detection.sources import CocoSource
from ..detection.train import (
    DetrTrainConfig,
    detr_criterion,
    detr_loss,
    detr_optimizer,
    recipe,
)
from ..training.engine import StepResult, train_step
from ..training.precision import grad_scaler

__all__ = ["BOXES_PER_IMAGE", "DetectorStep", "build_detector_step"]

#: Ground-truth boxes in each random training image.
BOXES_PER_IMAGE = 4


@dataclass
class DetectorStep:
    """A detector, its optimiser and one fixed batch: ``step()`` trains on the batch once.

    Attributes:
        config: The training config the recipe gave (model, loss weights, learning rates).
        model: The detector, on the device, in training mode.
        optimizer: AdamW over DETR's two groups (:func:`~..detection.train.detr_optimizer`).
        step: One training step; returns what :func:`~..training.engine.train_step` returns.
    """

    config: DetrTrainConfig
    model: IADETR
    optimizer: torch.optim.Optimizer
    step: Callable[[], StepResult]


def _batch(
    *, batch_size: int, target_size: int, query_size: int, seed: int, device: torch.device
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Random targets, queries and ground-truth boxes, drawn on the CPU, moved to ``device``.

    Shapes:
        -> targets (B, 3, T, T), queries (B, 3, q, q) in [0, 1], truth list of B (K, 4) cxcywh
    """
    generator = torch.Generator().manual_seed(seed)
    targets = torch.rand(batch_size, 3, target_size, target_size, generator=generator)
    queries = torch.rand(batch_size, 3, query_size, query_size, generator=generator)
    truth = []
    for _ in range(batch_size):
        centres = torch.rand(BOXES_PER_IMAGE, 2, generator=generator) * 0.6 + 0.2  # (K, 2)
        sides = torch.rand(BOXES_PER_IMAGE, 2, generator=generator) * 0.25 + 0.05  # (K, 2)
        truth.append(torch.cat([centres, sides], dim=-1).to(device))  # (K, 4)
    return targets.to(device), queries.to(device), truth


def build_detector_step(
    *,
    kind: str,
    target_size: int,
    query_size: int,
    batch_size: int,
    num_layers: int,
    num_queries: int,
    device: torch.device,
    precision: str = "bf16",
    seed: int = 0,
) -> DetectorStep:
    """The paper-scale detector of ``kind`` and a step that trains it on one random batch.

    Args:
        kind: ``ia`` or ``double-cross`` (any :class:`~..detection.model.DetrModelConfig` kind).
        target_size: Side of the square target images, in pixels (paper: 800).
        query_size: Side of the square query images, in pixels.
        batch_size: Pairs per step (paper: 8).
        num_layers: Decoder layers (paper: 6).
        num_queries: Object queries Q (paper: 300).
        device: Where the model and the batch live.
        precision: Autocast precision of the forward pass (``bf16``, ``fp16`` or ``32``).
        seed: Seed of the weights and the batch.
    """
    source = CocoSource(max_size=target_size, query_size=query_size)
    model_fields = {
        "kind": kind,
        "dim": 256,
        "num_heads": 8,
        "num_layers": num_layers,
        "ffn_dim": 1024,
        "num_queries": num_queries,
        "bias_hidden": 512,
    }
    config = recipe(
        source, name="paper", model=model_fields, batch_size=batch_size, precision=precision
    )
    torch.manual_seed(seed)
    model = IADETR(config.model, input_spec=source.input_spec(), seed=seed).to(device).train()
    optimizer = detr_optimizer(model, config)
    criterion = detr_criterion(config)
    scaler = grad_scaler(precision, device)
    targets, queries, truth = _batch(
        batch_size=batch_size,
        target_size=target_size,
        query_size=query_size,
        seed=seed,
        device=device,
    )
    num_boxes = float(sum(len(boxes) for boxes in truth))

    def forward(model: torch.nn.Module, batch: tuple) -> DetrOutput:
        return model(batch[0], batch[1])  # no padding: every canvas is a whole image

    def loss(output: DetrOutput, batch: tuple) -> dict[str, Tensor]:
        return detr_loss(criterion, output, batch[2], num_boxes=num_boxes)

    def step() -> StepResult:
        return train_step(
            model,
            optimizer,
            scaler,
            (targets, queries, truth),
            forward=forward,
            loss=loss,
            clip=config.clip,
            precision=precision,
            device=device,
        )

    return DetectorStep(config=config, model=model, optimizer=optimizer, step=step)
