"""Closed forms of the paper's noise analysis (paper §3, §3.1, §4 and appendix A).

Notation as in ``shared/paper/equations.md``: values ``W_v x_j`` with ``W_v`` orthogonal, attention
weights ``a_j`` (a probability vector over n tokens, independent of the noise and of the values),
additive value noise ``eps_j ~ N(0, sigma² I_d)``; under misalignment the keys come from
``x ~ N(mu_x, I)`` and the values from ``y ~ N(mu_y, I)``, with a per-component mean shift
``delta`` so that ``||mu_y - mu_x||² = d·delta²``.

Every function accepts Python floats or tensors (elementwise) and validates its scalar arguments
with a ``ValueError`` naming the argument and the value received.

Shapes:
    a: (..., n) attention weights; noise_norms: (..., n); the result of :func:`lemma1_bound`: (...).
    Scalar closed forms broadcast over tensors of any shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "SIGMA_STAR",
    "check_dim",
    "check_mean_shift",
    "check_sigma",
    "check_sum_a2",
    "expected_error",
    "lemma1_bound",
    "mean_shift_energy",
    "misaligned_output_error",
    "misaligned_snr",
    "misalignment_energy",
    "multi_head_expected_error",
    "per_component_noise_variance",
    "per_head_expected_error",
    "snr_additive",
]

#: The critical noise level of §3.1: SNR = 1/sigma² = 1 at sigma* = 1, for every d and every a.
SIGMA_STAR = 1.0

Number = float | Tensor


def _values(value: Number) -> list[float]:
    if isinstance(value, Tensor):
        return [float(v) for v in value.detach().reshape(-1).tolist()]
    return [float(value)]


def check_sigma(sigma: Number, name: str = "sigma") -> None:
    """Raise ``ValueError`` unless every noise level is finite and >= 0."""
    for v in _values(sigma):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite noise std >= 0, got {v!r}")


def check_dim(dim: int, name: str = "dim") -> None:
    """Raise ``ValueError`` unless ``dim`` is an integer >= 1."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {dim!r}")


def check_sum_a2(sum_a2: Number, name: str = "sum_a2") -> None:
    """Raise ``ValueError`` unless ``sum_j a_j²`` lies in (0, 1], as it does for any softmax."""
    for v in _values(sum_a2):
        if not (0.0 < v <= 1.0 + 1e-12):
            raise ValueError(
                f"{name} (sum of squared attention weights) must be in (0, 1], got {v!r}"
            )


def check_mean_shift(mean_shift: Number, name: str = "mean_shift") -> None:
    """Raise ``ValueError`` unless the per-component mean shift is finite."""
    for v in _values(mean_shift):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v!r}")


def lemma1_bound(a: Tensor, noise_norms: Tensor) -> Tensor:
    """Lemma 1's bound on the output deviation: ``sum_j a_j ||eps_j||`` (paper §3, Eq. 1, A.1).

    With ``W_v`` orthogonal, ``||o_hat - o*|| = ||W_v sum_j a_j eps_j|| <= sum_j a_j ||eps_j||``
    by the triangle inequality; a general ``W_v`` multiplies the bound by its spectral norm.

    Args:
        a: Attention weights, nonnegative along the last axis.
        noise_norms: ``||eps_j||`` for every token.

    Shapes:
        a (..., n), noise_norms (..., n) -> (...)
    """
    if a.shape != noise_norms.shape:
        raise ValueError(
            f"a and noise_norms must have the same shape (..., n), got {tuple(a.shape)} "
            f"and {tuple(noise_norms.shape)}"
        )
    if bool((a < 0).any()) or bool((noise_norms < 0).any()):
        raise ValueError("a and noise_norms must be nonnegative")
    return (a * noise_norms).sum(dim=-1)


def expected_error(sigma: Number, dim: int, sum_a2: Number) -> Number:
    """Lemma 2: ``E||o_hat - o*||² = sigma² · d · sum_j a_j²`` (paper §3, Eq. 2, A.2).

    Peaked attention (one ``a_j = 1``) gives ``sigma² d``; uniform attention over n tokens gives
    ``sigma² d / n``.

    Shapes:
        sigma and sum_a2 broadcast (floats or tensors of any shape) -> the same shape.
    """
    check_sigma(sigma)
    check_dim(dim)
    check_sum_a2(sum_a2)
    return sigma**2 * dim * sum_a2


