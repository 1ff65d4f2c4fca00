"""kbnas.keras_tuner_internals against the installed KerasTuner: each private name
kbnas relies on still exists, has the signature kbnas calls, and does what kbnas
expects. A KerasTuner release that changes one fails here."""

from __future__ import annotations

import configparser
import importlib
import inspect
import json
import os
import pathlib

import keras_tuner
import pytest
from packaging.specifiers import SpecifierSet

from kbnas import keras_tuner_internals as kt_internals
from kbnas.oracle import BayesianNASOracle
from kbnas.tuner import BayesianNAS

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _oracle(tmp_path, **kwargs) -> keras_tuner.Oracle:
    hp = keras_tuner.HyperParameters()
    hp.Choice("x", [1, 2, 3])
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("score", "max"), max_trials=5, hyperparameters=hp, seed=0, **kwargs
    )
    kt_internals.set_project_dir(oracle, str(tmp_path), "p")
    return oracle


def test_installed_keras_tuner_is_in_the_tested_range_and_setup_cfg_requires_it():
    specifier = SpecifierSet(",".join(kt_internals.TESTED_VERSIONS))
    assert keras_tuner.__version__ in specifier, keras_tuner.__version__
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requirements = [line.strip() for line in config["options"]["install_requires"].splitlines()]
    assert f"keras-tuner{','.join(kt_internals.TESTED_VERSIONS)}" in requirements


@pytest.mark.parametrize(
    ("cls", "name", "parameters"),
    [
        (keras_tuner.Oracle, "_save_trial", ["self", "trial"]),
        (keras_tuner.Oracle, "_check_consecutive_failures", ["self"]),
        (keras_tuner.Oracle, "_get_oracle_fname", ["self"]),
        (keras_tuner.Oracle, "_get_trial_dir", ["self", "trial_id"]),
        (keras_tuner.Oracle, "_compute_values_hash", ["self", "values"]),
        (keras_tuner.Oracle, "_set_project_dir", ["self", "directory", "project_name"]),
        (keras_tuner.engine.base_tuner.BaseTuner, "_populate_initial_space", ["self"]),
        (keras_tuner.engine.base_tuner.BaseTuner, "_run_and_update_trial", ["self", "trial", "fit_args", "fit_kwargs"]),
        (keras_tuner.engine.base_tuner.BaseTuner, "_get_tuner_fname", ["self"]),
        (keras_tuner.engine.base_tuner.BaseTuner, "_is_worker", ["self"]),
        (keras_tuner.Tuner, "_get_checkpoint_fname", ["self", "trial_id"]),
    ],
)
def test_private_methods_keep_their_signatures(cls, name, parameters):
    assert list(inspect.signature(getattr(cls, name)).parameters) == parameters


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(BayesianNASOracle, keras_tuner.Oracle), (BayesianNAS, keras_tuner.Tuner)],
)
def test_private_names_kbnas_defines_do_not_shadow_keras_tuner(ours, theirs):
    overridden = {name for cls, name in kt_internals.OVERRIDDEN_METHODS}
    for cls in ours.__mro__:
        if cls.__module__.startswith("keras_tuner"):
            break
        for name in vars(cls):
            if name.startswith("_") and not name.startswith("__") and name not in overridden:
                assert not hasattr(theirs, name), f"{cls.__name__}.{name} shadows KerasTuner's"
    for cls, name in kt_internals.OVERRIDDEN_METHODS:
        assert callable(getattr(cls, name)), (cls, name)


def test_hyperparameter_types_are_the_classes_keras_tuner_builds():
    hp = keras_tuner.HyperParameters()
    made = [hp.Choice("c", [1, 2]), hp.Int("i", 0, 3), hp.Float("f", 0.0, 1.0), hp.Boolean("b"), hp.Fixed("x", 1)]
    types = kt_internals.hyperparameter_types
    expected = [types.Choice, types.Int, types.Float, types.Boolean, types.Fixed]
    assert [type(h) for h in hp.space] == expected, made


def test_trial_files_hash_and_tried_set(tmp_path):
    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    values = dict(trial.hyperparameters.values)

    assert kt_internals.values_hash(oracle, values) in kt_internals.tried_so_far(oracle)
    assert kt_internals.values_hash(oracle, values) == kt_internals.values_hash(oracle, dict(reversed(values.items())))
    assert kt_internals.project_dir(oracle) == os.path.join(str(tmp_path), "p")
    assert kt_internals.oracle_file(oracle) == os.path.join(str(tmp_path), "p", "oracle.json")
    trial_file = os.path.join(kt_internals.trial_dir(oracle, trial.trial_id), "trial.json")
    assert os.path.isfile(trial_file)  # create_trial saved it there
    os.remove(trial_file)
    kt_internals.save_trial(oracle, trial)
    assert json.loads(pathlib.Path(trial_file).read_text())["trial_id"] == trial.trial_id
    empty = kt_internals.empty_metrics(trial)
    assert type(empty) is type(trial.metrics) and not empty.metrics


