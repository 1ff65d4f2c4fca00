"""Tests for kbnas.core.checks: each check returns the value or names the field."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kbnas.core.checks import boolean, finite_number, whole_number


def test_whole_numbers_are_ints_including_numpy_and_json_floats():
    assert whole_number("n", 3, 0) == 3
    assert type(whole_number("n", np.int64(3), 0)) is int
    assert type(whole_number("n", 4.0, 1)) is int  # as JSON reads a saved 4
    assert whole_number("n", 0, 0) == 0


@pytest.mark.parametrize("value", [2.5, -1, True, "3", None, math.inf, math.nan])
def test_anything_else_is_not_a_whole_number(value):
    with pytest.raises(ValueError, match=r"^n must be a whole number >= 0, got "):
        whole_number("n", value, 0)


def test_finite_numbers_with_and_without_a_lowest_value():
    assert finite_number("x", -2, None) == -2.0 and type(finite_number("x", 1, None)) is float
    assert finite_number("x", np.float32(0.5), 0.0) == 0.5
    for value in (math.nan, math.inf, -math.inf, None, "1", True, 10**400):
        with pytest.raises(ValueError, match=r"^x must be a finite number, got "):
            finite_number("x", value)
    with pytest.raises(ValueError, match=r"^x must be a finite number >= 0, got -0.1"):
        finite_number("x", -0.1, 0.0)


def test_booleans_are_true_or_false_only():
    assert boolean("b", True) is True and boolean("b", False) is False
    assert boolean("b", np.bool_(True)) is True  # a comparison's result
    for value in ("no", 0, 1, None, np.array([True])):
        with pytest.raises(ValueError, match=r"^b must be True or False, got "):
            boolean("b", value)
