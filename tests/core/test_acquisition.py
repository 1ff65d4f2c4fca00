"""Tests for kbnas.core.acquisition: reference numbers, Monte Carlo, stability."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from kbnas.core.acquisition import (
    expected_improvement,
    log_expected_improvement,
    log_h,
    log_probability_of_improvement,
    probability_of_improvement,
    thompson_sample,
    upper_confidence_bound,
)


def test_expected_improvement_matches_botorch_reference_number():
    # BoTorch test_analytic.py: mean −0.5, variance 1, best_f 0 gives EI 0.19780.
    assert expected_improvement(-0.5, 1.0, 0.0) == pytest.approx(0.19780, abs=1e-5)
    assert np.exp(log_expected_improvement(-0.5, 1.0, 0.0)) == pytest.approx(0.19780, abs=1e-5)


def test_expected_improvement_closed_form_with_xi_and_scale():
    mean, std, best, xi = 1.2, 0.7, 1.0, 0.1
    z = (mean - best - xi) / std
    expected = std * (z * scipy.stats.norm.cdf(z) + scipy.stats.norm.pdf(z))
    assert expected_improvement(mean, std, best, xi) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("mean, std, best, xi", [(0.3, 0.5, 0.0, 0.0), (-1.0, 2.0, 0.5, 0.1),
                                                 (2.0, 0.3, 2.2, 0.0)])
def test_ei_and_pi_match_monte_carlo(mean, std, best, xi):
    samples = np.random.default_rng(0).normal(mean, std, 400_000)
    improvement = np.maximum(samples - best - xi, 0.0)
    standard_error = improvement.std() / np.sqrt(samples.size)

    assert expected_improvement(mean, std, best, xi) == pytest.approx(
        improvement.mean(), abs=4 * standard_error
    )
    hit_rate = np.mean(samples > best + xi)
    assert probability_of_improvement(mean, std, best, xi) == pytest.approx(
        hit_rate, abs=4 * np.sqrt(hit_rate * (1 - hit_rate) / samples.size) + 1e-6
    )


def test_log_ei_equals_log_of_ei_where_ei_is_representable():
    mean = np.linspace(-20.0, 5.0, 501)
    std = np.full_like(mean, 1.3)

    ei = expected_improvement(mean, std, 0.4, 0.05)

    assert np.all(ei > 0)
    log_ei = log_expected_improvement(mean, std, 0.4, 0.05)
    np.testing.assert_allclose(log_ei, np.log(ei), rtol=1e-9)


def test_log_h_matches_high_precision_reference():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    z = np.array([-1e4, -1e3, -300.0, -40.0, -10.0, -1.5, -1.0, -0.5, 0.0, 3.0, 40.0])

    reference = [
        float(mpmath.log(mpmath.npdf(mpmath.mpf(v)) + mpmath.mpf(v) * mpmath.ncdf(mpmath.mpf(v))))
        for v in z
    ]

    np.testing.assert_allclose(log_h(z), reference, rtol=1e-10)


def test_log_ei_is_finite_and_increasing_in_the_mean_far_below_the_incumbent():
    z = np.linspace(-1000.0, -30.0, 4001)

    values = log_expected_improvement(z, np.ones_like(z), 0.0)

    assert np.all(np.isfinite(values))
    assert np.all(np.diff(values) > 0)
    assert expected_improvement(-1000.0, 1.0, 0.0) == 0.0  # EI itself underflows here


def test_log_pi_is_finite_for_very_negative_z_and_matches_log_pi():
    mean = np.array([-1000.0, -50.0, -3.0, 0.0, 2.0])

    log_pi = log_probability_of_improvement(mean, np.ones_like(mean), 0.0)

    assert np.all(np.isfinite(log_pi))
    np.testing.assert_allclose(
        log_pi[2:], np.log(probability_of_improvement(mean[2:], 1.0, 0.0)), rtol=1e-12
    )
    assert log_pi[0] == pytest.approx(scipy.stats.norm.logcdf(-1000.0), rel=1e-12)


def test_zero_std_gives_deterministic_improvement():
    mean = np.array([1.5, 0.5, 1.0])
    std = np.zeros(3)

    np.testing.assert_allclose(expected_improvement(mean, std, 1.0, 0.2), [0.3, 0.0, 0.0])
    np.testing.assert_allclose(probability_of_improvement(mean, std, 1.0, 0.2), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(log_expected_improvement(mean, std, 1.0, 0.2),
                               [np.log(0.3), -np.inf, -np.inf])
    np.testing.assert_allclose(log_probability_of_improvement(mean, std, 1.0, 0.2),
                               [0.0, -np.inf, -np.inf])


def test_zero_std_mixed_with_positive_std_broadcasts():
    ei = expected_improvement(np.array([2.0, 2.0]), np.array([0.0, 1.0]), 1.0)
    assert ei[0] == pytest.approx(1.0)
    assert ei[1] == pytest.approx(1.0 * scipy.stats.norm.cdf(1.0) + scipy.stats.norm.pdf(1.0))


def test_negative_std_is_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        expected_improvement(0.0, -1.0, 0.0)


def test_upper_confidence_bound_multiplies_std_by_kappa():
    np.testing.assert_allclose(
        upper_confidence_bound(np.array([1.0, -2.0]), np.array([0.5, 3.0]), kappa=2.0),
        [2.0, 4.0],
    )
    assert upper_confidence_bound(0.3, 2.0, kappa=0.0) == pytest.approx(0.3)
    assert upper_confidence_bound(0.0, 1.0) == pytest.approx(2.0)  # default κ = 2


def test_acquisitions_increase_with_the_mean():
    mean = np.linspace(-3, 3, 50)
    std = np.full(50, 0.8)
    for values in (expected_improvement(mean, std, 0.0), probability_of_improvement(mean, std, 0.0),
                   upper_confidence_bound(mean, std)):
        assert np.all(np.diff(values) > 0)


def test_thompson_samples_have_the_requested_mean_and_covariance():
    rng = np.random.default_rng(0)
    factor = rng.normal(size=(4, 4))
    cov = factor @ factor.T + 0.1 * np.eye(4)
    mean = np.array([1.0, -2.0, 0.5, 3.0])

    samples = thompson_sample(mean, cov, rng, n_samples=200_000)

    assert samples.shape == (200_000, 4)
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(samples.T), cov, rtol=0.03, atol=0.03)


def test_thompson_sampling_handles_a_singular_covariance():
    # Two identical candidates and one with zero variance: rank 1.
    vector = np.array([1.0, 1.0, 0.0])
    cov = np.outer(vector, vector)
    cov[0, 1] += 1e-15  # posterior covariances come out asymmetric by rounding
    samples = thompson_sample(np.zeros(3), cov, 1, n_samples=1000)

    assert np.all(np.isfinite(samples))
    np.testing.assert_allclose(samples[:, 0], samples[:, 1], atol=1e-6)
    np.testing.assert_allclose(samples[:, 2], 0.0, atol=1e-6)
    assert samples[:, 0].std() == pytest.approx(1.0, rel=0.1)


def test_thompson_sample_is_reproducible_and_validates_shapes():
    cov = np.eye(3)
    first = thompson_sample(np.zeros(3), cov, 5, n_samples=2)
    second = thompson_sample(np.zeros(3), cov, 5, n_samples=2)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="shape"):
        thompson_sample(np.zeros(3), np.eye(2), 0)


def test_acquisition_from_its_name_is_the_named_function():
    from kbnas.core import acquisition as acq

    mean, std = np.array([0.0, 0.5, 1.0]), np.array([0.3, 0.0, 1.0])
    np.testing.assert_array_equal(acq.make_acquisition("ei", 0.4, xi=0.01)(mean, std),
                                  acq.log_expected_improvement(mean, std, 0.4, xi=0.01))
    np.testing.assert_array_equal(acq.make_acquisition("pi", 0.4, xi=0.01)(mean, std),
                                  acq.log_probability_of_improvement(mean, std, 0.4, xi=0.01))
    np.testing.assert_array_equal(acq.make_acquisition("ucb", 0.4, kappa=3.0)(mean, std), mean + 3.0 * std)
    with pytest.raises(ValueError, match="joint sample"):
        acq.make_acquisition("thompson", 0.4)
    with pytest.raises(ValueError, match="unknown acquisition 'poi'"):
        acq.make_acquisition("poi", 0.4)
