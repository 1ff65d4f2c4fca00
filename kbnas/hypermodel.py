"""A KerasTuner HyperModel that builds the architectures of a `SearchSpace`.

The whole architecture is one string hyperparameter holding its canonical
encoding (``"conv3-32|relu|maxpool|dense-64|relu"``). `ConvNetHyperModel` declares
it as ``hp.Fixed(architecture_hp, <default architecture>)``; an architecture-aware
oracle (`kbnas.BayesianNASOracle`) overwrites the value with the architecture it
proposes, and since KerasTuner's ``hp.Fixed`` returns the value already stored
under its name, `build` then builds the proposal. With KerasTuner's own oracles
(``keras_tuner.RandomSearch``, ``keras_tuner.Hyperband``) the Fixed value never
changes: they train the default architecture and search only the other
hyperparameters (learning rate, optimizer).

Model built for an architecture ``l_0 … l_{n-1}`` over a space with input shape S:

    Input(data_shape) → [Reshape(S) for grayscale (H, W)] → Normalization
        → l_0 → … → l_{n-1} → [Flatten] → Dense(num_outputs, head activation)

The Normalization layer holds the per-channel mean and variance of the training
inputs (computed by `configure`), so the model — and its export — takes raw
inputs. It has no weights, so ``model.count_params() == space.param_count(arch)``.
The head is softmax (multiclass), sigmoid (binary) or linear (regression), and
runs in float32 even under a ``mixed_float16`` policy.

Layer semantics are exactly those of `kbnas.space`: convolutions stride 1,
padding "same", no activation; pooling size 2 stride 2 "valid"; a dense layer on a
spatial tensor flattens it first. Layers are named ``l{i}_{token}``, e.g.
``l0_conv3_32``, ``l1_relu``, ``l2_maxpool``, ``l3_flatten``, ``l3_dense_64``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from kbnas import data_inference
from kbnas.data_inference import BINARY, MULTICLASS, REGRESSION, DataSpec
from kbnas.space import (
    AVGPOOL,
    BATCHNORM,
    CONV_KINDS,
    DENSE,
    DROPOUT,
    KERNEL_SIZES,
    MAXPOOL,
    POOL_SIZE,
    RELU,
    SPATIAL_KINDS,
    Architecture,
    InvalidArchitectureError,
    SearchSpace,
)

TASK_CHOICES = ("auto", MULTICLASS, BINARY, REGRESSION)
_INPUT_KIND_BY_RANK = {
    3: data_inference.IMAGE,
    2: data_inference.SEQUENCE,
    1: data_inference.FLAT,
}

#: Epochs of a trial when the caller passes none (early stopping usually ends it sooner).
DEFAULT_EPOCHS = 20
#: Examples per replica per step when the caller passes no batch size.
DEFAULT_BATCH_SIZE = 32
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

_HEAD = {
    MULTICLASS: ("softmax", "sparse_categorical_crossentropy", ["accuracy"]),
    BINARY: ("sigmoid", "binary_crossentropy", ["accuracy"]),
    REGRESSION: ("linear", "mean_squared_error", ["mean_absolute_error"]),
}


class NotConfiguredError(RuntimeError):
    """The hypermodel does not know its input shape and task yet."""


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A Keras optimizer from its name (``"adam"``, ``"sgd"``, ``"rmsprop"``, …).

    Args:
        name: any name `keras.optimizers.get` accepts as a class name.
        learning_rate: initial learning rate.
    """
    return keras.optimizers.get({"class_name": name, "config": {"learning_rate": float(learning_rate)}})


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


