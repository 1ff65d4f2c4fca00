"""The kernel variants of the plain-space benchmark against scikit-learn's Matérn
kernel, the oracle's own kernel, and finite differences of the GP's likelihood."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import Matern

from benchmarks import kernel_variants
from kbnas.core import gp
from kbnas.core.kernels import exponential_kernel


def _channels(points_a: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """(C, n, m) per-coordinate distances |a_c − b_c|."""
    return np.abs(points_a[:, None, :] - points_b[None, :, :]).transpose(2, 0, 1)


def test_matern52_is_a_product_of_scikit_learns_one_dimensional_materns():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(6, 3)), rng.uniform(size=(4, 3))
    lengthscales = np.array([0.3, 1.2, 0.05])
    expected = 1.7 * np.prod(
        [Matern(length_scale=lengthscales[c], nu=2.5)(a[:, [c]], b[:, [c]]) for c in range(3)], axis=0
    )
    np.testing.assert_allclose(kernel_variants.matern52_kernel(_channels(a, b), lengthscales, 1.7), expected,
                               rtol=1e-12)


def test_additive_share_zero_is_the_oracles_kernel_and_one_channel_is_unchanged_by_it():
    rng = np.random.default_rng(1)
    a = rng.uniform(size=(5, 2))
    dists, lengthscales = _channels(a, a), np.array([0.4, 0.9])
    kernel, _ = kernel_variants.additive_kernel(0.0)
    np.testing.assert_allclose(kernel(dists, lengthscales, 2.0), exponential_kernel(dists, lengthscales, 2.0))
    kernel, _ = kernel_variants.additive_kernel(0.7)
    np.testing.assert_allclose(kernel(dists[:1], lengthscales[:1], 2.0), exponential_kernel(dists[:1], lengthscales[:1], 2.0))
    # Two channels: (1 − w) e^{−r1 − r2} + w (e^{−r1} + e^{−r2}) / 2.
    r = dists / lengthscales[:, None, None]
    np.testing.assert_allclose(kernel(dists, lengthscales, 2.0),
                               2.0 * (0.3 * np.exp(-r.sum(0)) + 0.35 * (np.exp(-r[0]) + np.exp(-r[1]))))
    with pytest.raises(ValueError, match="additive share"):
        kernel_variants.additive_kernel(1.5)


@pytest.mark.parametrize("name", ["matern52", "additive", "additive-0.2"])
def test_the_likelihood_gradient_under_a_variant_matches_finite_differences(name):
    rng = np.random.default_rng(2)
    points = rng.uniform(size=(8, 3))
    dists, y = _channels(points, points), rng.normal(size=8)
    theta = np.array([0.2, -1.0, -0.3, 0.5, -3.0])
    with kernel_variants.patched(name):
        _, gradient = gp.log_marginal_likelihood(theta, dists, y, eval_gradient=True)
        step = 1e-6
        numeric = [(gp.log_marginal_likelihood(theta + e, dists, y) - gp.log_marginal_likelihood(theta - e, dists, y))
                   / (2 * step) for e in np.eye(5) * step]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-7)


def test_patched_restores_the_oracles_kernel_even_after_an_error():
    original = gp.exponential_kernel, gp.exponential_kernel_vjp
    with pytest.raises(RuntimeError):
        with kernel_variants.patched("matern52"):
            assert gp.exponential_kernel is kernel_variants.matern52_kernel
            raise RuntimeError("inside")
    assert (gp.exponential_kernel, gp.exponential_kernel_vjp) == original
    with pytest.raises(ValueError, match="unknown kernel variant"):
        kernel_variants.functions("rbf")
