"""BayesianNAS end to end: real (tiny) searches that train Keras models."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import kbnas
from kbnas import BayesianNAS, ConvNetHyperModel
from kbnas.datasets import load_digits_split
from kbnas.report.record import read_search

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def digits():
    split = load_digits_split()
    return split.x_train[:300], split.y_train[:300], split.x_val[:120], split.y_val[:120]


def test_search_end_to_end_and_resume(tmp_path, digits, capsys):
    x, y, xv, yv = digits

    def make(max_trials):
        return BayesianNAS(ConvNetHyperModel(max_depth=3), max_trials=max_trials, seed=0, num_initial_points=2,
                           directory=str(tmp_path), project_name="p")

    tuner = make(3)
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    trials = tuner.oracle.trials
    assert len(trials) == 3
    assert all(t.status == "COMPLETED" for t in trials.values())
    assert tuner.oracle.objective.name == "val_accuracy"
    assert tuner.oracle.proposal_log[max(trials)]["method"] == "gp-ei"
    architectures = [t.hyperparameters.values["architecture"] for t in trials.values()]
    assert len(set(architectures)) == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        best = tuner.get_best_models(1)[0]
    # Keras's warning about the checkpoint's optimizer variables is not shown (BayesianNAS.load_model).
    assert not [w for w in caught if str(w.message).startswith(kbnas.tuner.OPTIMIZER_NOT_RESTORED)]
    assert best.predict(xv[:5], verbose=0).shape == (5, 10)
    capsys.readouterr()
    tuner.results_summary(1)
    summary = capsys.readouterr().out.splitlines()
    # The order is the posterior mean's, not the printed Score's: said first.
    assert summary[0].startswith("kbnas: trials in the order of the GP's posterior mean")
    assert summary[1] == "Results summary"
    tuner.oracle.settings = dataclasses.replace(tuner.oracle.settings, recommendation="observed")
    tuner.results_summary(1)
    assert capsys.readouterr().out.splitlines()[0] == "Results summary"  # ordered by score, as in KerasTuner
    tuner.oracle.settings = dataclasses.replace(tuner.oracle.settings, recommendation="posterior_mean")

    # Reopened without a search, as a new process would: the trials' models are rebuilt
    # with the saved input statistics (not constants of a checkpoint), whether the
    # hypermodel is unconfigured or configured without data (identity statistics).
    expected = best.predict(xv[:20], verbose=0)
    for hypermodel in (ConvNetHyperModel(max_depth=3),
                       ConvNetHyperModel(max_depth=3, input_shape=(8, 8, 1), task="multiclass", num_classes=10)):
        reopened = BayesianNAS(hypermodel, max_trials=3, seed=0, directory=str(tmp_path), project_name="p")
        np.testing.assert_allclose(reopened.get_best_models(1)[0].predict(xv[:20], verbose=0), expected, atol=1e-6)
        np.testing.assert_allclose(np.ravel(hypermodel.input_mean), np.ravel(tuner.hypermodel.input_mean))
    # Data that do not fit the saved configuration: one error before any training.
    with pytest.raises(ValueError, match="labels must lie in"):
        make(4).search(x, np.where(y == 9, 10, y), validation_data=(xv, yv), epochs=2, verbose=0)
    with pytest.raises(ValueError, match=r"another architecture space \(num_outputs 10 there, 3 now\): its 3 "
                                         r"trials' models take other inputs or give other outputs"):
        BayesianNAS(ConvNetHyperModel(max_depth=3, input_shape=(8, 8, 1), task="multiclass", num_classes=3),
                    directory=str(tmp_path), project_name="p")

    resumed = make(4)
    assert len(resumed.oracle.trials) == 3
    resumed.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    assert len(resumed.oracle.trials) == 4
    assert len({t.hyperparameters.values["architecture"] for t in resumed.oracle.trials.values()}) == 4


def test_data_that_cannot_serve_the_search_are_named_before_any_training(tmp_path, digits):
    import tensorflow as tf

    x, y, xv, yv = digits
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=2, directory=str(tmp_path), project_name="p")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    with pytest.raises(ValueError, match=r"^the objective val_accuracy is a validation metric and search\(\) got "
                                         r"no validation data: pass validation_data="):
        tuner.search(dataset, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^validation_split needs arrays; with a tf.data.Dataset, pass validation_data$"):
        tuner.search(dataset, validation_split=0.2, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"validation x has per-example shape \(4, 4, 1\), but training x has "
                                         r"\(8, 8, 1\)"):
        tuner.search(x, y, validation_data=(xv[:, :4, :4], yv), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation labels: labels must lie in"):
        tuner.search(x, y, validation_data=(xv, yv + 10), epochs=1, verbose=0)
    assert not tuner.oracle.trials
    # A fit of the user's own may make its validation data: KerasTuner's behaviour.
    class OwnFit(keras_tuner.HyperModel):
        def build(self, hp):
            return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])

        def fit(self, hp, model, data, **kwargs):
            model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            return model.fit(data.skip(2), validation_data=data.take(2), **kwargs)

    own = BayesianNAS(OwnFit(), objective="val_accuracy", max_trials=1, directory=str(tmp_path), project_name="own")
    own.search(dataset, epochs=1, verbose=0)
    assert [t.status for t in own.oracle.trials.values()] == ["COMPLETED"]
    # So may a run_trial of a BayesianNAS subclass, and a ConvNetHyperModel subclass's fit.
    class OwnRunTrial(BayesianNAS):
        def run_trial(self, trial, *args, **kwargs):
            return super().run_trial(trial, *args, validation_data=dataset.take(2), **kwargs)

    class HeldOut(ConvNetHyperModel):
        def fit(self, hp, model, data, **kwargs):
            return super().fit(hp, model, data.skip(2), validation_data=data.take(2), **kwargs)

    for tuner in (OwnRunTrial(ConvNetHyperModel(max_depth=2), directory=str(tmp_path), project_name="r"),
                  BayesianNAS(HeldOut(max_depth=2), directory=str(tmp_path), project_name="f")):
        tuner.prepare_search(dataset, epochs=1)  # no error
    # Keras's validation_split of inputs that are not one array (two inputs): Keras's business.
    def two_inputs(hp):
        a, b = keras.Input((2,)), keras.Input((3,))
        model = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Concatenate()([a, b])))
        model.compile(optimizer="adam", loss="mse")
        return model

    BayesianNAS(two_inputs, objective="val_loss", directory=str(tmp_path), project_name="two").prepare_search(
        [np.zeros((10, 2)), np.zeros((10, 3))], np.zeros(10), validation_split=0.2, epochs=1)


def test_a_misspelled_objective_is_named_at_the_first_epoch(tmp_path):
    import warnings
    from types import SimpleNamespace

    model, logs = SimpleNamespace(stop_training=False), {"loss": 0.9, "accuracy": 0.7, "val_loss": 1.0,
                                                         "val_accuracy": 0.6}
    tuner = BayesianNAS(_plain_build, objective="val_acc", directory=str(tmp_path), project_name="p")
    with pytest.warns(RuntimeWarning, match=r"the objective 'val_acc' is not among the metrics Keras logs "
                                            r"\(accuracy, loss, val_accuracy, val_loss\): did you mean "
                                            r"'val_accuracy'\?"):
        tuner.on_epoch_end(SimpleNamespace(trial_id="0"), model, 0, logs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tuner.on_epoch_end(SimpleNamespace(trial_id="1"), model, 0, logs)  # once a search
        # An objective run_trial returns (KerasTuner's custom-objective pattern): nothing to say.
        custom = BayesianNAS(_plain_build, objective=keras_tuner.Objective("score", "max"), directory=str(tmp_path),
                             project_name="q")
        custom.on_epoch_end(SimpleNamespace(trial_id="0"), model, 0, logs)


def test_a_missing_objective_stops_the_search_after_the_first_trial(tmp_path):
    x, y = np.random.default_rng(0).random((40, 8, 8, 1)), np.arange(40) % 10
    tuner = BayesianNAS(_plain_build, objective="val_acc", max_trials=3, directory=str(tmp_path), project_name="p")
    with pytest.warns(RuntimeWarning, match="did you mean 'val_accuracy'"), \
            pytest.raises(keras_tuner.errors.FatalValueError,
                          match=r"^kbnas: the objective 'val_acc' is not among the metrics trial 0 reported "
                                r"\(accuracy, loss, val_accuracy, val_loss\): did you mean 'val_accuracy'\? "):
        tuner.search(x, y, epochs=1, validation_split=0.25, verbose=0)
    assert len(tuner.oracle.trials) == 1  # KerasTuner alone trains 3, failing each

    class Returns(BayesianNAS):
        """KerasTuner's custom-objective pattern: run_trial returns the objective."""

        def run_trial(self, trial, *args, **kwargs):
            histories = super().run_trial(trial, *args, **kwargs)  # one per execution
            return {"val_acc": histories[-1].history["val_accuracy"][-1]}

    own = Returns(_plain_build, objective=keras_tuner.Objective("val_acc", "max"), max_trials=2,
                  directory=str(tmp_path), project_name="q")
    with pytest.warns(RuntimeWarning, match="did you mean"):
        own.search(x, y, epochs=1, validation_split=0.25, verbose=0)
    assert [t.status for t in own.oracle.trials.values()] == ["COMPLETED"] * 2


