"""Infer the input shape and the learning task from training data.

`infer_data_spec` looks at a training set — numpy arrays ``x`` (N, ...) and ``y``
(N,), or a `tf.data.Dataset` yielding ``(x, y)`` pairs, batched or not — and
returns a `DataSpec`: the per-example input shape the model sees, the task
(``"multiclass"``, ``"binary"`` or ``"regression"``) and the number of classes.
It also validates the data with errors that name the problem.

Inputs (shapes per example, after the batch axis N):

- ``(F,)`` flat features, ``(T, C)`` sequences, ``(H, W, C)`` images;
- ``(H, W)`` grayscale images: the model input gets a channel axis, ``(H, W, 1)``.
  A rank-3 array ``(N, A, B)`` is ambiguous between sequences ``(N, T, C)`` and
  grayscale images ``(N, H, W)``. It is read as grayscale images when
  ``input_kind="image"`` is passed or when its dtype is ``uint8`` (raw pixels,
  e.g. ``keras.datasets.mnist``), and as sequences otherwise. The raw shape is
  kept in `DataSpec.data_shape` so the model can add the axis itself and still
  take raw inputs.

Labels:

- boolean, or integer-valued (integer dtype, or floats that are all integers)
  with values in {0, 1} → ``"binary"``;
- integer-valued with more distinct values → ``"multiclass"`` with
  ``num_classes = max(y) + 1`` (negative labels are an error);
- other floats → ``"regression"``.
- One-hot ``(N, K)`` labels are rejected with a message suggesting
  ``y.argmax(axis=1)``: the model is trained with sparse labels, and silently
  converting only here would leave ``fit`` with labels of the wrong shape.

Only numpy is imported at module level; TensorFlow is imported lazily, and only
when a `tf.data.Dataset` is passed.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from typing import Any, Iterator

import numpy as np

MULTICLASS = "multiclass"
BINARY = "binary"
REGRESSION = "regression"
TASKS = (MULTICLASS, BINARY, REGRESSION)

IMAGE = "image"
SEQUENCE = "sequence"
FLAT = "flat"
INPUT_KINDS = (IMAGE, SEQUENCE, FLAT)

#: Bound on the examples read from a `tf.data.Dataset` to infer labels and
#: input statistics (the dataset may be infinite or very large).
DEFAULT_MAX_EXAMPLES = 10_000
#: With task="auto", integer labels with more distinct values than this ...
AUTO_CLASSES_LIMIT = 20
#: ... and fewer than this many examples per distinct value are a regression target.
MIN_EXAMPLES_PER_CLASS = 10


class InferredRegressionWarning(UserWarning):
    """``task="auto"`` took integer labels for a regression target (`infer_task`)."""


#: Largest class label: labels are cast to int64, and so is ``max(y) + 1`` classes.
MAX_CLASS_LABEL = int(np.iinfo(np.int64).max) - 1
#: Most classes (units of the softmax head): labels such as {0, 1, 10**12} would
#: otherwise ask for a head of 10**12 units, which no memory holds.
MAX_CLASSES = 100_000


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What the model needs to know about the data.

    Attributes:
        input_shape: per-example shape the network sees: (H, W, C), (T, C) or (F,).
        task: one of `TASKS`.
        num_classes: number of classes for ``"multiclass"``, 2 for ``"binary"``,
            `None` for ``"regression"``.
        data_shape: per-example shape of ``x`` as given; equals `input_shape`
            except for grayscale images, where it is (H, W). `None` means
            "same as `input_shape`".
    """

    input_shape: tuple[int, ...]
    task: str
    num_classes: int | None = None
    data_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        data_shape = self.input_shape if self.data_shape is None else self.data_shape
        object.__setattr__(self, "data_shape", tuple(int(d) for d in data_shape))

    @property
    def input_kind(self) -> str:
        """``"image"``, ``"sequence"`` or ``"flat"``, from the rank of `input_shape`."""
        return {3: IMAGE, 2: SEQUENCE, 1: FLAT}[len(self.input_shape)]

    @property
    def num_outputs(self) -> int:
        """Units of the output head: `num_classes` for multiclass, else 1."""
        return int(self.num_classes) if self.task == MULTICLASS else 1


# ---------------------------------------------------------------------------
# Dataset detection and sampling


