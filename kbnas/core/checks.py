"""Checks of settings fields: one `ValueError` naming the field and the value.

The frozen settings dataclasses (`kbnas.SearchSettings`,
`kbnas.SelectionSettings`) check each field when they are made, so that a bad
value is one line at construction instead of a ``TypeError`` deep in a search.
A whole number may arrive as a float from JSON (``4.0`` in a saved
``oracle.json``): it is accepted as the integer it is; ``True`` and ``False``
are not numbers here. Pure Python.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def whole_number(name: str, value: Any, lowest: int) -> int:
    """``value`` as an int, if it is a whole number >= ``lowest``.

    Raises:
        ValueError: naming ``name`` and the value.
    """
    whole = (not isinstance(value, bool) and isinstance(value, numbers.Real)
             and (isinstance(value, numbers.Integral) or (_finite(value) and float(value).is_integer())))
    if not whole or value < lowest:
        raise ValueError(f"{name} must be a whole number >= {lowest}, got {value!r}")
    return int(value)


def finite_number(name: str, value: Any, lowest: float | None = None) -> float:
    """``value`` as a float, if it is a finite number (>= ``lowest`` when given).

    Raises:
        ValueError: naming ``name`` and the value.
    """
    number = not isinstance(value, bool) and isinstance(value, numbers.Real) and _finite(value)
    if not number or (lowest is not None and value < lowest):
        bound = f" >= {lowest:g}" if lowest is not None else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """``value`` as a bool, if it is True or False, a numpy bool included (not a
    string such as ``"no"``, which is truthy, nor a number).

    Raises:
        ValueError: naming ``name`` and the value.
    """
    numpy_bool = getattr(value, "dtype", None) is not None and value.dtype.kind == "b" and value.ndim == 0
    if not (isinstance(value, bool) or numpy_bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range (10**400)
        return False