class ConvNetHyperModel(keras_tuner.HyperModel):
    """Builds and trains the convolutional/dense networks of a search space.

    Either pass a complete `SearchSpace`, or the space settings as keywords: the
    space is then created by `configure` once the input shape and the task are
    known (from data or given explicitly). For flat inputs and no explicit
    vocabulary, convolutions and pooling are left out of the default vocabulary.

    Use with KerasTuner's own tuners: call `configure(x, y)` *before* creating
    the tuner (KerasTuner builds one model when it is created, to discover the
    hyperparameters). ``keras_tuner.RandomSearch`` / ``Hyperband`` keep the
    architecture at the space's default and tune only the learning rate and the
    optimizer (when several are given); `kbnas.BayesianNAS` searches
    architectures.

    Args:
        search_space: a complete space (its ``num_outputs`` must match the task),
            or None to create it in `configure`.
        vocabulary, filters, units, min_depth, max_depth, max_params: settings of
            the space to create (None: the `SearchSpace` defaults).
        dropout_rate: rate of ``dropout`` layers (None: the `SearchSpace` default).
        input_shape: per-example input shape, if known without data.
        task: ``"auto"`` (infer from labels), ``"multiclass"``, ``"binary"`` or
            ``"regression"``.
        num_classes: number of classes for multiclass tasks (None: max label + 1).
        architecture_hp: name of the architecture hyperparameter.
        learning_rates: one value is used as is; several become
            ``hp.Choice("learning_rate", learning_rates)``.
        optimizers: optimizer names; several become ``hp.Choice("optimizer", …)``.
        seed: seed of the shuffling of array inputs in `fit`.
        name, tunable: as for `keras_tuner.HyperModel`.
    """

    def __init__(
        self,
        search_space: SearchSpace | None = None,
        *,
        vocabulary: Sequence[str] | None = None,
        filters: Sequence[int] | None = None,
        units: Sequence[int] | None = None,
        min_depth: int = 1,
        max_depth: int = 6,
        max_params: int | None = None,
        dropout_rate: float | None = None,
        input_shape: Sequence[int] | None = None,
        task: str = "auto",
        num_classes: int | None = None,
        architecture_hp: str = "architecture",
        learning_rates: Sequence[float] = (1e-3,),
        optimizers: Sequence[str] = ("adam",),
        seed: int = 0,
        name: str | None = None,
        tunable: bool = True,
    ) -> None:
        super().__init__(name=name, tunable=tunable)
        if task not in TASK_CHOICES:
            raise ValueError(f"task must be one of {TASK_CHOICES}, got {task!r}")
        if search_space is not None and not isinstance(search_space, SearchSpace):
            raise TypeError(f"search_space must be a SearchSpace, got {type(search_space).__name__}")
        self.learning_rates = tuple(float(rate) for rate in learning_rates)
        self.optimizers = tuple(str(name) for name in optimizers)
        if not self.learning_rates or not self.optimizers:
            raise ValueError("learning_rates and optimizers need at least one value each")
        self.architecture_hp = architecture_hp
        self.seed = int(seed)
        # Settings for the space `configure` creates; unset ones keep SearchSpace defaults.
        self.space_settings: dict[str, Any] = {
            "min_depth": min_depth,
            "max_depth": max_depth,
            "max_params": max_params,
        }
        for key, choices in (("vocabulary", vocabulary), ("filters", filters), ("units", units)):
            if choices is not None:
                self.space_settings[key] = tuple(choices)
        if dropout_rate is not None:
            self.space_settings["dropout_rate"] = dropout_rate
        self._given_space = search_space
        self.search_space: SearchSpace | None = search_space
        self.data_spec: DataSpec | None = None
        self.input_mean: np.ndarray | None = None
        self.input_variance: np.ndarray | None = None
        self._requested = {
            "input_shape": None if input_shape is None else tuple(int(d) for d in input_shape),
            "task": task,
            "num_classes": num_classes,
        }
        if search_space is not None and task != "auto":
            self.configure(input_shape=search_space.input_shape, task=task, num_classes=num_classes)
        elif search_space is None and input_shape is not None and task != "auto":
            self.configure(input_shape=input_shape, task=task, num_classes=num_classes)

    # ------------------------------------------------------------------ configuration

    @property
    def is_configured(self) -> bool:
        """Whether the search space, input shape and task are known."""
        return self.search_space is not None and self.data_spec is not None

    @property
    def task(self) -> str | None:
        """The task once configured, else None."""
        return None if self.data_spec is None else self.data_spec.task

    def configure(
        self,
        x: Any = None,
        y: Any = None,
        *,
        input_shape: Sequence[int] | None = None,
        task: str | None = None,
        num_classes: int | None = None,
    ) -> "ConvNetHyperModel":
        """Fix the input shape, task and input statistics; create the search space.

        With data, the input shape, the task and the number of classes are
        inferred (`kbnas.data_inference.infer_data_spec`) unless given here or in
        the constructor, and the per-channel mean and variance of `x` are stored
        for the model's Normalization layer. Without data, `input_shape` and a
        task other than ``"auto"`` are required and the normalisation is the
        identity.

        Args:
            x: training inputs (array) or a `tf.data.Dataset` of (x, y).
            y: training labels for array `x`.
            input_shape: per-example input shape, when no `x` is given.
            task: overrides the constructor's task.
            num_classes: overrides the constructor's number of classes.

        Returns:
            self.

        Raises:
            ValueError: the data are invalid, inconsistent with the given
                settings or with the given search space.
        """
        task = task if task is not None else self._requested["task"]
        num_classes = num_classes if num_classes is not None else self._requested["num_classes"]
        if task not in TASK_CHOICES:
            raise ValueError(f"task must be one of {TASK_CHOICES}, got {task!r}")
        if x is not None:
            expected_shape = input_shape or self._requested["input_shape"]
            source = "input_shape"
            if expected_shape is None and self._given_space is not None:
                expected_shape = self._given_space.input_shape
                source = "the search space's input shape"
            input_kind = None
            if expected_shape is not None:
                expected_shape = tuple(int(size) for size in expected_shape)
                data_shape = data_inference.example_shape(x)
                if expected_shape not in (data_shape, data_shape + (1,)):
                    raise ValueError(
                        f"x has per-example shape {data_shape}, but {source} is {expected_shape}"
                    )
                input_kind = _INPUT_KIND_BY_RANK.get(len(expected_shape))
            spec = data_inference.infer_data_spec(
                x, y, task=task, num_classes=num_classes, input_kind=input_kind
            )
            mean, variance = data_inference.input_statistics(x, spec)
        else:
            shape = input_shape or self._requested["input_shape"]
            if shape is None and self._given_space is not None:
                shape = self._given_space.input_shape
            if shape is None or task == "auto":
                raise ValueError(
                    "configure() needs training data, or both input_shape and an explicit "
                    "task ('multiclass', 'binary' or 'regression')"
                )
            if task == MULTICLASS and num_classes is None:
                if self._given_space is None:
                    raise ValueError("a multiclass task without data needs num_classes")
                num_classes = self._given_space.num_outputs
            spec = DataSpec(
                input_shape=tuple(shape),
                task=task,
                num_classes=num_classes if task == MULTICLASS else (2 if task == BINARY else None),
            )
            mean = variance = None

        space = self._given_space
        if space is None:
            space = self._make_space(spec)
        elif space.input_shape != spec.input_shape:
            raise ValueError(
                f"the data have input shape {spec.input_shape}, the search space "
                f"{space.input_shape}"
            )
        elif space.num_outputs != spec.num_outputs:
            raise ValueError(
                f"a {spec.task} task needs {spec.num_outputs} outputs, but the search "
                f"space has num_outputs={space.num_outputs}"
            )
        channels = spec.input_shape[-1]
        self.search_space = space
        self.data_spec = spec
        self.input_mean = np.zeros(channels) if mean is None else mean
        self.input_variance = np.ones(channels) if variance is None else variance
        return self

    def _make_space(self, spec: DataSpec) -> SearchSpace:
        settings = dict(self.space_settings)
        if len(spec.input_shape) == 1 and "vocabulary" not in settings:
            default_vocabulary = SearchSpace.__dataclass_fields__["vocabulary"].default
            settings["vocabulary"] = tuple(
                kind for kind in default_vocabulary if kind not in SPATIAL_KINDS
            )
        return SearchSpace(input_shape=spec.input_shape, num_outputs=spec.num_outputs, **settings)

    def _require_configured(self) -> SearchSpace:
        if not self.is_configured:
            raise NotConfiguredError(
                "ConvNetHyperModel is not configured: call configure(x, y) with the "
                "training data (or configure(input_shape=..., task=...)) before building "
                "models or creating a KerasTuner tuner"
            )
        return self.search_space

    # ------------------------------------------------------------------ hyperparameters

    def declare_hyperparameters(self, hp: keras_tuner.HyperParameters) -> None:
        """Declare the architecture (Fixed, default value) and the training choices.

        Args:
            hp: the `keras_tuner.HyperParameters` to declare into.
        """
        space = self._require_configured()
        hp.Fixed(self.architecture_hp, space.to_hp_value(space.default_architecture()))
        if len(self.learning_rates) > 1:
            hp.Choice("learning_rate", list(self.learning_rates))
        if len(self.optimizers) > 1:
            hp.Choice("optimizer", list(self.optimizers))

    def _training_choices(self, hp: keras_tuner.HyperParameters) -> tuple[float, str]:
        learning_rate = (
            hp.Choice("learning_rate", list(self.learning_rates))
            if len(self.learning_rates) > 1
            else self.learning_rates[0]
        )
        optimizer = (
            hp.Choice("optimizer", list(self.optimizers))
            if len(self.optimizers) > 1
            else self.optimizers[0]
        )
        return float(learning_rate), str(optimizer)

    # ------------------------------------------------------------------ building

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Build and compile the architecture stored in ``hp``.

        Args:
            hp: hyperparameters; ``hp.values[architecture_hp]`` is an architecture
                encoding (the space's default if not set yet).

        Returns:
            A compiled `keras.Model`.

        Raises:
            NotConfiguredError: `configure` was not called.
            keras_tuner.errors.FailedTrialError: the value is not a valid
                architecture of the space, or the model does not fit in memory.
        """
        space = self._require_configured()
        self.declare_hyperparameters(hp)
        encoding = hp.get(self.architecture_hp)
        learning_rate, optimizer = self._training_choices(hp)
        try:
            architecture = space.from_hp_value(encoding)
            return self.build_architecture(
                architecture, learning_rate=learning_rate, optimizer=optimizer
            )
        except (InvalidArchitectureError, ValueError) as error:
            raise keras_tuner.errors.FailedTrialError(
                f"cannot build architecture {encoding!r}: {error}"
            ) from error
        except tf.errors.ResourceExhaustedError as error:
            raise keras_tuner.errors.FailedTrialError(
                f"out of memory while building {encoding!r}: {error.message}"
            ) from error

    def build_architecture(
        self,
        architecture: Architecture | str,
        *,
        learning_rate: float | None = None,
        optimizer: str | None = None,
    ) -> keras.Model:
        """Build and compile one architecture with a fixed training recipe.

        Args:
            architecture: an `Architecture` or its encoding.
            learning_rate: defaults to the first of `learning_rates`.
            optimizer: optimizer name; defaults to the first of `optimizers`.

        Returns:
            A compiled functional `keras.Model` taking raw inputs of shape
            (batch, *data_shape).

        Raises:
            NotConfiguredError: `configure` was not called.
            InvalidArchitectureError: the architecture is not in the space.
        """
        space = self._require_configured()
        if isinstance(architecture, str):
            architecture = space.from_hp_value(architecture)
        else:
            space.validate(architecture)
        model = self._functional_model(architecture)
        activation, loss, metrics = _HEAD[self.data_spec.task]
        model.compile(
            optimizer=make_optimizer(
                optimizer if optimizer is not None else self.optimizers[0],
                learning_rate if learning_rate is not None else self.learning_rates[0],
            ),
            loss=loss,
            metrics=list(metrics),
        )
        return model

    def _functional_model(self, architecture: Architecture) -> keras.Model:
        space = self.search_space
        spec = self.data_spec
        inputs = keras.Input(shape=spec.data_shape, name="inputs")
        tensor = inputs
        if spec.data_shape != space.input_shape:
            tensor = keras.layers.Reshape(space.input_shape, name="add_channel_axis")(tensor)
        tensor = keras.layers.Normalization(
            axis=-1,
            mean=self.input_mean,
            variance=self.input_variance,
            dtype="float32",
            name="normalization",
        )(tensor)
        spatial_rank = len(space.input_shape) - 1
        for position, layer in enumerate(architecture):
            name = f"l{position}_{layer.kind}" + ("" if layer.width is None else f"_{layer.width}")
            is_spatial = len(tensor.shape) > 2
            if layer.kind in CONV_KINDS:
                convolution = keras.layers.Conv2D if spatial_rank == 2 else keras.layers.Conv1D
                tensor = convolution(
                    layer.width, KERNEL_SIZES[layer.kind], strides=1, padding="same", name=name
                )(tensor)
            elif layer.kind in (MAXPOOL, AVGPOOL):
                pools = {
                    (MAXPOOL, 2): keras.layers.MaxPooling2D,
                    (MAXPOOL, 1): keras.layers.MaxPooling1D,
                    (AVGPOOL, 2): keras.layers.AveragePooling2D,
                    (AVGPOOL, 1): keras.layers.AveragePooling1D,
                }
                tensor = pools[layer.kind, spatial_rank](
                    pool_size=POOL_SIZE, strides=POOL_SIZE, padding="valid", name=name
                )(tensor)
            elif layer.kind == RELU:
                tensor = keras.layers.ReLU(name=name)(tensor)
            elif layer.kind == DENSE:
                if is_spatial:
                    tensor = keras.layers.Flatten(name=f"l{position}_flatten")(tensor)
                tensor = keras.layers.Dense(layer.width, name=name)(tensor)
            elif layer.kind == BATCHNORM:
                tensor = keras.layers.BatchNormalization(name=name)(tensor)
            elif layer.kind == DROPOUT:
                tensor = keras.layers.Dropout(space.dropout_rate, name=name)(tensor)
            else:
                raise InvalidArchitectureError(architecture, [f"unknown layer kind {layer.kind!r}"])
        if len(tensor.shape) > 2:
            tensor = keras.layers.Flatten(name="head_flatten")(tensor)
        activation = _HEAD[spec.task][0]
        outputs = keras.layers.Dense(
            spec.num_outputs, activation=activation, dtype="float32", name="head"
        )(tensor)
        return keras.Model(inputs, outputs, name="convnet")

    # ------------------------------------------------------------------ training

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any):
        """Train one trial's model with search defaults.

        Defaults added unless the caller sets them: ``epochs=DEFAULT_EPOCHS``;
        an ``EarlyStopping`` on ``val_loss`` (``loss`` without validation data),
        patience 3, restoring the best weights, unless an EarlyStopping is among
        the callbacks. A `_DivergenceGuard` (TerminateOnNaN) is always added.

        Array inputs are wrapped in a `tf.data` pipeline: shuffled with `seed`,
        batched with ``batch_size × num_replicas_in_sync`` (``batch_size``, default
        32, is per replica) and prefetched; ``validation_split`` is applied first,
        to the last examples as Keras does. Array validation data get the same
        treatment without shuffling. Batched `tf.data.Dataset` inputs pass
        through; unbatched ones are batched.

        Args:
            hp: the trial's hyperparameters.
            model: the model from `build`.
            *args, **kwargs: arguments of `keras.Model.fit`.

        Returns:
            The `keras.callbacks.History`.

        Raises:
            keras_tuner.errors.FailedTrialError: the loss became NaN or infinite,
                or training ran out of memory.
            ValueError: the data do not match the configured input shape or task.
        """
        arguments = _name_fit_arguments(args, kwargs)
        x = arguments.pop("x", None)
        y = arguments.pop("y", None)
        sample_weight = arguments.pop("sample_weight", None)
        batch_size = arguments.pop("batch_size", None) or DEFAULT_BATCH_SIZE
        validation_batch_size = arguments.pop("validation_batch_size", None) or batch_size
        validation_split = arguments.pop("validation_split", 0.0) or 0.0
        validation_data = arguments.pop("validation_data", None)
        shuffle = arguments.pop("shuffle", True)
        arguments.setdefault("epochs", DEFAULT_EPOCHS)
        callbacks = list(arguments.pop("callbacks", None) or [])
        replicas = model.distribute_strategy.num_replicas_in_sync

        if data_inference.is_dataset(x):
            if validation_split:
                raise ValueError("validation_split is not supported with tf.data inputs; pass validation_data")
            self._check_dataset_shape(x, "x")
            train = _batched(x, batch_size * replicas)
        else:
            x, y, sample_weight = self._as_training_arrays(x, y, sample_weight)
            if validation_split:
                if validation_data is not None:
                    raise ValueError("pass validation_split or validation_data, not both")
                x, y, sample_weight, validation_data = _split_off_validation(
                    x, y, sample_weight, validation_split
                )
            train = self._array_dataset(x, y, sample_weight, batch_size * replicas, shuffle)

        validation = None
        if validation_data is not None:
            validation = self._validation_dataset(validation_data, validation_batch_size * replicas)

        callbacks = search_callbacks(callbacks, monitor="val_loss" if validation is not None else "loss")
        guard = next(callback for callback in callbacks if isinstance(callback, _DivergenceGuard))

        try:
            history = model.fit(
                train,
                validation_data=validation,
                callbacks=callbacks,
                shuffle=False,  # the pipeline shuffles
                **arguments,
            )
        except tf.errors.ResourceExhaustedError as error:
            raise keras_tuner.errors.FailedTrialError(
                f"out of memory while training {model.name}: {error.message}"
            ) from error

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
        return history

    def _check_dataset_shape(self, dataset: Any, what: str) -> None:
        spec = self._require_spec()
        shape = data_inference.example_shape(dataset)
        if shape != spec.data_shape:
            raise ValueError(
                f"{what} has per-example shape {shape}, but the model was configured "
                f"for {spec.data_shape}"
            )

    def _require_spec(self) -> DataSpec:
        self._require_configured()
        return self.data_spec

    def _as_training_arrays(
        self, x: Any, y: Any, sample_weight: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        spec = self._require_spec()
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
        self,
        x: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        global_batch_size: int,
        shuffle: bool,
    ) -> tf.data.Dataset:
        tensors = (x, y) if sample_weight is None else (x, y, sample_weight)
        dataset = tf.data.Dataset.from_tensor_slices(tensors)
        if shuffle:
            dataset = dataset.shuffle(len(x), seed=self.seed, reshuffle_each_iteration=True)
        return dataset.batch(global_batch_size).prefetch(tf.data.AUTOTUNE)

    def _validation_dataset(self, validation_data: Any, global_batch_size: int) -> tf.data.Dataset:
        spec = self._require_spec()
        if data_inference.is_dataset(validation_data):
            self._check_dataset_shape(validation_data, "validation x")
            data_inference.check_validation_data(
                spec, validation_data, max_examples=VALIDATION_CHECK_EXAMPLES
            )
            return _batched(validation_data, global_batch_size)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                "validation_data must be (x_val, y_val), (x_val, y_val, sample_weight) "
                "or a tf.data.Dataset"
            )
        x_val, y_val = validation_data[0], validation_data[1]
        data_inference.check_validation_data(spec, x_val, y_val)
        weights = validation_data[2] if len(validation_data) == 3 else None
        x_val, y_val, weights = self._as_training_arrays(x_val, y_val, weights)
        tensors = (x_val, y_val) if weights is None else (x_val, y_val, weights)
        return tf.data.Dataset.from_tensor_slices(tensors).batch(global_batch_size).prefetch(
            tf.data.AUTOTUNE
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
