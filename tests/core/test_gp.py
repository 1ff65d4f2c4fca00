"""Tests for kbnas.core.gp against scikit-learn, closed forms and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from scipy.spatial.distance import cdist
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from kbnas.core import gp as gp_module
from kbnas.core.gp import DistanceGP, default_log_bounds, log_marginal_likelihood
from kbnas.core.kernels import METHOD_EIGENVALUE_CLIP, exponential_kernel

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # threadpoolctl ships with scikit-learn; without it, run as is.
    threadpool_limits = None


@pytest.fixture(autouse=True)
def single_threaded_blas():
    """Run each test with one BLAS thread.

    For n ≤ 500 a second BLAS thread saves little, but on an oversubscribed machine
    (few cores shared with other processes) OpenBLAS threads waiting on each other
    made fits 20-50x slower. That is the machine, not the GP.
    """
    if threadpool_limits is None:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def plain_gp(**kwargs) -> DistanceGP:
    """DistanceGP without the spectrum flip (only `robust_cholesky` repairs K_y)."""
    return DistanceGP(spectrum_flip=False, **kwargs)


def euclidean(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """One euclidean distance channel, shape (1, n_left, n_right)."""
    return cdist(left, right)[np.newaxis]


def per_coordinate(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """One |Δx_c| channel per coordinate, shape (d, n_left, n_right)."""
    return np.abs(left.T[:, :, np.newaxis] - right.T[:, np.newaxis, :])


def sklearn_regressor(signal_variance, lengthscale, noise_variance, bounds="fixed"):
    kernel = ConstantKernel(signal_variance, constant_value_bounds=bounds) * Matern(
        length_scale=lengthscale, length_scale_bounds=bounds, nu=0.5
    ) + WhiteKernel(noise_variance, noise_level_bounds=bounds)
    return GaussianProcessRegressor(kernel=kernel, optimizer=None, alpha=0.0, normalize_y=False)


@pytest.fixture
def regression_data():
    rng = np.random.default_rng(0)
    train = rng.uniform(-2, 2, (30, 3))
    test = rng.uniform(-2, 2, (10, 3))
    targets = np.sin(train).sum(axis=1) + 0.1 * rng.normal(size=30)
    return train, test, targets


@pytest.mark.parametrize("spectrum_flip", [False, True], ids=["plain", "flip-on"])
def test_posterior_matches_sklearn(regression_data, spectrum_flip):
    # On a PSD kernel (Matérn-1/2 of euclidean distances) the spectrum flip and the
    # consistent candidate posterior must change nothing: the default GP equals the textbook one.
    train, test, y = regression_data
    signal_variance, lengthscale, noise_variance = 1.7, 0.8, 0.05
    theta = np.log([signal_variance, lengthscale, noise_variance])
    reference = sklearn_regressor(signal_variance, lengthscale, noise_variance).fit(train, y)
    reference_mean, reference_std = reference.predict(test, return_std=True)
    _, reference_cov = reference.predict(test, return_cov=True)

    gp = DistanceGP(spectrum_flip=spectrum_flip).fit_fixed(euclidean(train, train), y, theta)
    mean, var = gp.predict(euclidean(test, train))
    joint_mean, cov = gp.predict_joint(euclidean(test, train), euclidean(test, test))

    np.testing.assert_allclose(mean, reference_mean, rtol=1e-10, atol=1e-12)
    # sklearn's WhiteKernel adds σ_n² on the diagonal of k(X*, X*) (WhiteKernel.diag),
    # so its predictive variance is that of y*, ours that of the latent f*.
    np.testing.assert_allclose(var + noise_variance, reference_std**2, rtol=1e-10)
    np.testing.assert_allclose(joint_mean, mean)
    np.testing.assert_allclose(cov + noise_variance * np.eye(10), reference_cov, atol=1e-12)
    np.testing.assert_allclose(np.diag(cov), var, atol=1e-12)


def test_log_marginal_likelihood_and_gradient_match_sklearn(regression_data):
    train, _, y = regression_data
    theta = np.log([0.6, 1.3, 0.02])
    reference = sklearn_regressor(0.6, 1.3, 0.02, bounds=(1e-5, 1e5)).fit(train, y)
    # sklearn's θ for C·Matern + White is (log C, log ℓ, log σ_n²): the same as ours.
    np.testing.assert_allclose(reference.kernel_.theta, theta)
    reference_value, reference_gradient = reference.log_marginal_likelihood(
        theta, eval_gradient=True
    )

    value, gradient = log_marginal_likelihood(theta, euclidean(train, train), y, eval_gradient=True)

    np.testing.assert_allclose(value, reference.log_marginal_likelihood_value_, rtol=1e-10)
    np.testing.assert_allclose(value, reference_value, rtol=1e-10)
    np.testing.assert_allclose(gradient, reference_gradient, rtol=1e-8, atol=1e-10)


def central_differences(theta: np.ndarray, dists: np.ndarray, y: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """The log marginal likelihood's gradient by central finite differences."""
    return np.array([
        (log_marginal_likelihood(theta + step * e, dists, y)
         - log_marginal_likelihood(theta - step * e, dists, y)) / (2 * step)
        for e in np.eye(theta.shape[0])
    ])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_matches_central_finite_differences_with_three_channels(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 3, (25, 3))
    dists = per_coordinate(points, points)
    y = rng.normal(size=25)
    theta = rng.uniform(-1, 1, 5) + np.array([0, 0, 0, 0, -2])

    value, gradient = log_marginal_likelihood(theta, dists, y, eval_gradient=True)

    numeric = central_differences(theta, dists, y)
    assert value == log_marginal_likelihood(theta, dists, y)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-6)


