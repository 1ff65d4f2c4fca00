"""Tests for kbnas.hypermodel.ConvNetHyperModel: configuration, hyperparameters, tuners.

The layers of the built models are tested in test_model_builder.py, the training
recipe of `fit` in test_training.py.
"""

from __future__ import annotations

import subprocess
import sys

import keras
import keras_tuner
import numpy as np
import pytest

from kbnas.datasets import load_digits
from kbnas.hypermodel import ConvNetHyperModel, NotConfiguredError
from kbnas.space import SPATIAL_KINDS, Architecture, SearchSpace


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train")
    return x[:160], y[:160]


def tiny_hypermodel(**kwargs) -> ConvNetHyperModel:
    settings = dict(filters=(4, 8), units=(8,), max_depth=4)
    settings.update(kwargs)
    return ConvNetHyperModel(**settings)


# ---------------------------------------------------------------- building


@pytest.mark.parametrize(
    "task, labels, activation, loss, metric",
    [
        ("multiclass", np.arange(40) % 4, "softmax", "sparse_categorical_crossentropy", "accuracy"),
        ("binary", np.arange(40) % 2, "sigmoid", "binary_crossentropy", "accuracy"),
        ("regression", np.linspace(-1, 1, 40), "linear", "mean_squared_error", "mean_absolute_error"),
    ],
)
def test_head_loss_and_metrics_follow_the_inferred_task(task, labels, activation, loss, metric):
    x = np.random.default_rng(0).normal(size=(40, 6))
    hypermodel = ConvNetHyperModel(units=(4,)).configure(x, labels)
    assert hypermodel.task == task
    model = hypermodel.build(keras_tuner.HyperParameters())
    head = model.get_layer("head")
    assert head.activation.__name__ == activation
    assert head.units == (4 if task == "multiclass" else 1)
    assert model.loss == loss
    history = model.fit(x, labels, epochs=1, verbose=0)
    assert set(history.history) == {"loss", metric}


