"""Distance channels between configurations: architectures and ordinary hyperparameters.

A configuration is an architecture plus P ordinary KerasTuner hyperparameters. The GP
sees one (n, m) distance matrix per channel: channel 0 from an architecture distance,
then one channel per hyperparameter.

Notation:
    A_a, A_b      lists of n and m architectures.
    X_a, X_b      (n, P) and (m, P) encoded hyperparameters; column p is
                  categorical (integer codes stored as floats) or numeric (values
                  scaled to [0, 1], log-scaled where the sampling is log); NaN marks
                  an inactive conditional hyperparameter.

    D_p(x, x') = 0                 both inactive
               = 1                 exactly one inactive
               = [x_p ≠ x'_p]      categorical (unordered categories)
               = |x_p − x'_p|      numeric
    so every channel lies in [0, 1].

Architecture distances are callables ``(A_a, A_b) -> (n, m)`` (`ArchitectureDistance`):
``"edit"``, the layer-aware edit distance (`kbnas.core.edit_distance`, the default),
``"otmann"``, NASBOT's normalised OTMANN distance (`kbnas.core.otmann`), or any user
callable, checked at every call.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from kbnas.core.edit_distance import pairwise_edit_distances
from kbnas.core.otmann import pairwise_otmann_distances
from kbnas.space import Architecture, SearchSpace

CATEGORICAL = "categorical"
NUMERIC = "numeric"
HYPERPARAMETER_KINDS = (CATEGORICAL, NUMERIC)
#: Names accepted by `get_architecture_distance`.
ARCHITECTURE_DISTANCE_NAMES = ("edit", "otmann")
#: Slack on the [0, 1] range of numeric columns (rounding in the glue's scaling).
_UNIT_RANGE_SLACK = 1e-9


class ArchitectureDistance(Protocol):
    """A distance between two lists of architectures.

    Called as ``distance(archs_a, archs_b)`` with n and m architectures, it returns
    an (n, m) array of finite, non-negative distances.
    """

    def __call__(self, archs_a: Sequence[Architecture], archs_b: Sequence[Architecture]) -> np.ndarray: ...


def hyperparameter_distances(X_a: np.ndarray, X_b: np.ndarray, kinds: Sequence[str]) -> np.ndarray:
    """Per-hyperparameter distance channels D_p (see the module docstring).

    Args:
        X_a: (n, P) encoded hyperparameters.
        X_b: (m, P) encoded hyperparameters.
        kinds: P entries, each ``"categorical"`` or ``"numeric"``.

    Returns:
        (P, n, m) array with values in [0, 1].

    Raises:
        ValueError: mismatched shapes, an unknown kind, or a numeric value outside
            [0, 1].
    """
    X_a = np.asarray(X_a, dtype=float)
    X_b = np.asarray(X_b, dtype=float)
    kinds = list(kinds)
    if X_a.ndim != 2 or X_b.ndim != 2:
        raise ValueError(f"X_a and X_b must be 2-D (rows, hyperparameters), got shapes {X_a.shape} and {X_b.shape}")
    if not X_a.shape[1] == X_b.shape[1] == len(kinds):
        raise ValueError(
            f"X_a has {X_a.shape[1]} columns, X_b {X_b.shape[1]} and kinds {len(kinds)}; they must agree"
        )
    unknown = sorted({kind for kind in kinds if kind not in HYPERPARAMETER_KINDS}, key=str)
    if unknown:
        raise ValueError(f"unknown hyperparameter kinds {unknown}; expected {HYPERPARAMETER_KINDS}")
    categorical = np.array([kind == CATEGORICAL for kind in kinds], dtype=bool)
    for name, values in (("X_a", X_a), ("X_b", X_b)):
        numeric_values = values[:, ~categorical]
        outside = (numeric_values < -_UNIT_RANGE_SLACK) | (numeric_values > 1.0 + _UNIT_RANGE_SLACK)
        if np.any(outside):
            column = int(np.flatnonzero(~categorical)[np.argwhere(outside)[0, 1]])
            raise ValueError(f"{name} column {column} is numeric but holds values outside [0, 1]")

    left = X_a.T[:, :, np.newaxis]
    right = X_b.T[:, np.newaxis, :]
    with np.errstate(invalid="ignore"):
        distances = np.abs(left - right)
        if np.any(categorical):
            distances[categorical] = distances[categorical] != 0.0
    nan_a, nan_b = np.isnan(X_a), np.isnan(X_b)
    if nan_a.any() or nan_b.any():
        inactive_left, inactive_right = nan_a.T[:, :, np.newaxis], nan_b.T[:, np.newaxis, :]
        distances[inactive_left | inactive_right] = 1.0
        distances[inactive_left & inactive_right] = 0.0
    return distances


def get_architecture_distance(
    name_or_callable: str | Callable[[Sequence[Architecture], Sequence[Architecture]], np.ndarray] = "edit",
    space: SearchSpace | None = None,
) -> ArchitectureDistance:
    """Resolve an architecture distance by name, or wrap a user callable.

    Args:
        name_or_callable: ``"edit"`` (layer-aware edit distance), ``"otmann"``
            (normalised OTMANN, needs ``space``) or a callable
            ``(archs_a, archs_b) -> (n, m)``.
        space: the `kbnas.space.SearchSpace`; required for ``"otmann"``.

    Returns:
        A callable ``(archs_a, archs_b) -> (n, m)`` with a ``name`` attribute. A user
        callable is checked at every call: its result must convert to a float array
        of shape (n, m) with finite, non-negative entries.

    Raises:
        ValueError: an unknown name, or ``"otmann"`` without a space.
        TypeError: neither a string nor a callable.
    """
    if isinstance(name_or_callable, str):
        if name_or_callable == "edit":
            return _NamedDistance("edit", pairwise_edit_distances)
        if name_or_callable == "otmann":
            if space is None:
                raise ValueError("the 'otmann' distance needs the search space (its input channels)")
            return _NamedDistance("otmann", lambda archs_a, archs_b: pairwise_otmann_distances(archs_a, archs_b, space))
        raise ValueError(
            f"unknown architecture distance {name_or_callable!r}; expected one of "
            f"{ARCHITECTURE_DISTANCE_NAMES} or a callable (archs_a, archs_b) -> (n, m) array"
        )
    if callable(name_or_callable):
        return _CheckedDistance(name_or_callable)
    raise TypeError(
        "architecture distance must be a name from "
        f"{ARCHITECTURE_DISTANCE_NAMES} or a callable, got {type(name_or_callable).__name__}"
    )


class _NamedDistance:
    """A built-in distance with the name it was resolved from."""

    def __init__(self, name: str, function: Callable[[Sequence[Architecture], Sequence[Architecture]], np.ndarray]):
        self.name = name
        self._function = function

    def __call__(self, archs_a: Sequence[Architecture], archs_b: Sequence[Architecture]) -> np.ndarray:
        return self._function(archs_a, archs_b)

    def __repr__(self) -> str:
        return f"<architecture distance {self.name!r}>"


class _CheckedDistance:
    """A user distance whose every result is checked for shape, finiteness and sign."""

    def __init__(self, function: Callable[[Sequence[Architecture], Sequence[Architecture]], np.ndarray]):
        self.name = getattr(function, "__name__", repr(function))
        self._function = function

    def __call__(self, archs_a: Sequence[Architecture], archs_b: Sequence[Architecture]) -> np.ndarray:
        archs_a, archs_b = list(archs_a), list(archs_b)
        result = self._function(archs_a, archs_b)
        try:
            distances = np.asarray(result, dtype=float)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"architecture distance {self.name} must return an array of numbers, got {type(result).__name__}"
            ) from error
        expected = (len(archs_a), len(archs_b))
        if distances.shape != expected:
            raise ValueError(
                f"architecture distance {self.name} returned shape {distances.shape} for "
                f"{expected[0]} x {expected[1]} architectures; expected {expected}"
            )
        if not np.all(np.isfinite(distances)) or np.any(distances < 0):
            raise ValueError(f"architecture distance {self.name} returned negative or non-finite distances")
        return distances

    def __repr__(self) -> str:
        return f"<checked architecture distance {self.name!r}>"