def test_single_training_point_closed_form():
    signal_variance, lengthscales, noise_variance = 1.5, np.array([0.7, 2.0]), 0.1
    theta = np.log(np.concatenate(([signal_variance], lengthscales, [noise_variance])))
    y = np.array([0.8])
    cross_dists = np.array([[[0.0], [0.3], [1.0]], [[0.0], [1.0], [0.5]]])  # (C=2, m=3, n=1)

    gp = plain_gp().fit_fixed(np.zeros((2, 1, 1)), y, theta)
    mean, var = gp.predict(cross_dists)

    k = signal_variance * np.exp(-(cross_dists[0, :, 0] / 0.7 + cross_dists[1, :, 0] / 2.0))
    np.testing.assert_allclose(mean, k / (signal_variance + noise_variance) * y[0], rtol=1e-12)
    np.testing.assert_allclose(var, signal_variance - k**2 / (signal_variance + noise_variance),
                               rtol=1e-12)
    expected_lml = -0.5 * (
        y[0] ** 2 / (signal_variance + noise_variance)
        + np.log(signal_variance + noise_variance) + np.log(2 * np.pi)
    )
    np.testing.assert_allclose(gp.log_marginal_likelihood_value_, expected_lml, rtol=1e-12)


def prior_sample(points: np.ndarray, lengthscale: float, noise_variance: float, rng) -> np.ndarray:
    cov = exponential_kernel(euclidean(points, points), [lengthscale], 1.0)
    cov += noise_variance * np.eye(len(points))
    return np.linalg.cholesky(cov) @ rng.standard_normal(len(points))


def test_fit_recovers_the_lengthscale_of_prior_samples():
    fitted = {}
    for true_lengthscale in (0.5, 1.5):
        log_lengthscales = []
        for seed in range(6):
            rng = np.random.default_rng(seed)
            points = rng.uniform(0, 10, (150, 2))
            y = prior_sample(points, true_lengthscale, 1e-2, rng)
            # theta0 deliberately far from the truth: ℓ = 10, s² = 1, σ_n² = 1e-3.
            theta0 = np.log([1.0, 10.0, 1e-3])
            gp = plain_gp().fit(euclidean(points, points), y, theta0=theta0, rng=seed)
            assert gp.log_marginal_likelihood_value_ >= log_marginal_likelihood(
                theta0, euclidean(points, points), y
            )
            log_lengthscales.append(np.log(gp.lengthscales_[0]))
        fitted[true_lengthscale] = np.exp(np.mean(log_lengthscales))
        assert true_lengthscale / 1.5 < fitted[true_lengthscale] < true_lengthscale * 1.5
    assert fitted[1.5] > 2 * fitted[0.5]