def test_regression_model_predicts_in_the_targets_units():
    """ŷ = μ + σ·z: with a zero head the model predicts the target's mean, and a
    short training reaches a target far from 0 (without the scale, a linear model
    on scikit-learn's diabetes stayed far above the mean predictor's error)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = 1000.0 + 50.0 * x[:, 0] + rng.normal(scale=5.0, size=200)
    # Adam at 1e-2 moves a weight about 0.01 a step: without the scale, the head's bias
    # alone would need ~10^5 steps to reach 1000.
    hypermodel = ConvNetHyperModel(units=(8,), seed=0, learning_rates=(1e-2,)).configure(x, y, task="regression")
    assert hypermodel.target_scale == pytest.approx((float(y.mean()), float(y.std())))
    model = hypermodel.build_architecture("dropout")
    assert model.layers[-1].name == "target_scale"
    assert model.count_params() == hypermodel.search_space.param_count(Architecture.decode("dropout")) + sum(
        layer.count_params() for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    head = model.get_layer("head")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    np.testing.assert_allclose(np.asarray(model.predict(x[:5], verbose=0))[:, 0], y.mean(), rtol=1e-5)
    keras.utils.set_random_seed(0)
    model = hypermodel.build_architecture("dropout")
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    error = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]  # without the dropout's noise
    assert error < 0.1 * y.var()  # y.var() is the mean predictor's error
    # Configured without data (no target statistics), the head is the model's output.
    plain = ConvNetHyperModel(units=(8,)).configure(input_shape=(4,), task="regression")
    assert plain.build_architecture("dropout").layers[-1].name == "head"


def test_a_saved_configuration_rebuilds_the_same_models():
    """What `kbnas.BayesianNAS` saves: the models a reopened search builds are the
    ones its trials trained (the statistics are constants of the model, not weights)."""
    import json
    import warnings

    rng = np.random.default_rng(0)
    x = rng.normal(loc=3.0, scale=2.0, size=(50, 4))
    y = 1000.0 + 50.0 * x[:, 0]
    trained = ConvNetHyperModel(units=(8,)).configure(x, y, task="regression")
    saved = json.loads(json.dumps(trained.configuration()))  # as the tuner's state file holds it
    assert ConvNetHyperModel().configuration() is None

    keras.utils.set_random_seed(0)
    expected = trained.build_architecture("dense-8|relu").predict(x[:5], verbose=0)
    for reopened in (ConvNetHyperModel(units=(8,)),
                     ConvNetHyperModel(units=(8,), input_shape=(4,), task="regression")):  # identity statistics
        reopened.restore_configuration(saved)
        assert reopened.configured_from_data and reopened.target_scale == pytest.approx(trained.target_scale)
        keras.utils.set_random_seed(0)
        np.testing.assert_allclose(reopened.build_architecture("dense-8|relu").predict(x[:5], verbose=0), expected,
                                   rtol=1e-6)
    # Configured from other data: the saved statistics win, with a warning.
    other = ConvNetHyperModel(units=(8,)).configure(x + 1.0, y, task="regression")
    with pytest.warns(RuntimeWarning, match="the saved ones are kept"):
        other.restore_configuration(saved)
    np.testing.assert_allclose(other.input_mean, trained.input_mean)
    same = ConvNetHyperModel(units=(8,)).configure(x, y, task="regression")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same.restore_configuration(saved)
    # Searched without data (identity statistics), reopened configured from data: the saved ones.
    identity = ConvNetHyperModel(units=(8,), input_shape=(4,), task="regression").configuration()
    from_data = ConvNetHyperModel(units=(8,)).configure(x, y, task="regression")
    with pytest.warns(RuntimeWarning, match="the saved ones are kept"):
        from_data.restore_configuration(identity)
    assert np.allclose(from_data.input_mean, 0.0) and from_data.target_scale is None
    assert not from_data.configured_from_data
    # Grayscale images given without a channel axis: the rebuilt model takes them so.
    images = rng.integers(0, 16, size=(30, 8, 8)).astype("uint8")
    gray = ConvNetHyperModel(filters=(4,), units=(8,)).configure(images, np.arange(30) % 3)
    reopened = ConvNetHyperModel(filters=(4,), units=(8,))
    reopened.restore_configuration(json.loads(json.dumps(gray.configuration())))
    assert reopened.data_spec == gray.data_spec and reopened.data_spec.data_shape == (8, 8)
    assert reopened.build_architecture("conv3-4|relu").input_shape == (None, 8, 8)
    reopened.check_data(images, np.arange(30) % 3)
    # Another input shape or task cannot take the saved trials' weights.
    with pytest.raises(ValueError, match=r"^the saved search was configured for regression on input shape \(4,\), "
                                         r"this hypermodel for multiclass on input shape \(4,\) with 3 classes$"):
        ConvNetHyperModel(input_shape=(4,), task="multiclass", num_classes=3).restore_configuration(saved)


def test_flat_space_drops_spatial_kinds_from_default_vocabulary():
    x = np.random.default_rng(0).normal(size=(30, 5))
    hypermodel = ConvNetHyperModel().configure(x, np.arange(30) % 3)
    assert not set(hypermodel.search_space.vocabulary) & set(SPATIAL_KINDS)


def test_model_normalises_raw_inputs(digits):
    x, y = digits
    hypermodel = tiny_hypermodel().configure(x, y)
    np.testing.assert_allclose(hypermodel.input_mean, [x.mean()], rtol=1e-6)
    np.testing.assert_allclose(hypermodel.input_variance, [x.var()], rtol=1e-5)
    model = hypermodel.build(keras_tuner.HyperParameters())
    normalised = keras.Model(model.input, model.get_layer("normalization").output)(x[:10])
    expected = (x[:10] - x.mean()) / x.std()
    np.testing.assert_allclose(np.asarray(normalised), expected, atol=1e-4)


def test_grayscale_model_takes_raw_hw_inputs():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(24, 8, 8)).astype(np.uint8)
    hypermodel = tiny_hypermodel().configure(x, np.arange(24) % 3)
    assert hypermodel.search_space.input_shape == (8, 8, 1)
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert model.input_shape == (None, 8, 8)
    assert model.get_layer("add_channel_axis").output.shape == (None, 8, 8, 1)
    assert model.predict(x[:4].astype(np.float32), verbose=0).shape == (4, 3)


def test_given_search_space_must_agree_with_data(digits):
    x, y = digits
    space = SearchSpace(input_shape=(8, 8, 1), filters=(4,), units=(8,), num_outputs=10)
    hypermodel = ConvNetHyperModel(space).configure(x, y)
    assert hypermodel.search_space is space
    with pytest.raises(ValueError, match="num_outputs=3"):
        ConvNetHyperModel(SearchSpace(input_shape=(8, 8, 1), num_outputs=3)).configure(x, y)
    with pytest.raises(ValueError, match=r"search space's input shape is \(4, 4, 1\)"):
        ConvNetHyperModel(SearchSpace(input_shape=(4, 4, 1))).configure(x, y)


def test_unconfigured_hypermodel_raises_a_clear_error():
    hypermodel = ConvNetHyperModel()
    assert not hypermodel.is_configured
    with pytest.raises(NotConfiguredError, match=r"configure\(x, y\)"):
        hypermodel.build(keras_tuner.HyperParameters())
    with pytest.raises(ValueError, match="input_shape and an explicit"):
        hypermodel.configure(input_shape=(4,))


@pytest.mark.parametrize(("settings", "message"), [
    ({"vocabulary": ("conv3", "relux")}, "vocabulary has unknown layer kind 'relux'"),
    ({"filters": (0, 8)}, "filters entry 0 must be a positive integer"),
    ({"units": (16, 16)}, r"units repeats a width: \(16, 16\)"),
    ({"dropout_rate": 1.5}, r"dropout_rate must be in \[0, 1\)"),
])
def test_space_settings_are_checked_by_the_constructor(settings, message):
    # Not first when configure() sees the data, at the start of a search.
    with pytest.raises(ValueError, match=message):
        ConvNetHyperModel(**settings)


@pytest.mark.parametrize(("settings", "message"), [
    ({"optimizers": ("adamw2",)}, r"^optimizers: 'adamw2' is not an optimizer Keras knows"),
    ({"optimizers": ()}, r"^optimizers must be a name or a sequence of names"),
    ({"optimizers": ("adam", 3)}, r"^optimizers must be a name or a sequence of names"),
    ({"learning_rates": ()}, r"^learning_rates needs at least one value"),
    ({"learning_rates": (1e-3, -1.0)}, r"^learning_rates must be finite numbers >= 0, got -1.0"),
    ({"learning_rates": (float("nan"),)}, r"^learning_rates must be finite numbers >= 0, got nan"),
    ({"learning_rates": "0.01"}, r"^learning_rates must be a number or a sequence of numbers, got '0.01'"),
])
def test_training_choices_are_checked_by_the_constructor(settings, message):
    # An unknown optimizer failed only when the first model was built, inside the search.
    with pytest.raises(ValueError, match=message):
        ConvNetHyperModel(**settings)


def test_the_constructor_does_not_start_tensorflows_runtime():
    # Checking an optimizer by making one created a variable: the visible devices could
    # then no longer be set (a parallel search's chief sets them after the hypermodel exists).
    code = ("import numpy as np, tensorflow as tf\n"
            "from kbnas import ConvNetHyperModel\n"
            "h = ConvNetHyperModel(optimizers=(n for n in ['adam', 'SGD']), learning_rates=np.array(0.01))\n"
            "assert h.optimizers == ('adam', 'SGD') and h._given_learning_rates == (0.01,), h.optimizers\n"
            "cpu = tf.config.list_physical_devices('CPU')[0]\n"
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "print('devices still configurable')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "devices still configurable" in result.stdout, result.stderr[-2000:]


def test_a_single_optimizer_or_learning_rate_is_one_value_as_documented():
    # "sgd" was split into the choices 's', 'g', 'd'; 0.01 was "'float' object is not iterable".
    hypermodel = ConvNetHyperModel(optimizers="sgd", learning_rates=0.01).configure(input_shape=(6,), task="regression")
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert type(model.optimizer).__name__ == "SGD"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    assert "optimizer" not in hp.values and "learning_rate" not in hp.values  # one value: not searched


# ---------------------------------------------------------------- hyperparameters


def test_architecture_is_a_fixed_hyperparameter_the_oracle_can_overwrite():
    hypermodel = tiny_hypermodel(input_shape=(8, 8, 1), task="multiclass", num_classes=10)
    space = hypermodel.search_space
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    assert hp.values == {"architecture": space.to_hp_value(space.default_architecture())}
    assert type(hp.space[0]).__name__ == "Fixed"

    proposal = Architecture.decode("conv5-4|maxpool|relu")
    hp.values["architecture"] = proposal.encode()
    model = hypermodel.build(hp)
    assert [layer.name for layer in model.layers][2:5] == ["l0_conv5_4", "l1_maxpool", "l2_relu"]


def test_the_default_learning_rate_follows_the_input_kind(digits):
    x, y = digits
    flat = ConvNetHyperModel().configure(x.reshape(len(x), -1)[:64], y[:64])
    image = ConvNetHyperModel().configure(x[:64], y[:64])
    assert flat.learning_rates == (3e-3,) and image.learning_rates == (1e-3,)
    model = flat.build_architecture("dense-32|relu")
    assert np.isclose(float(model.optimizer.learning_rate), 3e-3)
    given = ConvNetHyperModel(learning_rates=(0.05,)).configure(x.reshape(len(x), -1)[:64], y[:64])
    assert given.learning_rates == (0.05,)
    with pytest.raises(NotConfiguredError):
        ConvNetHyperModel().learning_rates


def test_several_learning_rates_and_optimizers_become_choices():
    hypermodel = tiny_hypermodel(
        input_shape=(6,), task="regression", learning_rates=(1e-2, 1e-3), optimizers=("adam", "sgd")
    )
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    names = {entry.name: entry for entry in hp.space}
    assert set(names) == {"architecture", "learning_rate", "optimizer"}
    assert list(names["learning_rate"].values) == [1e-2, 1e-3]
    hp.values["learning_rate"] = 1e-3
    hp.values["optimizer"] = "sgd"
    model = hypermodel.build(hp)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_invalid_architecture_value_fails_the_trial():
    hypermodel = tiny_hypermodel(input_shape=(8, 8, 1), task="multiclass", num_classes=10)
    hp = keras_tuner.HyperParameters()
    hp.values["architecture"] = "dense-8|conv3-4"
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="follows a dense layer"):
        hypermodel.build(hp)
    hp.values["architecture"] = "conv3-999"
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="width 999"):
        hypermodel.build(hp)
    hp.values["architecture"] = "not an architecture"
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="not an encoding"):
        hypermodel.build(hp)


# ---------------------------------------------------------------- with KerasTuner's tuners


@pytest.mark.integration
def test_random_search_tunes_learning_rate_on_default_architecture(digits, tmp_path):
    x, y = digits
    hypermodel = tiny_hypermodel(learning_rates=(1e-2, 1e-3)).configure(x, y)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=2, seed=1,
        directory=tmp_path, project_name="random",
    )
    tuner.search(x, y, epochs=1, validation_data=(x[:40], y[:40]), verbose=0)
    trials = tuner.oracle.trials.values()
    assert [trial.status for trial in trials] == ["COMPLETED", "COMPLETED"]
    default = hypermodel.search_space.to_hp_value(hypermodel.search_space.default_architecture())
    assert {trial.hyperparameters.values["architecture"] for trial in trials} == {default}
    assert {trial.hyperparameters.values["learning_rate"] for trial in trials} == {1e-2, 1e-3}
    best = tuner.get_best_models(1)[0]
    assert best.predict(x[:3], verbose=0).shape == (3, 10)


@pytest.mark.integration
def test_tuner_hyperparameters_can_pin_another_architecture(digits, tmp_path):
    x, y = digits
    hypermodel = tiny_hypermodel().configure(x, y)
    pinned = keras_tuner.HyperParameters()
    pinned.Fixed("architecture", "conv5-4|avgpool|relu")
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=1, hyperparameters=pinned,
        directory=tmp_path, project_name="pinned",
    )
    tuner.search(x, y, epochs=1, validation_data=(x[:40], y[:40]), verbose=0)
    best = tuner.get_best_models(1)[0]
    assert [layer.name for layer in best.layers][2:5] == ["l0_conv5_4", "l1_avgpool", "l2_relu"]


@pytest.mark.integration
def test_hyperband_runs_trials_with_its_epoch_budget(digits, tmp_path):
    x, y = digits
    hypermodel = tiny_hypermodel(learning_rates=(1e-2, 1e-3)).configure(x, y)
    tuner = keras_tuner.Hyperband(
        hypermodel, objective="val_loss", max_epochs=2, factor=2, hyperband_iterations=1,
        seed=0, directory=tmp_path, project_name="hyperband",
    )
    tuner.search(x, y, validation_data=(x[:40], y[:40]), verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert trials and {trial.status for trial in trials} == {"COMPLETED"}
    assert {trial.hyperparameters.values["tuner/epochs"] for trial in trials} <= {1, 2}


@pytest.mark.integration
def test_diverging_trial_is_recorded_as_failed(digits, tmp_path):
    x, y = digits
    hypermodel = tiny_hypermodel(learning_rates=(1e8,), optimizers=("sgd",)).configure(x, y)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=1, directory=tmp_path, project_name="diverging",
    )
    tuner.search(x, y, epochs=2, validation_data=(x[:40], y[:40]), verbose=0)
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "FAILED"
    assert "training diverged: loss became NaN" in trial.message


def test_configure_again_with_other_data_rebuilds_the_space():
    rng = np.random.default_rng(0)
    hypermodel = ConvNetHyperModel(units=(4,), input_shape=(6,), task="regression")
    assert hypermodel.search_space.input_shape == (6,)
    hypermodel.configure(rng.normal(size=(20, 6)), rng.normal(size=20))
    assert hypermodel.task == "regression"
    with pytest.raises(ValueError, match=r"per-example shape \(5,\), but input_shape is \(6,\)"):
        hypermodel.configure(rng.normal(size=(20, 5)), rng.normal(size=20))
    other = ConvNetHyperModel(units=(4,)).configure(rng.normal(size=(20, 6)), np.arange(20) % 2)
    other.configure(rng.normal(size=(20, 3, 2)), np.arange(20) % 5)
    assert other.search_space.input_shape == (3, 2)
    assert other.search_space.num_outputs == 5
