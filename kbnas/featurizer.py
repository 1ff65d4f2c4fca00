"""What the GP sees: distance channels between configurations (docs/oracle.md §1).

For configurations a_1 … a_m and b_1 … b_n of a `kbnas.configurations.ConfigurationSpace`,
`Featurizer.channels` returns D of shape (C, m, n):

* one architecture channel, D_0[i, j] = d(arch(a_i), arch(b_j)) with the space's
  architecture distance d (edit distance or OTMANN, `kbnas.core.distances`), when
  the space has an architecture;
* one channel per ordinary hyperparameter (`kbnas.core.distances.hyperparameter_distances`);
* with fidelities (early stopping), a last channel |log f(a_i) − log f(b_j)|, f
  the share of the full epochs a trial was trained for (1: fully trained).

Architecture distances between *tried* configurations (observed or running) are
kept in an `IncrementalDistanceMatrix`, grown by blocks and never recomputed;
candidates only get rows against them. Candidates never enter the cache: a
Thompson pool's distances among its own members are computed and dropped.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from kbnas.configurations import ConfigurationSpace
from kbnas.core.distance_cache import IncrementalDistanceMatrix
from kbnas.core.distances import get_architecture_distance, hyperparameter_distances
from kbnas.space import SearchSpace


class Featurizer:
    """Distance channels of one architecture space, with the cache of tried architectures.

    Args:
        search_space: the architecture space (None: hyperparameters only).
        distance: ``"edit"``, ``"otmann"`` or a callable (`get_architecture_distance`).
        is_tried: whether a configuration is observed or running (only those are cached).
    """

    def __init__(self, search_space: SearchSpace | None, distance: Any, is_tried: Callable[[dict], bool]) -> None:
        self.cache = (
            None if search_space is None
            else IncrementalDistanceMatrix(get_architecture_distance(distance, search_space))
        )
        self._is_tried = is_tried

    def __len__(self) -> int:
        """Architectures in the cache."""
        return 0 if self.cache is None else len(self.cache)

    def channels(
        self,
        cspace: ConfigurationSpace,
        a: Sequence[dict],
        b: Sequence[dict],
        fidelity_a: Sequence[float] | None = None,
        fidelity_b: Sequence[float] | None = None,
    ) -> np.ndarray:
        """`distance_channels`, plus the fidelity channel when ``fidelity_b`` is
        given (``fidelity_a`` None: the configurations ``a`` at full fidelity)."""
        channels = self.distance_channels(cspace, a, b)
        if fidelity_b is None:
            return channels
        fa = np.ones(len(a)) if fidelity_a is None else np.asarray(fidelity_a, dtype=float)
        fidelity = np.abs(np.log(fa)[:, None] - np.log(np.asarray(fidelity_b, dtype=float))[None, :])
        return np.concatenate([channels, fidelity[None]], axis=0)

    def distance_channels(self, cspace: ConfigurationSpace, a: Sequence[dict], b: Sequence[dict]) -> np.ndarray:
        """(C, len(a), len(b)) distance channels between two lists of configurations
        (one channel of zeros when the space has neither architecture nor
        hyperparameters)."""
        channels = []
        if cspace.has_architecture:
            channels.append(self.architecture_distances(cspace, a, b))
        if cspace.encoded:
            channels.extend(hyperparameter_distances(cspace.encode(list(a)), cspace.encode(list(b)), cspace.kinds))
        if not channels:
            return np.zeros((1, len(a), len(b)))
        return np.stack(channels)

    def architecture_distances(self, cspace: ConfigurationSpace, a: Sequence[dict], b: Sequence[dict]) -> np.ndarray:
        """(len(a), len(b)) architecture distances; ``b`` is the tried side.

        ``a is b``: the pairwise matrix of ``b``, from the cache when every member
        was tried, computed without caching otherwise (a candidate pool).
        """
        archs_b = [cspace.architecture_of(v) for v in b]
        if self.cache is None:
            raise ValueError("this featurizer has no architecture space")
        if a is b and not all(self._is_tried(v) for v in b):
            return self.cache.pairwise(archs_b)
        columns = self.cache.extend(archs_b)
        if a is b:
            return self.cache.submatrix(columns)
        return self.cache.cross([cspace.architecture_of(v) for v in a])[:, columns]