def test_fitted_state_is_consistent_with_fit_fixed_at_the_fitted_theta(regression_data):
    train, test, y = regression_data
    dists = euclidean(train, train)

    fitted = plain_gp().fit(dists, y, rng=0)
    fixed = plain_gp().fit_fixed(dists, y, fitted.theta_)

    assert fitted.theta_.shape == (3,)
    assert np.all(fitted.theta_ >= fitted.bounds_[:, 0])
    assert np.all(fitted.theta_ <= fitted.bounds_[:, 1])
    np.testing.assert_allclose(fitted.log_marginal_likelihood_value_,
                               log_marginal_likelihood(fitted.theta_, dists, y))
    np.testing.assert_allclose(fitted.alpha_, fixed.alpha_)
    np.testing.assert_allclose(fitted.predict(euclidean(test, train))[0],
                               fixed.predict(euclidean(test, train))[0])
    np.testing.assert_allclose(
        [fitted.signal_variance_, fitted.lengthscales_[0], fitted.noise_variance_],
        np.exp(fitted.theta_),
    )


def test_fantasy_point_at_the_posterior_mean_keeps_the_mean(regression_data):
    train, test, y = regression_data
    gp = plain_gp().fit(euclidean(train, train), y, rng=0)
    pending = test[:1]
    fantasy, _ = gp.predict(euclidean(pending, train))

    augmented = np.vstack([train, pending])
    with_fantasy = plain_gp().fit_fixed(
        euclidean(augmented, augmented), np.append(y, fantasy), gp.theta_
    )

    before_mean, before_var = gp.predict(euclidean(test, train))
    after_mean, after_var = with_fantasy.predict(euclidean(test, augmented))
    # Kriging believer: the mean is unchanged, the variance shrinks (to ~0 at the point).
    np.testing.assert_allclose(after_mean, before_mean, atol=1e-8)
    assert np.all(after_var <= before_var + 1e-12)
    assert after_var[0] < 1e-3 * before_var[0] + with_fantasy.noise_variance_


def test_irrelevant_channel_gets_a_longer_lengthscale():
    rng = np.random.default_rng(7)
    points = rng.uniform(0, 1, (80, 2))
    y = np.sin(6 * points[:, 0]) + 0.05 * rng.normal(size=80)
    y = (y - y.mean()) / y.std()

    gp = plain_gp().fit(per_coordinate(points, points), y, rng=0)

    relevant, irrelevant = gp.lengthscales_
    assert irrelevant > 5 * relevant


@pytest.mark.parametrize("noise_bounds", [(1e-6, 1.0), (1e-6, 1e-6)])
def test_non_psd_distances_do_not_crash_fit_or_predict(noise_bounds):
    # Random symmetric "distances" that violate the triangle inequality.
    rng = np.random.default_rng(3)
    upper = np.triu(rng.uniform(0, 3, (30, 30)), 1)
    dists = (upper + upper.T)[np.newaxis]
    y = rng.normal(size=30)
    bounds = default_log_bounds(1, [1.0])
    bounds[-1] = np.log(noise_bounds)

    gp = plain_gp().fit(dists, y, rng=0, bounds=bounds)
    mean, var = gp.predict(dists[:, :5, :])
    joint_mean, cov = gp.predict_joint(dists[:, :5, :], dists[:, :5, :5])

    assert np.isfinite(gp.log_marginal_likelihood_value_)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(var))  # (the plain model clips var at 0)
    assert np.all(np.isfinite(cov))
    flipped = DistanceGP().fit(dists, y, rng=0, bounds=bounds)
    assert np.all(flipped.predict(dists[:, :5, :])[1] > 0)  # no clip there: a sum of positive terms