def test_retraining_defaults_to_the_global_batch_of_the_search(tmp_path, monkeypatch):
    from types import SimpleNamespace

    tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), directory=str(tmp_path), project_name="p",
                        distribution_strategy=None)
    tuner.distribution_strategy = SimpleNamespace(num_replicas_in_sync=2)
    assert tuner._search_global_batch_size() == 64  # ConvNetHyperModel's batch is per replica: 32 by default
    tuner._search_batch_size = 16
    assert tuner._search_global_batch_size() == 32
    plain = BayesianNAS(lambda hp: keras.Sequential([keras.layers.Dense(1)]), objective="loss",
                        directory=str(tmp_path), project_name="q", distribution_strategy=None)
    plain.distribution_strategy = SimpleNamespace(num_replicas_in_sync=2)
    assert plain._search_global_batch_size() is None  # Keras's fit: its batch_size is the global one
    plain._search_batch_size = 16
    assert plain._search_global_batch_size() == 16
    # retrain_best passes it on, and a reopened tuner has the search's batch size.
    import kbnas.ensemble

    seen = []
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    def fake_retrain(build, x, y, **kwargs):
        seen.append(kwargs["batch_size"])
        return [model], [0.0]

    trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="0", status="COMPLETED")
    monkeypatch.setattr(kbnas.ensemble, "retrain", fake_retrain)
    def retrain(tuner):
        tuner.retrain_best(np.zeros((4, 1)), np.zeros(4), members=1, trial=trial)

    def reopen():
        return BayesianNAS(ConvNetHyperModel(max_depth=2), directory=str(tmp_path), project_name="p",
                           distribution_strategy=None)

    tuner._search_batch_size = 16
    retrain(tuner)
    tuner.save()
    retrain(reopened := reopen())
    assert seen == [32, 16]  # 16 per replica on 2 replicas; reopened without a strategy
    # A parallel search's chief (one device) whose workers trained each trial on 2 GPUs
    # (kbnas.ParallelSearch sets it): their global batch, also after a reopen.
    reopened._trial_devices = 2
    retrain(reopened)
    reopened.save()
    retrain(again := reopen())
    assert seen[2:] == [32, 32]
    # Resumed where its trials train on one device: the first run's count stays, with a warning.
    with pytest.warns(RuntimeWarning, match=r"trained on 2 device\(s\) each, these train on 1: "):
        again._record_trial_devices(1)
    assert again._search_global_batch_size() == 32
    # A search in its own process records its strategy's replicas.
    fresh = BayesianNAS(ConvNetHyperModel(max_depth=1), max_trials=1, directory=str(tmp_path), project_name="f",
                        distribution_strategy=None)
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    fresh.search(x, (x[:, 0] > 0).astype(int), validation_split=0.25, epochs=1, batch_size=8, verbose=0)
    assert fresh._devices_per_trial() == 1 and fresh._search_global_batch_size() == 8
    assert json.loads((tmp_path / "f" / "tuner0.json").read_text())["kbnas_trial_devices"] == 1


