"""Tests for kbnas.training: the search recipe behind ConvNetHyperModel.fit."""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from kbnas.datasets import load_digits
from kbnas.hypermodel import ConvNetHyperModel
from kbnas.training import _split_off_validation, search_callbacks


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
    # (No batchnorm or dropout, whose batch statistics and masks move the loss by chance,
    # and the monitored loss is the validation loss, computed in the same order each epoch.)
    model = hypermodel.build_architecture("dense-8")
    history = hypermodel.fit(hp, model, x, y, validation_data=(x, y), epochs=10, verbose=0)
    assert len(history.epoch) == 4
    assert len(set(history.history["val_loss"])) == 1


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


@pytest.mark.parametrize("examples, batch", [(0, 16), (100, 16), (256, 16), (343, 21), (1023, 63), (1078, 64),
                                             (10**6, 64)])
def test_auto_batch_size_keeps_sixteen_steps_per_epoch_between_16_and_64(examples, batch):
    from kbnas.training import auto_batch_size

    assert auto_batch_size(examples) == batch
    assert auto_batch_size(examples, largest=32) == min(batch, 32)
