"""Tests for kbnas.datasets: the bundled digits and their fixed split."""

from __future__ import annotations

import numpy as np
import pytest

from kbnas.datasets import (
    DIGITS_INPUT_SHAPE,
    DIGITS_NUM_CLASSES,
    DIGITS_PATH,
    DIGITS_SPLIT_SIZES,
    Split,
    load_digits,
    load_digits_split,
    stratified_split_indices,
)

CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_archive_layout():
    with np.load(DIGITS_PATH) as archive:
        assert sorted(archive.files) == ["x", "y"]
        assert archive["x"].dtype == np.uint8 and archive["x"].shape == (1797, 8, 8, 1)
        assert archive["y"].dtype == np.uint8 and archive["y"].shape == (1797,)


def test_load_digits_shapes_values_and_classes():
    x, y = load_digits()
    assert x.shape == (1797,) + DIGITS_INPUT_SHAPE and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 16
    np.testing.assert_array_equal(x, np.round(x))
    np.testing.assert_array_equal(np.bincount(y), CLASS_COUNTS)
    assert DIGITS_NUM_CLASSES == 10


def test_matches_scikit_learn_copy():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    reference = sklearn_datasets.load_digits()
    x, y = load_digits()
    np.testing.assert_array_equal(x[..., 0], reference.images)
    np.testing.assert_array_equal(y, reference.target)


def test_split_sizes_and_stratification():
    split = load_digits_split()
    assert isinstance(split, Split)
    sizes = (len(split.y_train), len(split.y_val), len(split.y_test))
    assert sizes == DIGITS_SPLIT_SIZES == (1079, 359, 359)
    parts = [(split.x_train, split.y_train), (split.x_val, split.y_val)]
    for x, y in parts + [(split.x_test, split.y_test)]:
        assert x.shape == (len(y),) + DIGITS_INPUT_SHAPE
        assert x.dtype == np.float32 and y.dtype == np.int64
    # Per class round(0.2·n_c) to validation and to test: 35 for 174 and 177, 37 for 183, else 36.
    expected_held_out = [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    np.testing.assert_array_equal(np.bincount(split.y_val, minlength=10), expected_held_out)
    np.testing.assert_array_equal(np.bincount(split.y_test, minlength=10), expected_held_out)
    expected_train = np.subtract(CLASS_COUNTS, 2 * np.array(expected_held_out))
    np.testing.assert_array_equal(np.bincount(split.y_train, minlength=10), expected_train)


def test_split_indices_are_disjoint_and_cover_everything():
    _, y = load_digits()
    train, val, test = stratified_split_indices(y)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(len(y)))


def test_split_is_the_indexed_data():
    x, y = load_digits()
    split = load_digits_split()
    for (indices, name) in zip(stratified_split_indices(y), ("train", "val", "test")):
        np.testing.assert_array_equal(getattr(split, f"x_{name}"), x[indices])
        np.testing.assert_array_equal(getattr(split, f"y_{name}"), y[indices])
        part_x, part_y = load_digits(name)
        np.testing.assert_array_equal(part_x, x[indices])
        np.testing.assert_array_equal(part_y, y[indices])


def test_split_is_deterministic_and_seed_dependent():
    first, second = load_digits_split(), load_digits_split()
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    _, y = load_digits()
    default = stratified_split_indices(y)
    other = stratified_split_indices(y, seed=1)
    assert not np.array_equal(default[1], other[1])
    assert [len(part) for part in other] == [len(part) for part in default]


def test_load_returns_fresh_arrays():
    x, _ = load_digits()
    x[0] = -1.0
    assert load_digits()[0].min() == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be None or one of"):
        load_digits("validation")
    with pytest.raises(ValueError, match="summing to 1"):
        stratified_split_indices(np.zeros(10, dtype=int), fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="one-dimensional"):
        stratified_split_indices(np.zeros((2, 5), dtype=int))


def test_stratified_split_small_case_by_hand():
    # Class 0 has 5 members: round(1.0) = 1 to val, 1 to test, 3 to train.
    # Class 1 has 10: 2, 2, 6.
    labels = np.array([0] * 5 + [1] * 10)
    train, val, test = stratified_split_indices(labels, seed=0)
    counts = [np.bincount(labels[part], minlength=2).tolist() for part in (train, val, test)]
    assert counts == [[3, 6], [1, 2], [1, 2]]