def is_dataset(data: Any) -> bool:
    """True if `data` is a `tf.data.Dataset` (without importing TensorFlow)."""
    if "tensorflow" not in sys.modules:
        return False
    import tensorflow as tf

    return isinstance(data, tf.data.Dataset)


def dataset_is_batched(dataset: Any) -> bool:
    """Whether a dataset of (x, y[, w]) yields batches, judged from its element_spec.

    A batched dataset has an unknown leading dimension (or, with
    ``drop_remainder=True``, the same fixed leading dimension on x and y); an
    unbatched one yields scalar labels or labels whose leading axis is not the
    examples axis.
    """
    x_spec, y_spec = _xy_specs(dataset)
    x_shape = x_spec.shape
    if x_shape.rank is None or x_shape.rank == 0:
        raise ValueError(f"the dataset's x has unsupported shape {x_shape}")
    if x_shape[0] is None:
        return True
    y_shape = y_spec.shape
    if y_shape.rank == 0:
        return False
    return y_shape[0] == x_shape[0] and x_shape.rank >= 2


def _xy_specs(dataset: Any) -> tuple[Any, Any]:
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ValueError(
            "a tf.data.Dataset must yield (x, y) or (x, y, sample_weight) tuples; "
            f"got element_spec {spec}"
        )
    x_spec, y_spec = spec[0], spec[1]
    if not hasattr(x_spec, "shape") or not hasattr(y_spec, "shape"):
        raise ValueError(
            "x and y must each be a single tensor (dict or nested inputs are not "
            f"supported); got element_spec {spec}"
        )
    return x_spec, y_spec


