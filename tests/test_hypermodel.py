"""Tests for kbnas.hypermodel.ConvNetHyperModel."""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from kbnas.datasets import load_digits
from kbnas.hypermodel import (
    ConvNetHyperModel,
    NotConfiguredError,
    _split_off_validation,
    search_callbacks,
)
from kbnas.space import LAYER_KINDS, SPATIAL_KINDS, Architecture, SearchSpace

ALL_SPATIAL = LAYER_KINDS
ALL_FLAT = tuple(kind for kind in LAYER_KINDS if kind not in SPATIAL_KINDS)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train")
    return x[:160], y[:160]


def tiny_hypermodel(**kwargs) -> ConvNetHyperModel:
    settings = dict(filters=(4, 8), units=(8,), max_depth=4)
    settings.update(kwargs)
    return ConvNetHyperModel(**settings)


class BatchCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches_per_epoch: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches_per_epoch.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.batches_per_epoch[-1] += 1


# ---------------------------------------------------------------- building


@pytest.mark.parametrize(
    "input_shape, vocabulary",
    [((8, 8, 2), ALL_SPATIAL), ((12, 3), ALL_SPATIAL), ((10,), ALL_FLAT)],
    ids=["image", "sequence", "flat"],
)
def test_param_count_matches_space_on_sampled_architectures(input_shape, vocabulary):
    hypermodel = ConvNetHyperModel(
        vocabulary=vocabulary, filters=(3, 8), units=(5, 16), max_depth=6,
        input_shape=input_shape, task="multiclass", num_classes=7,
    )
    space = hypermodel.search_space
    assert space.input_shape == input_shape
    assert space.num_outputs == 7
    architectures = space.sample_many(40, rng=0, unique=True)
    kinds_seen = {layer.kind for architecture in architectures for layer in architecture}
    assert kinds_seen == set(vocabulary)
    for architecture in architectures:
        model = hypermodel.build_architecture(architecture)
        normalization = sum(
            layer.count_params() for layer in model.layers if isinstance(layer, keras.layers.Normalization)
        )
        assert model.count_params() - normalization == space.param_count(architecture), architecture
        assert model.output_shape == (None, 7)


def test_layer_names_and_keras_layer_types():
    hypermodel = ConvNetHyperModel(
        vocabulary=ALL_SPATIAL, filters=(32,), units=(64,), max_depth=8, input_shape=(8, 8, 1), task="binary"
    )
    architecture = Architecture.decode("conv3-32|batchnorm|relu|avgpool|conv5-32|maxpool|dense-64|dropout")
    model = hypermodel.build_architecture(architecture)
    names = [layer.name for layer in model.layers]
    assert names == [
        "inputs", "normalization", "l0_conv3_32", "l1_batchnorm", "l2_relu", "l3_avgpool",
        "l4_conv5_32", "l5_maxpool", "l6_flatten", "l6_dense_64", "l7_dropout", "head",
    ]
    conv = model.get_layer("l4_conv5_32")
    assert isinstance(conv, keras.layers.Conv2D)
    assert conv.kernel_size == (5, 5) and conv.padding == "same" and conv.strides == (1, 1)
    assert conv.activation is keras.activations.linear
    pool = model.get_layer("l3_avgpool")
    assert isinstance(pool, keras.layers.AveragePooling2D) and pool.padding == "valid"
    assert model.get_layer("l7_dropout").rate == hypermodel.search_space.dropout_rate


def test_sequence_layers_are_one_dimensional():
    hypermodel = ConvNetHyperModel(input_shape=(16, 2), task="regression", filters=(4,))
    model = hypermodel.build_architecture("conv5-4|maxpool|conv3-4")
    assert isinstance(model.get_layer("l0_conv5_4"), keras.layers.Conv1D)
    assert isinstance(model.get_layer("l1_maxpool"), keras.layers.MaxPooling1D)
    assert model.get_layer("l1_maxpool").output.shape == (None, 8, 4)
    assert [layer.name for layer in model.layers][-2:] == ["head_flatten", "head"]


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


