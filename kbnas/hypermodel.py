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

`ConvNetHyperModel` holds the configuration (search space, data spec, input
statistics) and declares the hyperparameters. The model itself, its layers and
their names come from `kbnas.model_builder`; `fit` follows the training recipe of
`kbnas.training`. Their public names (`make_optimizer`, `search_callbacks`,
`DEFAULT_EPOCHS`, …) are re-exported here.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Sequence

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from kbnas import data_inference
from kbnas.data_inference import BINARY, MULTICLASS, REGRESSION, DataSpec
from kbnas.model_builder import build_model, compile_model
from kbnas.space import SPATIAL_KINDS, Architecture, InvalidArchitectureError, SearchSpace
from kbnas.space.layers import _as_positive_int
from kbnas.training import _name_fit_arguments, check_validation, fit_model

# Re-exported: code imports these from kbnas.hypermodel.
from kbnas.model_builder import _HEAD, make_optimizer  # noqa: F401


def _learning_rates(given: Any) -> tuple[float, ...]:
    """``learning_rates`` as a tuple of finite floats >= 0, as Keras's optimizers take (one number is one value)."""
    if isinstance(given, np.ndarray) and given.ndim == 0:
        given = given.item()
    values = (given,) if isinstance(given, (int, float, np.number)) else given
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"learning_rates must be a number or a sequence of numbers, got {given!r}")
    values = tuple(values)  # (a generator is read once)
    rates = []
    for value in values:
        if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.number)) \
                or not np.isfinite(value) or value < 0:
            raise ValueError(f"learning_rates must be finite numbers >= 0, got {value!r}")
        rates.append(float(value))
    if not rates:
        raise ValueError("learning_rates needs at least one value")
    return tuple(rates)


def _optimizer_names(given: Any) -> tuple[str, ...]:
    """``optimizers`` as a tuple of names Keras knows (one string is one name).

    Checked by name, without making an optimizer: that would create a variable and
    start TensorFlow's runtime, after which the visible GPUs can no longer be set
    (a parallel search's chief sets them after the hypermodel exists).
    """
    if isinstance(given, str):
        names: tuple = (given,)
    elif hasattr(given, "__iter__"):
        names = tuple(given.tolist() if isinstance(given, np.ndarray) else given)  # (a generator is read once)
    else:
        names = ()
    if not names or any(not isinstance(name, str) for name in names):
        raise ValueError(f"optimizers must be a name or a sequence of names such as ('adam', 'sgd'), got {given!r}")
    known = _optimizer_class_names()
    for name in names:
        if name.lower() not in known:
            raise ValueError(f"optimizers: {name!r} is not an optimizer Keras knows "
                             "(keras.optimizers: 'adam', 'adamw', 'sgd', 'rmsprop', …)")
    return names


def _optimizer_class_names() -> set[str]:
    """Lower-cased names of Keras's optimizer classes and of registered custom objects."""
    classes = [value for value in vars(keras.optimizers).values()
               if isinstance(value, type) and issubclass(value, keras.optimizers.Optimizer)]
    custom = keras.saving.get_custom_objects()
    return {cls.__name__.lower() for cls in classes} | {name.lower() for name in custom} \
        | {name.split(">")[-1].lower() for name in custom}
from kbnas.training import (  # noqa: F401
    _FIT_PARAMETERS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATES,
    EARLY_STOPPING_PATIENCE,
    VALIDATION_CHECK_EXAMPLES,
    _batched,
    _DivergenceGuard,
    _split_off_validation,
    default_learning_rate,
    search_callbacks,
)

TASK_CHOICES = ("auto", MULTICLASS, BINARY, REGRESSION)
_INPUT_KIND_BY_RANK = {
    3: data_inference.IMAGE,
    2: data_inference.SEQUENCE,
    1: data_inference.FLAT,
}



def _describe(shape: Sequence[int], task: str, num_classes: int | None) -> str:
    classes = f" with {num_classes} classes" if task == MULTICLASS else ""
    return f"{task} on input shape {tuple(shape)}{classes}"