def sample_dataset(
    dataset: Any, *, max_examples: int = DEFAULT_MAX_EXAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """Read up to `max_examples` (x, y) examples of a dataset into numpy arrays.

    Args:
        dataset: `tf.data.Dataset` of (x, y) or (x, y, w), batched or not.
        max_examples: bound on the examples read.

    Returns:
        x: (n, ...) array, y: (n, ...) array with n <= max_examples (whole batches
        are kept, so n may exceed the bound by less than one batch).
    """
    batched = dataset_is_batched(dataset)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    count = 0
    for element in _iterate(dataset if batched else dataset.take(max_examples)):
        x_part, y_part = np.asarray(element[0]), np.asarray(element[1])
        if not batched:
            x_part, y_part = x_part[None], y_part[None]
        xs.append(x_part)
        ys.append(y_part)
        count += len(x_part)
        if count >= max_examples:
            break
    if not xs:
        raise ValueError("the dataset is empty: it yielded no (x, y) elements")
    return np.concatenate(xs), np.concatenate(ys)


def _iterate(dataset: Any) -> Iterator[Any]:
    return iter(dataset.as_numpy_iterator())


# ---------------------------------------------------------------------------
# Inputs


def example_shape(x: Any) -> tuple[int | None, ...]:
    """Per-example shape of array inputs or of a dataset's x, without reading data.

    Args:
        x: (N, ...) array-like, or a `tf.data.Dataset` of (x, y[, w]), batched or not.

    Returns:
        The shape after the examples axis (dataset dimensions may be None).
    """
    if is_dataset(x):
        shape = tuple(_xy_specs(x)[0].shape)
        return shape[1:] if dataset_is_batched(x) else shape
    return tuple(int(size) for size in np.shape(x)[1:])


def _as_array(data: Any, what: str) -> np.ndarray:
    array = np.asarray(data)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise ValueError(f"{what} must be numeric, got dtype {array.dtype}")
    if np.iscomplexobj(array):  # the model would silently drop the imaginary part
        raise ValueError(f"{what} must be real numbers, got {array.dtype}")
    return array


def infer_input_shapes(
    x: np.ndarray, *, input_kind: str | None = None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Model input shape and raw per-example shape of `x`.

    Args:
        x: (N, F), (N, T, C), (N, H, W) or (N, H, W, C) array.
        input_kind: optional hint; ``"image"`` reads a rank-3 `x` as grayscale
            images (N, H, W), ``"sequence"`` as (N, T, C).

    Returns:
        (input_shape, data_shape): equal except for grayscale images, where
        input_shape is (H, W, 1) and data_shape (H, W).

    Raises:
        ValueError: rank not supported, or a hint inconsistent with the rank.
    """
    if input_kind is not None and input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
    data_shape = tuple(int(d) for d in x.shape[1:])
    rank = x.ndim
    if rank == 3:
        if input_kind == FLAT:
            raise ValueError(f"input_kind='flat' needs x of shape (N, F), got {x.shape}")
        grayscale = input_kind == IMAGE or (input_kind is None and x.dtype == np.uint8)
        return (data_shape + (1,) if grayscale else data_shape), data_shape
    expected = {2: FLAT, 4: IMAGE}
    if rank not in expected:
        raise ValueError(
            f"x has shape {x.shape} (rank {rank}); supported: (N, F) features, "
            "(N, T, C) sequences, (N, H, W, C) images or (N, H, W) grayscale images"
            + (" — for one feature per example reshape x to (N, 1)" if rank == 1 else "")
        )
    if input_kind is not None and input_kind != expected[rank]:
        raise ValueError(
            f"input_kind={input_kind!r} does not match x of shape {x.shape} "
            f"({expected[rank]} data)"
        )
    return data_shape, data_shape


#: The largest float32, the models' precision.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite_inputs(x: np.ndarray, what: str = "x") -> None:
    """Raise ValueError if `x` contains NaN or infinite values, or values that float32,
    the models' precision, cannot hold (they would become infinite in the model)."""
    if np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            bad = int(np.size(finite) - np.count_nonzero(finite))
            first = int(np.argwhere(~finite.reshape(len(x), -1).all(axis=1))[0, 0])
            raise ValueError(
                f"{what} contains {bad} NaN or infinite values (first in example "
                f"{first}); impute or drop them before the search"
            )
        if np.finfo(x.dtype).max > FLOAT32_MAX and max(float(np.max(x)), -float(np.min(x))) > FLOAT32_MAX:
            beyond = np.abs(x) > FLOAT32_MAX
            if beyond.any():
                first = int(np.argwhere(beyond.reshape(len(x), -1).any(axis=1))[0, 0])
                raise ValueError(
                    f"{what} holds {float(x[first][beyond[first]].flat[0]):g} (example {first}), beyond float32's "
                    "range (±3.4e38) that the model computes in; rescale it"
                )


def check_normalization_variance(x: np.ndarray, grayscale: bool, what: str = "x") -> None:
    """Raise ValueError where a channel's variance, which the input normalization holds in
    float32, exceeds float32's range: one value of 1e21 among small ones is enough, and the
    layer would then be infinite (its `.keras` file does not load again).

    Args:
        x: (N, ...) finite inputs.
        grayscale: (N, H, W) images, whose one channel is every value (as `input_statistics`).
        what: the inputs' name in the message.
    """
    # Integers of up to 64 bits have a variance of at most 2^126 < 3.4e38; a variance beyond
    # it needs a value beyond √(3.4e38)/2 (no float64 temporary for ordinary data).
    if not np.issubdtype(x.dtype, np.floating) or max(float(np.max(x)), -float(np.min(x))) <= (
            math.sqrt(FLOAT32_MAX) / 2):
        return
    axes = None if grayscale else tuple(range(x.ndim - 1))
    variance = np.atleast_1d(np.var(x, axis=axes, dtype=np.float64))
    over = np.flatnonzero(variance > FLOAT32_MAX)
    if over.size:
        channel = int(over[0])
        values = x if grayscale else x[..., channel]
        largest = float(np.max(np.abs(values)))
        where = "" if grayscale else (f" feature {channel}" if x.ndim == 2 else f" channel {channel}")
        raise ValueError(
            f"{what}'s{where} values reach {largest:g}: their variance ({float(variance[channel]):.2g}) is beyond "
            "float32's range (±3.4e38), which the input normalization holds; rescale it"
        )


def input_statistics(
    x: Any, spec: DataSpec, *, max_examples: int = DEFAULT_MAX_EXAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance of the inputs, for a Normalization layer.

    Statistics are taken over every axis but the channel axis (the examples and,
    for images and sequences, the spatial/time axes): shapes (C,) for
    (N, H, W, C) and (N, T, C), (F,) for (N, F), and (1,) for grayscale
    (N, H, W). A zero variance (constant channel) is replaced by 1 so the
    normalised value of new data stays finite.

    Args:
        x: array of inputs, or a `tf.data.Dataset` of (x, y) (then at most
            `max_examples` examples are read).
        spec: the `DataSpec` of the training set (decides grayscale vs sequence).
        max_examples: bound on the examples read from a dataset.

    Returns:
        (mean, variance): float64 arrays of shape (input_shape[-1],).
    """
    if is_dataset(x):
        x, _ = sample_dataset(x, max_examples=max_examples)
    array = _as_array(x, "x")
    if array.shape[1:] != spec.data_shape:
        raise ValueError(
            f"x has per-example shape {array.shape[1:]}, the spec says {spec.data_shape}"
        )
    grayscale = spec.data_shape != spec.input_shape
    axes = None if grayscale else tuple(range(array.ndim - 1))
    mean = np.atleast_1d(np.mean(array, axis=axes, dtype=np.float64))
    variance = np.atleast_1d(np.var(array, axis=axes, dtype=np.float64))
    variance = np.where(variance > 1e-12, variance, 1.0)
    return mean, variance


def target_statistics(
    x: Any, y: Any, spec: DataSpec, *, max_examples: int = DEFAULT_MAX_EXAMPLES
) -> tuple[float, float] | None:
    """Mean and standard deviation of a regression target, for the model's output scale.

    The model predicts ``ŷ = μ + σ·z``, with z the linear head's output
    (`kbnas.model_builder`), so that every architecture starts at the target's
    mean and its head works on a unit scale whatever the target's units. Without
    it a target far from 0 is out of reach: scikit-learn's diabetes (targets 25 to
    346) gave a linear model a 3-fold mean squared error of 28,775 after 30
    epochs, far above the 6,017 of predicting the training mean.

    Args:
        x, y: the training inputs and targets, as `infer_data_spec` takes them
            (for a `tf.data.Dataset` x, y is None and at most `max_examples`
            examples are read).
        spec: the training set's `DataSpec`.

    Returns:
        (μ, σ) as floats for a regression task (σ = 1 for a constant target),
        None for classification.
    """
    if spec.task != REGRESSION:
        return None
    if is_dataset(x):
        _, y = sample_dataset(x, max_examples=max_examples)
    values = np.asarray(y, dtype=np.float64).reshape(-1)
    mean, std = float(np.mean(values)), float(np.std(values))
    return mean, (std if std > 1e-12 else 1.0)


# ---------------------------------------------------------------------------
# Labels


def _labels_vector(y: np.ndarray, num_examples: int | None = None) -> np.ndarray:
    if y.ndim == 0:
        raise ValueError("y must have one label per example, got a scalar")
    if num_examples is not None and len(y) != num_examples:
        raise ValueError(f"x and y lengths differ: x has {num_examples} examples, y has {len(y)}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        looks_one_hot = (
            y.ndim == 2
            and np.isin(y, (0, 1)).all()
            and np.all(y.sum(axis=1) == 1)
        )
        if looks_one_hot:
            raise ValueError(
                f"y has shape {y.shape} and looks one-hot encoded; pass integer class "
                "labels instead, e.g. y.argmax(axis=1)"
            )
        raise ValueError(
            f"y has shape {y.shape}; expected one label per example, shape (N,) or (N, 1)"
        )
    if np.issubdtype(y.dtype, np.floating):
        if np.isnan(y).any():
            raise ValueError(f"y contains {int(np.isnan(y).sum())} NaN labels")
        if not np.isfinite(y).all():
            raise ValueError("y contains infinite labels")
    return y


def check_float32_targets(y: np.ndarray, name: str = "y") -> None:
    """Regression targets that float32, the models' precision, holds (|y| ≤ 3.4e38):
    larger ones would become inf when the model's loss casts them.

    Raises:
        ValueError: naming the largest target and the remedy.
    """
    values = np.asarray(y)
    if values.size == 0 or not np.issubdtype(values.dtype, np.floating):
        return
    with np.errstate(over="ignore"):
        beyond = np.isinf(values.astype(np.float32)) & np.isfinite(values)
    if beyond.any():
        raise ValueError(f"{name} holds the regression target {float(values[beyond].flat[0]):g}, beyond float32's "
                         "range (±3.4e38) that the model computes in; rescale the target")
    # The loss squares errors of the size of the targets' spread: beyond √(3.4e38) it is infinite.
    spread = float(np.max(np.abs(values - np.mean(values, dtype=np.float64))))
    if spread > math.sqrt(FLOAT32_MAX):
        raise ValueError(f"{name}'s regression targets lie up to {spread:.2g} from their mean: squared errors that "
                         "large are beyond float32's range (±3.4e38) that the loss is computed in; rescale the target")


def _check_label_range(labels: np.ndarray) -> None:
    """Integer-valued class labels that int64 holds (a cast would wrap them).

    Raises:
        ValueError: a label below 0 or above `MAX_CLASS_LABEL` that int64 cannot hold.
    """
    lowest, highest = labels.min().item(), labels.max().item()
    if lowest < -MAX_CLASS_LABEL:
        raise ValueError(f"class labels must be non-negative, found {_label_text(lowest)}")
    if highest > MAX_CLASS_LABEL:
        raise ValueError(
            f"class label {_label_text(highest)} is too large (at most {MAX_CLASS_LABEL}): number the "
            "classes 0..K-1, or pass task='regression' for a numeric target"
        )


def _label_text(value: bool | int | float) -> str:
    """A label as a message shows it: whole numbers in full up to 2**53, others as Python does."""
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 2.0**53):
        return repr(value)
    return str(int(value))


def _integer_valued(y: np.ndarray) -> bool:
    if y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer):
        return True
    return bool(np.all(np.floor(y) == y))


def infer_task(
    y: Any, *, task: str = "auto", num_classes: int | None = None
) -> tuple[str, int | None]:
    """Task and number of classes from labels.

    Args:
        y: (N,) or (N, 1) labels.
        task: ``"auto"`` to infer, or one of `TASKS` to check the labels against.
        num_classes: optional number of classes; labels must lie in
            [0, num_classes).

    Returns:
        (task, num_classes), num_classes being `None` for regression and 2 for
        binary.

    Raises:
        ValueError: NaN labels, negative, too large or out-of-range class labels, two labels
            that are not {0, 1} for a binary task, non-integer labels for a
            classification task.
    """
    if task != "auto" and task not in TASKS:
        raise ValueError(f"task must be 'auto' or one of {TASKS}, got {task!r}")
    labels = _labels_vector(_as_array(y, "y"))
    if len(labels) == 0:
        raise ValueError("y is empty")
    if num_classes is not None and int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if task == REGRESSION:
        return REGRESSION, None
    if not _integer_valued(labels):
        if task != "auto" or num_classes is not None:
            raise ValueError(
                f"a {task if task != 'auto' else 'classification'} task needs integer "
                f"class labels, but y has non-integer values such as {labels[~(np.floor(labels) == labels)][0]}"
            )
        return REGRESSION, None
    distinct = np.unique(labels)  # before the cast to int64, which needs _check_label_range
    if task == "auto" and num_classes is None:
        if len(distinct) == 1:
            raise ValueError(
                f"y has a single class (every label is {_label_text(distinct[0].item())}); classification "
                "needs at least two classes, and a constant target cannot be learned"
            )
        if len(distinct) > AUTO_CLASSES_LIMIT and len(distinct) * MIN_EXAMPLES_PER_CLASS > len(labels):
            # Integer-valued targets with too few examples per value are counts or
            # measurements (scikit-learn's diabetes: 214 values in 442 rows), not classes.
            warnings.warn(
                f"y's {len(distinct)} distinct integer values have {len(labels) / len(distinct):.1f} examples "
                f"each on average (fewer than {MIN_EXAMPLES_PER_CLASS}): taken as a regression target; pass "
                "task='multiclass' if they are classes",
                InferredRegressionWarning, stacklevel=2,
            )
            return REGRESSION, None
    _check_label_range(labels)
    labels = labels.astype(np.int64)
    lowest, highest = int(labels.min()), int(labels.max())
    if lowest < 0:
        raise ValueError(f"class labels must be non-negative, found {lowest}")
    if num_classes is not None and highest >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}) for num_classes={num_classes}, "
            f"found label {highest}"
        )
    if task == BINARY and num_classes not in (None, 2):
        raise ValueError(f"a binary task has 2 classes, got num_classes={num_classes}")
    if task == BINARY or (task == "auto" and num_classes in (None, 2) and highest <= 1):
        if highest > 1:
            distinct = np.unique(labels)
            raise ValueError(
                f"binary labels must be 0 and 1, found {distinct[:5].tolist()}; remap "
                "them or pass task='multiclass'"
            )
        return BINARY, 2
    if task == "auto" and num_classes is None and len(distinct) <= 2:
        raise ValueError(
            f"y has only the distinct labels {np.unique(labels).tolist()}; binary "
            "labels must be 0 and 1 (remap them), or pass task='multiclass'"
        )
    classes = int(num_classes if num_classes is not None else highest + 1)
    if classes > MAX_CLASSES:
        used = len(np.unique(labels))
        raise ValueError(
            f"{classes} classes (labels 0..{classes - 1}) would make an output layer of {classes} units, "
            f"more than {MAX_CLASSES}; y has {used} distinct labels: number them 0..{used - 1}"
            + ("" if num_classes is not None else ", or pass task='regression' for a numeric target")
        )
    return MULTICLASS, classes


# ---------------------------------------------------------------------------
# Public entry points


def infer_data_spec(
    x: Any,
    y: Any = None,
    *,
    task: str = "auto",
    num_classes: int | None = None,
    input_kind: str | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> DataSpec:
    """Infer and validate the input shape and the task of a training set.

    Args:
        x: (N, ...) numpy-like inputs, or a `tf.data.Dataset` of (x, y) or
            (x, y, sample_weight), batched or not (then `y` must be `None`).
        y: (N,) or (N, 1) labels/targets for numpy `x`.
        task: ``"auto"`` or one of `TASKS`.
        num_classes: optional number of classes for classification.
        input_kind: optional hint for rank-3 inputs, see the module docstring.
        max_examples: bound on the examples read from a dataset to infer the
            labels (a dataset's spec is checked only on those examples).

    Returns:
        The `DataSpec`.

    Raises:
        ValueError: naming the problem: empty data, lengths of x and y differ,
            NaN/inf in x, NaN in y, unsupported rank, one-hot labels, labels
            outside [0, num_classes), regression targets beyond float32's range.
    """
    sampled = is_dataset(x)
    if sampled:
        if y is not None:
            raise ValueError("pass y=None when x is a tf.data.Dataset of (x, y) pairs")
        x, y = sample_dataset(x, max_examples=max_examples)
    elif y is None:
        raise ValueError("y is required when x is an array")
    x_array = _as_array(x, "x")
    if x_array.ndim == 0 or len(x_array) == 0:
        raise ValueError(f"x is empty (shape {x_array.shape})")
    y_array = _as_array(y, "y")
    _labels_vector(y_array, len(x_array))
    input_shape, data_shape = infer_input_shapes(x_array, input_kind=input_kind)
    if 0 in input_shape:
        raise ValueError(f"x has an empty axis: shape {x_array.shape}")
    check_finite_inputs(x_array)
    check_normalization_variance(x_array, grayscale=data_shape != input_shape)
    inferred_task, inferred_classes = infer_task(y_array, task=task, num_classes=num_classes)
    if inferred_task == REGRESSION:
        check_float32_targets(y_array)
        targets = np.asarray(y_array, dtype=np.float64).reshape(-1)
        # (Arrays only: a dataset is seen through a sample, whose targets may all be equal.)
        if not sampled and targets.size > 1 and np.all(targets == targets[0]):
            raise ValueError(f"y is constant (every target is {targets[0]:g}): a constant target cannot be learned")
    return DataSpec(
        input_shape=input_shape,
        task=inferred_task,
        num_classes=inferred_classes,
        data_shape=data_shape,
    )


def check_validation_data(
    spec: DataSpec,
    x: Any,
    y: Any = None,
    *,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> None:
    """Check a validation set against the training `spec`.

    Args:
        spec: the training set's `DataSpec`.
        x: validation inputs (array) or a `tf.data.Dataset` of (x, y).
        y: validation labels for array `x`.
        max_examples: bound on the examples read from a dataset.

    Raises:
        ValueError: the input shape differs from training, lengths differ,
            non-finite values, or labels invalid for the training task.
    """
    if is_dataset(x):
        x, y = sample_dataset(x, max_examples=max_examples)
    x_array = _as_array(x, "validation x")
    if x_array.ndim == 0 or len(x_array) == 0:
        raise ValueError("the validation set is empty")
    shape = tuple(int(d) for d in x_array.shape[1:])
    if shape != spec.data_shape:
        raise ValueError(
            f"validation x has per-example shape {shape}, but training x has "
            f"{spec.data_shape}"
        )
    check_finite_inputs(x_array, "validation x")
    if y is None:
        raise ValueError("validation data needs labels y")
    labels = _labels_vector(_as_array(y, "validation y"), len(x_array))
    if spec.task == REGRESSION:
        check_float32_targets(labels, "validation y")
    if spec.task != REGRESSION:
        try:
            infer_task(labels, task=spec.task, num_classes=spec.num_classes)
        except ValueError as error:
            raise ValueError(f"validation labels: {error}") from None
