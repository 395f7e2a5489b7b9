"""The shared (Siamese) image backbone of IA-DETR (paper §6.2): CNN body + 1×1 projection to ``dim``.

The same weights encode the target and the query image. Two bodies:

* ``small``: a small ResNet of basic blocks (stride 8, 128 channels) for the embedded emoji
  benchmark, trained from scratch in minutes on a CPU;
* ``resnet50``: torchvision's ResNet-50 up to ``layer3`` (stride 16, 1024 channels) for VOC/COCO,
  randomly initialised unless a local state-dict file is given (nothing is downloaded).

Images come in as floats in [0, 1]; the backbone normalises them with the ImageNet mean and std.

Shapes:
    images (B, 3, H, W) -> features (B, D, H / s, W / s), s = :attr:`Backbone.stride`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["BACKBONES", "Backbone", "SmallResNet"]

BACKBONES = ("small", "resnet50")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _norm(channels: int) -> nn.Module:
    """Group norm: no batch statistics, so target, query and padding canvases never mix."""
    return nn.GroupNorm(8, channels)


class _BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convolutions with group norm and a (projected) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            _norm(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            _norm(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                _norm(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A small stride-8 ResNet: two strided 3×3 stem convolutions, then three basic blocks.

    Sized for a CPU: the stem reaches stride 4 before any residual block, so no block runs at
    full or half resolution. Group norm instead of batch norm keeps every image independent.

    Args:
        widths: Channels of the stem, the stride-4 block and the stride-8 blocks.

    Shapes:
        x (B, 3, H, W) -> (B, widths[-1], H / 8, W / 8)
    """

    stride = 8

    def __init__(self, widths: tuple[int, int, int] = (32, 48, 128)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.out_channels = w3
        self.layers = nn.Sequential(
            nn.Conv2d(3, w1, 3, 2, 1, bias=False),
            _norm(w1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w1, w2, 3, 2, 1, bias=False),
            _norm(w2),
            nn.ReLU(inplace=True),
            _BasicBlock(w2, w2, 1),
            _BasicBlock(w2, w3, 2),
            _BasicBlock(w3, w3, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def _load_resnet50_weights(net: nn.Module, weights: str | Path) -> None:
    """Load a torchvision ResNet-50 state dict into ``net``: every tensor of the body must be
    there with its shape (the classifier ``fc`` is not used and may be missing).

    Raises:
        ValueError: not a state dict, or one of another network (names the differences).
    """
    from ..training.checkpoint import read_weights_only

    state = read_weights_only(weights, expected="a torchvision ResNet-50 state dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{weights} is not a state dict (name -> tensor) of a ResNet-50")
    expected = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    found = [
        f"{len(names)} {what} (e.g. {', '.join(names[:2])})"
        for names, what in ((missing, "missing"), (unexpected, "unexpected"), (shapes, "resized"))
        if names
    ]
    if found:
        raise ValueError(
            f"{weights} does not hold ResNet-50 weights: tensors {'; '.join(found)}; expected a "
            "torchvision resnet50 state_dict()"
        )
    net.load_state_dict(state, strict=False)  # strict but for the unused classifier


def _resnet50_body(weights: str | Path | None) -> tuple[nn.Module, int, int]:
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    if weights is not None:
        _load_resnet50_weights(net, weights)
    body = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3
    )
    return body, 1024, 16


class Backbone(nn.Module):
    """CNN body + Conv1×1/GroupNorm projection to ``dim`` (the authors' ``input_proj``).

    Args:
        dim: Output channels D.
        name: ``"small"`` or ``"resnet50"``.
        weights: Optional local state-dict file for the ResNet-50 body.

    Shapes:
        images (B, 3, H, W) in [0, 1] -> (B, D, H / stride, W / stride)
    """

    def __init__(self, dim: int, *, name: str = "small", weights: str | Path | None = None) -> None:
        super().__init__()
        if weights is not None and name != "resnet50":
            raise ValueError(
                f"backbone weights {weights} apply to the resnet50 backbone only (--backbone resnet50), got {name!r}"
            )
        if name == "small":
            self.body: nn.Module = SmallResNet()
            channels, self.stride = self.body.out_channels, SmallResNet.stride
        elif name == "resnet50":
            self.body, channels, self.stride = _resnet50_body(weights)
        else:
            raise ValueError(f"unknown backbone {name!r}; choose from {BACKBONES}")
        self.proj = nn.Sequential(nn.Conv2d(channels, dim, 1), nn.GroupNorm(min(32, dim), dim))
        nn.init.xavier_uniform_(self.proj[0].weight)
        nn.init.zeros_(self.proj[0].bias)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def normalize(self, images: Tensor) -> Tensor:
        """ImageNet normalisation of [0, 1] images."""
        return (images - self.mean) / self.std

    def forward(self, images: Tensor) -> Tensor:
        """Features of already normalised (and padded) images."""
        return self.proj(self.body(images))