def test_fit_fixed_reports_the_eigenvalue_repair():
    dists = np.array([[[0.0, 0.1, 0.1], [0.1, 0.0, 10.0], [0.1, 10.0, 0.0]]])
    gp = plain_gp().fit_fixed(dists, np.array([1.0, -1.0, 0.5]), np.log([1.0, 1.0, 1e-6]))

    assert gp.cholesky_method_ == METHOD_EIGENVALUE_CLIP
    mean, var = gp.predict(dists)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(var))


def test_fit_survives_failing_starts_and_raises_when_all_fail(monkeypatch, regression_data):
    train, _, y = regression_data
    dists = euclidean(train, train)
    real_minimize = gp_module.scipy.optimize.minimize
    calls = []

    def first_start_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise np.linalg.LinAlgError("simulated failure")
        return real_minimize(*args, **kwargs)

    monkeypatch.setattr(gp_module.scipy.optimize, "minimize", first_start_fails)
    gp = plain_gp().fit(dists, y, n_restarts=2, rng=0)
    assert gp.n_failed_starts_ == 1 and len(calls) == 3
    assert np.isfinite(gp.log_marginal_likelihood_value_)

    def always_fails(*args, **kwargs):
        raise np.linalg.LinAlgError("simulated failure")

    monkeypatch.setattr(gp_module.scipy.optimize, "minimize", always_fails)
    with pytest.raises(RuntimeError, match="all 3"):
        plain_gp().fit(dists, y, n_restarts=2, rng=0)


def test_restarts_are_reproducible_with_a_seed(regression_data):
    train, _, y = regression_data
    dists = euclidean(train, train)
    first = plain_gp().fit(dists, y, rng=11).theta_
    second = plain_gp().fit(dists, y, rng=11).theta_
    np.testing.assert_array_equal(first, second)