def test_a_parallel_searchs_devices_per_trial_are_its_workers_gpus():
    from types import SimpleNamespace

    from kbnas.parallel import ParallelSearch
    from kbnas.parallel.plans import WorkerPlan

    def devices(*gpus):
        plans = [WorkerPlan(f"w{i}", g, (), 1) for i, g in enumerate(gpus)]
        return ParallelSearch.devices_per_trial.fget(SimpleNamespace(plans=plans))

    assert devices((0, 1), (2, 3)) == 2  # gpus_per_worker=2
    assert devices((0,), (1,)) == 1
    assert devices(None, None) == 1  # workers on CPU cores


def test_the_tuner_file_exists_before_the_first_trial_ends(tmp_path, digits):
    # KerasTuner reloads a search only where <tuner_id>.json exists; it wrote it first
    # after the first trial's end, so a kill right after that end started the search
    # over (the kill-and-resume flake: trial 1 trained again).
    x, y, xv, yv = digits
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=1, seed=1, directory=str(tmp_path),
                        project_name="p")
    seen = []
    tuner.oracle.trial_end_callbacks.append(
        lambda oracle, trial: seen.append((tmp_path / "p" / "tuner0.json").exists()))
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert seen == [True]
    # … so a new tuner on that folder reloads the finished trial.
    again = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=1, seed=1, directory=str(tmp_path),
                        project_name="p")
    assert [t.status for t in again.oracle.trials.values()] == ["COMPLETED"]


def test_validation_split_and_objective_default(tmp_path, digits):
    x, y, _, _ = digits
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=1, seed=1, directory=str(tmp_path))
    tuner.search(x, y, epochs=1, verbose=0)
    trial = next(iter(tuner.oracle.trials.values()))
    assert trial.status == "COMPLETED"
    # The default objective of a classification task, scored on a held-out split.
    assert (tuner.oracle.objective.name, tuner.oracle.objective.direction) == ("val_accuracy", "max")
    assert trial.metrics.exists("val_accuracy") and trial.score == trial.metrics.get_best_value("val_accuracy")
    tuner.oracle.finished = True  # as a parallel search leaves its oracle
    fit_args, fit_kwargs = tuner.prepare_search(x, y, epochs=1)
    n_val = len(fit_kwargs["validation_data"][0])
    assert len(fit_args[0]) + n_val == len(x) and n_val == round(0.2 * len(x))
    assert not tuner.oracle.finished  # a search of this tuner proposes trials again


def test_drop_in_for_plain_hyperparameter_search(tmp_path, digits):
    x, y, xv, yv = digits

    def build(hp):
        model = keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Rescaling(1 / 16),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Choice("units", [8, 16, 32]), activation=hp.Choice("act", ["relu", "tanh"])),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-1, sampling="log")),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = BayesianNAS(build, objective="val_accuracy", max_trials=4, seed=0, num_initial_points=2,
                        directory=str(tmp_path))
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert len(tuner.oracle.trials) == 4
    assert set(next(iter(tuner.oracle.trials.values())).hyperparameters.values) == {"units", "act", "lr"}


