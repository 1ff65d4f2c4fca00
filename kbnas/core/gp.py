"""Gaussian-process regression on cached distance channels.

The GP never sees input vectors: it sees C channels of pairwise distances between
configurations (an architecture distance, per-hyperparameter distances), computed
once and cached by the caller, so tuning the kernel never recomputes a distance.

Notation:
    n, m         numbers of training and test configurations.
    C            number of distance channels.
    D            (C, n, n) training distances; D* (C, m, n) test-to-training;
                 D** (C, m, m) test-to-test.
    y            (n,) targets, already warped/standardised (zero prior mean).
    θ            (C + 2,) log hyperparameters (log s², log ℓ_1, ..., log ℓ_C, log σ_n²).

    k(x, x') = s² · exp(−Σ_c D_c(x, x') / ℓ_c)          (`kernels.exponential_kernel`)
    R        = K(D) / s² = V Λ Vᵀ   (the correlation matrix, unit diagonal)
    R̃        = V |Λ| Vᵀ              (the spectrum flip; R̃ = R when R is PSD)
    K_y      = s² R̃ + σ_n² I = L Lᵀ,     α = K_y⁻¹ y = L⁻ᵀ L⁻¹ y

    log p(y | θ) = −½ yᵀα − Σ_i log L_ii − (n/2) log 2π
    ∂/∂θ_j       = ½ tr(W ∂K_y/∂θ_j),  W = ααᵀ − K_y⁻¹, with
                   ∂K_y/∂log s² = s² R̃,   ∂K_y/∂log σ_n² = σ_n² I,
                   ∂K_y/∂log ℓ_c = s² V (F ⊙ Vᵀ(R ⊙ D_c/ℓ_c)V) Vᵀ   (Daleckii-Krein),
                   F_ij = (|λ_i| − |λ_j|)/(λ_i − λ_j), or sign(λ_i) when λ_i, λ_j
                   have the same sign; so tr(W ∂K_y/∂log ℓ_c) = Σ W̃ ⊙ K ⊙ D_c/ℓ_c
                   with W̃ = V (F ⊙ VᵀWV) Vᵀ.

    Posterior of the latent f at test points (one consistent PSD model, below):
    with r* = K*ᵀ/s² (n,) a test point's training correlations, c = Vᵀ r*,
    σ_j = sign(λ_j), a_j = |λ_j| and ε = σ_n²/s²,
    mean = s² Σ_j σ_j c_j (Vᵀα)_j
    var  = s² [ Σ_j c_j² ε / (a_j (a_j + ε))  +  |1 − Σ_j σ_j c_j² / a_j| ]
    and for m test points (C = R* V, (m, n)), with |M| the spectral absolute value,
    cov  = s² [ C diag(ε / (a (a + ε))) Cᵀ  +  |R** − C diag(σ / a) Cᵀ| ].
    When R is PSD (every σ_j = +1) and the test point is consistent with it
    (r*ᵀR⁻¹r* ≤ 1), these are the textbook K*α, s² − K*K_y⁻¹K*ᵀ and
    K** − K*K_y⁻¹K*ᵀ.

The spectrum flip. exp(−D/ℓ) is positive semi-definite for every ℓ only when D is
of negative type (Schoenberg); edit and OTMANN distances are not, and at fitted
lengthscales R had hundreds of negative eigenvalues on 100 architectures. Repairing
K_y only where its Cholesky fails let the optimiser drive σ_n² to just above
−s² λ_min(R): K_y was then nearly singular and posterior means reached 1e5–1e7.
Shifting or clipping the spectrum does not cure it: a test point next to a training
point has a cross-kernel row with component λ_j along eigenvector v_j, so its mean
carries λ_j / (ε + σ_n²/s²) times y's component along v_j, for a floor ε: 30 for
λ_j = −0.3 and ε = 1 % (measured: means of 18 from targets of magnitude 1). The flip (Graepel et al. 1999; Chen et al., JMLR 2009) makes that
factor λ_j / (|λ_j| + σ_n²/s²), at most 1 in magnitude. It changes nothing when R is
positive semi-definite (decided by one Cholesky factorisation of R, so a
positive-definite kernel pays no eigendecomposition), is continuous in θ, and has
the analytic gradient above. Cost with an indefinite R: one symmetric
eigendecomposition and four n×n products per likelihood evaluation.

Test points, consistently. The flip changes the training kernel, so a test point
must be seen through the same change, or its mean and variance come from another
model than the training points' (measured: the plain formulas gave s² − k*ᵀK_y⁻¹k*
< 0, clipped to 0, for 55-100 % of held-out architectures, and EI then saw a sure
improvement; their means at training points differed from `training_mean` by up
to 0.22). The flip is the embedding of the pseudo-Euclidean coordinates
R = Φ J Φᵀ (Φ = V |Λ|^½, J = diag σ) into a Euclidean space, R̃ = Φ Φᵀ (Pekalska
& Duin 2005; Chen et al. 2009 §3 apply the same map P = V J Vᵀ to test
similarities). A test point with training correlations r* has coordinates
φ* = J |Λ|^-½ Vᵀ r* in that span (then Φ J φ* = r*), and a part outside it whose
squared pseudo-norm is 1 − φ*ᵀ J φ* (its unit self-correlation less the part in
the span). Flipping that part too gives the joint Gram matrix of training and
test points [[Φ Φᵀ, Φ φ*], [φ*ᵀ Φᵀ, φ*ᵀ φ* + |1 − φ*ᵀ J φ*|]], PSD by
construction; the formulas above are the GP posterior under it. So the variance
is a sum of non-negative terms, never clipped; the mean at a training point is
its `training_mean`; and with a PSD R the textbook GP is unchanged. Eigenvalues
are floored at `EIGENVALUE_FLOOR` in a_j (a duplicated configuration gives
λ = 0 exactly and c_j = 0 with it).

Cost: O(C·n² + n³) per likelihood evaluation (building K and its gradient pieces
is O(C·n²), the Cholesky factorisation and the K_y⁻¹ needed by the gradient's
trace term O(n³)); one n×n eigendecomposition per fit for prediction (reused from
the likelihood when R was flipped); O(C·m·n + m·n²) per `DistanceGP.predict` and
an extra m×m eigendecomposition per `DistanceGP.predict_joint`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.optimize

from kbnas.core.kernels import exponential_kernel, exponential_kernel_vjp, robust_cholesky

#: Default bounds (not in log space) of the signal variance s².
SIGNAL_VARIANCE_BOUNDS = (1e-2, 1e2)
#: Default bounds of ℓ_c, relative to channel c's scale.
RELATIVE_LENGTHSCALE_BOUNDS = (1e-2, 1e2)
#: Default bounds of the noise variance σ_n².
NOISE_VARIANCE_BOUNDS = (1e-6, 1.0)

#: L-BFGS-B stops when the log likelihood improves by less than this fraction of
#: its magnitude: hyperparameters that far from the optimum predict the same.
OPTIMIZER_RELATIVE_TOLERANCE = 1e-5
#: L-BFGS-B stops when the projected gradient (per unit of log hyperparameter) is
#: below this.
OPTIMIZER_GRADIENT_TOLERANCE = 1e-3

#: Floor of |λ_j| in the test-point embedding (R has unit diagonal, so tr R = n).
EIGENVALUE_FLOOR = 1e-10

_LOG_2PI = math.log(2.0 * math.pi)


def median_positive_distance(dists: np.ndarray) -> np.ndarray:
    """Per-channel scale: the median of the strictly positive distances.

    Args:
        dists: (C, n, m) distances.

    Returns:
        (C,) scales; 1.0 for a channel without any positive distance.
    """
    dists = np.asarray(dists, dtype=float)
    scales = np.ones(dists.shape[0])
    for channel, channel_dists in enumerate(dists):
        positive = channel_dists[channel_dists > 0]
        if positive.size:
            scales[channel] = float(np.median(positive))
    return scales


def default_log_bounds(n_channels: int, channel_scales: np.ndarray | None = None) -> np.ndarray:
    """Box bounds of θ in log space.

    s² ∈ `SIGNAL_VARIANCE_BOUNDS`, ℓ_c ∈ scale_c · `RELATIVE_LENGTHSCALE_BOUNDS`,
    σ_n² ∈ `NOISE_VARIANCE_BOUNDS`.

    Args:
        n_channels: number of distance channels C.
        channel_scales: (C,) positive per-channel scales (default all 1).

    Returns:
        (C + 2, 2) array of (lower, upper) bounds on θ.
    """
    if channel_scales is None:
        channel_scales = np.ones(n_channels)
    channel_scales = np.asarray(channel_scales, dtype=float).reshape(-1)
    if channel_scales.shape[0] != n_channels or np.any(channel_scales <= 0):
        raise ValueError(f"need {n_channels} positive channel scales, got {channel_scales}")
    lengthscale_bounds = np.outer(channel_scales, RELATIVE_LENGTHSCALE_BOUNDS)
    bounds = np.vstack([SIGNAL_VARIANCE_BOUNDS, lengthscale_bounds, NOISE_VARIANCE_BOUNDS])
    return np.log(bounds)


def unpack_theta(theta: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Split θ = (log s², log ℓ_1..ℓ_C, log σ_n²) into (s², ℓ (C,), σ_n²)."""
    theta = np.asarray(theta, dtype=float).reshape(-1)
    if theta.shape[0] < 3:
        raise ValueError(f"theta needs at least 3 entries (one channel), got {theta.shape[0]}")
    return float(np.exp(theta[0])), np.exp(theta[1:-1]), float(np.exp(theta[-1]))