def test_mixed_precision_keeps_head_in_float32():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        hypermodel = tiny_hypermodel(input_shape=(8, 8, 1), task="multiclass", num_classes=10)
        architecture = hypermodel.search_space.default_architecture()
        model = hypermodel.build_architecture(architecture)
        assert model.get_layer("l0_conv3_8").compute_dtype == "float16"
        assert model.get_layer("head").compute_dtype == "float32"
        assert model.get_layer("normalization").compute_dtype == "float32"
        assert model.output.dtype == "float32"
        assert model.count_params() == hypermodel.search_space.param_count(architecture)
    finally:
        keras.mixed_precision.set_global_policy(previous)


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


# ---------------------------------------------------------------- fit


def test_search_callbacks_add_early_stopping_and_nan_guard():
    callbacks = search_callbacks([], monitor="val_loss")
    stopping = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    assert len(stopping) == 1
    assert stopping[0].monitor == "val_loss" and stopping[0].patience == 3
    assert stopping[0].restore_best_weights
    assert any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks)

    mine = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    callbacks = search_callbacks([mine], monitor="val_loss")
    assert [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)] == [mine]


def test_validation_split_takes_the_last_examples():
    x, y = np.arange(10.0)[:, None], np.arange(10)
    x_train, y_train, weights, (x_val, y_val) = _split_off_validation(x, y, None, 0.3)
    np.testing.assert_array_equal(y_train, np.arange(7))
    np.testing.assert_array_equal(y_val, [7, 8, 9])
    assert weights is None


@pytest.mark.integration
def test_fit_batches_arrays_and_datasets(digits):
    x, y = digits
    hypermodel = tiny_hypermodel().configure(x, y)
    hp = keras_tuner.HyperParameters()

    counter = BatchCounter()
    history = hypermodel.fit(
        hp, hypermodel.build(hp), x, y, batch_size=50, epochs=2, verbose=0,
        validation_data=(x[:30], y[:30]), callbacks=[counter],
    )
    assert counter.batches_per_epoch == [4, 4]  # ceil(160 / 50)
    assert set(history.history) >= {"loss", "val_loss", "accuracy", "val_accuracy"}

    counter = BatchCounter()
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    hypermodel.fit(hp, hypermodel.build(hp), unbatched, batch_size=40, epochs=1, verbose=0, callbacks=[counter])
    assert counter.batches_per_epoch == [4]

    counter = BatchCounter()
    batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(100)
    hypermodel.fit(
        hp, hypermodel.build(hp), batched, epochs=1, verbose=0, callbacks=[counter],
        validation_data=tf.data.Dataset.from_tensor_slices((x[:20], y[:20])),
    )
    assert counter.batches_per_epoch == [2]

    with pytest.raises(ValueError, match="per-example shape"):
        hypermodel.fit(hp, hypermodel.build(hp), x[:, :4], y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"validation labels.*\[0, 10\)"):
        hypermodel.fit(hp, hypermodel.build(hp), x, y, epochs=1, verbose=0, validation_data=(x[:2], np.array([1, 12])))


@pytest.mark.integration
def test_early_stopping_restores_and_stops(digits):
    x, y = digits
    hypermodel = tiny_hypermodel(learning_rates=(0.0,)).configure(x, y)
    hp = keras_tuner.HyperParameters()
    # A zero learning rate never improves the loss: patience 3 stops after 1 + 3 epochs.
    history = hypermodel.fit(hp, hypermodel.build(hp), x, y, epochs=10, verbose=0)
    assert len(history.epoch) == 4


@pytest.mark.integration
def test_nan_loss_fails_the_trial(digits):
    x, y = digits
    hypermodel = tiny_hypermodel(learning_rates=(1e8,), optimizers=("sgd",)).configure(x, y)
    hp = keras_tuner.HyperParameters()
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="training diverged: loss became NaN at epoch 1"):
        hypermodel.fit(hp, hypermodel.build(hp), x, y, epochs=3, verbose=0)


def test_out_of_memory_fails_the_trial(digits, monkeypatch):
    x, y = digits
    hypermodel = tiny_hypermodel().configure(x, y)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)

    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(model, "fit", exhausted)
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="out of memory.*OOM when allocating"):
        hypermodel.fit(hp, model, x, y, epochs=1, verbose=0)


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
