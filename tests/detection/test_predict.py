"""The one way out of the model (detection/predict.py): boxes in original pixels, top-k,
threshold, the object query of each detection; checked on a model with fixed outputs."""

from __future__ import annotations

import torch
from torch import nn

from indirect_attention.detection.model import DetrOutput
from indirect_attention.detection.predict import predict
from indirect_attention.detection.preprocess import InputSpec, model_input, resize, round_up


class _Fixed(nn.Module):
    """Returns the same logits and boxes (cx, cy, w, h on the canvas) for every target."""

    def __init__(self, logits: list[float], boxes: list[list[float]]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # predict reads the device from here
        self.logits, self.boxes = torch.tensor(logits), torch.tensor(boxes)

    def forward(self, targets, queries, target_padding=None, query_offsets=None) -> DetrOutput:
        batch = targets.shape[0]
        logits = self.logits.expand(1, batch, -1)  # (Ly, B, Q)
        boxes = self.boxes.expand(1, batch, -1, -1)  # (Ly, B, Q, 4)
        return DetrOutput(logits, boxes, None, (1, 1))


def test_boxes_go_back_to_each_targets_pixels_best_first() -> None:
    model = _Fixed(
        [-1.0, 2.0, 0.5], [[0.5, 0.5, 1.0, 1.0], [0.25, 0.25, 0.5, 0.5], [0.5, 0.5, 0.2, 0.2]]
    )
    targets = [torch.rand(3, 50, 100), torch.rand(3, 80, 40)]  # resized to 64x128 and 128x64
    batch = model_input(targets, [torch.rand(3, 9, 9)] * 2, InputSpec(128, 32), stride=16)
    assert batch.targets.shape[-2:] == (128, 128)  # the shared canvas
    found = predict(model, batch, top_k=2, threshold=0.0)
    assert [f.queries.tolist() for f in found] == [[1, 2], [1, 2]]
    torch.testing.assert_close(found[0].scores, torch.sigmoid(torch.tensor([2.0, 0.5])))
    # Query 1 covers the canvas's top-left quarter, 64 x 64 canvas pixels: in original pixels
    # 64 / (128 / 100) = 50 wide and 64 / (64 / 50) = 50 high for the first target, and
    # 64 / (64 / 40) = 40 by 64 / (128 / 80) = 40 for the second.
    torch.testing.assert_close(found[0].boxes[0], torch.tensor([0.0, 0.0, 50.0, 50.0]))
    torch.testing.assert_close(found[1].boxes[0], torch.tensor([0.0, 0.0, 40.0, 40.0]))
    assert found[1].image_size == (80, 40)
    only = predict(model, batch, top_k=3, threshold=0.7)  # sigmoid(0.5) = 0.62 is below
    assert [f.queries.tolist() for f in only] == [[1], [1]]


def test_resize_is_torch_antialiased_bilinear_and_round_up_reaches_the_stride() -> None:
    images = torch.rand(2, 3, 30, 40)
    expected = torch.nn.functional.interpolate(
        images, size=(15, 20), mode="bilinear", antialias=True, align_corners=False
    )
    assert torch.equal(resize(images, (15, 20)), expected)
    assert torch.equal(resize(images[0], (15, 20)), expected[0])
    assert resize(images, (30, 40)) is images
    assert [round_up(n, 8) for n in (1, 8, 9, 16)] == [8, 8, 16, 16]
