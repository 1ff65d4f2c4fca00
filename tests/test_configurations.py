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


# ------------------------------------------------------------ unread hyperparameters
def _depth_loop_space(max_depth: int = 4, with_lr: bool = False) -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    if with_lr:
        hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Int("depth", 1, max_depth)
    for slot in range(max_depth):
        hp.Choice(f"layer_{slot}", ["a", "b", "c"])
    return hp


def _read_values(depth: int, tokens: str, lr: float | None = None) -> dict:
    values = {"depth": depth, **{f"layer_{i}": t for i, t in enumerate(tokens[:depth])}}
    return values if lr is None else {"lr": lr, **values}


def test_unread_conditions_of_the_depth_loop_are_learned_from_the_values_trials_read():
    from kbnas.configurations import infer_unread_conditions

    space = _depth_loop_space().space
    observed = [_read_values(1, "a"), _read_values(3, "abc"), _read_values(2, "bb"), _read_values(4, "cccc")]
    assert infer_unread_conditions(space, observed) == {
        "layer_1": ("depth", frozenset({1})),
        "layer_2": ("depth", frozenset({1, 2})),
        "layer_3": ("depth", frozenset({1, 2, 3})),
    }
    # Nothing unread (KerasTuner's own Tuner reports every value): no condition.
    full = [{"depth": d, "layer_0": "a", "layer_1": "a", "layer_2": "a", "layer_3": "a"} for d in (1, 2)]
    assert infer_unread_conditions(space, full) == {}
    # A slot read at a depth where it also went unread has no consistent parent.
    contradicting = [*observed, {"depth": 1, "layer_0": "a", "layer_1": "b"}]
    assert "layer_1" not in infer_unread_conditions(space, contradicting)
    # A value no completed trial read gets no rule (it may be read where nothing
    # records it), and a parent comes before its child in space order.
    shallow = [_read_values(1, "a"), _read_values(2, "ab")]
    assert set(infer_unread_conditions(space, shallow)) == {"layer_1"}
    hp = keras_tuner.HyperParameters()
    hp.Boolean("a")
    hp.Boolean("h")
    hp.Boolean("b")
    assert infer_unread_conditions(hp.space, [{"a": True, "b": True}, {"a": True, "h": False, "b": False}]) == {}


def test_the_parent_with_fewest_observed_values_wins_over_an_earlier_continuous_one():
    from kbnas.configurations import infer_unread_conditions

    space = _depth_loop_space(3, with_lr=True).space
    # Every lr is distinct, so lr also separates read from unread trials.
    observed = [_read_values(1, "a", 0.001), _read_values(3, "abc", 0.002), _read_values(2, "ab", 0.003),
                _read_values(1, "b", 0.004), _read_values(3, "bbb", 0.005)]
    conditions = infer_unread_conditions(space, observed)
    assert conditions["layer_1"] == ("depth", frozenset({1}))
    assert conditions["layer_2"] == ("depth", frozenset({1, 2}))


def test_a_space_with_unread_conditions_samples_projects_and_fills_like_a_conditional_one():
    from kbnas.configurations import infer_unread_conditions

    hp = _depth_loop_space(3)
    cspace = ConfigurationSpace(hp)
    cspace.unread_conditions = infer_unread_conditions(
        hp.space, [_read_values(1, "a"), _read_values(2, "ab"), _read_values(3, "abc")])
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = cspace.sample(rng)
        assert set(values) == {"depth", *(f"layer_{i}" for i in range(values["depth"]))}
        neighbour = cspace.mutate(values, rng)
        assert cspace.project(neighbour) == neighbour
    full = {"depth": 1, "layer_0": "b", "layer_1": "c", "layer_2": "a"}
    assert cspace.project(full) == {"depth": 1, "layer_0": "b"}
    # Every configuration, each once: 3 + 9 + 27.
    everything = cspace.enumerate(1000)
    assert len(everything) == 39 and len({tuple(sorted(v.items())) for v in everything}) == 39
    # What a trial is handed: defaults where only the learned rule left a value out.
    assert cspace.fill_unread({"depth": 1, "layer_0": "b"}) == {"depth": 1, "layer_0": "b", "layer_1": "a",
                                                                 "layer_2": "a"}
    # Unobserved parent values keep the slot active (no rule learned for depth 3 yet).
    cspace.unread_conditions = infer_unread_conditions(hp.space, [_read_values(1, "a"), _read_values(2, "ab")])
    assert cspace.project(full | {"depth": 3}) == {"depth": 3, "layer_0": "b", "layer_1": "c", "layer_2": "a"}