@pytest.mark.parametrize("tensorboard", [False, True])
def test_the_depth_loop_idiom_reports_only_the_values_each_trial_read(tmp_path, digits, tensorboard):
    x, y, xv, yv = digits
    # KerasTuner reads every value for a TensorBoard callback's HParams: those reads do not count.
    callbacks = [keras.callbacks.TensorBoard(str(tmp_path / "logs"))] if tensorboard else []

    def build(hp):
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 16), keras.layers.Flatten()])
        for i in range(hp.Int("depth", 1, 3)):
            model.add(keras.layers.Dense(hp.Choice(f"units_{i}", [4, 8, 16]), activation="relu"))
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    class Tuner(BayesianNAS):
        def run_trial(self, trial, *args, **kwargs):
            # KerasTuner's FAQ idiom: a hyperparameter read before the build.
            kwargs["batch_size"] = trial.hyperparameters.Choice("batch_size", [16, 64])
            return super().run_trial(trial, *args, **kwargs)

    tuner = Tuner(build, objective="val_accuracy", max_trials=6, seed=0, num_initial_points=3,
                  directory=str(tmp_path))
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0, callbacks=callbacks)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 6 and all(t.status == "COMPLETED" for t in trials)
    assert (tmp_path / "logs").is_dir() == tensorboard
    for trial in trials:
        values = trial.hyperparameters.values
        assert set(values) == {"depth", "batch_size", *(f"units_{i}" for i in range(values["depth"]))}, values
    # The best model is rebuilt from what its trial kept.
    best = tuner.get_best_models(1)[0]
    depth = tuner.get_best_hyperparameters(1)[0].values["depth"]
    assert len([layer for layer in best.layers if isinstance(layer, keras.layers.Dense)]) == depth + 1


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    from kbnas import BayesianNAS, ConvNetHyperModel
    from kbnas.datasets import load_digits_split
    split = load_digits_split()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=3), max_trials=2, seed=0, num_initial_points=1,
                        directory=sys.argv[1], distribution_strategy=strategy)
    tuner.search(split.x_train[:256], split.y_train[:256],
                 validation_data=(split.x_val[:128], split.y_val[:128]), epochs=1, verbose=0)
    statuses = [t.status for t in tuner.oracle.trials.values()]
    print("REPLICAS", strategy.num_replicas_in_sync, "STATUSES", *statuses)
    """
)


def test_search_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path)], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("REPLICAS")][-1]
    assert line.split() == ["REPLICAS", "2", "STATUSES", "COMPLETED", "COMPLETED"]


def test_a_model_that_diverges_is_a_failed_trial_and_the_search_goes_on(tmp_path, digits):
    x, y, xv, yv = digits
    x_bad = x.copy()

    class ExplodingHyperModel(ConvNetHyperModel):
        def build(self, hp):
            model = super().build(hp)
            # A loss that turns NaN on the first batch, as a diverging model's does.
            def nan_loss(y_true, y_pred):
                return keras.ops.mean(y_pred) * float("nan")

            model.compile(optimizer="adam", loss=nan_loss, metrics=["accuracy"])
            return model

    tuner = BayesianNAS(ExplodingHyperModel(max_depth=2), max_trials=2, seed=0, directory=str(tmp_path),
                        max_consecutive_failed_trials=5)
    tuner.search(x_bad, y, validation_data=(xv, yv), epochs=2, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2
    assert all(t.status == "FAILED" for t in trials)
    assert all("NaN" in (t.message or "") or "nan" in (t.message or "").lower() for t in trials)
    assert isinstance(tuner.oracle, keras_tuner.Oracle)
    assert np.isfinite(x_bad).all()


PARALLEL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import keras
    from kbnas import BayesianNAS, ConvNetHyperModel, EarlyStopping
    from kbnas.datasets import load_digits_split

    class CountEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with open(os.path.join(sys.argv[1], "epochs-" + os.environ["KERASTUNER_TUNER_ID"]), "a") as f:
                f.write("x")

    split = load_digits_split()
    # Every trial after the first that is not the best at epoch 2 (or 4) is stopped there
    # (ASHA: the rule that stops most in a search of six; the protocol is the same for both).
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=3), max_trials=6, seed=0, num_initial_points=2,
                        early_stopping=EarlyStopping(min_epochs=2, reduction_factor=2, min_peers=1, rule="asha"),
                        directory=sys.argv[1], project_name="parallel")
    tuner.search(split.x_train[:200], split.y_train[:200],
                 validation_data=(split.x_val[:100], split.y_val[:100]), epochs=5, verbose=0,
                 callbacks=[CountEpochs()])
    if os.environ["KERASTUNER_TUNER_ID"] == "chief":
        oracle = tuner.oracle
        trials = oracle.trials.values()
        print("STATUSES", *sorted(t.status for t in trials))
        print("DISTINCT", len({t.hyperparameters.values["architecture"] for t in trials}))
        print("PENDING", max(log.get("n_pending", 0) for log in oracle.proposal_log.values()))
        print("STOPPED", len(oracle.stopped_early))
        # Epochs each trial reported to the chief: stopped ones no further than their rung.
        reported = {t.trial_id: len(t.metrics.get_history("val_accuracy")) for t in trials}
        print("OVERRUN", sum(reported[i] != s["epochs"] for i, s in oracle.stopped_early.items()))
        print("REPORTED", sum(reported.values()))
    """
)


