from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest

import kbnas
from kbnas.core.distances import ARCHITECTURE_DISTANCE_NAMES, get_architecture_distance, hyperparameter_distances
from kbnas.core.edit_distance import pairwise_edit_distances
from kbnas.core.otmann import pairwise_otmann_distances
from kbnas.space import LAYER_KINDS, SearchSpace

SPACE = SearchSpace(input_shape=(16, 16, 3), vocabulary=LAYER_KINDS, max_depth=6)
NAN = np.nan


def test_hyperparameter_distances_by_hand():
    X_a = np.array([[0.0, 0.2, NAN], [1.0, 0.5, 0.3]])
    X_b = np.array([[0.0, 0.7, NAN], [2.0, NAN, 0.3], [1.0, 0.5, 1.0]])
    distances = hyperparameter_distances(X_a, X_b, ["categorical", "numeric", "numeric"])
    assert distances.shape == (3, 2, 3)
    # Categorical codes: equal -> 0, different -> 1 (no order: 0 vs 2 is not farther than 0 vs 1).
    np.testing.assert_array_equal(distances[0], [[0, 1, 1], [1, 1, 0]])
    # Numeric: |a - b|, and 1 when exactly one side is inactive.
    np.testing.assert_allclose(distances[1], [[0.5, 1.0, 0.3], [0.2, 1.0, 0.0]])
    # Both inactive -> 0.
    np.testing.assert_allclose(distances[2], [[0.0, 1.0, 1.0], [1.0, 0.0, 0.7]])


def test_inactive_categorical_hyperparameters():
    X = np.array([[NAN], [3.0], [NAN]])
    distances = hyperparameter_distances(X, X, ["categorical"])
    np.testing.assert_array_equal(distances[0], [[0, 1, 0], [1, 0, 1], [0, 1, 0]])


def test_hyperparameter_distances_are_symmetric_in_unit_range_with_zero_diagonal():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 4, 30), rng.random(30), rng.random(30)]).astype(float)
    X[rng.random(X.shape) < 0.2] = NAN
    distances = hyperparameter_distances(X, X, ["categorical", "numeric", "numeric"])
    np.testing.assert_array_equal(distances, distances.transpose(0, 2, 1))
    np.testing.assert_array_equal(distances[:, np.arange(30), np.arange(30)], 0.0)
    assert np.all((distances >= 0) & (distances <= 1))


def test_no_hyperparameters_gives_no_channels():
    assert hyperparameter_distances(np.zeros((4, 0)), np.zeros((2, 0)), []).shape == (0, 4, 2)


@pytest.mark.parametrize(
    "X_a, X_b, kinds, message",
    [
        (np.zeros((2, 2)), np.zeros((3, 3)), ["numeric"] * 2, "columns"),
        (np.zeros((2, 2)), np.zeros((3, 2)), ["numeric"], "columns"),
        (np.zeros(2), np.zeros((3, 1)), ["numeric"], "2-D"),
        (np.zeros((2, 1)), np.zeros((3, 1)), ["ordinal"], "unknown hyperparameter kinds"),
        (np.array([[0.5, 1.5]]), np.zeros((1, 2)), ["numeric", "numeric"], "column 1 .* outside"),
    ],
)
def test_hyperparameter_distances_reject_bad_input(X_a, X_b, kinds, message):
    with pytest.raises(ValueError, match=message):
        hyperparameter_distances(X_a, X_b, kinds)


def test_categorical_codes_outside_unit_range_are_fine():
    distances = hyperparameter_distances(np.array([[7.0]]), np.array([[7.0], [12.0]]), ["categorical"])
    np.testing.assert_array_equal(distances, [[[0.0, 1.0]]])


def test_resolve_builtin_distances():
    archs_a = SPACE.sample_many(5, rng=1)
    archs_b = SPACE.sample_many(4, rng=2)
    edit = get_architecture_distance("edit", SPACE)
    assert edit.name == "edit"
    np.testing.assert_array_equal(edit(archs_a, archs_b), pairwise_edit_distances(archs_a, archs_b))
    np.testing.assert_array_equal(get_architecture_distance()(archs_a, archs_b), edit(archs_a, archs_b))
    otmann = get_architecture_distance("otmann", SPACE)
    assert otmann.name == "otmann"
    np.testing.assert_array_equal(otmann(archs_a, archs_b), pairwise_otmann_distances(archs_a, archs_b, SPACE))
    assert set(ARCHITECTURE_DISTANCE_NAMES) == {"edit", "otmann"}


def test_resolve_errors():
    with pytest.raises(ValueError, match="unknown architecture distance 'levenshtein'"):
        get_architecture_distance("levenshtein", SPACE)
    with pytest.raises(ValueError, match="needs the search space"):
        get_architecture_distance("otmann")
    with pytest.raises(TypeError, match="callable"):
        get_architecture_distance(3, SPACE)


def test_user_callable_is_checked_at_call_time():
    archs = SPACE.sample_many(3, rng=3)

    def depth_gap(archs_a, archs_b):
        return [[abs(len(a) - len(b)) for b in archs_b] for a in archs_a]

    distance = get_architecture_distance(depth_gap, SPACE)
    assert distance.name == "depth_gap"
    expected = np.abs(np.subtract.outer([len(a) for a in archs], [len(b) for b in archs[:2]]))
    np.testing.assert_array_equal(distance(archs, archs[:2]), expected)

    transposed = get_architecture_distance(lambda a, b: np.zeros((len(b), len(a))), SPACE)
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*expected \(3, 2\)"):
        transposed(archs, archs[:2])
    negative = get_architecture_distance(lambda a, b: -np.ones((len(a), len(b))), SPACE)
    with pytest.raises(ValueError, match="negative or non-finite"):
        negative(archs, archs)
    not_numbers = get_architecture_distance(lambda a, b: "far", SPACE)
    with pytest.raises(TypeError, match="array of numbers"):
        not_numbers(archs, archs)


def test_user_callable_receives_lists():
    seen = []

    def recorder(archs_a, archs_b):
        seen.append((type(archs_a), type(archs_b)))
        return np.zeros((len(archs_a), len(archs_b)))

    archs = SPACE.sample_many(2, rng=4)
    get_architecture_distance(recorder)(tuple(archs), iter(archs))
    assert seen == [(list, list)]


def test_distance_modules_import_neither_tensorflow_nor_keras():
    code = (
        "import sys\n"
        "import kbnas.core.distances, kbnas.core.distance_cache, kbnas.core.edit_distance, kbnas.core.otmann\n"
        "loaded = sorted(name for name in ('tensorflow', 'keras', 'keras_tuner') if name in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    repository_root = pathlib.Path(kbnas.__file__).resolve().parents[1]
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repository_root
    )
    assert output.stdout.strip() == ""
