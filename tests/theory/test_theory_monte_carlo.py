"""Monte Carlo against the closed forms (theory/monte_carlo.py, multi_head.py, sampling.py).

Every comparison allows a few standard errors of the estimate itself; the sizes are small so the
file runs in seconds, which the standard errors account for.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from indirect_attention.theory import (
    additive_sweep,
    misaligned_sweep,
    multi_head_sweep,
    orthogonal_matrix,
    softmax_weights,
    xavier_matrix,
)
from indirect_attention.theory.sampling import attention_logits

Z = 4.0  # standard errors allowed between an estimate and its closed form


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_matrices():
    w = orthogonal_matrix(48, generator=_gen(0))
    torch.testing.assert_close(w.T @ w, torch.eye(48, dtype=torch.float64), atol=1e-12, rtol=0)
    x = xavier_matrix(256, generator=_gen(1))
    bound = (6 / 512) ** 0.5
    assert float(x.abs().max()) <= bound
    assert float(x.var()) == pytest.approx(1 / 256, rel=0.02)  # Xavier: variance 1/d


def test_temperature_moves_attention_from_peaked_to_diffuse():
    logits = attention_logits(2000, 16, 32, generator=_gen(2))  # (N, n)
    sums = [float(softmax_weights(logits, t).pow(2).sum(-1).mean()) for t in (0.05, 1.0, 50.0)]
    assert sums[0] > 0.9 and sums[2] < 1 / 16 * 1.01
    assert sums[0] > sums[1] > sums[2]


@pytest.mark.parametrize("dim", [8, 96])
def test_additive_noise_matches_lemma2_and_the_snr(dim):
    """Lemma 2 and SNR = 1/sigma² within a few SE; Lemma 1 never violated sample by sample."""
    rows = additive_sweep(
        dim,
        [0.3, 1.0, 3.0],
        [0.1, 1.0, 10.0],
        trials=max(64, 2**14 // dim),
        num_tokens=8,
        w_v=orthogonal_matrix(dim, generator=_gen(3)),
        generator=_gen(4),
    )
    assert len(rows) == 9
    for row in rows:
        assert abs(row.mse_mc - row.mse_closed) < Z * row.mse_se, row
        assert row.snr_closed == pytest.approx(1 / row.sigma**2)
        assert abs(row.snr_mc - row.snr_closed) < Z * row.snr_se, row
        assert row.lemma1_violations == 0 and row.lemma1_max_ratio <= 1 + 1e-12
        assert row.mse_closed_w == pytest.approx(row.mse_closed, rel=1e-12)  # ||W||_F² = d
    peaked = [r for r in rows if r.temperature == 0.1]
    assert all(r.sum_a2 > 0.5 for r in peaked)
    assert all(r.lemma1_max_ratio > 0.99 for r in peaked)  # near one-hot the bound is tight


@pytest.mark.parametrize(("dim", "key_mean"), [(8, 0.0), (64, 0.7)])
def test_misalignment_matches_appendix_a3(dim, key_mean):
    """gamma = 2d + d·delta², E||e||² = 2d sum a² + d·delta², the SNR ratio, within a few SE."""
    rows = misaligned_sweep(
        dim,
        [0.0, 0.5, 2.0],
        [0.1, 1.0, 10.0],
        trials=max(64, 2**14 // dim),
        num_tokens=8,
        w_v=orthogonal_matrix(dim, generator=_gen(5)),
        generator=_gen(6),
        key_mean=key_mean,
    )
    for row in rows:
        assert row.gamma_closed == pytest.approx(2 * dim + dim * row.mean_shift**2)
        assert abs(row.gamma_mc - row.gamma_closed) < Z * row.gamma_se, row
        assert abs(row.error_mc - row.error_closed) < Z * row.error_se, row
        assert abs(row.snr_mc - row.snr_closed) < Z * row.snr_se, row
        assert row.snr_per_component_mc == pytest.approx(row.snr_per_component_closed, rel=0.05)
        assert row.snr_total_energy == pytest.approx(1 / row.gamma_mc)


def test_multi_head_remark():
    rows = multi_head_sweep(
        32,
        [1, 4, 8],
        [0.5, 2.0],
        temperature=1.0,
        trials=512,
        num_tokens=8,
        w_v=orthogonal_matrix(32, generator=_gen(7)),
        w_o=orthogonal_matrix(32, generator=_gen(8)),
        generator=_gen(9),
    )
    for row in rows:
        assert abs(row.mse_mc - row.mse_closed) < Z * row.mse_se, row
        assert row.mse_head_mc == pytest.approx(row.mse_head_closed, rel=0.05)
        assert row.mse_head_closed * row.num_heads == pytest.approx(row.mse_closed, rel=0.01)
        assert row.snr_head_mc == pytest.approx(1 / row.sigma**2, rel=0.06)


def test_xavier_projection_breaks_the_orthogonal_forms_not_its_own():
    """A Xavier W_v: Lemma 1's orthogonal bound fails on some samples, the spectral one never;
    gamma follows the matrix's own closed form 2||W||_F² + ||W Δmu||²."""
    dim = 16
    w = xavier_matrix(dim, generator=_gen(10))
    common = {"trials": 1024, "num_tokens": 8, "w_v": w, "w_v_name": "xavier"}
    additive = additive_sweep(dim, [1.0], [0.1], generator=_gen(11), **common)[0]
    assert additive.lemma1_violations > 0 and additive.spectral_violations == 0
    assert abs(additive.mse_mc - additive.mse_closed_w) < Z * additive.mse_se
    for row in misaligned_sweep(dim, [0.0, 2.0], [1.0], generator=_gen(12), **common):
        assert abs(row.gamma_mc - row.gamma_closed_w) < Z * row.gamma_se, row


def test_same_seed_same_bits_other_seed_other_bits():
    def sweep(seed: int) -> list[dict]:
        w = orthogonal_matrix(16, generator=_gen(seed))
        g = _gen(seed + 1)
        common = {"trials": 64, "num_tokens": 4, "w_v": w, "generator": g}
        rows = additive_sweep(16, [0.5], [1.0], **common)
        rows += misaligned_sweep(16, [1.0], [1.0], **common)
        return [asdict(r) for r in rows]

    assert sweep(3) == sweep(3)
    assert sweep(3) != sweep(4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigmas": [-0.5]}, "sigma must be a finite noise std >= 0, got -0.5"),
        ({"dim": 0}, "dim must be an integer >= 1, got 0"),
        ({"temperatures": [0.0]}, "temperature must be finite and > 0, got 0.0"),
        ({"trials": 0}, "trials must be an integer >= 1, got 0"),
        ({"w_v": torch.eye(3, dtype=torch.float64)}, "w_v must be a float64 (4, 4) matrix"),
    ],
)
def test_sweeps_reject_bad_arguments(kwargs, message):
    args = {
        "dim": 4,
        "sigmas": [1.0],
        "temperatures": [1.0],
        "trials": 8,
        "num_tokens": 4,
        "w_v": torch.eye(4, dtype=torch.float64),
        "generator": _gen(0),
    }
    args.update(kwargs)
    dim, sigmas, temperatures = args.pop("dim"), args.pop("sigmas"), args.pop("temperatures")
    with pytest.raises(ValueError) as error:
        additive_sweep(dim, sigmas, temperatures, **args)
    assert message in str(error.value)