def test_chief_and_two_workers_through_keras_tuner_distributed_tuning(tmp_path):
    from kbnas.parallel import free_port

    port = str(free_port())
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERASTUNER_ORACLE_IP="127.0.0.1",
                KERASTUNER_ORACLE_PORT=port)
    chief = subprocess.Popen([sys.executable, "-c", PARALLEL_SCRIPT, str(tmp_path)],
                             env=dict(base, KERASTUNER_TUNER_ID="chief"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    workers = [
        subprocess.Popen([sys.executable, "-c", PARALLEL_SCRIPT, str(tmp_path)],
                         env=dict(base, KERASTUNER_TUNER_ID=f"tuner{i}"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    try:
        for worker in workers:
            _, err = worker.communicate(timeout=400)
            assert worker.returncode == 0, err[-3000:]
        out, err = chief.communicate(timeout=120)
    finally:
        for process in [chief, *workers]:
            if process.poll() is None:
                process.kill()
    assert chief.returncode == 0, err[-3000:]
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.split()}
    assert lines["STATUSES"] == ["COMPLETED"] * 6
    assert lines["DISTINCT"] == ["6"]
    assert int(lines["PENDING"][0]) >= 1
    # Early stopping across processes: the chief stopped trials, the workers'
    # training really stopped (the epochs they trained are the epochs reported).
    assert int(lines["STOPPED"][0]) >= 1
    assert lines["OVERRUN"] == ["0"]
    trained = sum(len((tmp_path / f"epochs-tuner{i}").read_text()) for i in range(2))
    assert trained == int(lines["REPORTED"][0]) < 6 * 5


def test_trial_training_seed_is_stable_and_differs_between_trials():
    from kbnas.tuner import trial_training_seed

    assert trial_training_seed(0, "00") == trial_training_seed(0, "00")
    assert len({trial_training_seed(seed, f"{i:02d}") for seed in (0, 1) for i in range(20)}) == 40
    assert all(0 <= trial_training_seed(7, str(i)) < 2**31 - 1 for i in range(100))


def test_a_search_with_a_fixed_seed_trains_the_same_models_again(tmp_path, digits):
    x, y, xv, yv = digits

    def scores(project):
        tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=2, seed=5, num_initial_points=2,
                            directory=str(tmp_path), project_name=project)
        tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
        trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
        return [(t.hyperparameters.values["architecture"], t.metrics.get_history("val_loss")[-1].value[0])
                for t in trials]

    first, second = scores("a"), scores("b")
    assert [a for a, _ in first] == [a for a, _ in second]
    np.testing.assert_allclose([v for _, v in first], [v for _, v in second], rtol=1e-4)


def test_a_search_leaves_numpy_global_random_state_as_it_found_it(tmp_path, digits):
    # run_trial seeds every generator for the trial and restores Python's and numpy's
    # afterwards. (Python's own generator is also drawn from by Keras/KerasTuner
    # outside run_trial, so only numpy's can be checked exactly.)
    x, y, xv, yv = digits
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=1, seed=5, directory=str(tmp_path))
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert np.random.rand() == expected


class EpochCounter(keras.callbacks.Callback):
    """Counts the epochs of every trial (KerasTuner deep-copies search callbacks)."""

    epochs: list[int] = []

    def __deepcopy__(self, memo):
        return self

    def on_train_begin(self, logs=None):
        EpochCounter.epochs.append(0)

    def on_epoch_end(self, epoch, logs=None):
        EpochCounter.epochs[-1] += 1


def test_time_budget_ends_the_search_and_cuts_the_running_trial(tmp_path, digits):
    """max_time=4 s with 500-epoch trials: one or two trials, cut long before 500 epochs."""
    import time

    x, y, xv, yv = digits
    EpochCounter.epochs = []
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=3), max_trials=50, seed=0, max_time=4.0,
                        directory=str(tmp_path), project_name="p")
    start = time.monotonic()
    # EarlyStopping with a patience no trial reaches: only the deadline can end training.
    never = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10_000)
    tuner.search(x, y, validation_data=(xv, yv), epochs=500, verbose=0, callbacks=[never, EpochCounter()])
    elapsed = time.monotonic() - start
    trials = list(tuner.oracle.trials.values())
    assert 1 <= len(trials) <= 3
    assert all(t.status == "COMPLETED" for t in trials)
    assert all(1 <= epochs < 500 for epochs in EpochCounter.epochs), EpochCounter.epochs
    assert tuner.oracle.search_seconds() >= 4.0
    # The clock stopped when search() returned: what follows is not search time,
    # and the saved state says the same.
    spent = tuner.oracle.search_seconds()
    time.sleep(0.3)
    assert tuner.oracle.search_seconds() == spent
    saved = json.loads((tmp_path / "p" / "oracle.json").read_text())
    assert saved["kbnas"]["search_seconds"] == pytest.approx(spent)
    # Building, compiling and checkpointing come on top of the budget, not 500 epochs.
    assert elapsed < 4.0 + 30.0


class _CountEpochs(keras.callbacks.Callback):
    """Counts epochs per trial across KerasTuner's deep copies of the callback."""

    counts: dict = {}

    def __init__(self, key="trial"):
        super().__init__()
        self.key = key

    def on_epoch_end(self, epoch, logs=None):
        _CountEpochs.counts[self.key] = _CountEpochs.counts.get(self.key, 0) + 1


def test_per_epoch_reports_are_the_trial_metrics_and_stopped_trials_really_stop(tmp_path, digits):
    import warnings

    from kbnas import EarlyStopping

    x, y, xv, yv = digits

    class Tuner(BayesianNAS):
        def run_trial(self, trial, *args, **kwargs):
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), _CountEpochs(trial.trial_id)]
            return super().run_trial(trial, *args, **kwargs)

    _CountEpochs.counts.clear()
    # ASHA: the rule that stops most in a search of five (the protocol is the same for both).
    tuner = Tuner(ConvNetHyperModel(max_depth=3), max_trials=5, seed=0, num_initial_points=2,
                  early_stopping=EarlyStopping(min_epochs=2, reduction_factor=2, min_peers=1, rule="asha"),
                  directory=str(tmp_path), project_name="es")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuner.search(x, y, validation_data=(xv, yv), epochs=6, verbose=0)
    assert not [w for w in caught if "update_trial" in str(w.message)]
    oracle = tuner.oracle
    assert oracle.stopped_early, "with min_peers=1 and η=2 some trial is stopped"
    for trial in oracle.trials.values():
        history = trial.metrics.get_history("val_accuracy")
        # KerasTuner kept the per-epoch reports as the trial's metrics (steps 0..e-1)
        # and scored the trial by its best epoch, as it scores a History.
        assert [obs.step for obs in history] == list(range(len(history)))
        # One value per epoch: KerasTuner did not report the History once more
        # after run_trial (it would append a second value at the best step).
        assert all(len(obs.value) == 1 for obs in history)
        assert trial.score == pytest.approx(max(obs.mean() for obs in history))
        assert trial.status == "COMPLETED"
        trained = _CountEpochs.counts[trial.trial_id]
        if oracle.is_stopped_early(trial.trial_id):
            assert trained == len(history) == oracle.stopped_early[trial.trial_id]["epochs"] < 6
        else:
            assert trained == len(history)
    best = oracle.get_best_trials(1)[0]
    assert not oracle.is_stopped_early(best.trial_id)
    assert tuner.get_best_models(1)[0].predict(xv[:3], verbose=0).shape == (3, 10)


