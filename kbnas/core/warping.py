"""Output warping: map raw scores to the GP's zero-mean target space.

Scores of real searches contain outliers (a diverged network sits at chance
accuracy, far below the rest). Standardising keeps them: one outlier inflates the
standard deviation and squeezes every other score together, and the GP spends its
lengthscale modelling a cliff. The rank (empirical-copula) warp keeps only the order.

Notation:
    y          (n,) raw scores (larger is better).
    r_i        average rank of y_i among y (1 = smallest; ties share their mean rank).
    Φ⁻¹        standard normal quantile function.

    rank warp:    z_i = Φ⁻¹((r_i − ½) / n)
    standardize:  z_i = (y_i − ȳ) / s_y,  s_y the population std (1 if y is constant)

Both warps are increasing, so the incumbent and the maximisation direction carry
over. A fantasy (kriging-believer) value for a pending configuration is the GP mean
in the warped space and is appended there: no inverse warp is needed.
"""

from __future__ import annotations

import numpy as np
import scipy.special
import scipy.stats

#: Methods understood by `warp_scores`.
WARP_METHODS = ("rank", "standardize", "power", "none")
#: Bounds of the Yeo-Johnson exponent λ of `power_warp`.
POWER_LAMBDA_BOUNDS = (-2.0, 4.0)


def _as_finite_vector(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"scores must be a 1-D array, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("scores must be finite; drop or replace failed trials first")
    return y


def rank_gaussian_warp(y: np.ndarray) -> np.ndarray:
    """Empirical-copula transform z_i = Φ⁻¹((r_i − ½)/n), average ranks for ties.

    Invariant to any strictly increasing transform of ``y``; the values are the
    normal quantiles at the midpoints of n equal bins, so they are symmetric around
    0 (mean exactly 0 without ties) and lie within ±Φ⁻¹(1 − 1/(2n)).

    Args:
        y: (n,) finite scores.

    Returns:
        (n,) warped scores; ``[0.0]`` for n = 1.
    """
    y = _as_finite_vector(y)
    if y.size == 0:
        return y.copy()
    ranks = scipy.stats.rankdata(y, method="average")
    return scipy.special.ndtri((ranks - 0.5) / y.size)


def standardize(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Affine standardisation z = (y − ȳ) / s_y.

    Args:
        y: (n,) finite scores, n ≥ 1.

    Returns:
        ``(z (n,), mean ȳ, std s_y)``; s_y = 1 when y is constant (up to rounding),
        so a constant vector maps to zeros.
    """
    y = _as_finite_vector(y)
    if y.size == 0:
        raise ValueError("cannot standardize an empty vector")
    mean = float(np.mean(y))
    std = float(np.std(y))
    if std <= 1e-12 * max(1.0, abs(mean)):
        std = 1.0
    return (y - mean) / std, mean, std


def power_warp(y: np.ndarray) -> np.ndarray:
    """Standardize, Yeo-Johnson transform with the maximum-likelihood exponent, standardize.

    The Yeo-Johnson map ψ_λ (Yeo & Johnson 2000) of the standardized scores u,

        ψ_λ(u) = ((u + 1)^λ − 1)/λ            u ≥ 0, λ ≠ 0   (log(u + 1) at λ = 0)
        ψ_λ(u) = −((1 − u)^(2−λ) − 1)/(2 − λ)  u < 0, λ ≠ 2   (−log(1 − u) at λ = 2),

    is increasing for every λ; λ maximizes the normal log likelihood of ψ_λ(u)
    (`scipy.stats.yeojohnson_normmax`, bounded to `POWER_LAMBDA_BOUNDS`). A low tail
    of diverged trials (left skew) gets λ > 1, which compresses it, while the
    differences among the good scores keep their magnitudes (the rank warp spreads
    them evenly, noise included). HEBO (Cowen-Rivers et al. 2022) warps its outputs
    with the same family.

    Args:
        y: (n,) finite scores.

    Returns:
        (n,) warped scores, mean 0 and standard deviation 1 (zeros when ``y`` is
        constant); below 3 distinct values, `standardize`'s.
    """
    u = standardize(y)[0]
    if np.unique(u).size < 3:
        return u
    lam = float(np.clip(scipy.stats.yeojohnson_normmax(u, brack=(0.5, 1.5)), *POWER_LAMBDA_BOUNDS))
    warped = scipy.stats.yeojohnson(u, lam)
    if not np.all(np.isfinite(warped)):
        return u
    return standardize(warped)[0]


def warp_scores(y: np.ndarray, method: str = "rank") -> np.ndarray:
    """Warp raw scores for the GP.

    Args:
        y: (n,) finite scores (larger is better).
        method: ``"rank"`` (`rank_gaussian_warp`, the default, robust to outliers),
            ``"standardize"`` (`standardize`), ``"power"`` (`power_warp`) or ``"none"`` (a float copy).

    Returns:
        (n,) warped scores.

    Raises:
        ValueError: for an unknown method.
    """
    if method == "rank":
        return rank_gaussian_warp(y)
    if method == "standardize":
        return standardize(y)[0]
    if method == "power":
        return power_warp(y)
    if method == "none":
        return _as_finite_vector(y).copy()
    raise ValueError(f"unknown warping method {method!r}; expected one of {WARP_METHODS}")
