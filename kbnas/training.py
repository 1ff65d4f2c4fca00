"""The training recipe of a search trial: defaults, data pipeline, divergence guard.

`fit_model` trains a compiled model (from `kbnas.model_builder`) the way every
trial of a search is trained; `kbnas.hypermodel.ConvNetHyperModel.fit` calls it.
The recipe:

- ``epochs=DEFAULT_EPOCHS`` and ``batch_size=DEFAULT_BATCH_SIZE`` per replica
  unless the caller sets them (the CLI: `default_max_epochs` and `auto_batch_size`);
- Adam at `default_learning_rate` unless the hypermodel is given learning rates:
  3e-3 for flat features, 1e-3 for images and sequences;
- `search_callbacks`: an ``EarlyStopping`` on ``val_loss`` (``loss`` without
  validation data) with patience `EARLY_STOPPING_PATIENCE`, restoring the best
  weights, unless the caller passes one; and always a `_DivergenceGuard`;
- array inputs become a shuffled (seeded), batched, prefetched `tf.data`
  pipeline; ``validation_split`` takes the last examples first, as Keras does;
- a NaN or infinite loss, or running out of memory, raises
  ``keras_tuner.errors.FailedTrialError`` so the search records a failed trial.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from kbnas import data_inference
from kbnas.data_inference import MULTICLASS, DataSpec

#: Epochs of a trial when the caller passes none (early stopping usually ends it sooner).
DEFAULT_EPOCHS = 20
#: Examples per replica per step when the caller passes no batch size.
DEFAULT_BATCH_SIZE = 32
#: The automatic batch size (`auto_batch_size`) aims for at least this many steps per epoch,
MIN_STEPS_PER_EPOCH = 16
#: with batches of at least this many examples.
MIN_AUTO_BATCH_SIZE = 16
#: Adam's learning rate when none is given, by input kind. Flat features: 3e-3,
#: measured by ``python -m benchmarks.flat_learning_rate`` (5-fold cross-validation
#: with the search recipe, docs/benchmarks.md): against 1e-3 the linear model
#: (``dropout``) gains +2.0 (breast cancer), +7.9 (wine) and +3.1 points (digits
#: as 64 features), where at 1e-3 it is still learning after 30 epochs; the four
#: perceptron templates gain +0.27 points on average (8 of 12 cells better, 1 equal,
#: 3 worse) and stop after fewer epochs. 1e-2 is better on wine but on the flat
#: digits costs the perceptrons 0.68 points against 3e-3 (1.89 for the widest).
#: Images and sequences keep Keras's 1e-3.
DEFAULT_LEARNING_RATES = {"flat": 3e-3, "spatial": 1e-3}
#: The CLI's epochs per trial (early stopping usually ends a trial sooner), by input
#: kind. Flat features: 100, because the linear model at 3e-3 is still improving at
#: epoch 30 on the breast-cancer data (its lowest validation loss at the last epoch
#: in every fold of every seed), and with 100 its lowest validation loss came at
#: epochs 32–99 (median 76); so trained, its cross-validated accuracy rose from 97.41
#: to 97.89 % and its test accuracy after retraining from 98.05 to 98.94 % (5 seeds,
#: the standardized logistic regression's 99.12 % on 4 of them;
#: ``python -m benchmarks.flat_architectures``, docs/benchmarks.md). The perceptrons
#: stop long before the cap and score the same with either. Images and sequences: 30.
DEFAULT_MAX_EPOCHS = {"flat": 100, "spatial": 30}
#: Early stopping patience, in epochs without improvement of the monitored loss.
EARLY_STOPPING_PATIENCE = 3
#: Examples read from a tf.data validation set to check its labels.
VALIDATION_CHECK_EXAMPLES = 1024

# Keras `Model.fit` positional parameter order, to name positional fit arguments.
_FIT_PARAMETERS = (
    "x",
    "y",
    "batch_size",
    "epochs",
    "verbose",
    "callbacks",
    "validation_split",
    "validation_data",
    "shuffle",
    "class_weight",
    "sample_weight",
    "initial_epoch",
    "steps_per_epoch",
    "validation_steps",
    "validation_batch_size",
    "validation_freq",
)


def input_kind(input_shape) -> str:
    """"flat" for a per-example shape (F,), "spatial" for images and sequences."""
    return "flat" if len(tuple(input_shape)) == 1 else "spatial"


def default_learning_rate(input_shape) -> float:
    """`DEFAULT_LEARNING_RATES` for a per-example input shape: flat (F,) or spatial."""
    return DEFAULT_LEARNING_RATES[input_kind(input_shape)]


def default_max_epochs(input_shape) -> int:
    """`DEFAULT_MAX_EPOCHS` for a per-example input shape: flat (F,) or spatial."""
    return DEFAULT_MAX_EPOCHS[input_kind(input_shape)]


def auto_batch_size(examples: int, largest: int = 64) -> int:
    """The batch size of the search recipe for ``examples`` training examples:

        b = clip(⌊examples / MIN_STEPS_PER_EPOCH⌋, MIN_AUTO_BATCH_SIZE, largest).

    On small data a fixed batch of 64 leaves a handful of optimizer steps per
    epoch (343 rows: 6), and early stopping ends training before the model has
    converged (docs/benchmarks.md, breast cancer); from 1024 examples on the
    batch is ``largest``.
    """
    return int(max(MIN_AUTO_BATCH_SIZE, min(largest, examples // MIN_STEPS_PER_EPOCH)))


class _DivergenceGuard(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that also remembers the (0-based) epoch the loss diverged in."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.diverged_epoch: int | None = None
        self.diverged_loss: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and self.diverged_epoch is None and not math.isfinite(float(loss)):
            self.diverged_epoch = self.epoch
            self.diverged_loss = float(loss)
        super().on_batch_end(batch, logs)


def search_callbacks(
    callbacks: Sequence[keras.callbacks.Callback], *, monitor: str = "val_loss"
) -> list[keras.callbacks.Callback]:
    """The callbacks of a search trial: the caller's plus the search defaults.

    Adds ``EarlyStopping(monitor, patience=EARLY_STOPPING_PATIENCE,
    restore_best_weights=True)`` unless an EarlyStopping is already present, and
    always a divergence guard (a ``keras.callbacks.TerminateOnNaN`` that records
    the epoch of the first non-finite loss).

    Args:
        callbacks: the caller's callbacks (not modified).
        monitor: quantity early stopping watches: ``"val_loss"`` with validation
            data, ``"loss"`` without.

    Returns:
        A new list.
    """
    callbacks = list(callbacks)
    if not any(isinstance(callback, keras.callbacks.EarlyStopping) for callback in callbacks):
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=EARLY_STOPPING_PATIENCE, restore_best_weights=True
            )
        )
    callbacks.append(_DivergenceGuard())
    return callbacks


def fit_model(
    model: keras.Model,
    spec: DataSpec,
    *,
    seed: int,
    x: Any = None,
    y: Any = None,
    sample_weight: Any = None,
    batch_size: int | None = None,
    epochs: int | None = DEFAULT_EPOCHS,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    validation_split: float | None = 0.0,
    validation_data: Any = None,
    validation_batch_size: int | None = None,
    shuffle: bool = True,
    **fit_arguments: Any,
) -> keras.callbacks.History:
    """Train `model` with the search recipe (see the module docstring).

    Array inputs are wrapped in a `tf.data` pipeline: shuffled with `seed`,
    batched with ``batch_size × num_replicas_in_sync`` (``batch_size`` is per
    replica) and prefetched; ``validation_split`` is applied first, to the last
    examples as Keras does. Array validation data get the same treatment without
    shuffling. Batched `tf.data.Dataset` inputs pass through; unbatched ones are
    batched.

    Args:
        model: a compiled model taking inputs of shape (batch, *spec.data_shape).
        spec: the data spec the model was built for; inputs and labels are
            checked against it.
        seed: seed of the shuffling of array inputs.
        x, y, sample_weight, batch_size, epochs, callbacks, validation_split,
            validation_data, validation_batch_size, shuffle: as for
            `keras.Model.fit`, with the defaults above (None or 0 for
            ``batch_size`` means `DEFAULT_BATCH_SIZE`).
        **fit_arguments: the other arguments of `keras.Model.fit` (``verbose``,
            ``initial_epoch``, …), passed through.

    Returns:
        The `keras.callbacks.History`.

    Raises:
        keras_tuner.errors.FailedTrialError: the loss became NaN or infinite,
            or training ran out of memory.
        ValueError: the data do not match `spec`.
    """
    batch_size = batch_size or DEFAULT_BATCH_SIZE
    validation_batch_size = validation_batch_size or batch_size
    validation_split = validation_split or 0.0
    callbacks = list(callbacks or [])
    replicas = model.distribute_strategy.num_replicas_in_sync

    if data_inference.is_dataset(x):
        if validation_split:
            raise ValueError("validation_split is not supported with tf.data inputs; pass validation_data")
        _check_dataset_shape(spec, x, "x")
        train = _batched(x, batch_size * replicas)
    else:
        x, y, sample_weight = _as_training_arrays(spec, x, y, sample_weight)
        if validation_split:
            if validation_data is not None:
                raise ValueError("pass validation_split or validation_data, not both")
            x, y, sample_weight, validation_data = _split_off_validation(
                x, y, sample_weight, validation_split
            )
        train = _array_dataset(x, y, sample_weight, batch_size * replicas, shuffle, seed)

    validation = None
    if validation_data is not None:
        validation = _validation_dataset(spec, validation_data, validation_batch_size * replicas)

    callbacks = search_callbacks(callbacks, monitor="val_loss" if validation is not None else "loss")
    guard = next(callback for callback in callbacks if isinstance(callback, _DivergenceGuard))

    try:
        history = model.fit(
            train,
            validation_data=validation,
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles
            epochs=epochs,
            **fit_arguments,
        )
    except tf.errors.ResourceExhaustedError as error:
        raise keras_tuner.errors.FailedTrialError(
            f"out of memory while training {model.name}: {error.message}"
        ) from error

    _raise_if_diverged(history, guard)
    return history


def _raise_if_diverged(history: keras.callbacks.History, guard: _DivergenceGuard) -> None:
    losses = history.history.get("loss", [])
    diverged_epoch, bad_loss = guard.diverged_epoch, guard.diverged_loss
    if diverged_epoch is None:
        diverged_epoch, bad_loss = next(
            ((epoch, loss) for epoch, loss in zip(history.epoch, losses) if not math.isfinite(loss)),
            (None, None),
        )
    if diverged_epoch is not None:
        what = "NaN" if math.isnan(bad_loss) else "infinite"
        raise keras_tuner.errors.FailedTrialError(
            f"training diverged: loss became {what} at epoch {diverged_epoch + 1}"
        )


def _name_fit_arguments(args: tuple, kwargs: dict) -> dict[str, Any]:
    if len(args) > len(_FIT_PARAMETERS):
        raise TypeError(f"fit() takes at most {len(_FIT_PARAMETERS)} positional arguments")
    named = dict(zip(_FIT_PARAMETERS, args))
    duplicated = sorted(set(named) & set(kwargs))
    if duplicated:
        raise TypeError(f"fit() got multiple values for {duplicated}")
    named.update(kwargs)
    return named


def _check_dataset_shape(spec: DataSpec, dataset: Any, what: str) -> None:
    shape = data_inference.example_shape(dataset)
    if shape != spec.data_shape:
        raise ValueError(
            f"{what} has per-example shape {shape}, but the model was configured "
            f"for {spec.data_shape}"
        )


def _as_training_arrays(
    spec: DataSpec, x: Any, y: Any, sample_weight: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if x is None or y is None:
        raise ValueError("fit needs x and y (or a tf.data.Dataset of (x, y) as x)")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if tuple(x.shape[1:]) != spec.data_shape:
        raise ValueError(
            f"x has per-example shape {tuple(x.shape[1:])}, but the model was "
            f"configured for {spec.data_shape}"
        )
    if len(x) != len(y):
        raise ValueError(f"x and y lengths differ: x has {len(x)} examples, y has {len(y)}")
    y = y.astype(np.int32 if spec.task == MULTICLASS else np.float32)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float32)
    return x, y, sample_weight


def _array_dataset(
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    global_batch_size: int,
    shuffle: bool,
    seed: int,
) -> tf.data.Dataset:
    tensors = (x, y) if sample_weight is None else (x, y, sample_weight)
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(global_batch_size).prefetch(tf.data.AUTOTUNE)


def check_validation(spec: DataSpec, validation_data: Any) -> None:
    """The checks of ``validation_data`` against the configuration that `fit_model` makes.

    Raises:
        ValueError: naming what is wrong (its form, shape, labels, NaN or inf).
    """
    if data_inference.is_dataset(validation_data):
        _check_dataset_shape(spec, validation_data, "validation x")
        data_inference.check_validation_data(
            spec, validation_data, max_examples=VALIDATION_CHECK_EXAMPLES
        )
        return
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError(
            "validation_data must be (x_val, y_val), (x_val, y_val, sample_weight) "
            "or a tf.data.Dataset"
        )
    data_inference.check_validation_data(spec, validation_data[0], validation_data[1])


def _validation_dataset(spec: DataSpec, validation_data: Any, global_batch_size: int) -> tf.data.Dataset:
    check_validation(spec, validation_data)
    if data_inference.is_dataset(validation_data):
        return _batched(validation_data, global_batch_size)
    x_val, y_val = validation_data[0], validation_data[1]
    weights = validation_data[2] if len(validation_data) == 3 else None
    x_val, y_val, weights = _as_training_arrays(spec, x_val, y_val, weights)
    tensors = (x_val, y_val) if weights is None else (x_val, y_val, weights)
    return tf.data.Dataset.from_tensor_slices(tensors).batch(global_batch_size).prefetch(
        tf.data.AUTOTUNE
    )


def _split_off_validation(
    x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None, fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple]:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_split must be in (0, 1), got {fraction}")
    split_at = int(len(x) * (1.0 - fraction))
    if split_at == 0 or split_at == len(x):
        raise ValueError(f"validation_split={fraction} leaves an empty part of {len(x)} examples")
    validation = (x[split_at:], y[split_at:])
    if sample_weight is not None:
        validation += (sample_weight[split_at:],)
        sample_weight = sample_weight[:split_at]
    return x[:split_at], y[:split_at], sample_weight, validation


def _batched(dataset: tf.data.Dataset, global_batch_size: int) -> tf.data.Dataset:
    if data_inference.dataset_is_batched(dataset):
        return dataset
    return dataset.batch(global_batch_size).prefetch(tf.data.AUTOTUNE)
