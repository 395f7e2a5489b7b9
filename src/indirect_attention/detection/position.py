"""2-D sine position embedding of a (padded) feature map (DETR; paper §6.2).

Coordinates are cell centres normalised by each image's *valid* extent, ``(r + 0.5) / h_valid``,
times 2π. Unlike the authors' cumulative-sum version, a padded cell gets a finite coordinate past
1 (never the ``0 / 1e-6`` blow-up of fully padded rows), so padded keys stay well defined.

Shapes:
    valid (B, h, w) bool, True = real pixels -> (B, h·w, D) with D/2 y-features then D/2 x-features.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sine_code", "sine_position_embedding"]


def sine_code(coords: Tensor, features: int, *, temperature: float = 10000.0) -> Tensor:
    """DETR's sine/cosine code of each coordinate times 2π, ``features`` features each.

    Shapes:
        coords (...) float32 -> (..., features)
    """
    freqs = temperature ** (2 * (torch.arange(features, device=coords.device) // 2) / features)
    angles = coords[..., None] * 2 * math.pi / freqs
    return torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], dim=-1).flatten(-2)


def sine_position_embedding(valid: Tensor, dim: int, *, temperature: float = 10000.0) -> Tensor:
    """Sine/cosine embedding of every cell's normalised (y, x), flattened row-major.

    Args:
        valid: ``(B, h, w)`` bool, True where the cell holds image content.
        dim: Embedding size D (a multiple of 4).
        temperature: Frequency base.

    Returns:
        ``(B, h·w, D)`` float32.
    """
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4, got {dim}")
    batch, height, width = valid.shape
    valid_h = valid.any(dim=2).sum(dim=1).clamp(min=1).float()  # (B,)
    valid_w = valid.any(dim=1).sum(dim=1).clamp(min=1).float()  # (B,)
    rows = torch.arange(height, device=valid.device, dtype=torch.float32) + 0.5
    cols = torch.arange(width, device=valid.device, dtype=torch.float32) + 0.5
    y = (rows[None, :, None] / valid_h[:, None, None]).expand(batch, height, width)
    x = (cols[None, None, :] / valid_w[:, None, None]).expand(batch, height, width)
    code = sine_code(torch.stack([y, x], dim=-1), dim // 2, temperature=temperature)
    return code.flatten(-2).flatten(1, 2)  # (B, h·w, D): y's D/2 features, then x's