def _validate_training_data(dists: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes and values; return float (C, n, n) symmetrised dists and (n,) y."""
    dists = np.asarray(dists, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    if dists.ndim == 2:
        dists = dists[np.newaxis]
    if dists.ndim != 3 or dists.shape[1] != dists.shape[2] or dists.shape[1] != y.shape[0]:
        raise ValueError(
            f"dists must have shape (C, n, n) with n = len(y) = {y.shape[0]}, got {dists.shape}"
        )
    if y.shape[0] == 0:
        raise ValueError("need at least one training point")
    if not (np.all(np.isfinite(dists)) and np.all(np.isfinite(y))):
        raise ValueError("dists and y must be finite")
    if np.any(dists < 0):
        raise ValueError("distances must be non-negative")
    # Cholesky reads one triangle only; symmetrising makes the gradient match it.
    return 0.5 * (dists + dists.transpose(0, 2, 1)), y


def _check_theta(theta: np.ndarray, n_channels: int) -> np.ndarray:
    theta = np.asarray(theta, dtype=float).reshape(-1)
    if theta.shape[0] != n_channels + 2:
        raise ValueError(
            f"theta must have C + 2 = {n_channels + 2} entries, got {theta.shape[0]}"
        )
    if not np.all(np.isfinite(theta)):
        raise ValueError("theta must be finite")
    return theta


class _Factorization:
    """K, the (flipped) K_y, its Cholesky factor, α and log p(y | θ) at one θ."""

    def __init__(self, theta: np.ndarray, dists: np.ndarray, y: np.ndarray, spectrum_flip: bool) -> None:
        self.signal_variance, self.lengthscales, self.noise_variance = unpack_theta(theta)
        self.kernel = exponential_kernel(dists, self.lengthscales, self.signal_variance)
        self.flipped = None  # (eigenvalues, eigenvectors) of R when the flip was applied
        effective_kernel = self.kernel
        if spectrum_flip and not _is_positive_definite(self.kernel):
            eigenvalues, eigenvectors = scipy.linalg.eigh(self.kernel / self.signal_variance, check_finite=False)
            if eigenvalues[0] < 0.0:
                self.flipped = (eigenvalues, eigenvectors)
                effective_kernel = self.signal_variance * (eigenvectors * np.abs(eigenvalues)) @ eigenvectors.T
                effective_kernel = 0.5 * (effective_kernel + effective_kernel.T)
        self.effective_kernel = effective_kernel
        noisy_kernel = effective_kernel.copy()
        noisy_kernel[np.diag_indices_from(noisy_kernel)] += self.noise_variance
        self.cholesky = robust_cholesky(noisy_kernel)
        self.alpha = scipy.linalg.cho_solve((self.cholesky.factor, True), y, check_finite=False)
        self.y = y
        n = y.shape[0]
        self.log_marginal_likelihood = float(
            -0.5 * y @ self.alpha
            - np.sum(np.log(np.diag(self.cholesky.factor)))
            - 0.5 * n * _LOG_2PI
        )

    def gradient(self, dists: np.ndarray) -> np.ndarray:
        """(C + 2,) gradient of the log marginal likelihood with respect to θ."""
        # The trace term needs all of K_y⁻¹; potri builds it from the factor L.
        inverse_lower, info = scipy.linalg.lapack.dpotri(self.cholesky.factor, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"dpotri failed with info={info}")
        if self.flipped is None:
            # dpotri fills only the lower triangle (the upper keeps the zeros of L).
            # Every ∂K_y/∂θ_j is symmetric, so Σ_ij W_ij ∂K_ij only needs W's lower
            # triangle counted twice off the diagonal: W = ααᵀ − (2·tril(K_y⁻¹) − diag).
            weights = np.outer(self.alpha, self.alpha)
            weights -= 2.0 * inverse_lower
            weights[np.diag_indices_from(weights)] += np.diag(inverse_lower)
            kernel_gradient = exponential_kernel_vjp(dists, self.lengthscales, self.kernel, weights)
            return 0.5 * np.append(kernel_gradient, self.noise_variance * np.trace(weights))
        inverse = inverse_lower + np.tril(inverse_lower, -1).T
        weights = np.outer(self.alpha, self.alpha) - inverse
        eigenvalues, eigenvectors = self.flipped
        projected = eigenvectors.T @ weights @ eigenvectors
        pulled_back = eigenvectors @ (flip_divided_differences(eigenvalues) * projected) @ eigenvectors.T
        kernel_gradient = exponential_kernel_vjp(dists, self.lengthscales, self.kernel, pulled_back)
        kernel_gradient[0] = np.sum(weights * self.effective_kernel)
        return 0.5 * np.append(kernel_gradient, self.noise_variance * np.trace(weights))


def _is_positive_definite(matrix: np.ndarray) -> bool:
    try:
        scipy.linalg.cholesky(matrix, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return False
    return True


def flip_divided_differences(eigenvalues: np.ndarray) -> np.ndarray:
    """F_ij = (|λ_i| − |λ_j|)/(λ_i − λ_j), the first divided differences of |·|.

    With R = V Λ Vᵀ, the derivative of the spectrum flip V |Λ| Vᵀ along dR is
    V (F ⊙ Vᵀ dR V) Vᵀ (Daleckii-Krein). For λ_i, λ_j of the same sign F_ij is that
    sign (exactly, also when λ_i = λ_j); for opposite signs λ_i ≠ λ_j, so the
    quotient is well defined. Zero counts as positive.

    Args:
        eigenvalues: (n,) eigenvalues λ.

    Returns:
        (n, n) symmetric matrix F.
    """
    eigenvalues = np.asarray(eigenvalues, dtype=float)
    signs = np.where(eigenvalues >= 0.0, 1.0, -1.0)
    same_sign = signs[:, np.newaxis] == signs[np.newaxis, :]
    numerator = np.abs(eigenvalues)[:, np.newaxis] - np.abs(eigenvalues)[np.newaxis, :]
    denominator = eigenvalues[:, np.newaxis] - eigenvalues[np.newaxis, :]
    safe = np.where(same_sign, 1.0, denominator)
    return np.where(same_sign, signs[:, np.newaxis] * np.ones_like(denominator), numerator / safe)


def log_marginal_likelihood(
    theta: np.ndarray,
    dists: np.ndarray,
    y: np.ndarray,
    eval_gradient: bool = False,
    *,
    spectrum_flip: bool = True,
) -> float | tuple[float, np.ndarray]:
    """Log marginal likelihood log p(y | θ) of the zero-mean GP, and its gradient.

    Uses `robust_cholesky`, so a kernel matrix that is not positive definite is
    repaired (jitter or eigenvalue clipping) rather than raising; the gradient then
    treats the added jitter as a constant.

    Args:
        theta: (C + 2,) log hyperparameters (log s², log ℓ_1..ℓ_C, log σ_n²).
        dists: (C, n, n) training distances.
        y: (n,) targets.
        eval_gradient: also return the analytic gradient with respect to θ.
        spectrum_flip: flip the negative eigenvalues of an indefinite R (module
            docstring); without it only `robust_cholesky` repairs K_y.

    Returns:
        The log marginal likelihood, or ``(value, gradient (C + 2,))``.
    """
    dists, y = _validate_training_data(dists, y)
    theta = _check_theta(theta, dists.shape[0])
    factorization = _Factorization(theta, dists, y, spectrum_flip)
    if eval_gradient:
        return factorization.log_marginal_likelihood, factorization.gradient(dists)
    return factorization.log_marginal_likelihood


class DistanceGP:
    """Zero-mean GP regressor on distance channels with the exponential kernel.

    Hyperparameters θ (log space, see the module notation) are fitted by maximising
    the log marginal likelihood with L-BFGS-B and the analytic gradient, from a warm
    start plus random restarts. Each likelihood evaluation costs O(C·n² + n³).

    Attributes (after `fit` or `fit_fixed`):
        theta_: (C + 2,) fitted log hyperparameters.
        signal_variance_, lengthscales_ (C,), noise_variance_: θ in natural units.
        log_marginal_likelihood_value_: log p(y | θ_).
        cholesky_factor_: (n, n) lower factor L of K_y (after any repair).
        alpha_: (n,) α = K_y⁻¹ y.
        y_train_: (n,) the training targets y.
        spectrum_flipped_: whether R was indefinite and its spectrum flipped.
        cholesky_jitter_, cholesky_method_: the repair `robust_cholesky` applied.
        bounds_: (C + 2, 2) log bounds used by `fit` (None after `fit_fixed`).
        n_failed_starts_: optimizer starts that raised (0 after `fit_fixed`).

    Args:
        max_iterations: L-BFGS-B iteration limit per optimizer start.
        spectrum_flip: replace an indefinite R by V |Λ| Vᵀ (module docstring). It
            never changes a positive-definite kernel; turn it off only to study the
            plain repair.
    """

    def __init__(self, *, max_iterations: int = 50, spectrum_flip: bool = True) -> None:
        self.max_iterations = max_iterations
        self.spectrum_flip = bool(spectrum_flip)

    def fit(
        self,
        dists: np.ndarray,
        y: np.ndarray,
        *,
        theta0: np.ndarray | None = None,
        n_restarts: int = 3,
        rng: np.random.Generator | int | None = None,
        bounds: np.ndarray | None = None,
        channel_scales: np.ndarray | None = None,
    ) -> DistanceGP:
        """Fit θ by maximising the log marginal likelihood, then factorise.

        Starts: ``theta0`` (clipped into the bounds; default the midpoint of the log
        bounds) plus ``n_restarts`` points drawn uniformly in the log bounds. The
        start reaching the highest likelihood wins; a start that raises is skipped.

        Args:
            dists: (C, n, n) training distances.
            y: (n,) targets (warped/standardised; the prior mean is zero).
            theta0: (C + 2,) warm start, e.g. the previous fit's ``theta_``.
            n_restarts: number of additional random starts.
            rng: generator or seed for the random starts.
            bounds: (C + 2, 2) log bounds; default `default_log_bounds` with
                ``channel_scales``.
            channel_scales: (C,) channel scales for the default bounds; default
                `median_positive_distance` of ``dists``.

        Returns:
            self.

        Raises:
            RuntimeError: if every optimizer start failed.
        """
        dists, y = _validate_training_data(dists, y)
        n_channels = dists.shape[0]
        if bounds is None:
            if channel_scales is None:
                channel_scales = median_positive_distance(dists)
            bounds = default_log_bounds(n_channels, channel_scales)
        bounds = np.asarray(bounds, dtype=float)
        if bounds.shape != (n_channels + 2, 2) or np.any(bounds[:, 0] > bounds[:, 1]):
            raise ValueError(
                f"bounds must be a (C + 2, 2) = ({n_channels + 2}, 2) array of (low, high)"
            )
        rng = np.random.default_rng(rng)

        first_start = bounds.mean(axis=1) if theta0 is None else _check_theta(theta0, n_channels)
        starts = [np.clip(first_start, bounds[:, 0], bounds[:, 1])]
        starts += [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(n_restarts)]

        def negative_lml(theta: np.ndarray) -> tuple[float, np.ndarray]:
            factorization = _Factorization(theta, dists, y, self.spectrum_flip)
            return -factorization.log_marginal_likelihood, -factorization.gradient(dists)

        best_theta, best_value, failures = None, np.inf, 0
        for start in starts:
            try:
                result = scipy.optimize.minimize(
                    negative_lml,
                    start,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={
                        "maxiter": self.max_iterations,
                        "ftol": OPTIMIZER_RELATIVE_TOLERANCE,
                        "gtol": OPTIMIZER_GRADIENT_TOLERANCE,
                    },
                )
            except (np.linalg.LinAlgError, ValueError, FloatingPointError):
                failures += 1
                continue
            if np.isfinite(result.fun) and result.fun < best_value:
                best_theta, best_value = np.asarray(result.x, dtype=float), float(result.fun)
        if best_theta is None:
            raise RuntimeError(f"all {len(starts)} marginal-likelihood optimizer starts failed")

        self._store(best_theta, _Factorization(best_theta, dists, y, self.spectrum_flip), dists.shape)
        self.bounds_ = bounds
        self.n_failed_starts_ = failures
        return self

    def fit_fixed(self, dists: np.ndarray, y: np.ndarray, theta: np.ndarray) -> DistanceGP:
        """Condition on (dists, y) with fixed hyperparameters θ (no optimisation).

        Used, for instance, after appending a fantasy observation at a pending point.

        Args:
            dists: (C, n, n) training distances.
            y: (n,) targets.
            theta: (C + 2,) log hyperparameters.

        Returns:
            self.
        """
        dists, y = _validate_training_data(dists, y)
        theta = _check_theta(theta, dists.shape[0])
        self._store(theta, _Factorization(theta, dists, y, self.spectrum_flip), dists.shape)
        self.bounds_ = None
        self.n_failed_starts_ = 0
        return self

    def _store(self, theta: np.ndarray, factorization: _Factorization, shape: tuple) -> None:
        self.theta_ = theta.copy()
        self.signal_variance_ = factorization.signal_variance
        self.lengthscales_ = factorization.lengthscales
        self.noise_variance_ = factorization.noise_variance
        self.log_marginal_likelihood_value_ = factorization.log_marginal_likelihood
        self.cholesky_factor_ = factorization.cholesky.factor
        self.cholesky_jitter_ = factorization.cholesky.jitter
        self.cholesky_method_ = factorization.cholesky.method
        self.alpha_ = factorization.alpha
        self.y_train_ = factorization.y
        self.spectrum_flipped_ = factorization.flipped is not None
        self.n_channels_, self.n_train_ = shape[0], shape[1]
        # The spectrum of R for consistent test-point predictions (module docstring).
        self._spectrum = None
        if self.spectrum_flip:
            if factorization.flipped is not None:
                eigenvalues, eigenvectors = factorization.flipped
            else:
                eigenvalues, eigenvectors = scipy.linalg.eigh(
                    factorization.kernel / factorization.signal_variance, check_finite=False
                )
            self._spectrum = (
                np.where(eigenvalues < 0.0, -1.0, 1.0),
                np.maximum(np.abs(eigenvalues), EIGENVALUE_FLOOR),
                eigenvectors,
                eigenvectors.T @ factorization.alpha,
            )
            # κ = max_i R̃_ii: no candidate's prior variance exceeds s²κ (module docstring).
            self._max_prior = float(max(1.0, np.max((eigenvectors**2) @ np.abs(eigenvalues))))

    def _cross_kernel(self, cross_dists: np.ndarray) -> np.ndarray:
        if not hasattr(self, "theta_"):
            raise RuntimeError("call fit or fit_fixed before predicting")
        cross_dists = np.asarray(cross_dists, dtype=float)
        if cross_dists.ndim == 2:
            cross_dists = cross_dists[np.newaxis]
        if (
            cross_dists.ndim != 3
            or cross_dists.shape[0] != self.n_channels_
            or cross_dists.shape[2] != self.n_train_
        ):
            raise ValueError(
                f"cross_dists must have shape (C, m, n) = ({self.n_channels_}, m, "
                f"{self.n_train_}), got {cross_dists.shape}"
            )
        return exponential_kernel(cross_dists, self.lengthscales_, self.signal_variance_)

    def predict(self, cross_dists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent f at m test configurations.

        With the spectrum flip on, the posterior of the consistent PSD model (module
        docstring): variances are non-negative by construction. Without it, the
        textbook formulas with variances clipped at 0. The noise σ_n² is not
        included.

        Args:
            cross_dists: (C, m, n) distances from test to training configurations.

        Returns:
            ``(mean (m,), var (m,))``.
        """
        cross_kernel = self._cross_kernel(cross_dists)
        if self._spectrum is not None:
            signs, magnitudes, coordinates, mean_weights = self._embedded(cross_kernel)
            squared = coordinates * coordinates
            ratio = self.noise_variance_ / self.signal_variance_
            explained = squared @ (ratio / (magnitudes * (magnitudes + ratio)))
            residual = np.abs(1.0 - squared @ (signs / magnitudes))
            scale = self._shrinkage(squared @ (1.0 / magnitudes) + residual)
            var = self.signal_variance_ * scale**2 * (explained + residual)
            return scale * (coordinates @ mean_weights), var
        mean = cross_kernel @ self.alpha_
        whitened = scipy.linalg.solve_triangular(
            self.cholesky_factor_, cross_kernel.T, lower=True, check_finite=False
        )
        var = self.signal_variance_ - np.einsum("ij,ij->j", whitened, whitened)
        return mean, np.maximum(var, 0.0)

    def _shrinkage(self, prior: np.ndarray) -> np.ndarray:
        """γ = min(1, √(κ / q)) for test points of embedded prior variance q (units of s²)."""
        return np.sqrt(np.minimum(1.0, self._max_prior / np.maximum(prior, 1e-300)))

    def _embedded(self, cross_kernel: np.ndarray):
        """σ, a, c = R* V (m, n) and the mean's weights s² σ ⊙ Vᵀα."""
        signs, magnitudes, eigenvectors, projected_alpha = self._spectrum
        coordinates = (cross_kernel / self.signal_variance_) @ eigenvectors
        return signs, magnitudes, coordinates, self.signal_variance_ * signs * projected_alpha

    def training_mean(self) -> np.ndarray:
        """Posterior mean of the latent f at the training configurations.

        (K_y − σ_n² I) α = y − σ_n² α: the observations with their fitted noise
        smoothed out, under the (flipped) training kernel. Unlike `predict` at the
        training distances this uses the flipped K̃, so it never reverses y's
        components along negative eigenvectors of an indefinite R.

        Returns:
            (n,) posterior means, in the units of the training targets.
        """
        if not hasattr(self, "theta_"):
            raise RuntimeError("call fit or fit_fixed before predicting")
        return self.y_train_ - self.noise_variance_ * self.alpha_

    def predict_joint(
        self, cross_dists: np.ndarray, test_dists: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Joint posterior of the latent f at m test configurations.

        Args:
            cross_dists: (C, m, n) distances from test to training configurations.
            test_dists: (C, m, m) distances among the test configurations.

        Returns:
            ``(mean (m,), cov (m, m))``; cov is symmetrised, noise not included.
        """
        cross_kernel = self._cross_kernel(cross_dists)
        test_dists = np.asarray(test_dists, dtype=float)
        if test_dists.ndim == 2:
            test_dists = test_dists[np.newaxis]
        m = cross_kernel.shape[0]
        if test_dists.shape != (self.n_channels_, m, m):
            raise ValueError(
                f"test_dists must have shape (C, m, m) = ({self.n_channels_}, {m}, {m}), "
                f"got {test_dists.shape}"
            )
        prior_cov = exponential_kernel(test_dists, self.lengthscales_, self.signal_variance_)
        if self._spectrum is not None:
            signs, magnitudes, coordinates, mean_weights = self._embedded(cross_kernel)
            ratio = self.noise_variance_ / self.signal_variance_
            explained = (coordinates * (ratio / (magnitudes * (magnitudes + ratio)))) @ coordinates.T
            residual = prior_cov / self.signal_variance_ - (coordinates * (signs / magnitudes)) @ coordinates.T
            values, vectors = scipy.linalg.eigh(0.5 * (residual + residual.T), check_finite=False)
            remainder = (vectors * np.abs(values)) @ vectors.T
            # Rescaled to the diagonal |residual_ii| that `predict` uses (|M| ± M are
            # PSD, so |M|_ii ≥ |M_ii|): the marginals do not depend on the pool.
            target = np.abs(np.diag(residual))
            held = np.diag(remainder)
            rescale = np.sqrt(np.divide(target, held, out=np.zeros_like(target), where=held > 0))
            remainder = rescale[:, None] * remainder * rescale[None, :]
            prior = np.sum(coordinates * coordinates / magnitudes, axis=1) + target
            scale = self._shrinkage(prior)
            cov = self.signal_variance_ * scale[:, None] * (explained + remainder) * scale[None, :]
            return scale * (coordinates @ mean_weights), 0.5 * (cov + cov.T)
        mean = cross_kernel @ self.alpha_
        whitened = scipy.linalg.solve_triangular(
            self.cholesky_factor_, cross_kernel.T, lower=True, check_finite=False
        )
        cov = prior_cov - whitened.T @ whitened
        return mean, 0.5 * (cov + cov.T)
