"""kbnas.ensemble: the members' schedule under a deadline, and the averaging model."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from kbnas.ensemble import (
    ENSEMBLE_NAME,
    EnsembleSettings,
    average_models,
    ensemble_members,
    member_seed,
    train_members,
)
from kbnas.export import export_model
from kbnas.space import SearchSpace


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def schedule(durations, members, deadline):
    clock = Clock()

    def train_one(index):
        clock.now += durations[index]
        return index

    trained, seconds = train_members(train_one, members, deadline, clock=clock)
    return trained, seconds, clock.now


def test_without_a_deadline_every_member_trains():
    trained, seconds, _ = schedule([2.0, 3.0, 4.0], 3, None)
    assert trained == [0, 1, 2] and seconds == [2.0, 3.0, 4.0]


def test_a_member_begins_only_when_the_mean_duration_so_far_fits():
    # 3 s each, deadline 10 s: after three (9 s) one more would end at 12 s.
    trained, _, now = schedule([3.0] * 5, 5, 10.0)
    assert trained == [0, 1, 2] and now == 9.0
    # Exactly fitting counts: 2.5 s each end at 10 s.
    assert schedule([2.5] * 5, 5, 10.0)[0] == [0, 1, 2, 3]
    # The first member trains even past the deadline; no second follows it.
    trained, _, now = schedule([12.0, 1.0], 2, 10.0)
    assert trained == [0] and now == 12.0
    # The mean of those before: 1 s then 7 s (mean 4) at 8 s leaves 2 s: no third.
    assert schedule([1.0, 7.0, 0.1], 3, 10.0)[0] == [0, 1]


def test_settings_and_seeds():
    assert EnsembleSettings().members == 5
    assert EnsembleSettings(members=1).reserved_share == 0.0
    assert EnsembleSettings(members=2, time_share=0.25).reserved_share == 0.25
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="members"):
            EnsembleSettings(members=bad)
    with pytest.raises(ValueError, match="time_share"):
        EnsembleSettings(time_share=1.0)
    with pytest.raises(ValueError, match="members must be at least 1"):
        train_members(lambda k: k, 0)
    assert member_seed(1234, 0) == 1234
    seeds = [member_seed(2**31 - 2, k) for k in range(10)]
    assert len(set(seeds)) == 10 and all(0 <= s < 2**31 - 1 for s in seeds)


def _member(seed: int, outputs: int = 3, activation: str = "softmax") -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation=activation, name="head")(hidden), name="convnet")


def test_the_ensemble_predicts_the_mean_of_its_members_and_reloads(tmp_path):
    members = [_member(seed) for seed in range(3)]
    ensemble = average_models(members, task="multiclass")
    assert ensemble.name == ENSEMBLE_NAME
    assert [m.name for m in ensemble_members(ensemble)] == ["member_0", "member_1", "member_2"]
    assert [m.get_layer("head") for m in ensemble_members(ensemble)] == [m.get_layer("head") for m in members]
    assert ensemble.count_params() == 3 * members[0].count_params()
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    expected = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    metrics = ensemble.evaluate(x, np.zeros(16, dtype="int64"), verbose=0, return_dict=True)
    assert set(metrics) >= {"accuracy", "loss"}
    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert len(ensemble_members(reloaded)) == 3


def test_one_model_is_its_own_ensemble_and_mismatched_members_are_refused():
    single = _member(0)
    assert average_models([single], task="multiclass") is single
    assert ensemble_members(single) == [single]
    with pytest.raises(ValueError, match="shapes differ"):
        average_models([_member(0), _member(1, outputs=2)], task="multiclass")
    with pytest.raises(ValueError, match="at least one"):
        average_models([], task="multiclass")


def test_an_exported_ensemble_serves_the_mean_and_records_its_members(tmp_path):
    import tensorflow as tf

    from kbnas.hypermodel import ConvNetHyperModel

    x = np.random.default_rng(1).normal(size=(40, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    hypermodel = ConvNetHyperModel(max_depth=3)
    hypermodel.configure(x, y)
    members = []
    for seed in range(2):
        keras.utils.set_random_seed(seed)
        members.append(hypermodel.build_architecture("dense-32|relu"))
    ensemble = average_models(members, task=hypermodel.task)
    space: SearchSpace = hypermodel.search_space
    paths = export_model(ensemble, tmp_path / "export", architecture="dense-32|relu", search_space=space)
    info = json.loads(paths.architecture_json.read_text())
    assert info["ensemble"] == {"members": 2, "combination": "mean of the outputs"}
    assert info["architecture"]["param_count"] == space.param_count(space.from_hp_value("dense-32|relu"))
    served = tf.saved_model.load(str(paths.saved_model)).signatures["serving_default"](inputs=tf.constant(x))
    (output,) = served.values()
    expected = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(output.numpy(), expected, rtol=1e-5, atol=1e-6)
    # A member of another architecture fails the parameter check, as a single model does.
    mixed = average_models([members[0], hypermodel.build_architecture("dense-64|relu")], task=hypermodel.task)
    with pytest.raises(ValueError, match="is it the right architecture"):
        export_model(mixed, tmp_path / "mixed", architecture="dense-32|relu", search_space=space)
    single = json.loads(export_model(members[0], tmp_path / "single", architecture="dense-32|relu",
                                     search_space=space).architecture_json.read_text())
    assert single["ensemble"] is None
