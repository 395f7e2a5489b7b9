"""Random ingredients of the Monte Carlo (paper §3-4): value projections and attention weights.

Everything is float64 and drawn from an explicit ``torch.Generator``, so one seed reproduces a run
bit for bit.

Shapes:
    N trials, H heads, n tokens, d model dim, Dh = d / H head dim.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .snr import check_dim

__all__ = [
    "attention_logits",
    "check_temperature",
    "draw_tokens",
    "orthogonal_matrix",
    "softmax_weights",
    "spectral_norm",
    "xavier_matrix",
]

DTYPE = torch.float64


def orthogonal_matrix(dim: int, *, generator: torch.Generator) -> Tensor:
    """A Haar-random orthogonal ``W_v``, the paper's assumption (§3 Lemma 1, A.3).

    QR of a Gaussian matrix with the signs of R's diagonal folded into Q (Mezzadri 2007), which
    makes the distribution exactly uniform over O(d).

    Shapes:
        -> (d, d)
    """
    check_dim(dim)
    gauss = torch.randn((dim, dim), generator=generator, dtype=DTYPE)
    q, r = torch.linalg.qr(gauss)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs  # (d, d); column c scaled by sign(R_cc)


def xavier_matrix(dim: int, *, generator: torch.Generator) -> Tensor:
    """A Xavier/Glorot-uniform ``W_v`` (``nn.init.xavier_uniform_`` for a d x d layer).

    Entries ``U(-b, b)`` with ``b = sqrt(6 / (d + d))``, so each has variance ``1/d`` and
    ``E||W u||² = ||u||²``: norms are kept on average, not exactly (singular values spread over
    roughly (0, 2) by the Marchenko-Pastur law).

    Shapes:
        -> (d, d)
    """
    check_dim(dim)
    bound = math.sqrt(6.0 / (dim + dim))
    uniform = torch.rand((dim, dim), generator=generator, dtype=DTYPE)
    return (2.0 * uniform - 1.0) * bound  # (d, d)


def spectral_norm(matrix: Tensor) -> float:
    """Largest singular value, from the eigenvalues of ``WᵀW`` (fast and exact to rounding).

    Shapes:
        matrix (d, d) -> scalar
    """
    return float(torch.linalg.eigvalsh(matrix.T @ matrix).max().clamp_min(0.0).sqrt())


def draw_tokens(
    num_samples: int, num_tokens: int, dim: int, *, generator: torch.Generator
) -> Tensor:
    """Standard-normal tokens (values, keys or noise before scaling), float64.

    Shapes:
        -> (N, n, d)
    """
    return torch.randn((num_samples, num_tokens, dim), generator=generator, dtype=DTYPE)


def check_temperature(temperature: float) -> None:
    """Raise ``ValueError`` unless the softmax temperature is finite and > 0."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")


def attention_logits(
    num_samples: int,
    num_tokens: int,
    head_dim: int,
    *,
    generator: torch.Generator,
    num_heads: int | None = None,
) -> Tensor:
    """Scaled dot products ``q · k_j / sqrt(Dh)`` of random queries and keys (paper §3 setup).

    ``q, k_j ~ N(0, I_Dh)`` independently of everything else, so the weights are independent of the
    values and of the noise, as Lemma 2 assumes. The logits are about ``N(0, 1)`` for every Dh.

    Args:
        num_samples: N independent trials (one query each).
        num_tokens: n keys per trial.
        head_dim: Dh, the size of q and k.
        generator: Source of randomness.
        num_heads: H heads with their own q and k; ``None`` returns no head axis.

    Shapes:
        -> (N, n), or (N, H, n) when ``num_heads`` is given
    """
    for name, value in (("num_samples", num_samples), ("num_tokens", num_tokens)):
        check_dim(value, name)
    check_dim(head_dim, "head_dim")
    heads = 1 if num_heads is None else num_heads
    check_dim(heads, "num_heads")
    q = torch.randn((num_samples, heads, 1, head_dim), generator=generator, dtype=DTYPE)
    k = torch.randn((num_samples, heads, num_tokens, head_dim), generator=generator, dtype=DTYPE)
    logits = (q * k).sum(dim=-1) / math.sqrt(head_dim)  # (N, H, n)
    return logits[:, 0] if num_heads is None else logits


def softmax_weights(logits: Tensor, temperature: float) -> Tensor:
    """``softmax(logits / temperature)`` over the last axis: small is peaked, large is diffuse.

    Shapes:
        logits (..., n) -> (..., n), each row summing to 1
    """
    check_temperature(temperature)
    return torch.softmax(logits / temperature, dim=-1)