class NotConfiguredError(RuntimeError):
    """The hypermodel does not know its input shape and task yet."""


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
            ``hp.Choice("learning_rate", learning_rates)``. None (default): the
            input kind's `DEFAULT_LEARNING_RATES`, 3e-3 for flat features and
            1e-3 for images and sequences, known once configured.
        optimizers: optimizer names; several become ``hp.Choice("optimizer", …)``.
        seed: seed of the shuffling of array inputs in `fit`.
        scale_targets: for regression configured from data, end the model with
            ŷ = μ + σ·z from the training target's mean and standard deviation
            (default True; see `target_scale`). False: the linear head's output.
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
        max_depth: int = 12,
        max_params: int | None = None,
        dropout_rate: float | None = None,
        input_shape: Sequence[int] | None = None,
        task: str = "auto",
        num_classes: int | None = None,
        architecture_hp: str = "architecture",
        learning_rates: Sequence[float] | None = None,
        optimizers: Sequence[str] = ("adam",),
        seed: int = 0,
        scale_targets: bool = True,
        name: str | None = None,
        tunable: bool = True,
    ) -> None:
        super().__init__(name=name, tunable=tunable)
        if task not in TASK_CHOICES:
            raise ValueError(f"task must be one of {TASK_CHOICES}, got {task!r}")
        if search_space is not None and not isinstance(search_space, SearchSpace):
            raise TypeError(f"search_space must be a SearchSpace, got {type(search_space).__name__}")
        self._given_learning_rates = None if learning_rates is None else _learning_rates(learning_rates)
        self.optimizers = _optimizer_names(optimizers)
        self.architecture_hp = architecture_hp
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.scale_targets = bool(scale_targets)
        # The space's own checks, made now rather than when `configure` sees data.
        if _as_positive_int(max_depth, "max_depth") < _as_positive_int(min_depth, "min_depth"):
            raise ValueError(f"max_depth {max_depth} is below min_depth {min_depth}")
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
        if search_space is None:
            # The settings' own checks (layer kinds, widths, the rate), made now: none
            # of them depends on the input shape, which `configure` learns later.
            SearchSpace(input_shape=(8, 8, 1), **self.space_settings)
        self._given_space = search_space
        self.search_space: SearchSpace | None = search_space
        self.data_spec: DataSpec | None = None
        self.input_mean: np.ndarray | None = None
        self.input_variance: np.ndarray | None = None
        #: Whether the input statistics (and a regression's `target_scale`) came from data.
        self.configured_from_data = False
        #: (mean, std) of a regression target, from `configure`'s data (else None).
        self.target_scale: tuple[float, float] | None = None
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
    def learning_rates(self) -> tuple[float, ...]:
        """The learning rates: the constructor's, else the input kind's `DEFAULT_LEARNING_RATES`.

        Raises:
            NotConfiguredError: none were given and the input kind is not known yet.
        """
        if self._given_learning_rates is not None:
            return self._given_learning_rates
        return (default_learning_rate(self._require_configured().input_shape),)

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
        for the model's Normalization layer; for regression, the target's mean
        and standard deviation set the model's output scale (`target_scale`).
        Without data, `input_shape` and a task other than ``"auto"`` are
        required and the normalisation and the output scale are the identity.

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
            target_scale = data_inference.target_statistics(x, y, spec) if self.scale_targets else None
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
            mean = variance = target_scale = None

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
        self.target_scale = target_scale
        self.configured_from_data = x is not None
        return self

    def configuration(self) -> dict[str, Any] | None:
        """This configuration as JSON data for `restore_configuration` (None before `configure`).

        A trial's checkpoint holds its model's weights, not the input statistics of
        the Normalization layer or a regression's output scale, which are constants
        of the built model: `kbnas.BayesianNAS` saves them with its state, so that
        a search reopened in another process rebuilds its trials' models as they
        were trained.
        """
        if not self.is_configured:
            return None
        spec = self.data_spec
        return {
            "input_shape": list(spec.input_shape),
            "data_shape": list(spec.data_shape),
            "task": spec.task,
            "num_classes": spec.num_classes,
            "from_data": self.configured_from_data,
            "input_mean": np.asarray(self.input_mean, dtype=float).tolist(),
            "input_variance": np.asarray(self.input_variance, dtype=float).tolist(),
            "target_scale": None if self.target_scale is None else [float(v) for v in self.target_scale],
        }

    def restore_configuration(self, saved: dict[str, Any]) -> None:
        """Take the configuration a saved search trained with (`configuration`).

        An unconfigured hypermodel, or one configured without data, takes it whole.
        One configured from data keeps its input shape and task, which must be the
        saved ones. Every one takes the saved input statistics and output scale (the
        identity where the search was configured without data), with a warning where
        they differ from statistics of its own data: the saved trials' weights were
        trained with them.

        Args:
            saved: what `configuration` returned.

        Raises:
            ValueError: the hypermodel is configured for another input shape, task or
                number of classes than the saved search.
        """
        shape, task, num_classes = tuple(int(d) for d in saved["input_shape"]), saved["task"], saved["num_classes"]
        if self.is_configured:
            spec = self.data_spec
            if (spec.input_shape, spec.task, spec.num_classes) != (shape, task, num_classes):
                raise ValueError(
                    f"the saved search was configured for {_describe(shape, task, num_classes)}, this "
                    f"hypermodel for {_describe(spec.input_shape, spec.task, spec.num_classes)}"
                )
        else:
            self.configure(input_shape=shape, task=task, num_classes=num_classes)
            data_shape = saved.get("data_shape")  # (H, W) for grayscale images given without a channel axis
            if data_shape is not None:
                self.data_spec = dataclasses.replace(self.data_spec, data_shape=tuple(int(d) for d in data_shape))
        mean, variance = np.asarray(saved["input_mean"]), np.asarray(saved["input_variance"])
        scale = None if saved["target_scale"] is None else tuple(float(v) for v in saved["target_scale"])
        if self.configured_from_data and not (
            np.allclose(mean, self.input_mean) and np.allclose(variance, self.input_variance)
            and (scale is None) == (self.target_scale is None)
            and (scale is None or np.allclose(scale, self.target_scale))
        ):
            warnings.warn(
                "kbnas: the saved search normalized its inputs with its own training data's statistics, "
                "which differ from configure()'s data; the saved ones are kept, as its trials were "
                "trained with them",
                RuntimeWarning,
                stacklevel=2,
            )
        self.input_mean, self.input_variance, self.target_scale = mean, variance, scale
        self.configured_from_data = bool(saved["from_data"])

    def check_data(self, x: Any, y: Any = None) -> None:
        """Check training data against this configuration, as `configure` does.

        Raises:
            NotConfiguredError: `configure` was not called.
            ValueError: naming what does not fit: the per-example shape, the task's
                labels (e.g. a label beyond the configured classes), NaN or inf (of a
                `tf.data.Dataset`, in its first `VALIDATION_CHECK_EXAMPLES` examples).
        """
        spec = self._require_spec()
        data_shape = data_inference.example_shape(x)
        if spec.input_shape not in (data_shape, data_shape + (1,)):
            raise ValueError(f"x has per-example shape {data_shape}, but the search's input shape is "
                             f"{spec.input_shape}")
        data_inference.infer_data_spec(x, y, task=spec.task, num_classes=spec.num_classes,
                                       input_kind=_INPUT_KIND_BY_RANK.get(len(spec.input_shape)),
                                       max_examples=VALIDATION_CHECK_EXAMPLES)  # of a dataset: a sample

    def check_validation_data(self, validation_data: Any) -> None:
        """The checks `fit` makes of ``validation_data``, once, before any training.

        Raises:
            NotConfiguredError: `configure` was not called.
            ValueError: naming what does not fit this configuration.
        """
        check_validation(self._require_spec(), validation_data)

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
                "models or creating a KerasTuner tuner (kbnas.BayesianNAS configures it from "
                "search()'s data, or from the saved search it reopens)"
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
        model = build_model(
            architecture,
            space,
            self.data_spec,
            input_mean=self.input_mean,
            input_variance=self.input_variance,
            target_scale=self.target_scale,
        )
        return compile_model(
            model,
            self.data_spec.task,
            optimizer=optimizer if optimizer is not None else self.optimizers[0],
            learning_rate=learning_rate if learning_rate is not None else self.learning_rates[0],
        )

    # ------------------------------------------------------------------ training

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any):
        """Train one trial's model with search defaults (`kbnas.training.fit_model`).

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
        return fit_model(model, self._require_spec(), seed=self.seed, **arguments)

    def _require_spec(self) -> DataSpec:
        self._require_configured()
        return self.data_spec
