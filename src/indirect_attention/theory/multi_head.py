"""The multi-head remark of paper §3, by Monte Carlo in float64.

H heads of size Dh = d/H, each with its own softmax attention over random q·k; per head the error
is ``sigma² (d/H) sum_j (a^h_j)²`` and, after an output projection with orthogonal rows, the total
is ``sigma² d mean_h sum_j (a^h_j)²``; the SNR stays 1/sigma² per head and in total.

Shapes:
    N trials, H heads, n tokens, d model dim, Dh = d / H head dim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import snr
from .monte_carlo import check_matrix
from .sampling import attention_logits, draw_tokens, softmax_weights

__all__ = ["MultiHeadEstimate", "multi_head_sweep"]


@dataclass(frozen=True)
class MultiHeadEstimate:
    """The multi-head remark (§3): H heads of size d/H, then an orthogonal output projection.

    ``mse_head_*`` are averaged over heads (closed form ``sigma² (d/H) sum (a^h)²``);
    ``mse_*`` is the total after the output projection (``sigma² d mean_h sum (a^h)²``);
    ``snr_head_mc`` is the per-head output energy ratio averaged over heads.
    """

    dim: int
    num_heads: int
    sigma: float
    temperature: float
    trials: int
    mean_sum_a2: float
    mse_head_mc: float
    mse_head_closed: float
    mse_mc: float
    mse_se: float
    mse_closed: float
    snr_mc: float
    snr_head_mc: float
    snr_closed: float


def multi_head_sweep(
    dim: int,
    head_counts: Sequence[int],
    sigmas: Sequence[float],
    *,
    temperature: float,
    trials: int,
    num_tokens: int,
    w_v: Tensor,
    w_o: Tensor,
    generator: torch.Generator,
) -> list[MultiHeadEstimate]:
    """The multi-head remark of §3: per-head and total error, and the SNR, for each H.

    Head h attends with its own weights ``a^h`` (its own random q and k) over the rows
    ``h·Dh..(h+1)·Dh`` of ``W_v x_j``; the heads are concatenated and projected by ``w_o``.

    Shapes:
        w_v (d, d), w_o (d, d); internally attn (N, H, n), values and noise (N, n, d).
    """
    snr.check_dim(dim)
    check_matrix(w_v, dim)
    check_matrix(w_o, dim)
    rows = []
    for heads in head_counts:
        snr.check_dim(heads, "num_heads")
        if dim % heads:
            raise ValueError(f"num_heads={heads} must divide dim={dim}")
        head_dim = dim // heads
        logits = attention_logits(
            trials, num_tokens, head_dim, generator=generator, num_heads=heads
        )  # (N, H, n)
        attn = softmax_weights(logits, temperature)  # (N, H, n)
        w_heads = w_v.view(heads, head_dim, dim)  # (H, Dh, d): each head's rows of W_v

        def heads_out(tokens: Tensor, attn=attn, w_heads=w_heads) -> Tensor:
            pooled = torch.einsum("nhj,njd->nhd", attn, tokens)  # (N, H, d)
            return torch.einsum("nhd,hkd->nhk", pooled, w_heads)  # (N, H, Dh)

        values = draw_tokens(trials, num_tokens, dim, generator=generator)  # (N, n, d)
        clean = heads_out(values)  # (N, H, Dh)
        sum_a2 = attn.pow(2).sum(-1)  # (N, H)
        for sigma in sigmas:
            snr.check_sigma(sigma)
            error = heads_out(
                sigma * draw_tokens(trials, num_tokens, dim, generator=generator)
            )  # (N, H, Dh)
            error_head = error.pow(2).sum(-1)  # (N, H)
            total = (error.reshape(trials, dim) @ w_o.T).pow(2).sum(-1)  # (N,)
            signal = (clean.reshape(trials, dim) @ w_o.T).pow(2).sum(-1)  # (N,)
            closed = sigma**2 * dim * sum_a2.mean(-1)  # (N,)
            head_snr = clean.pow(2).sum(-1).mean(0) / error_head.mean(0)  # (H,)
            rows.append(
                MultiHeadEstimate(
                    dim=dim,
                    num_heads=heads,
                    sigma=float(sigma),
                    temperature=float(temperature),
                    trials=trials,
                    mean_sum_a2=float(sum_a2.mean()),
                    mse_head_mc=float(error_head.mean()),
                    mse_head_closed=float(
                        snr.per_head_expected_error(sigma, dim, heads, float(sum_a2.mean()))
                    ),
                    mse_mc=float(total.mean()),
                    mse_se=float((total - closed).std() / math.sqrt(trials)),
                    mse_closed=float(snr.multi_head_expected_error(sigma, dim, sum_a2).mean()),
                    snr_mc=float(signal.mean() / total.mean()),
                    snr_head_mc=float(head_snr.mean()),
                    snr_closed=float(snr.snr_additive(sigma)),
                )
            )
    return rows
