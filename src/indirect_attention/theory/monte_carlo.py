"""Monte Carlo tests of the paper's closed forms (paper §3, §3.1, §4, appendix A), in float64.

Each estimate draws real softmax attention over random ``q · k`` (see :mod:`.sampling`), real
tokens and real noise, pushes them through a value projection ``W_v`` and measures the output
error energy, the SNR and Lemma 1's bound sample by sample. It reports the matching closed form of
:mod:`.snr` next to every measured value, with a standard error, so a test or a reader can see
whether they agree.

Within one sweep the temperatures share the same draws (common random numbers: the rows differ
only in how peaked the softmax is); different dims, noise levels and mean shifts use fresh draws.

Shapes:
    N trials, n tokens, d model dim, T temperatures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import snr
from .sampling import DTYPE, attention_logits, draw_tokens, softmax_weights, spectral_norm

__all__ = [
    "AdditiveEstimate",
    "MisalignedEstimate",
    "additive_sweep",
    "check_matrix",
    "misaligned_sweep",
    "ratio_se",
]

#: Relative slack for "bound never violated": float64 rounding of the two sides, nothing more.
BOUND_RTOL = 1e-12


@dataclass(frozen=True)
class AdditiveEstimate:
    """One (d, sigma, temperature) cell of the additive-noise experiment (§3, §3.1).

    ``*_mc`` are measured, ``*_se`` their standard errors, ``*_closed`` the paper's closed forms
    (orthogonal ``W_v``), ``mse_closed_w`` Lemma 2 for the matrix actually used
    (``sigma² ||W_v||_F² sum a²``). ``lemma1_max_ratio`` is the largest
    ``||o_hat - o*|| / sum_j a_j ||eps_j||`` over all samples (Lemma 1 says <= 1 for orthogonal
    ``W_v``); ``lemma1_violations`` counts samples above 1, ``spectral_violations`` samples above
    the bound times ``||W_v||_2``, which holds for any ``W_v``.
    """

    w_v: str
    dim: int
    sigma: float
    temperature: float
    num_tokens: int
    trials: int
    sum_a2: float
    mse_mc: float
    mse_se: float
    mse_closed: float
    mse_closed_w: float
    snr_mc: float
    snr_se: float
    snr_closed: float
    lemma1_max_ratio: float
    lemma1_violations: int
    spectral_violations: int


@dataclass(frozen=True)
class MisalignedEstimate:
    """One (d, delta, temperature) cell of the misalignment experiment (§4, A.3).

    ``gamma_*`` is the per-token effective noise energy ``E||W_v (y - x)||²`` (paper's gamma),
    ``error_*`` the output error energy ``E||o_tilde - o*||²``. Three SNRs:
    ``snr_mc`` the output energy ratio ``E||o*||² / E||o_tilde - o*||²``;
    ``snr_per_component_mc`` the signal variance per component over the noise variance per
    component of a token (``E||W_v x||² / gamma``, both averaged over components);
    ``snr_total_energy`` = ``1 / gamma``, the paper's comparison of the total energy gamma with the
    per-component threshold sigma*² = 1. ``*_closed_w`` are the closed forms for the matrix used.
    """

    w_v: str
    dim: int
    mean_shift: float
    key_mean: float
    temperature: float
    num_tokens: int
    trials: int
    sum_a2: float
    gamma_mc: float
    gamma_se: float
    gamma_closed: float
    gamma_closed_w: float
    error_mc: float
    error_se: float
    error_closed: float
    snr_mc: float
    snr_se: float
    snr_closed: float
    snr_closed_w: float
    snr_per_component_mc: float
    snr_per_component_closed: float
    snr_total_energy: float


def ratio_se(numerator: Tensor, denominator: Tensor) -> float:
    """Delta-method standard error of ``mean(numerator) / mean(denominator)``.

    Shapes:
        numerator (N,), denominator (N,) -> scalar
    """
    ratio = numerator.mean() / denominator.mean()
    residual = numerator - ratio * denominator  # (N,)
    return float(residual.std() / math.sqrt(numerator.numel()) / denominator.mean())


def _mean_se(samples: Tensor) -> tuple[float, float]:
    return float(samples.mean()), float(samples.std() / math.sqrt(samples.numel()))


def _attend(attn: Tensor, tokens: Tensor, w_v: Tensor) -> Tensor:
    """``W_v sum_j a_j t_j`` for every trial; the sum first, since W_v is linear.

    Shapes:
        attn (N, n), tokens (N, n, d), w_v (d, d) -> (N, d)
    """
    return torch.einsum("nj,njd->nd", attn, tokens) @ w_v.T  # (N, d)


def check_matrix(w_v: Tensor, dim: int) -> None:
    if w_v.shape != (dim, dim) or w_v.dtype != DTYPE:
        raise ValueError(
            f"w_v must be a float64 ({dim}, {dim}) matrix, got {tuple(w_v.shape)} {w_v.dtype}"
        )


def additive_sweep(
    dim: int,
    sigmas: Sequence[float],
    temperatures: Sequence[float],
    *,
    trials: int,
    num_tokens: int,
    w_v: Tensor,
    generator: torch.Generator,
    w_v_name: str = "orthogonal",
) -> list[AdditiveEstimate]:
    """Lemma 1, Lemma 2 and SNR = 1/sigma² for one d (paper §3, §3.1).

    Values ``x_j ~ N(0, I_d)``; noisy values ``x_j + eps_j`` with ``eps_j ~ N(0, sigma² I_d)``
    drawn afresh for every sigma; the clean values and the attention logits are shared by the
    sigmas and temperatures of this d.

    Returns:
        One estimate per (sigma, temperature), sigma-major.

    Shapes:
        w_v (d, d); internally attn (N, n), values and noise (N, n, d).
    """
    snr.check_dim(dim)
    snr.check_dim(trials, "trials")
    check_matrix(w_v, dim)
    for sigma in sigmas:
        snr.check_sigma(sigma)
    logits = attention_logits(trials, num_tokens, dim, generator=generator)  # (N, n)
    weights = [softmax_weights(logits, t) for t in temperatures]  # T x (N, n)
    values = draw_tokens(trials, num_tokens, dim, generator=generator)  # (N, n, d)
    signals = [_attend(a, values, w_v).pow(2).sum(-1) for a in weights]  # T x (N,)
    frobenius2 = float(w_v.pow(2).sum())
    norm2 = spectral_norm(w_v)
    rows = []
    for sigma in sigmas:
        noise = sigma * draw_tokens(trials, num_tokens, dim, generator=generator)  # (N, n, d)
        noise_norms = noise.norm(dim=-1)  # (N, n)
        for temperature, attn, signal in zip(temperatures, weights, signals, strict=True):
            error = _attend(attn, noise, w_v)  # (N, d)
            error2 = error.pow(2).sum(-1)  # (N,)
            sum_a2 = attn.pow(2).sum(-1)  # (N,)
            closed = sigma**2 * dim * sum_a2  # (N,) Lemma 2 given each trial's weights
            bound = snr.lemma1_bound(attn, noise_norms)  # (N,)
            lhs = error.norm(dim=-1)  # (N,)
            rows.append(
                AdditiveEstimate(
                    w_v=w_v_name,
                    dim=dim,
                    sigma=float(sigma),
                    temperature=float(temperature),
                    num_tokens=num_tokens,
                    trials=trials,
                    sum_a2=float(sum_a2.mean()),
                    mse_mc=float(error2.mean()),
                    mse_se=float((error2 - closed).std() / math.sqrt(trials)),
                    mse_closed=float(snr.expected_error(sigma, dim, float(sum_a2.mean()))),
                    mse_closed_w=sigma**2 * frobenius2 * float(sum_a2.mean()),
                    snr_mc=float(signal.mean() / error2.mean()),
                    snr_se=ratio_se(signal, error2),
                    snr_closed=float(snr.snr_additive(sigma)),
                    lemma1_max_ratio=float((lhs / bound).max()),
                    lemma1_violations=int((lhs > bound * (1 + BOUND_RTOL)).sum()),
                    spectral_violations=int((lhs > norm2 * bound * (1 + BOUND_RTOL)).sum()),
                )
            )
    return rows


def misaligned_sweep(
    dim: int,
    mean_shifts: Sequence[float],
    temperatures: Sequence[float],
    *,
    trials: int,
    num_tokens: int,
    w_v: Tensor,
    generator: torch.Generator,
    key_mean: float = 0.0,
    token_samples: int = 4,
    w_v_name: str = "orthogonal",
) -> list[MisalignedEstimate]:
    """Misalignment as effective noise for one d (paper §4, A.3).

    Keys come from ``x ~ N(key_mean·1, I)`` and values from ``y ~ N((key_mean + delta)·1, I)``:
    the aligned output is ``o* = W_v sum a_j x_j``, the misaligned one ``o_tilde = W_v sum a_j y_j``.
    The weights ``a`` come from random ``q · k`` drawn independently of x and y, as appendix A.3
    treats them (keys computed from x would correlate ``a`` with x, an O(1/d) effect the closed
    forms leave out). gamma is measured on the first ``token_samples`` tokens of every trial (it does not involve
    the attention); the output energies on the attention-weighted sums.

    Returns:
        One estimate per (mean shift, temperature), shift-major.

    Shapes:
        w_v (d, d); internally attn (N, n), x and y (N, n, d).
    """
    snr.check_dim(dim)
    snr.check_dim(trials, "trials")
    snr.check_dim(token_samples, "token_samples")
    check_matrix(w_v, dim)
    for shift in mean_shifts:
        snr.check_mean_shift(shift)
    logits = attention_logits(trials, num_tokens, dim, generator=generator)  # (N, n)
    weights = [softmax_weights(logits, t) for t in temperatures]  # T x (N, n)
    frobenius2 = float(w_v.pow(2).sum())
    ones = torch.ones(dim, dtype=DTYPE)
    gain = float((w_v @ ones).pow(2).sum()) / dim  # ||W_v 1||² / ||1||²
    m = min(token_samples, num_tokens)
    rows = []
    for shift in mean_shifts:
        x = key_mean + draw_tokens(trials, num_tokens, dim, generator=generator)  # (N, n, d)
        y = (
            key_mean + shift + draw_tokens(trials, num_tokens, dim, generator=generator)
        )  # (N, n, d)
        diff = y - x  # (N, n, d)
        token_noise = (diff[:, :m].reshape(-1, dim) @ w_v.T).pow(2).sum(-1)  # (N*m,)
        token_signal = (x[:, :m].reshape(-1, dim) @ w_v.T).pow(2).sum(-1)  # (N*m,)
        gamma_mc, gamma_se = _mean_se(token_noise)
        shift_w = gain * dim * shift**2  # ||W_v (mu_y - mu_x)||²
        gamma_closed_w = 2 * frobenius2 + shift_w
        for temperature, attn in zip(temperatures, weights, strict=True):
            signal = _attend(attn, x, w_v).pow(2).sum(-1)  # (N,)
            error = _attend(attn, diff, w_v).pow(2).sum(-1)  # (N,)
            sum_a2 = attn.pow(2).sum(-1)  # (N,)
            closed = 2 * dim * sum_a2 + dim * shift**2  # (N,)
            mean_a2 = float(sum_a2.mean())
            signal_w = gain * dim * key_mean**2 + frobenius2 * mean_a2
            rows.append(
                MisalignedEstimate(
                    w_v=w_v_name,
                    dim=dim,
                    mean_shift=float(shift),
                    key_mean=float(key_mean),
                    temperature=float(temperature),
                    num_tokens=num_tokens,
                    trials=trials,
                    sum_a2=mean_a2,
                    gamma_mc=gamma_mc,
                    gamma_se=gamma_se,
                    gamma_closed=float(snr.misalignment_energy(dim, shift)),
                    gamma_closed_w=gamma_closed_w,
                    error_mc=float(error.mean()),
                    error_se=float((error - closed).std() / math.sqrt(trials)),
                    error_closed=float(snr.misaligned_output_error(dim, shift, mean_a2)),
                    snr_mc=float(signal.mean() / error.mean()),
                    snr_se=ratio_se(signal, error),
                    snr_closed=float(snr.misaligned_snr(mean_a2, shift, key_mean)),
                    snr_closed_w=signal_w / (2 * frobenius2 * mean_a2 + shift_w),
                    snr_per_component_mc=float(token_signal.mean()) / gamma_mc,
                    snr_per_component_closed=(1 + key_mean**2)
                    / float(snr.per_component_noise_variance(shift)),
                    snr_total_energy=1.0 / gamma_mc,
                )
            )
    return rows
