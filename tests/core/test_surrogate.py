"""The surrogate-fitting policy (`kbnas.core.surrogate`) against direct DistanceGP fits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from kbnas.core.gp import DistanceGP
from kbnas.core.surrogate import RefitPolicy, fit_surrogate


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 2))
    return cdist(x, x)[None], np.sin(x).sum(axis=1)


@pytest.mark.parametrize("n, warm, refits", [(5, False, True), (5, True, True), (100, True, True),
                                             (101, True, False), (105, True, True), (107, False, True)])
def test_refit_truth_table(n, warm, refits):
    assert RefitPolicy(refit_every=5, full_refit_limit=100).refits(n, warm) is refits


def test_a_cold_fit_is_the_gp_fit_and_a_warm_one_past_the_limit_keeps_theta():
    dists, z = _data(30)
    policy = RefitPolicy(n_restarts=2, full_refit_limit=10, refit_every=7)
    cold = fit_surrogate(dists, z, None, policy, np.random.default_rng(3))
    direct = DistanceGP().fit(dists, z, n_restarts=2, rng=np.random.default_rng(3))
    np.testing.assert_allclose(cold.theta_, direct.theta_)
    theta0 = cold.theta_ + 0.3
    kept = fit_surrogate(dists, z, theta0, policy, np.random.default_rng(3))  # 30 > 10, 30 % 7 != 0
    np.testing.assert_array_equal(kept.theta_, theta0)
    # A θ₀ of another number of channels counts as none: a cold fit.
    other = fit_surrogate(dists, z, np.zeros(5), policy, np.random.default_rng(3))
    np.testing.assert_allclose(other.theta_, direct.theta_)


def test_large_fits_take_theta_from_a_subset_and_the_posterior_from_everything():
    dists, z = _data(40)
    policy = RefitPolicy(n_restarts=1, max_fit_points=15)
    gp = fit_surrogate(dists, z, None, policy, np.random.default_rng(4))
    rng = np.random.default_rng(4)
    subset = np.sort(rng.choice(40, 15, replace=False))
    on_subset = DistanceGP().fit(dists[:, subset][:, :, subset], z[subset], n_restarts=1, rng=rng)
    np.testing.assert_allclose(gp.theta_, on_subset.theta_)
    np.testing.assert_allclose(gp.training_mean(), DistanceGP().fit_fixed(dists, z, on_subset.theta_).training_mean())
    assert len(gp.training_mean()) == 40


def test_bad_policies_name_the_problem():
    with pytest.raises(ValueError, match="refit_every"):
        RefitPolicy(refit_every=0)
    with pytest.raises(ValueError, match="n_restarts"):
        RefitPolicy(n_restarts=-1)


def test_leave_one_out_is_the_closed_form_on_a_psd_kernel():
    # exp(-|x - x'|/l) on Euclidean distances is PSD (Matern 1/2): the n refits
    # equal Rasmussen & Williams eq. 5.12 from one inverse of K_y.
    from kbnas.core.kernels import exponential_kernel
    from kbnas.core.surrogate import leave_one_out

    dists, y = _data(25, seed=4)
    theta = np.log([1.3, 0.8, 0.05])
    mean, var = leave_one_out(dists, y, theta)
    s2, length, noise = np.exp(theta)
    k_y = exponential_kernel(dists, np.array([length]), s2) + noise * np.eye(len(y))
    inverse = np.linalg.inv(k_y)
    np.testing.assert_allclose(mean, y - (inverse @ y) / np.diag(inverse), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(var, 1.0 / np.diag(inverse) - noise, rtol=1e-6, atol=1e-9)


def test_leave_one_out_never_sees_the_left_out_target():
    from kbnas.core.surrogate import leave_one_out

    dists, y = _data(12, seed=5)
    theta = np.log([1.0, 1.0, 0.01])
    changed = y.copy()
    changed[3] += 10.0
    before, _ = leave_one_out(dists, y, theta)
    after, _ = leave_one_out(dists, changed, theta)
    assert after[3] == pytest.approx(before[3])
    assert abs(after[4] - before[4]) > 1e-3  # the others do see it
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out(dists[:, :1, :1], y[:1], theta)