def per_head_expected_error(sigma: Number, dim: int, num_heads: int, sum_a2: Number) -> Number:
    """Multi-head remark, one head of size ``d/H``: ``sigma² · (d/H) · sum_j (a^h_j)²`` (§3).

    Shapes:
        sigma and sum_a2 (the head's own sum of squared weights) broadcast -> the same shape.
    """
    check_dim(dim)
    check_dim(num_heads, "num_heads")
    if dim % num_heads:
        raise ValueError(f"num_heads={num_heads} must divide dim={dim}")
    return expected_error(sigma, dim // num_heads, sum_a2)


def multi_head_expected_error(sigma: Number, dim: int, sum_a2_per_head: Sequence[float] | Tensor):
    """Multi-head remark after an output projection with orthogonal rows (paper §3).

    ``E||o_hat - o*||² = sigma² · d · mean_h sum_j (a^h_j)²``: the per-head errors
    ``sigma² (d/H) sum (a^h)²`` add up and an orthogonal projection keeps the total.

    Args:
        sigma: Noise std.
        dim: Model dim d (all heads together).
        sum_a2_per_head: ``sum_j (a^h_j)²`` for each of the H heads, along the last axis.

    Shapes:
        sum_a2_per_head (..., H) -> (...)
    """
    per_head = torch.as_tensor(sum_a2_per_head, dtype=torch.float64)
    if per_head.dim() == 0 or per_head.shape[-1] < 1:
        raise ValueError(
            f"sum_a2_per_head must have a last axis of H >= 1 heads, got shape {tuple(per_head.shape)}"
        )
    check_sum_a2(per_head, "sum_a2_per_head")
    if dim % per_head.shape[-1]:
        raise ValueError(f"the number of heads H={per_head.shape[-1]} must divide dim={dim}")
    return expected_error(sigma, dim, per_head.mean(dim=-1))


def snr_additive(sigma: Number) -> Number:
    """SNR of the output under additive value noise: ``E||o*||² / E||o_hat - o*||² = 1/sigma²``.

    For unit-variance, zero-mean values the signal is ``d · sum a²`` and the noise
    ``sigma² · d · sum a²`` (Lemma 2): d and the attention's sharpness cancel (paper §3.1), and the
    SNR crosses 1 at :data:`SIGMA_STAR`. ``sigma = 0`` gives ``inf``.

    Shapes:
        sigma (float or any tensor) -> the same shape.
    """
    check_sigma(sigma)
    if isinstance(sigma, Tensor):
        return 1.0 / sigma.to(torch.float64) ** 2
    return math.inf if sigma == 0 else 1.0 / sigma**2


def mean_shift_energy(dim: int, mean_shift: Number) -> Number:
    """``||mu_y - mu_x||² = d · delta²`` for a shift of ``delta`` in every component (paper §4)."""
    check_dim(dim)
    check_mean_shift(mean_shift)
    return dim * mean_shift**2


def misalignment_energy(dim: int, mean_shift: Number) -> Number:
    """The effective noise energy ``gamma = E||W_v (y - x)||² = 2d + ||mu_y - mu_x||²`` (§4, A.3).

    Per token: ``y - x ~ N(mu_y - mu_x, 2 I)`` and an orthogonal ``W_v`` keeps norms. This is a
    *total* energy over d components; per component it is ``2 + delta²``
    (:func:`per_component_noise_variance`).
    """
    return 2 * dim + mean_shift_energy(dim, mean_shift)


def per_component_noise_variance(mean_shift: Number) -> Number:
    """``gamma / d = 2 + delta²``: the misalignment noise per component, to compare with sigma*²."""
    check_mean_shift(mean_shift)
    return 2.0 + mean_shift**2


def misaligned_output_error(dim: int, mean_shift: Number, sum_a2: Number) -> Number:
    """``E||o_tilde - o*||² = 2d · sum a² + d · delta²`` (paper §4 with A.3).

    The zero-mean part of ``y - x`` is averaged by attention like additive noise of variance 2; the
    mean shift is not (``sum_j a_j = 1``), so it passes to the output whole.
    """
    check_sum_a2(sum_a2)
    return 2 * dim * sum_a2 + mean_shift_energy(dim, mean_shift)


def misaligned_snr(sum_a2: Number, mean_shift: Number, key_mean: Number = 0.0) -> Number:
    """Output energy ratio under misalignment: ``E||o*||² / E||o_tilde - o*||²`` (paper §4).

    With ``x ~ N(key_mean·1, I)``: ``E||o*||² = d·key_mean² + d·sum a²``; dividing by
    :func:`misaligned_output_error` the d cancels:
    ``(key_mean² + sum a²) / (2 sum a² + delta²)``. It does not depend on d.

    Shapes:
        the arguments broadcast (floats or tensors) -> the same shape.
    """
    check_sum_a2(sum_a2)
    check_mean_shift(mean_shift)
    check_mean_shift(key_mean, "key_mean")
    return (key_mean**2 + sum_a2) / (2 * sum_a2 + mean_shift**2)
