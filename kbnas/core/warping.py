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
WARP_METHODS = ("rank", "standardize", "none")


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


def warp_scores(y: np.ndarray, method: str = "rank") -> np.ndarray:
    """Warp raw scores for the GP.

    Args:
        y: (n,) finite scores (larger is better).
        method: ``"rank"`` (`rank_gaussian_warp`, the default, robust to outliers),
            ``"standardize"`` (`standardize`) or ``"none"`` (a float copy).

    Returns:
        (n,) warped scores.

    Raises:
        ValueError: for an unknown method.
    """
    if method == "rank":
        return rank_gaussian_warp(y)
    if method == "standardize":
        return standardize(y)[0]
    if method == "none":
        return _as_finite_vector(y).copy()
    raise ValueError(f"unknown warping method {method!r}; expected one of {WARP_METHODS}")