def test_logs_without_the_objective_are_not_reported(tmp_path):
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), objective="val_accuracy", max_trials=1, seed=0,
                        directory=str(tmp_path), project_name="noobj")
    calls = []
    tuner.oracle.update_trial = lambda *a, **k: calls.append(a)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    class FakeTrial:
        trial_id = "00"

    tuner.on_epoch_end(FakeTrial(), model, 0, logs={"loss": 0.5, "accuracy": 0.5})
    assert calls == [] and not getattr(model, "stop_training", False)
    tuner.on_epoch_end(FakeTrial(), model, 0, logs={"loss": 0.5, "val_accuracy": 0.5})
    assert calls == [("00", {"loss": 0.5, "val_accuracy": 0.5})]
    # A multi-objective needs every one of its metrics (its get_value would sum what is there).
    tuner.oracle.objective = keras_tuner.oracles.RandomSearchOracle(
        objective=[keras_tuner.Objective("val_accuracy", "max"), keras_tuner.Objective("val_loss", "min")]
    ).objective
    calls.clear()
    tuner.on_epoch_end(FakeTrial(), model, 1, logs={"val_accuracy": 0.5})
    assert calls == []


def test_retrain_best_trains_the_recommendation_afresh_as_an_ensemble(tmp_path, digits):
    from kbnas.ensemble import ensemble_members, retrain
    from kbnas.tuner import trial_training_seed

    x, y, xv, yv = digits
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=2, seed=3, num_initial_points=2,
                        directory=str(tmp_path), project_name="p")
    with pytest.raises(ValueError, match="completed trial"):
        tuner.retrain_best(x, y)
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    x_all, y_all = np.concatenate([x, xv]), np.concatenate([y, yv])
    ensemble = tuner.retrain_best(x_all, y_all, members=2, epochs=1)
    members = ensemble_members(ensemble)
    assert [m.name for m in members] == ["member_0", "member_1"]
    np.testing.assert_allclose(ensemble.predict(xv[:8], verbose=0),
                               np.mean([m.predict(xv[:8], verbose=0) for m in members], axis=0), atol=1e-6)
    assert set(ensemble.evaluate(xv, yv, verbose=0, return_dict=True)) >= {"accuracy", "loss"}
    # Member 0 is the model one retraining of the recommendation gives: the trial's seed.
    trial = tuner.oracle.get_best_trials(1)[0]
    (alone,), _ = retrain(lambda: tuner.hypermodel.build(trial.hyperparameters), x_all, y_all,
                          seed=trial_training_seed(3, trial.trial_id), epochs=1, members=1)
    for mine, theirs in zip(members[0].get_weights(), alone.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(members[1].get_weights()[0], alone.get_weights()[0])  # another seed
    single = tuner.retrain_best(x_all, y_all, members=1, epochs=1)
    assert ensemble_members(single) == [single]  # one member: that model, not an ensemble
    # A trial by its id, and a tf.data.Dataset alone (an id was "'str' object has no
    # attribute 'status'"; a Dataset, "missing 'y'"). A number is refused: KerasTuner's
    # "Trial 2 Complete" is id "1", kbnas's progress lines count from 1 too.
    by_id = tuner.retrain_best(x_all, y_all, members=1, epochs=1, trial=trial.trial_id)
    for mine, theirs in zip(by_id.get_weights(), alone.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"^retrain_best: no trial '7' in this search \(its ids: 0, 1\)"):
        tuner.retrain_best(x_all, y_all, trial="7")
    with pytest.raises(ValueError, match=r"^retrain_best: trial must be a keras_tuner Trial or a trial id"):
        tuner.retrain_best(x_all, y_all, trial=1)
    with pytest.raises(ValueError, match=r"^retrain_best: give x and y, or a tf.data.Dataset"):
        tuner.retrain_best(x_all)
    dataset = tf.data.Dataset.from_tensor_slices((x_all, y_all)).batch(64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not Keras's "shuffle=True was passed, but will be ignored"
        from_dataset = tuner.retrain_best(dataset, members=1, epochs=1, trial=trial.trial_id)
    assert set(from_dataset.evaluate(xv, yv, verbose=0, return_dict=True)) >= {"accuracy", "loss"}


def test_retrain_best_with_a_plain_build_function_keeps_its_compilation(tmp_path, digits):
    x, y, xv, yv = digits

    def build(hp):
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(hp.Int("units", 8, 16, step=8), activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = BayesianNAS(build, objective="val_accuracy", max_trials=1, seed=0, directory=str(tmp_path))
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    ensemble = tuner.retrain_best(x, y, members=2, epochs=1)
    assert ensemble.name == "kbnas_ensemble"
    assert set(ensemble.evaluate(xv, yv, verbose=0, return_dict=True)) >= {"accuracy", "loss"}


def _plain_build(hp):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Rescaling(1 / 16),
        keras.layers.Flatten(),
        keras.layers.Dense(hp.Choice("units", [8, 16, 32]), activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_what_run_trial_returns_is_the_score_as_in_keras_tuner(tmp_path, digits):
    # KerasTuner scores a trial by what run_trial returns; kbnas's per-epoch reports
    # made it ignore a returned value of the same name (it kept the epochs' logs).
    x, y, xv, yv = digits

    best_epochs = []

    class Custom(keras_tuner.HyperModel):
        def build(self, hp):
            return _plain_build(hp)

        def fit(self, hp, model, *args, **kwargs):
            history = model.fit(*args, **kwargs)
            best_epochs.append(int(np.argmax(history.history["val_accuracy"])))
            return {"val_accuracy": 100.0 + max(history.history["val_accuracy"])}

    tuner = BayesianNAS(Custom(), objective="val_accuracy", max_trials=2, seed=0, early_stopping=None,
                        directory=str(tmp_path), project_name="custom")
    tuner.search(x, y, validation_data=(xv, yv), epochs=3, verbose=0)
    record = {t.trial_id: t for t in read_search(tuner, surrogate=False).trials}
    for trial, best_epoch in zip(tuner.oracle.trials.values(), best_epochs):
        assert trial.score > 100.0  # the returned value, not the best epoch's log
        # A dict has no epoch: the trial keeps its best epoch (retrain_best trains for it).
        assert trial.best_step == best_epoch
        # Only the returned metric was replaced: the loss keeps its three epochs,
        # and the learning curve what the epochs reported (the report counts 3 epochs).
        assert len(trial.metrics.get_history("val_loss")) == 3
        assert "kbnas_final_report" not in trial.metrics.metrics
        assert tuner.oracle.learning_curves[trial.trial_id]["best"] < 1.0
        assert record[trial.trial_id].epochs == 3

    class Extra(Custom):
        def fit(self, hp, model, *args, **kwargs):
            history = model.fit(*args, **kwargs)
            return {"val_accuracy": max(history.history["val_accuracy"]), "test_score": 0.125}

    tuner = BayesianNAS(Extra(), objective="val_accuracy", max_trials=1, seed=0, early_stopping=None,
                        directory=str(tmp_path), project_name="extra")
    tuner.search(x, y, validation_data=(xv, yv), epochs=3, verbose=0)
    trial = next(iter(tuner.oracle.trials.values()))
    # The same score: only the metric the epochs never reported is added, as KerasTuner records it.
    assert trial.metrics.get_best_value("test_score") == 0.125
    assert len(trial.metrics.get_history("val_accuracy")) == 3

    class Overriding(BayesianNAS):
        def run_trial(self, trial, *args, **kwargs):
            super().run_trial(trial, *args, **kwargs)
            return {"val_accuracy": 42.0}

    tuner = Overriding(_plain_build, objective="val_accuracy", max_trials=2, seed=0, directory=str(tmp_path),
                       project_name="override")
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    assert [t.score for t in tuner.oracle.trials.values()] == [42.0, 42.0]

    class Reporting(BayesianNAS):
        def run_trial(self, trial, *args, **kwargs):
            results = super().run_trial(trial, *args, **kwargs)
            self.oracle.update_trial(trial.trial_id, {"val_accuracy": 0.0123}, step=0)
            return results

    tuner = Reporting(_plain_build, objective="val_accuracy", max_trials=1, seed=0, directory=str(tmp_path),
                      project_name="reporting")
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    trial = next(iter(tuner.oracle.trials.values()))
    # An override that reports itself keeps its report (KerasTuner ignores the returned
    # results then); no final report replaced it.
    assert 0.0123 in trial.metrics.get_history("val_accuracy")[0].value


def test_several_executions_score_the_mean_of_their_best_epochs_as_in_keras_tuner(tmp_path, digits):
    x, y, xv, yv = digits
    returned = {}

    class Recording(BayesianNAS):
        def run_trial(self, trial, *args, **kwargs):
            returned[trial.trial_id] = super().run_trial(trial, *args, **kwargs)
            return returned[trial.trial_id]

    tuner = Recording(_plain_build, objective="val_accuracy", max_trials=2, seed=0, early_stopping=None,
                      executions_per_trial=2, directory=str(tmp_path))
    tuner.search(x, y, validation_data=(xv, yv), epochs=3, verbose=0)
    for trial_id, histories in returned.items():
        assert len(histories) == 2
        expected = np.mean([max(h.history["val_accuracy"]) for h in histories])  # KerasTuner's rule
        assert tuner.oracle.trials[trial_id].score == pytest.approx(expected)


def test_sample_weight_is_held_out_with_its_examples(tmp_path, digits):
    # Every trial failed ("Data cardinality is ambiguous … sample_weight sizes: 300")
    # when only x and y were split.
    x, y, _, _ = digits
    weights = np.arange(len(x), dtype="float32")
    tuner = BayesianNAS(_plain_build, objective="val_accuracy", max_trials=1, seed=0, directory=str(tmp_path))
    fit_args, fit_kwargs = tuner.prepare_search(x, y, sample_weight=weights, epochs=1)
    x_val, _, w_val = fit_kwargs["validation_data"]
    assert len(fit_kwargs["sample_weight"]) == len(fit_args[0]) and len(w_val) == len(x_val)
    # The same permutation: each weight stays with its example (weight i is example i).
    for part, w in ((fit_args[0], fit_kwargs["sample_weight"]), (x_val, w_val)):
        np.testing.assert_array_equal(part, x[w.astype(int)])
    tuner.search(x, y, sample_weight=weights, epochs=1, verbose=0)
    assert [t.status for t in tuner.oracle.trials.values()] == ["COMPLETED"]
    # A length that does not match is left to Keras, which names it.
    assert "validation_data" not in tuner.prepare_search(x, y, sample_weight=weights[:10], epochs=1)[1]


def test_keras_tuners_bayesian_optimization_arguments_work_positionally_too(tmp_path):
    import inspect
    import warnings

    from kbnas import BayesianNASOracle

    for ours, theirs in ((BayesianNAS, keras_tuner.BayesianOptimization),
                         (BayesianNASOracle, keras_tuner.oracles.BayesianOptimizationOracle)):
        expected = [p for p in inspect.signature(theirs.__init__).parameters.values() if p.kind != p.VAR_KEYWORD]
        actual = list(inspect.signature(ours.__init__).parameters.values())[:len(expected)]
        assert [(p.name, p.kind) for p in actual] == [(p.name, p.kind) for p in expected], ours
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # KerasTuner's order: objective, max_trials, num_initial_points, alpha, beta, seed.
        oracle = BayesianNASOracle(keras_tuner.Objective("score", "max"), 3, 2, 1e-3, 3.0, 7)
    assert (oracle.num_initial_points, oracle.kappa, oracle.seed, oracle.max_trials) == (2, 3.0, 7, 3)
    messages = [str(w.message) for w in caught]
    assert any("alpha=0.001" in m and "not used" in m for m in messages)
    assert any("beta=3.0" in m and "acquisition='ei'" in m for m in messages)
    assert {w.filename for w in caught} == {__file__}  # the warnings point at the caller
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert BayesianNASOracle(beta=3.0, acquisition="ucb").kappa == 3.0  # UCB uses it: no warning
        tuner = BayesianNAS(_plain_build, "val_accuracy", 5, 2, 1e-4, seed=3, directory=str(tmp_path))
    assert [w.filename for w in caught] == [__file__]  # alpha's, at this line, not in kbnas
    assert (tuner.oracle.max_trials, tuner.oracle.num_initial_points, tuner.oracle.seed) == (5, 2, 3)
    # An explicit kappa, or settings, win over beta, with a warning.
    for kwargs in ({"kappa": 1.5}, {"settings": kbnas.SearchSettings(acquisition="ucb", kappa=1.5)}):
        with pytest.warns(UserWarning, match=r"beta=3.0 is not used: kappa=1.5 is given"):
            assert BayesianNASOracle(beta=3.0, **kwargs).kappa == 1.5
    # The order of kbnas's earlier releases (hyperparameters third) is named.
    with pytest.raises(TypeError, match="hyperparameters=... by keyword"):
        BayesianNASOracle(keras_tuner.Objective("score", "max"), 3, keras_tuner.HyperParameters())


def test_a_training_metric_objective_of_a_build_function_trains_on_all_the_data(tmp_path, digits):
    x, y, _, _ = digits
    tuner = BayesianNAS(_plain_build, objective="accuracy", max_trials=1, seed=0, directory=str(tmp_path))
    fit_args, fit_kwargs = tuner.prepare_search(x, y, epochs=1)
    assert len(fit_args[0]) == len(x) and "validation_data" not in fit_kwargs  # KerasTuner holds out nothing
    tuner.oracle.objective = keras_tuner.Objective("val_loss", "min")
    assert len(tuner.prepare_search(x, y, epochs=1)[1]["validation_data"][0]) == round(0.2 * len(x))


def test_untuned_entries_a_build_adds_do_not_let_a_configuration_repeat(tmp_path, digits):
    """``hyperparameters=`` with ``tune_new_entries=False``: the build's other entries take their
    defaults in every trial. A proposal (over the declared space) was compared with the trials'
    values including them, so the 4-value space gave units=32 twice in 4 trials."""
    x, y, xv, yv = digits

    def build(hp):
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(hp.Int("units", 8, 32, step=8),
                                                     activation=hp.Choice("act", ["relu", "tanh"])),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-1, sampling="log")),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    declared = keras_tuner.HyperParameters()
    declared.Int("units", 8, 32, step=8)
    tuner = BayesianNAS(build, objective="val_accuracy", max_trials=4, seed=7, hyperparameters=declared,
                        tune_new_entries=False, directory=str(tmp_path), project_name="p")
    tuner.search(x[:60], y[:60], validation_data=(xv[:30], yv[:30]), epochs=1, verbose=0)
    trials = tuner.oracle.trials.values()
    assert sorted(t.hyperparameters.values["units"] for t in trials) == [8, 16, 24, 32]
    assert {t.hyperparameters.values["act"] for t in trials} == {"relu"}  # untuned: its default


def test_a_resumed_search_whose_budget_is_spent_says_so(tmp_path, digits, capsys):
    x, y, xv, yv = digits

    def make():
        return BayesianNAS(ConvNetHyperModel(max_depth=2, filters=(8,), units=(16,)), max_trials=50, seed=0,
                           max_time=2.0, directory=str(tmp_path), project_name="p")

    make().search(x, y, validation_data=(xv, yv), epochs=200)
    printed = capsys.readouterr().out
    assert "no trial ran" not in printed
    # 2 s hold no full training: the search ended before the GP proposed anything.
    assert re.search(r"kbnas: the time budget max_time=2 s ended the search after 1 trial of the initial design, "
                     r"trial '00' cut at epoch \d+ of 200, before any GP proposal: the best model is a starting "
                     r"architecture, not one the search chose\.", printed), printed
    again = make()
    trials = len(again.oracle.trials)
    again.search(x, y, validation_data=(xv, yv), epochs=200)  # KerasTuner's default verbose=1
    assert len(again.oracle.trials) == trials
    printed = capsys.readouterr().out
    assert "kbnas: the time budget max_time=2 s is spent (" in printed and "initial design" not in printed
    again.search(x, y, validation_data=(xv, yv), epochs=200, verbose=0)  # quiet when asked
    assert "no trial ran" not in capsys.readouterr().out
