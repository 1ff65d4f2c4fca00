"""Exponential kernel on distance channels, and honest positive-definiteness repair.

Notation:
    C            number of distance channels (channel 0 is usually an architecture
                 distance, the others per-hyperparameter distances).
    n, m         numbers of left and right configurations.
    D_c          (n, m) array of non-negative distances of channel c;
                 ``dists`` stacks them into a (C, n, m) array.
    ℓ_c          lengthscale of channel c, ``lengthscales`` is (C,).
    s²           signal variance.

    k(x, x') = s² · exp(−Σ_c D_c(x, x') / ℓ_c)

    Derivatives with respect to the log hyperparameters:
        ∂K/∂log s²  = K
        ∂K/∂log ℓ_c = K ⊙ D_c / ℓ_c

With one euclidean channel this is scikit-learn's ``Matern(nu=0.5)`` (the
Ornstein-Uhlenbeck kernel), which is positive definite. On an edit distance it need
not be: exp(−t·D) is positive semi-definite for every t > 0 exactly when D is of
negative type (Schoenberg), and edit distances between architectures are not in
general. `robust_cholesky` therefore tries a plain Cholesky factorisation, then
escalating diagonal jitter, then eigenvalue clipping, and reports which repair it
used so the caller can log it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg

#: `CholeskyResult.method` when the matrix factorised as given.
METHOD_CHOLESKY = "cholesky"
#: `CholeskyResult.method` when diagonal jitter was added before factorising.
METHOD_JITTER = "jitter"
#: `CholeskyResult.method` when negative eigenvalues were clipped before factorising.
METHOD_EIGENVALUE_CLIP = "eigenvalue_clip"


def _as_channels(dists: np.ndarray) -> np.ndarray:
    """Return ``dists`` as a float (C, n, m) array; a 2-D array is one channel."""
    dists = np.asarray(dists, dtype=float)
    if dists.ndim == 2:
        return dists[np.newaxis]
    if dists.ndim != 3:
        raise ValueError(
            f"dists must have shape (C, n, m) (or (n, m) for one channel), got {dists.shape}"
        )
    return dists


def exponential_kernel(
    dists: np.ndarray, lengthscales: np.ndarray, signal_variance: float
) -> np.ndarray:
    """Evaluate k = s² · exp(−Σ_c D_c / ℓ_c) on stacked distance channels.

    Args:
        dists: (C, n, m) array of non-negative distances, one (n, m) slice per
            channel; an (n, m) array is taken as a single channel.
        lengthscales: (C,) positive lengthscales ℓ_c.
        signal_variance: s² > 0, the kernel value at distance zero.

    Returns:
        (n, m) kernel matrix.
    """
    dists = _as_channels(dists)
    lengthscales = np.asarray(lengthscales, dtype=float).reshape(-1)
    if lengthscales.shape[0] != dists.shape[0]:
        raise ValueError(
            f"got {lengthscales.shape[0]} lengthscales for {dists.shape[0]} channels"
        )
    if np.any(lengthscales <= 0) or not signal_variance > 0:
        raise ValueError("lengthscales and signal_variance must be positive")
    scaled_sum = np.tensordot(1.0 / lengthscales, dists, axes=1)
    return signal_variance * np.exp(-scaled_sum)


def exponential_kernel_vjp(
    dists: np.ndarray, lengthscales: np.ndarray, kernel: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Contract the kernel's log-hyperparameter gradient with a weight matrix.

    Computes g_k = Σ_ij W_ij ∂K_ij/∂θ_k for θ = (log s², log ℓ_1, ..., log ℓ_C),
    i.e. a vector-Jacobian product, without materialising the (C+1, n, m) gradient:
        g_0     = Σ_ij W_ij K_ij
        g_{c+1} = Σ_ij W_ij K_ij D_c,ij / ℓ_c
    Cost O(C·n·m). The marginal-likelihood gradient is ½ g with
    W = ααᵀ − K_y⁻¹.

    Args:
        dists: (C, n, m) distances the kernel was evaluated on.
        lengthscales: (C,) lengthscales ℓ_c.
        kernel: (n, m) kernel matrix K from `exponential_kernel` (without noise).
        weights: (n, m) weight matrix W.

    Returns:
        (C + 1,) array g.
    """
    dists = _as_channels(dists)
    lengthscales = np.asarray(lengthscales, dtype=float).reshape(-1)
    weighted_kernel = np.asarray(weights, dtype=float) * kernel
    per_channel = dists.reshape(dists.shape[0], -1) @ weighted_kernel.reshape(-1)
    return np.concatenate(([weighted_kernel.sum()], per_channel / lengthscales))