def test_shape_errors_are_clear():
    gp = plain_gp()
    with pytest.raises(ValueError, match=r"\(C, n, n\)"):
        gp.fit(np.zeros((1, 3, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="C \\+ 2"):
        gp.fit_fixed(np.zeros((2, 3, 3)), np.zeros(3), np.zeros(3))
    gp.fit_fixed(np.zeros((1, 3, 3)), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"\(C, m, n\)"):
        gp.predict(np.zeros((1, 2, 4)))


# --- the spectrum flip --------------------------------------------------------


def non_negative_type_dists(n: int, seed: int) -> np.ndarray:
    """Symmetric "distances" violating the triangle inequality: exp(−D/ℓ) is indefinite."""
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.uniform(0, 3, (n, n)), 1)
    return (upper + upper.T)[np.newaxis]


def test_flip_divided_differences_match_finite_differences_of_the_matrix_function():
    rng = np.random.default_rng(0)
    correlation = np.exp(-non_negative_type_dists(12, seed=0)[0])
    direction = rng.normal(size=(12, 12))
    direction = direction + direction.T

    def flip(matrix):
        eigenvalues, eigenvectors = np.linalg.eigh(matrix)
        return (eigenvectors * np.abs(eigenvalues)) @ eigenvectors.T

    eigenvalues, eigenvectors = np.linalg.eigh(correlation)
    assert eigenvalues[0] < 0 < eigenvalues[-1]
    analytic = eigenvectors @ (
        gp_module.flip_divided_differences(eigenvalues) * (eigenvectors.T @ direction @ eigenvectors)
    ) @ eigenvectors.T
    step = 1e-6
    numeric = (flip(correlation + step * direction) - flip(correlation - step * direction)) / (2 * step)
    np.testing.assert_allclose(analytic, numeric, atol=1e-6)


def test_flip_divided_differences_closed_form():
    eigenvalues = np.array([-2.0, -1.0, 0.5, 3.0])
    expected = np.array([
        [-1.0, -1.0, (2.0 - 0.5) / (-2.0 - 0.5), (2.0 - 3.0) / (-2.0 - 3.0)],
        [-1.0, -1.0, (1.0 - 0.5) / (-1.0 - 0.5), (1.0 - 3.0) / (-1.0 - 3.0)],
        [0.0, 0.0, 1.0, 1.0],
        [0.0, 0.0, 1.0, 1.0],
    ])
    expected[2:, :2] = expected[:2, 2:].T
    np.testing.assert_allclose(gp_module.flip_divided_differences(eigenvalues), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_with_a_flipped_spectrum_matches_central_finite_differences(seed):
    rng = np.random.default_rng(seed)
    coordinate = rng.uniform(0, 3, (20, 1))
    dists = np.concatenate([non_negative_type_dists(20, seed), per_coordinate(coordinate, coordinate)])
    y = rng.normal(size=20)
    theta = np.array([0.3, np.log(1.0), np.log(2.0), np.log(1e-2)])
    correlation = exponential_kernel(dists, np.exp(theta[1:-1]), 1.0)
    assert np.linalg.eigvalsh(correlation)[0] < 0  # the flip is active

    value, gradient = log_marginal_likelihood(theta, dists, y, eval_gradient=True)

    numeric = central_differences(theta, dists, y)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-6)


def test_flipped_likelihood_is_the_likelihood_of_the_flipped_matrix():
    dists = non_negative_type_dists(15, seed=5)
    y = np.random.default_rng(5).normal(size=15)
    theta = np.log([2.0, 1.0, 0.1])
    eigenvalues, eigenvectors = np.linalg.eigh(np.exp(-dists[0]))
    covariance = 2.0 * (eigenvectors * np.abs(eigenvalues)) @ eigenvectors.T + 0.1 * np.eye(15)

    expected = scipy.stats.multivariate_normal(np.zeros(15), covariance).logpdf(y)

    assert log_marginal_likelihood(theta, dists, y) == pytest.approx(expected, rel=1e-10)


def test_flip_leaves_a_positive_definite_kernel_unchanged(regression_data):
    train, _, y = regression_data
    dists = euclidean(train, train)
    theta = np.log([1.0, 0.7, 0.1])

    flipped = DistanceGP().fit_fixed(dists, y, theta)
    plain = plain_gp().fit_fixed(dists, y, theta)

    assert not flipped.spectrum_flipped_
    assert flipped.log_marginal_likelihood_value_ == plain.log_marginal_likelihood_value_
    np.testing.assert_array_equal(flipped.alpha_, plain.alpha_)


def test_flip_bounds_the_posterior_mean_where_the_plain_repair_explodes():
    # R = exp(−D) has eigenvalues 1 and 1 ± 1.28; with σ_n² = 1e-6 the plain repair
    # leaves K_y nearly singular along the negative eigenvector.
    dists = np.array([[[0.0, 0.1, 0.1], [0.1, 0.0, 10.0], [0.1, 10.0, 0.0]]])
    y = np.array([1.0, -1.0, 0.5])
    theta = np.log([1.0, 1.0, 1e-6])
    near_first = np.array([[[0.05, 0.15, 0.15]]])  # a new configuration next to the first

    plain = plain_gp().fit_fixed(dists, y, theta)
    flipped = DistanceGP().fit_fixed(dists, y, theta)

    assert flipped.spectrum_flipped_
    assert np.abs(plain.predict(near_first)[0][0]) > 1e3  # the bug this guards against
    # Along each eigenvector the mean is y's component times λ/(|λ| + σ²/s²), |·| ≤ 1.
    assert np.abs(flipped.predict(near_first)[0][0]) <= np.sqrt(3) * np.linalg.norm(y)
    assert np.all(np.abs(flipped.predict(dists)[0]) <= np.linalg.norm(y) + 1e-9)


def test_fitted_flipped_gp_predicts_held_out_points_of_an_indefinite_kernel():
    dists = non_negative_type_dists(60, seed=4)
    y = np.random.default_rng(4).normal(size=60)
    train, test = np.arange(45), np.arange(45, 60)

    plain = plain_gp().fit(dists[:, train][:, :, train], y[train], rng=0)
    gp = DistanceGP().fit(dists[:, train][:, :, train], y[train], rng=0)
    mean, var = gp.predict(dists[:, test][:, :, train])

    assert gp.log_marginal_likelihood_value_ > -np.inf
    assert np.all(np.abs(mean) <= np.sqrt(45) * np.linalg.norm(y[train]))
    assert np.all(np.isfinite(var)) and np.all(var >= 0)
    assert np.isfinite(plain.log_marginal_likelihood_value_)


def test_training_mean_equals_the_posterior_mean_at_the_training_points(regression_data):
    train, _, y = regression_data
    dists = euclidean(train, train)
    gp = DistanceGP().fit_fixed(dists, y, np.log([1.0, 0.7, 0.2]))

    np.testing.assert_allclose(gp.training_mean(), gp.predict(dists)[0], atol=1e-10)
    # Noise shrinks the fitted values towards the prior mean 0.
    assert np.linalg.norm(gp.training_mean()) < np.linalg.norm(y)


def test_training_mean_interpolates_without_noise_and_keeps_an_indefinite_kernel_sign():
    dists = np.array([[[0.0, 0.1, 0.1], [0.1, 0.0, 10.0], [0.1, 10.0, 0.0]]])
    y = np.array([1.0, -1.0, 0.5])
    gp = DistanceGP().fit_fixed(dists, y, np.log([1.0, 1.0, 1e-6]))

    np.testing.assert_allclose(gp.training_mean(), y, atol=1e-5)


def _joint_gram_posterior(gp: DistanceGP, train_dists: np.ndarray, cross: np.ndarray, test: np.ndarray):
    """Reference: build the flipped joint Gram matrix of training and test points
    explicitly (pseudo-Euclidean embedding, module docstring) and condition on it."""
    s2, ratio = gp.signal_variance_, gp.noise_variance_ / gp.signal_variance_
    correlation = exponential_kernel(train_dists, gp.lengthscales_, 1.0)
    eigenvalues, vectors = np.linalg.eigh(correlation)
    signs = np.sign(eigenvalues)
    phi = vectors * np.sqrt(np.abs(eigenvalues))  # training coordinates, R = Φ J Φᵀ
    cross_correlation = exponential_kernel(cross, gp.lengthscales_, 1.0)
    phi_test = cross_correlation @ vectors * (signs / np.sqrt(np.abs(eigenvalues)))  # Φ J φ* = r*
    outside = exponential_kernel(test, gp.lengthscales_, 1.0) - phi_test @ (phi_test * signs).T
    w, u = np.linalg.eigh(outside)
    remainder = (u * np.abs(w)) @ u.T
    # The remainder keeps each point's own |1 − φᵀJφ| on its diagonal, and a point
    # whose embedded prior exceeds κ = max_i R̃_ii is shrunk to it.
    rescale = np.sqrt(np.abs(np.diag(outside)) / np.diag(remainder))
    remainder = rescale[:, None] * remainder * rescale[None, :]
    kappa = max(1.0, np.max(np.diag(phi @ phi.T)))
    prior = np.sum(phi_test**2, axis=1) + np.abs(np.diag(outside))
    gamma = np.sqrt(np.minimum(1.0, kappa / prior))
    gram_train = phi @ phi.T
    gram_cross = gamma[:, None] * (phi_test @ phi.T)
    gram_test = gamma[:, None] * (phi_test @ phi_test.T + remainder) * gamma[None, :]
    solve = np.linalg.solve(gram_train + ratio * np.eye(len(gram_train)), np.column_stack([gp.y_train_, gram_cross.T]))
    mean = s2 * gram_cross @ solve[:, 0] / s2
    cov = s2 * (gram_test - gram_cross @ solve[:, 1:])
    return mean, cov


def test_predictions_are_the_posterior_of_the_flipped_joint_gram_matrix():
    dists = non_negative_type_dists(40, seed=6)
    train, test = np.arange(30), np.arange(30, 40)
    gp = DistanceGP().fit_fixed(dists[:, train][:, :, train], np.random.default_rng(6).normal(size=30),
                                np.log([1.3, 1.0, 1e-3]))
    cross, among = dists[:, test][:, :, train], dists[:, test][:, :, test]
    assert gp.spectrum_flipped_

    reference_mean, reference_cov = _joint_gram_posterior(gp, dists[:, train][:, :, train], cross, among)
    mean, var = gp.predict(cross)
    joint_mean, cov = gp.predict_joint(cross, among)

    np.testing.assert_allclose(mean, reference_mean, atol=1e-8)
    np.testing.assert_allclose(joint_mean, reference_mean, atol=1e-8)
    np.testing.assert_allclose(cov, reference_cov, atol=1e-8)
    for i in test - 30:  # one point alone: its variance, the joint one's diagonal for m = 1
        _, single = _joint_gram_posterior(gp, dists[:, train][:, :, train], cross[:, [i]], among[:, [i]][:, :, [i]])
        np.testing.assert_allclose(var[i], single[0, 0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(np.diag(cov), var, rtol=1e-8, atol=1e-12)  # marginals do not depend on the pool


def test_candidate_variances_stay_within_the_flipped_prior_and_means_within_the_data():
    # Tiny eigenvalues of an indefinite R put inconsistent candidates far out in the
    # embedding (measured before the shrinkage: variances up to 4125 s² on edit
    # distances); a candidate's prior is capped at κ = max_i R̃_ii.
    dists = non_negative_type_dists(60, seed=6)
    train, test = np.arange(45), np.arange(45, 60)
    y = np.random.default_rng(6).normal(size=45)
    gp = DistanceGP().fit_fixed(dists[:, train][:, :, train], y, np.log([1.3, 1.0, 1e-3]))
    correlation = exponential_kernel(dists[:, train][:, :, train], gp.lengthscales_, 1.0)
    values, vectors = np.linalg.eigh(correlation)
    kappa = np.max((vectors**2) @ np.abs(values))

    mean, var = gp.predict(dists[:, test][:, :, train])

    assert gp.spectrum_flipped_
    assert np.all(var <= gp.signal_variance_ * kappa * (1 + 1e-9))
    assert np.all(np.abs(mean) <= np.sqrt(kappa) * np.sqrt(45) * np.linalg.norm(y))


def test_held_out_variances_of_an_indefinite_kernel_are_positive_without_a_clip():
    # The textbook s² − k*ᵀK_y⁻¹k* with the flipped K_y goes negative for many of
    # these points (checked below); the consistent model's variance is a sum of
    # non-negative terms.
    dists = non_negative_type_dists(80, seed=2)
    train, test = np.arange(50), np.arange(50, 80)
    train_dists, cross = dists[:, train][:, :, train], dists[:, test][:, :, train]
    gp = DistanceGP().fit_fixed(train_dists, np.random.default_rng(2).normal(size=50), np.log([1.0, 1.0, 1e-4]))
    kernel_rows = exponential_kernel(cross, gp.lengthscales_, gp.signal_variance_)
    whitened = np.linalg.solve(gp.cholesky_factor_, kernel_rows.T)
    textbook = gp.signal_variance_ - np.sum(whitened**2, axis=0)
    assert gp.spectrum_flipped_ and np.mean(textbook < 0) > 0.2

    _, var = gp.predict(cross)
    _, cov = gp.predict_joint(cross, dists[:, test][:, :, test])

    assert np.all(var > 0)
    assert np.linalg.eigvalsh(cov).min() >= -1e-9 * np.abs(cov).max()


def test_the_mean_at_a_training_point_is_its_training_mean_under_an_indefinite_kernel():
    # EI's incumbent (the best training mean) and the candidates' means come from
    # one model: a candidate equal to a training configuration has its mean.
    dists = non_negative_type_dists(40, seed=9)
    gp = DistanceGP().fit_fixed(dists, np.random.default_rng(9).normal(size=40), np.log([1.0, 1.0, 1e-3]))
    plain_mean = exponential_kernel(dists, gp.lengthscales_, gp.signal_variance_) @ gp.alpha_
    assert gp.spectrum_flipped_ and np.max(np.abs(plain_mean - gp.training_mean())) > 1e-2  # the old gap

    mean, var = gp.predict(dists)

    np.testing.assert_allclose(mean, gp.training_mean(), atol=1e-9)
    assert np.all(var >= 0) and np.all(var < gp.signal_variance_)
