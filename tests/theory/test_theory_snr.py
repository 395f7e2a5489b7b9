"""Closed forms of paper §3-4 (theory/snr.py): values, bounds, and argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from indirect_attention.theory import snr


def test_lemma2_limits_peaked_and_uniform():
    """Lemma 2's two limits from the paper: one-hot gives sigma² d, uniform sigma² d / n."""
    n, d, sigma = 8, 64, 0.7
    one_hot = torch.zeros(n, dtype=torch.float64)
    one_hot[3] = 1.0
    uniform = torch.full((n,), 1.0 / n, dtype=torch.float64)
    assert snr.expected_error(sigma, d, float(one_hot.pow(2).sum())) == pytest.approx(sigma**2 * d)
    assert snr.expected_error(sigma, d, float(uniform.pow(2).sum())) == pytest.approx(
        sigma**2 * d / n
    )


def test_lemma1_bound_holds_for_an_orthogonal_projection(generator):
    """||W sum_j a_j eps_j|| <= sum_j a_j ||eps_j|| for random a, eps and an orthogonal W."""
    n, d = 6, 10
    w, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    a = torch.softmax(torch.randn(200, n, generator=generator, dtype=torch.float64), dim=-1)
    eps = torch.randn(200, n, d, generator=generator, dtype=torch.float64)
    deviation = (torch.einsum("bj,bjd->bd", a, eps) @ w.T).norm(dim=-1)
    bound = snr.lemma1_bound(a, eps.norm(dim=-1))
    assert bound.shape == (200,)
    assert bool((deviation <= bound * (1 + 1e-12)).all())
    assert bool((deviation < bound).any())  # the bound is not an identity


def test_multi_head_total_is_the_mean_over_heads():
    """Per-head errors sigma² (d/H) sum a² add up to sigma² d mean_h sum a² (§3 remark)."""
    sigma, d = 1.3, 32
    per_head = [0.2, 0.5, 0.9, 0.1]
    heads = [snr.per_head_expected_error(sigma, d, len(per_head), s) for s in per_head]
    total = snr.multi_head_expected_error(sigma, d, per_head)
    assert float(total) == pytest.approx(sum(heads))
    assert float(total) == pytest.approx(sigma**2 * d * sum(per_head) / len(per_head))


def test_snr_and_threshold():
    assert snr.snr_additive(0.5) == pytest.approx(4.0)
    assert snr.snr_additive(snr.SIGMA_STAR) == 1.0
    assert snr.snr_additive(0.0) == math.inf
    sigmas = torch.tensor([0.5, 2.0], dtype=torch.float64)
    torch.testing.assert_close(snr.snr_additive(sigmas), torch.tensor([4.0, 0.25]).double())


def test_misalignment_energy_and_its_per_component_share():
    """gamma = 2d + d·delta² (A.3); per component 2 + delta², the same for every d."""
    for d in (16, 1024):
        for delta in (0.0, 0.5, 2.0):
            gamma = snr.misalignment_energy(d, delta)
            assert gamma == pytest.approx(2 * d + d * delta**2)
            assert gamma / d == pytest.approx(snr.per_component_noise_variance(delta))


def test_misaligned_snr_is_the_ratio_of_the_energies():
    """(d·mu_x² + d·sum a²) / (2d·sum a² + d·delta²), d cancelling."""
    d, sum_a2, delta, mu_x = 64, 0.3, 1.5, 0.5
    signal = d * mu_x**2 + d * sum_a2
    error = snr.misaligned_output_error(d, delta, sum_a2)
    assert error == pytest.approx(2 * d * sum_a2 + d * delta**2)
    assert snr.misaligned_snr(sum_a2, delta, mu_x) == pytest.approx(signal / error)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: snr.expected_error(-0.1, 8, 0.5),
            "sigma must be a finite noise std >= 0, got -0.1",
        ),
        (lambda: snr.expected_error(1.0, 0, 0.5), "dim must be an integer >= 1, got 0"),
        (lambda: snr.expected_error(1.0, 2.5, 0.5), "dim must be an integer >= 1, got 2.5"),
        (lambda: snr.expected_error(1.0, 8, 1.5), "must be in (0, 1], got 1.5"),
        (lambda: snr.snr_additive(-2.0), "sigma must be a finite noise std >= 0, got -2.0"),
        (lambda: snr.snr_additive(torch.tensor([1.0, -1.0])), "got -1.0"),
        (lambda: snr.misalignment_energy(-4, 1.0), "dim must be an integer >= 1, got -4"),
        (lambda: snr.misalignment_energy(8, float("nan")), "mean_shift must be finite, got nan"),
        (lambda: snr.per_head_expected_error(1.0, 10, 4, 0.5), "num_heads=4 must divide dim=10"),
        (lambda: snr.multi_head_expected_error(1.0, 10, [0.5] * 3), "H=3 must divide dim=10"),
        (lambda: snr.lemma1_bound(torch.ones(2, 3), torch.ones(2, 4)), "same shape"),
    ],
)
def test_bad_arguments_are_rejected_with_a_clear_message(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)