def is_psd(matrix: np.ndarray, tol: float = 1e-10) -> bool:
    """Whether the symmetric part of ``matrix`` is positive semi-definite.

    Args:
        matrix: (n, n) array.
        tol: relative tolerance: the smallest eigenvalue λ_min must satisfy
            λ_min ≥ −tol · max_i |λ_i|.

    Returns:
        True when the symmetrised matrix has no eigenvalue below the tolerance.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.size == 0:
        return True
    eigenvalues = scipy.linalg.eigvalsh(0.5 * (matrix + matrix.T))
    return bool(eigenvalues[0] >= -tol * np.max(np.abs(eigenvalues)))


def clip_eigenvalues(matrix: np.ndarray, floor: float) -> np.ndarray:
    """Nearest-in-spectrum PSD repair: symmetrise, clip eigenvalues at ``floor``.

    With (K + Kᵀ)/2 = V Λ Vᵀ, returns V max(Λ, floor) Vᵀ (symmetrised again to
    remove rounding asymmetry). Eigenvalues above the floor are unchanged.

    Args:
        matrix: (n, n) array.
        floor: smallest eigenvalue allowed in the result.

    Returns:
        (n, n) symmetric matrix with all eigenvalues ≥ ``floor`` (up to rounding).
    """
    matrix = np.asarray(matrix, dtype=float)
    eigenvalues, eigenvectors = scipy.linalg.eigh(0.5 * (matrix + matrix.T))
    rebuilt = (eigenvectors * np.maximum(eigenvalues, floor)) @ eigenvectors.T
    return 0.5 * (rebuilt + rebuilt.T)


class CholeskyResult(NamedTuple):
    """Outcome of `robust_cholesky`; unpacks as ``(factor, jitter, method)``.

    Attributes:
        factor: (n, n) lower-triangular L with L Lᵀ equal to the (repaired) matrix.
        jitter: the diagonal jitter added (0.0 unless ``method`` is "jitter").
        method: `METHOD_CHOLESKY`, `METHOD_JITTER` or `METHOD_EIGENVALUE_CLIP`.
    """

    factor: np.ndarray
    jitter: float
    method: str


def _try_cholesky(matrix: np.ndarray) -> np.ndarray | None:
    try:
        return scipy.linalg.cholesky(matrix, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None


def robust_cholesky(
    matrix: np.ndarray,
    *,
    max_tries: int = 6,
    initial_relative_jitter: float = 1e-8,
    relative_eigenvalue_floor: float = 1e-8,
) -> CholeskyResult:
    """Cholesky factor of a symmetric matrix that may fail to be positive definite.

    Steps, stopping at the first that factorises:
      1. plain Cholesky of K (only the lower triangle is read);
      2. Cholesky of K + j·I for j = j₀, 10·j₀, ..., 10^(max_tries−1)·j₀ with
         j₀ = initial_relative_jitter · mean(diag K);
      3. Cholesky of `clip_eigenvalues`(K, relative_eigenvalue_floor · mean(diag K)).

    Args:
        matrix: (n, n) symmetric array with finite entries.
        max_tries: number of jitter levels tried in step 2.
        initial_relative_jitter: first jitter, relative to the mean diagonal.
        relative_eigenvalue_floor: eigenvalue floor of step 3, relative to the
            mean diagonal.

    Returns:
        `CholeskyResult` ``(factor, jitter, method)`` saying which step succeeded.

    Raises:
        ValueError: if the matrix is not square or has non-finite entries.
        numpy.linalg.LinAlgError: if even the eigenvalue-clipped matrix does not
            factorise (not expected for finite input).
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("matrix has non-finite entries")
    factor = _try_cholesky(matrix)
    if factor is not None:
        return CholeskyResult(factor, 0.0, METHOD_CHOLESKY)

    mean_diagonal = float(np.mean(np.diag(matrix))) if matrix.size else 1.0
    scale = mean_diagonal if mean_diagonal > 0 else 1.0
    jitter = initial_relative_jitter * scale
    diagonal = np.diag_indices_from(matrix)
    for _ in range(max_tries):
        jittered = matrix.copy()
        jittered[diagonal] += jitter
        factor = _try_cholesky(jittered)
        if factor is not None:
            return CholeskyResult(factor, jitter, METHOD_JITTER)
        jitter *= 10.0

    repaired = clip_eigenvalues(matrix, relative_eigenvalue_floor * scale)
    factor = _try_cholesky(repaired)
    if factor is None:
        raise np.linalg.LinAlgError(
            "Cholesky failed even after jitter and eigenvalue clipping"
        )
    return CholeskyResult(factor, 0.0, METHOD_EIGENVALUE_CLIP)
