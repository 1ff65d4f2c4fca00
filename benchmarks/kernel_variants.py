"""Kernel variants of the oracle's GP, for measuring them on plain spaces.

`kbnas.core.gp` builds every kernel matrix and its gradient through two functions
of `kbnas.core.kernels`: k = s² · exp(−Σ_c D_c/ℓ_c) (one Laplace factor per
distance channel) and its vector-Jacobian product. `patched(name)` swaps both
for the length of a ``with`` block, so a variant runs through the oracle
unchanged (spectrum flip, consistent prediction, fantasies, Thompson pools):

* ``"matern52"``: a Matérn-5/2 factor per channel,

      k = s² Π_c g(r_c),  r_c = D_c/ℓ_c,  g(r) = (1 + √5 r + 5r²/3) e^{−√5 r},
      ∂k/∂log ℓ_c = k ⊙ (5r_c²/3)(1 + √5 r_c)/(1 + √5 r_c + 5r_c²/3);

  on a channel |u − u'| it is scikit-learn's ``Matern(nu=2.5)`` (KerasTuner's BO
  kernel), a product of them is positive definite; on a 0/1 category channel it is
  the mismatch kernel with another lengthscale.
* ``"additive"``: a fixed share w of an additive part with the same lengthscales,

      k = s² [(1 − w) Π_c e^{−r_c} + w · (1/C) Σ_c e^{−r_c}],
      ∂k/∂log ℓ_c = s² [(1 − w) Π_c' e^{−r_c'} + (w/C) e^{−r_c}] ⊙ r_c,

  (Duvenaud et al. 2011's first- plus C-th-order terms): what one configuration
  teaches about one hyperparameter carries over to configurations that differ
  in all the others. ``additive-0.2`` etc. set w (default 0.5).

Both are used by `benchmarks.plain_spaces` as contenders ``kbnas-matern52:…``
and ``kbnas-additive:…`` (docs/oracle.md §12). Neither is the oracle's kernel:
measured there, neither searched better than the Laplace product.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import numpy as np

#: Share w of the additive part when the name gives none.
DEFAULT_ADDITIVE_SHARE = 0.5

_SQRT5 = math.sqrt(5.0)


def _scaled(dists: np.ndarray, lengthscales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances as (C, n, m) and r_c = D_c/ℓ_c."""
    dists = np.asarray(dists, dtype=float)
    if dists.ndim == 2:
        dists = dists[np.newaxis]
    lengthscales = np.asarray(lengthscales, dtype=float).reshape(-1)
    if lengthscales.shape[0] != dists.shape[0]:
        raise ValueError(f"got {lengthscales.shape[0]} lengthscales for {dists.shape[0]} channels")
    return dists, dists / lengthscales[:, None, None]


def matern52_kernel(dists: np.ndarray, lengthscales: np.ndarray, signal_variance: float) -> np.ndarray:
    """k = s² Π_c (1 + √5 r_c + 5r_c²/3) e^{−√5 r_c}, r_c = D_c/ℓ_c; (n, m)."""
    _, r = _scaled(dists, lengthscales)
    log_factors = np.log1p(_SQRT5 * r + 5.0 * r * r / 3.0) - _SQRT5 * r
    return signal_variance * np.exp(log_factors.sum(axis=0))


def matern52_kernel_vjp(dists: np.ndarray, lengthscales: np.ndarray, kernel: np.ndarray,
                        weights: np.ndarray) -> np.ndarray:
    """(Σ W ⊙ K, Σ W ⊙ K ⊙ (5r_c²/3)(1 + √5 r_c)/(1 + √5 r_c + 5r_c²/3) for each c)."""
    _, r = _scaled(dists, lengthscales)
    derivative = (5.0 * r * r / 3.0) * (1.0 + _SQRT5 * r) / (1.0 + _SQRT5 * r + 5.0 * r * r / 3.0)
    weighted = np.asarray(weights, dtype=float) * kernel
    per_channel = derivative.reshape(derivative.shape[0], -1) @ weighted.reshape(-1)
    return np.concatenate(([weighted.sum()], per_channel))


def additive_kernel(share: float) -> tuple[Callable, Callable]:
    """The kernel and its vector-Jacobian product with an additive share w."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the additive share must lie in [0, 1], got {share}")

    def unit(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        factors = np.exp(-r)
        product = np.exp(-r.sum(axis=0))
        return factors, product, (1.0 - share) * product + share * factors.mean(axis=0)

    def kernel(dists, lengthscales, signal_variance):
        _, r = _scaled(dists, lengthscales)
        return signal_variance * unit(r)[2]

    def kernel_vjp(dists, lengthscales, kernel_matrix, weights):
        _, r = _scaled(dists, lengthscales)
        factors, product, correlation = unit(r)
        # The kernel's signal variance: kernel_matrix = s² · correlation (its diagonal
        # need not be 1 off the training set, so take the least-squares ratio).
        signal_variance = float(np.sum(kernel_matrix * correlation) / np.sum(correlation * correlation))
        weights = np.asarray(weights, dtype=float)
        channels = r.shape[0]
        per_channel = [
            signal_variance * np.sum(weights * ((1.0 - share) * product + share / channels * factors[c]) * r[c])
            for c in range(channels)
        ]
        return np.concatenate(([np.sum(weights * kernel_matrix)], per_channel))

    return kernel, kernel_vjp


def functions(name: str) -> tuple[Callable, Callable]:
    """(kernel, vjp) of a variant: ``matern52``, ``additive`` or ``additive-W``."""
    if name == "matern52":
        return matern52_kernel, matern52_kernel_vjp
    if name == "additive" or name.startswith("additive-"):
        _, _, share = name.partition("-")
        return additive_kernel(float(share) if share else DEFAULT_ADDITIVE_SHARE)
    raise ValueError(f"unknown kernel variant {name!r}; expected matern52, additive or additive-W")


@contextlib.contextmanager
def patched(name: str) -> Iterator[None]:
    """Within the block, `kbnas.core.gp` builds kernels with the variant ``name``."""
    from kbnas.core import gp

    kernel, kernel_vjp = functions(name)
    saved = gp.exponential_kernel, gp.exponential_kernel_vjp
    gp.exponential_kernel, gp.exponential_kernel_vjp = kernel, kernel_vjp
    try:
        yield
    finally:
        gp.exponential_kernel, gp.exponential_kernel_vjp = saved
