"""Acquisition functions on a Gaussian posterior; every one is to be maximised.

Notation (all arrays broadcast together; the objective is maximised):
    μ, σ      posterior mean and standard deviation of the latent f, σ ≥ 0.
    best      incumbent: the best (largest) observed value, in the same space as μ.
    ξ         exploration margin: improvements smaller than ξ do not count.
    z         (μ − best − ξ) / σ.
    φ, Φ      standard normal density and distribution function.
    h(z)      φ(z) + z Φ(z).

    EI(μ, σ)  = E[max(f − best − ξ, 0)] = σ h(z)          (σ = 0: max(μ − best − ξ, 0))
    PI(μ, σ)  = P(f > best + ξ)         = Φ(z)            (σ = 0: 1 if μ > best + ξ else 0)
    UCB(μ, σ) = μ + κ σ                  (κ multiplies σ, not √κ and not with a minus)

log EI = log σ + log h(z) is computed without forming h(z) when z is very negative,
following Ament et al. (2023), "Unexpected Improvements to Expected Improvement for
Bayesian Optimization" (the log h used by BoTorch's LogEI):
    z > −1:            log h(z) = log(φ(z) + z Φ(z))
    −1/√ε < z ≤ −1:    log h(z) = −z²/2 − c₁ + log1mexp(log(erfcx(−z/√2) |z|) + c₂)
    z ≤ −1/√ε:         log h(z) = −z²/2 − c₁ − 2 log |z|
with c₁ = log(2π)/2, c₂ = log(π/2)/2, ε the float64 machine epsilon and
log1mexp(x) = log(1 − eˣ). It stays finite (and monotone in μ) far below z = −1000,
where EI itself underflows to 0.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import scipy.linalg
import scipy.special

_C1 = 0.5 * math.log(2.0 * math.pi)
_C2 = 0.5 * math.log(0.5 * math.pi)
_ASYMPTOTIC_Z = -1.0 / math.sqrt(np.finfo(float).eps)


#: Names under which the oracle offers these acquisitions.
ACQUISITIONS = ("ei", "pi", "ucb", "thompson")


def _standardized_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (improvement μ − best − ξ, σ, z, σ > 0 mask), broadcast together."""
    mean, std = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(std, dtype=float))
    if np.any(np.isnan(std)) or np.any(std < 0):
        raise ValueError("std must be non-negative (the posterior standard deviation)")
    improvement = mean - best - xi
    has_spread = std > 0
    z = np.divide(improvement, std, out=np.zeros_like(improvement), where=has_spread)
    return improvement, std, z, has_spread


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 − eˣ) for x < 0, accurate near 0 and for very negative x."""
    return np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def log_h(z: np.ndarray) -> np.ndarray:
    """log(φ(z) + z Φ(z)), stable for very negative z (see the module notation).

    Args:
        z: array of standardised improvements.

    Returns:
        Array of log h(z), finite for every finite z.
    """
    z = np.asarray(z, dtype=float)
    result = np.empty_like(z)
    upper = z > -1.0
    z_upper = z[upper]
    result[upper] = np.log(
        np.exp(-0.5 * z_upper**2) / math.sqrt(2.0 * math.pi) + z_upper * scipy.special.ndtr(z_upper)
    )
    middle = (z <= -1.0) & (z > _ASYMPTOTIC_Z)
    z_middle = z[middle]
    result[middle] = (
        -0.5 * z_middle**2
        - _C1
        + _log1mexp(
            np.log(scipy.special.erfcx(-z_middle / math.sqrt(2.0)) * np.abs(z_middle)) + _C2
        )
    )
    lower = z <= _ASYMPTOTIC_Z
    z_lower = z[lower]
    result[lower] = -0.5 * z_lower**2 - _C1 - 2.0 * np.log(np.abs(z_lower))
    return result


def expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """Expected improvement EI = σ (z Φ(z) + φ(z)) over ``best + xi``.

    Args:
        mean: posterior means μ.
        std: posterior standard deviations σ ≥ 0 (σ = 0 gives max(μ − best − ξ, 0)).
        best: incumbent (largest observed value).
        xi: exploration margin ξ ≥ 0.

    Returns:
        Array of EI ≥ 0 with the broadcast shape of ``mean`` and ``std``.
    """
    improvement, std, z, has_spread = _standardized_improvement(mean, std, best, xi)
    spread_value = std * np.exp(log_h(z))
    return np.where(has_spread, spread_value, np.maximum(improvement, 0.0))[()]


def log_expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """log EI = log σ + log h(z), finite where EI underflows (z down to −1e3 and below).

    Args:
        mean: posterior means μ.
        std: posterior standard deviations σ ≥ 0.
        best: incumbent (largest observed value).
        xi: exploration margin ξ.

    Returns:
        Array of log EI; −inf only where σ = 0 and μ ≤ best + ξ.
    """
    improvement, std, z, has_spread = _standardized_improvement(mean, std, best, xi)
    with np.errstate(divide="ignore"):
        spread_value = np.log(np.where(has_spread, std, 1.0)) + log_h(z)
        no_spread_value = np.log(np.maximum(improvement, 0.0))
    return np.where(has_spread, spread_value, no_spread_value)[()]


def probability_of_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """Probability of improvement PI = Φ(z) = P(f > best + ξ).

    Args:
        mean: posterior means μ.
        std: posterior standard deviations σ ≥ 0 (σ = 0 gives 1 if μ > best + ξ
            else 0).
        best: incumbent (largest observed value).
        xi: exploration margin ξ.

    Returns:
        Array of probabilities in [0, 1].
    """
    improvement, _, z, has_spread = _standardized_improvement(mean, std, best, xi)
    return np.where(has_spread, scipy.special.ndtr(z), (improvement > 0).astype(float))[()]


def log_probability_of_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """log PI = log Φ(z), via `scipy.special.log_ndtr` (finite for very negative z).

    Args:
        mean: posterior means μ.
        std: posterior standard deviations σ ≥ 0.
        best: incumbent (largest observed value).
        xi: exploration margin ξ.

    Returns:
        Array of log PI ≤ 0; −inf only where σ = 0 and μ ≤ best + ξ.
    """
    improvement, _, z, has_spread = _standardized_improvement(mean, std, best, xi)
    no_spread_value = np.where(improvement > 0, 0.0, -np.inf)
    return np.where(has_spread, scipy.special.log_ndtr(z), no_spread_value)[()]


def upper_confidence_bound(mean: np.ndarray, std: np.ndarray, kappa: float = 2.0) -> np.ndarray:
    """Upper confidence bound UCB = μ + κ σ (κ multiplies σ directly).

    Args:
        mean: posterior means μ.
        std: posterior standard deviations σ ≥ 0.
        kappa: κ ≥ 0, the number of standard deviations added to the mean.

    Returns:
        Array of μ + κ σ.
    """
    mean, std = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(std, dtype=float))
    if np.any(np.isnan(std)) or np.any(std < 0):
        raise ValueError("std must be non-negative (the posterior standard deviation)")
    return (mean + kappa * std)[()]


def thompson_sample(
    mean: np.ndarray,
    cov: np.ndarray,
    rng: np.random.Generator | int | None,
    n_samples: int = 1,
) -> np.ndarray:
    """Joint samples f ~ N(mean, cov), for Thompson sampling over m candidates.

    The covariance is factorised as V √max(Λ, 0) with (cov + covᵀ)/2 = V Λ Vᵀ, so a
    near-singular posterior covariance (candidates close to each other or to
    training points) is sampled exactly up to rounding instead of failing Cholesky.

    Args:
        mean: (m,) joint posterior mean.
        cov: (m, m) joint posterior covariance (e.g. from `DistanceGP.predict_joint`).
        rng: generator or seed.
        n_samples: number of joint samples.

    Returns:
        (n_samples, m) array; row s is one sampled function over the candidates.
    """
    mean = np.asarray(mean, dtype=float).reshape(-1)
    cov = np.asarray(cov, dtype=float)
    m = mean.shape[0]
    if cov.shape != (m, m):
        raise ValueError(f"cov must have shape ({m}, {m}), got {cov.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        raise ValueError("mean and cov must be finite")
    rng = np.random.default_rng(rng)
    eigenvalues, eigenvectors = scipy.linalg.eigh(0.5 * (cov + cov.T))
    factor = eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))
    standard_normals = rng.standard_normal((n_samples, m))
    return mean + standard_normals @ factor.T


def make_acquisition(
    name: str, best: float, *, xi: float = 0.0, kappa: float = 2.0
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The acquisition ``a(μ, σ)`` called ``name``, for an incumbent ``best``.

    ``"ei"``: `log_expected_improvement` (ξ = ``xi``); ``"pi"``:
    `log_probability_of_improvement`; ``"ucb"``: `upper_confidence_bound`
    (κ = ``kappa``). Thompson sampling is not a function of (μ, σ): it draws a
    joint posterior sample (`thompson_sample`, `kbnas.core.acquisition_optimizer.maximize_thompson`).

    Raises:
        ValueError: an unknown name, or ``"thompson"``.
    """
    if name == "ei":
        return lambda mean, std: log_expected_improvement(mean, std, best, xi=xi)
    if name == "pi":
        return lambda mean, std: log_probability_of_improvement(mean, std, best, xi=xi)
    if name == "ucb":
        return lambda mean, std: upper_confidence_bound(mean, std, kappa=kappa)
    if name == "thompson":
        raise ValueError("thompson sampling draws a joint sample: use maximize_thompson")
    raise ValueError(f"unknown acquisition {name!r}; expected one of {', '.join(ACQUISITIONS)}")
