"""Tests for kbnas.core.kernels: the exponential kernel and PSD repair."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.csgraph
from scipy.spatial.distance import cdist
from sklearn.gaussian_process.kernels import Matern

from kbnas.core.kernels import (
    METHOD_CHOLESKY,
    METHOD_EIGENVALUE_CLIP,
    METHOD_JITTER,
    clip_eigenvalues,
    exponential_kernel,
    exponential_kernel_vjp,
    is_psd,
    robust_cholesky,
)


def triangle_violating_dists() -> np.ndarray:
    """Point 0 is close to points 1 and 2, which are far apart: not a metric.

    exp(−D) ≈ [[1, a, a], [a, 1, 0], [a, 0, 1]] with a = e^−0.1 has determinant
    1 − 2a² < 0, so it has a negative eigenvalue.
    """
    return np.array([[0.0, 0.1, 0.1], [0.1, 0.0, 10.0], [0.1, 10.0, 0.0]])


def complete_bipartite_k23_dists() -> np.ndarray:
    """Shortest-path metric of the graph K_{2,3}: a metric, but not of negative type.

    (Tree metrics such as paths and stars are of negative type, so exp(−D/ℓ) on them
    is PSD for every ℓ; K_{2,3} is the classic small graph whose metric is not.)
    """
    adjacency = np.zeros((5, 5))
    adjacency[:2, 2:] = 1.0
    adjacency = adjacency + adjacency.T
    return scipy.sparse.csgraph.shortest_path(adjacency, unweighted=True)


def random_non_metric_dists(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.uniform(0.0, 3.0, (n, n)), 1)
    return upper + upper.T


def euclidean_channel(n: int = 25, seed: int = 1) -> np.ndarray:
    points = np.random.default_rng(seed).normal(size=(n, 3))
    return cdist(points, points)


NON_PSD_CASES = [
    pytest.param(triangle_violating_dists(), 1.0, id="triangle-violation"),
    pytest.param(complete_bipartite_k23_dists(), 10.0, id="K23-graph"),
    pytest.param(random_non_metric_dists(), 1.0, id="random-non-metric"),
]


@pytest.mark.parametrize("lengthscale", [0.3, 1.0, 4.0])
def test_exponential_kernel_on_euclidean_equals_sklearn_matern_half(lengthscale):
    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(12, 3)), rng.normal(size=(7, 3))
    signal_variance = 2.5

    kernel = exponential_kernel(cdist(left, right)[np.newaxis], [lengthscale], signal_variance)

    reference = signal_variance * Matern(length_scale=lengthscale, nu=0.5)(left, right)
    np.testing.assert_allclose(kernel, reference, rtol=1e-12)


def test_channels_multiply_like_a_product_kernel():
    rng = np.random.default_rng(2)
    dists = rng.uniform(0, 2, (3, 6, 5))
    lengthscales = np.array([0.5, 1.0, 3.0])

    kernel = exponential_kernel(dists, lengthscales, 1.7)

    product = 1.7 * np.prod([np.exp(-d / ls) for d, ls in zip(dists, lengthscales)], axis=0)
    np.testing.assert_allclose(kernel, product, rtol=1e-12)


@pytest.mark.parametrize(
    "dists",
    [euclidean_channel(), triangle_violating_dists(), complete_bipartite_k23_dists(),
     random_non_metric_dists()],
    ids=["euclidean", "triangle-violation", "K23-graph", "random-non-metric"],
)
def test_kernel_is_symmetric_finite_bounded_with_signal_variance_diagonal(dists):
    kernel = exponential_kernel(np.stack([dists, 2 * dists]), [0.7, 2.0], 3.0)

    np.testing.assert_array_equal(kernel, kernel.T)
    assert np.all(np.isfinite(kernel))
    assert np.all(kernel > 0) and np.all(kernel <= 3.0)
    np.testing.assert_allclose(np.diag(kernel), 3.0)


def test_kernel_rejects_mismatched_lengthscales():
    with pytest.raises(ValueError, match="lengthscales"):
        exponential_kernel(np.zeros((2, 3, 3)), [1.0], 1.0)


def test_vjp_matches_finite_differences_of_the_kernel():
    rng = np.random.default_rng(3)
    dists = rng.uniform(0, 2, (3, 8, 6))
    weights = rng.normal(size=(8, 6))
    theta = np.array([0.3, -0.2, 0.5, 1.1])  # log s², log ℓ_1..ℓ_3

    def weighted_kernel_sum(log_params: np.ndarray) -> float:
        kernel = exponential_kernel(dists, np.exp(log_params[1:]), np.exp(log_params[0]))
        return float(np.sum(weights * kernel))

    kernel = exponential_kernel(dists, np.exp(theta[1:]), np.exp(theta[0]))
    analytic = exponential_kernel_vjp(dists, np.exp(theta[1:]), kernel, weights)

    step = 1e-6
    numeric = [
        (weighted_kernel_sum(theta + step * e) - weighted_kernel_sum(theta - step * e)) / (2 * step)
        for e in np.eye(theta.size)
    ]
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dists, lengthscale", NON_PSD_CASES)
def test_non_psd_kernel_is_detected_and_repaired(dists, lengthscale):
    kernel = exponential_kernel(dists[np.newaxis], [lengthscale], 1.0)
    assert np.linalg.eigvalsh(kernel)[0] < -1e-3
    assert not is_psd(kernel)

    factor, jitter, method = robust_cholesky(kernel)

    assert method == METHOD_EIGENVALUE_CLIP and jitter == 0.0
    np.testing.assert_array_equal(factor, np.tril(factor))
    repaired = factor @ factor.T
    assert is_psd(repaired)
    np.testing.assert_allclose(repaired, clip_eigenvalues(kernel, 1e-8), atol=1e-10)
    # The repair only touches the negative part of the spectrum.
    eigenvalues, eigenvectors = np.linalg.eigh(kernel)
    positive = eigenvalues > 1e-3
    np.testing.assert_allclose(
        eigenvectors[:, positive].T @ repaired @ eigenvectors[:, positive],
        np.diag(eigenvalues[positive]),
        atol=1e-10,
    )


def test_slightly_indefinite_matrix_is_repaired_by_small_jitter():
    rng = np.random.default_rng(4)
    eigenvectors, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    eigenvalues = np.linspace(1e-7, 2.0, 10)
    eigenvalues[0] = -2e-7  # −2e-7 relative to mean diagonal ≈ 1
    matrix = (eigenvectors * eigenvalues) @ eigenvectors.T
    matrix = 0.5 * (matrix + matrix.T)
    assert not is_psd(matrix)

    factor, jitter, method = robust_cholesky(matrix)

    assert method == METHOD_JITTER
    assert 2e-7 < jitter / np.mean(np.diag(matrix)) <= 1e-5
    np.testing.assert_allclose(factor @ factor.T, matrix + jitter * np.eye(10), atol=1e-12)


def test_positive_definite_matrix_is_not_perturbed():
    kernel = exponential_kernel(euclidean_channel()[np.newaxis], [1.0], 2.0)

    factor, jitter, method = robust_cholesky(kernel)

    assert method == METHOD_CHOLESKY and jitter == 0.0
    np.testing.assert_allclose(factor @ factor.T, kernel, atol=1e-12)


def test_rank_deficient_psd_matrix_is_perturbed_at_most_by_tiny_jitter():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(12, 3))
    gram = features @ features.T  # PSD with rank 3
    assert is_psd(gram)

    factor, jitter, method = robust_cholesky(gram)

    assert method in (METHOD_CHOLESKY, METHOD_JITTER)
    assert jitter <= 1e-6 * np.mean(np.diag(gram))
    np.testing.assert_allclose(factor @ factor.T, gram, atol=1e-5 * np.mean(np.diag(gram)))


def test_clip_eigenvalues_keeps_a_well_conditioned_psd_matrix():
    kernel = exponential_kernel(euclidean_channel()[np.newaxis], [1.0], 1.0)
    assert np.linalg.eigvalsh(kernel)[0] > 1e-3

    np.testing.assert_allclose(clip_eigenvalues(kernel, 1e-8), kernel, atol=1e-12)


def test_clip_eigenvalues_respects_the_floor():
    kernel = exponential_kernel(random_non_metric_dists()[np.newaxis], [1.0], 1.0)

    repaired = clip_eigenvalues(kernel, 1e-3)

    np.testing.assert_array_equal(repaired, repaired.T)
    assert np.linalg.eigvalsh(repaired)[0] >= 1e-3 - 1e-10


def test_robust_cholesky_rejects_non_finite_input():
    with pytest.raises(ValueError, match="non-finite"):
        robust_cholesky(np.array([[1.0, np.nan], [np.nan, 1.0]]))
