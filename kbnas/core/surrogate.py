"""When and how the GP's kernel hyperparameters are refitted: the surrogate-fitting policy.

With n observations and a previous fit θ₀ (None at first):

* θ₀ is None, or n ≤ `RefitPolicy.full_refit_limit`, or n is a multiple of
  `RefitPolicy.refit_every`: θ is refitted by maximum marginal likelihood
  (`kbnas.core.gp.DistanceGP.fit`), from θ₀ and ``n_restarts`` random starts
  (one restart when warm-started);
* otherwise θ = θ₀ and only the posterior is recomputed (`DistanceGP.fit_fixed`).

A refit on more than `RefitPolicy.max_fit_points` observations fits θ on a
random subset of that size (the likelihood and its gradient cost O(n³) per
evaluation), then computes the posterior from every observation with that θ.

`leave_one_out` measures the fitted surrogate: each observation predicted by
the GP conditioned on all the others, with θ fixed.

This module imports only numpy (and the GP).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kbnas.core.gp import DistanceGP


@dataclasses.dataclass(frozen=True)
class RefitPolicy:
    """How often and on how many points the kernel hyperparameters are fitted.

    Attributes:
        n_restarts: random starts of a cold fit (a warm-started fit uses at most one).
        refit_every: above `full_refit_limit` observations, refit when n is a multiple of it.
        full_refit_limit: up to this many observations, refit at every proposal.
        max_fit_points: θ is fitted on a random subset of at most this many observations.
    """

    n_restarts: int = 3
    refit_every: int = 5
    full_refit_limit: int = 100
    max_fit_points: int = 200

    def __post_init__(self) -> None:
        if self.n_restarts < 0:
            raise ValueError(f"n_restarts must be >= 0, got {self.n_restarts}")
        if self.refit_every < 1:
            raise ValueError(f"refit_every must be >= 1, got {self.refit_every}")

    def refits(self, n: int, warm: bool) -> bool:
        """Whether n observations, with a previous fit (``warm``) or not, refit θ."""
        return not warm or n <= self.full_refit_limit or n % self.refit_every == 0


def fit_surrogate(
    dists: np.ndarray,
    z: np.ndarray,
    theta0: np.ndarray | None,
    policy: RefitPolicy,
    rng: np.random.Generator,
) -> DistanceGP:
    """A GP on distance channels ``dists`` (C, n, n) and scores ``z`` (n,), fitted
    by ``policy`` (module docstring) from the previous θ ``theta0``.

    A ``theta0`` of another number of channels (the space gained or lost a
    hyperparameter) counts as no previous fit.
    """
    gp = DistanceGP()
    if theta0 is not None and len(theta0) != dists.shape[0] + 2:
        theta0 = None
    n = len(z)
    if not policy.refits(n, warm=theta0 is not None):
        return gp.fit_fixed(dists, z, theta0)
    restarts = policy.n_restarts if theta0 is None else min(1, policy.n_restarts)
    if n > policy.max_fit_points:
        subset = np.sort(rng.choice(n, policy.max_fit_points, replace=False))
        gp.fit(dists[:, subset][:, :, subset], z[subset], theta0=theta0, n_restarts=restarts, rng=rng)
        return gp.fit_fixed(dists, z, gp.theta_)
    return gp.fit(dists, z, theta0=theta0, n_restarts=restarts, rng=rng)


def leave_one_out(dists: np.ndarray, y: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out posterior of the latent f at each training point, θ fixed.

    For each i, the GP with hyperparameters θ conditioned on every observation
    but y_i (`DistanceGP.fit_fixed` on the other n − 1, the same consistent
    model as the proposals, spectrum flip included) predicts point i. With a
    positive semi-definite kernel this is Rasmussen & Williams (2006) eq. 5.12:
    mean_i = y_i − [K_y⁻¹ y]_i / [K_y⁻¹]_ii and var_i = 1/[K_y⁻¹]_ii − σ_n²;
    it is computed by n refits, O(n⁴) in all, because the flip of an indefinite
    kernel depends on which points are conditioned on.

    Args:
        dists: (C, n, n) training distances, n ≥ 2.
        y: (n,) targets (warped/standardised).
        theta: (C + 2,) log hyperparameters.

    Returns:
        ``(mean (n,), var (n,))`` of the latent f at each left-out point.
    """
    dists = np.asarray(dists, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 2:
        raise ValueError(f"leave-one-out needs at least 2 observations, got {n}")
    mean, var = np.empty(n), np.empty(n)
    for i in range(n):
        rest = np.flatnonzero(np.arange(n) != i)
        gp = DistanceGP().fit_fixed(dists[:, rest][:, :, rest], y[rest], theta)
        m, v = gp.predict(dists[:, i : i + 1, :][:, :, rest])
        mean[i], var[i] = m[0], v[0]
    return mean, var