def test_end_trial_saves_through_save_trial_and_reload_refills_the_retry_queue(tmp_path, monkeypatch):
    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    saved = []
    real = type(oracle)._save_trial
    monkeypatch.setattr(type(oracle), "_save_trial", lambda self, t: (saved.append(t.trial_id), real(self, t)))
    oracle.update_trial(trial.trial_id, {"score": 1.0})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    assert trial.trial_id in saved  # the atomic trial.json override is what KerasTuner calls
    running = oracle.create_trial("tuner0")
    oracle.save()

    reloaded = _oracle(tmp_path)
    reloaded.reload()
    # A trial running when the search stopped comes back through the retry queue,
    # which KerasTuner pops from first.
    assert kt_internals.retry_queue(reloaded) == [running.trial_id]
    # end_trial counted the finished trial's one run and recorded its end; the reload kept both.
    assert kt_internals.run_times(reloaded)[trial.trial_id] == 1
    assert running.trial_id not in dict(kt_internals.run_times(reloaded))  # never ended
    assert reloaded.end_order == [trial.trial_id]
    kt_internals.set_retry_queue(reloaded, [])
    assert reloaded.create_trial("tuner0").trial_id not in (trial.trial_id, running.trial_id)


def test_seed_state_drives_keras_tuner_random_draws(tmp_path):
    # Oracles of different seeds (1 and 2: KerasTuner replaces a seed of 0 by a random
    # one) draw from a million values; the seed state alone decides the draws.
    def draws(seed, state, folder):
        hp = keras_tuner.HyperParameters()
        hp.Int("x", 0, 10**6)
        oracle = keras_tuner.oracles.RandomSearchOracle(
            objective=keras_tuner.Objective("score", "max"), max_trials=5, hyperparameters=hp, seed=seed)
        kt_internals.set_project_dir(oracle, str(tmp_path / folder), "p")
        if state is not None:
            kt_internals.set_seed_state(oracle, state)
        return [oracle.create_trial(f"tuner{i}").hyperparameters.values["x"] for i in range(3)]

    assert draws(1, None, "a") != draws(2, None, "b")  # the seeds differ…
    assert draws(1, 123, "c") == draws(2, 123, "d")  # …the seed state overrides them
    assert draws(1, 123, "e") != draws(1, 456, "f")


def test_local_oracle_of_a_client_and_tuner_files(tmp_path, monkeypatch):
    # A client only opens a (lazy) gRPC channel: no chief needs to listen.
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "1")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner-x")
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), max_trials=2, seed=0)
    # KerasTuner exports no public name for the client: this test, which exists to
    # notice KerasTuner changing, reaches its module (kbnas never imports it).
    client = importlib.import_module("keras_tuner.src.distribute.oracle_client").OracleClient(oracle)
    assert kt_internals.local_oracle(client) is oracle
    assert kt_internals.local_oracle(oracle) is oracle
    monkeypatch.undo()  # a plain (chief-less) tuner below
    kt_internals.register_tuner_ids(oracle, ["worker-a"])
    assert "worker-a" in oracle.tuner_ids

    def build(hp):
        import keras

        hp.Choice("units", [2, 4])
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    tuner = keras_tuner.RandomSearch(build, objective="val_loss", max_trials=1, directory=str(tmp_path), project_name="t")
    assert kt_internals.tuner_file(tuner) == os.path.join(str(tmp_path), "t", "tuner0.json")
    assert kt_internals.is_worker(tuner) is False


def test_forget_metric_drops_every_observation_of_one_metric_only():
    tracker = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters()).metrics  # (its class has no public name)
    for step in range(3):
        tracker.update("a", float(step), step=step)
        tracker.update("b", float(step), step=step)
    kt_internals.forget_metric(tracker, "a")
    kt_internals.forget_metric(tracker, "never reported")
    assert not tracker.exists("a") and len(tracker.get_history("b")) == 3
    tracker.update("a", 9.0, step=1)
    assert [(o.step, o.value) for o in tracker.get_history("a")] == [(1, [9.0])]
