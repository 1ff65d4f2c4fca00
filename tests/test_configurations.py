"""`kbnas.configurations.ConfigurationSpace`: encodings, moves and distances of
KerasTuner hyperparameters."""

from __future__ import annotations

import keras_tuner
import numpy as np
import pytest

from kbnas.configurations import CATEGORICAL, NUMERIC, ConfigurationSpace
from kbnas.core.distances import hyperparameter_distances


def _space():
    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [16, 32, 64, 128])  # numeric values: KerasTuner makes it ordered
    hp.Choice("activation", ["relu", "tanh", "gelu"])
    hp.Choice("codes", [1, 2, 3], ordered=False)
    hp.Boolean("bn")
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    return ConfigurationSpace(hp)


def test_ordered_choices_are_numeric_by_position_and_the_rest_categorical():
    """Issue 12, defect 8: Choice(ordered=True) used to be an unordered category."""
    space = _space()
    assert space.kinds == [NUMERIC, CATEGORICAL, CATEGORICAL, CATEGORICAL, NUMERIC]
    x = space.encode([{"units": 16, "activation": "tanh", "codes": 3, "bn": True, "lr": 1e-4},
                      {"units": 128, "activation": "relu", "codes": 1, "bn": False, "lr": 1e-1}])
    np.testing.assert_allclose(x[:, 0], [0.125, 0.875])  # (i + 1/2) / n
    np.testing.assert_allclose(x[:, 1:4], [[1, 2, 1], [0, 0, 0]])
    np.testing.assert_allclose(x[:, 4], [0.0, 1.0], atol=1e-9)


def test_ordered_choice_distance_grows_with_the_gap():
    space = _space()
    base = {"activation": "relu", "codes": 1, "bn": False, "lr": 1e-3}
    configs = [dict(base, units=u) for u in (16, 32, 128)]
    x = space.encode(configs)
    units = hyperparameter_distances(x, x, space.kinds)[0]
    assert 0 < units[0, 1] < units[0, 2]
    codes = [dict(base, units=16, codes=c) for c in (1, 2, 3)]
    x = space.encode(codes)
    d = hyperparameter_distances(x, x, space.kinds)[2]
    assert d[0, 1] == d[0, 2] > 0  # unordered: every other value is equally far


def test_moves_of_an_ordered_choice_go_mostly_to_neighbours():
    space = _space()
    rng = np.random.default_rng(0)
    start = {"units": 32, "activation": "relu", "codes": 1, "bn": False, "lr": 1e-3}
    moved = []
    for _ in range(400):
        values = space.mutate(start, rng)
        if values["units"] != start["units"]:
            moved.append(values["units"])
    assert moved and all(v in (16, 64, 128) for v in moved)
    neighbours = sum(v in (16, 64) for v in moved) / len(moved)
    assert neighbours == pytest.approx(0.75 + 0.25 * 2 / 3, abs=0.1)
    # Every move changes the chosen dimension (no silent no-op).
    changed = [space.mutate(start, rng) != start for _ in range(100)]
    assert all(changed)
