"""Tests for kbnas.data_inference: shapes, tasks and validation errors."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from kbnas.data_inference import (
    target_statistics,
    BINARY,
    MULTICLASS,
    REGRESSION,
    DataSpec,
    InferredRegressionWarning,
    check_validation_data,
    infer_data_spec,
    infer_task,
    input_statistics,
)
from kbnas.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train")
    return x[:300], y[:300]


# ---------------------------------------------------------------- shapes


def test_digits_are_ten_class_images(digits):
    x, y = digits
    spec = infer_data_spec(x, y)
    assert spec == DataSpec(input_shape=(8, 8, 1), task=MULTICLASS, num_classes=10)
    assert spec.input_kind == "image"
    assert spec.num_outputs == 10
    assert spec.data_shape == (8, 8, 1)


@pytest.mark.parametrize(
    "shape, input_kind, expected_input, expected_kind",
    [
        ((20, 7), None, (7,), "flat"),
        ((20, 12, 3), None, (12, 3), "sequence"),
        ((20, 6, 5, 2), None, (6, 5, 2), "image"),
        ((20, 6, 5), "image", (6, 5, 1), "image"),
        ((20, 6, 5), "sequence", (6, 5), "sequence"),
    ],
)
def test_input_shape_by_rank(shape, input_kind, expected_input, expected_kind):
    rng = np.random.default_rng(0)
    spec = infer_data_spec(rng.normal(size=shape), rng.integers(0, 3, size=shape[0]), input_kind=input_kind)
    assert spec.input_shape == expected_input
    assert spec.input_kind == expected_kind
    assert spec.data_shape == shape[1:]


def test_uint8_rank3_is_read_as_grayscale_images():
    x = np.zeros((10, 28, 28), dtype=np.uint8)
    spec = infer_data_spec(x, np.arange(10) % 10)
    assert spec.input_shape == (28, 28, 1)
    assert spec.data_shape == (28, 28)


@pytest.mark.parametrize("shape", [(10,), (10, 2, 3, 4, 5)])
def test_unsupported_rank_is_rejected(shape):
    with pytest.raises(ValueError, match="supported"):
        infer_data_spec(np.zeros(shape), np.zeros(10, dtype=int))


def test_input_kind_hint_must_match_rank():
    with pytest.raises(ValueError, match="does not match"):
        infer_data_spec(np.zeros((4, 3)), np.zeros(4, dtype=int), input_kind="image")


# ---------------------------------------------------------------- tasks


@pytest.mark.parametrize(
    "labels, expected",
    [
        (np.array([0, 1, 1, 0]), (BINARY, 2)),
        (np.array([True, False, True, True]), (BINARY, 2)),
        (np.array([0.0, 1.0, 1.0]), (BINARY, 2)),
        (np.array([0, 3, 1, 2]), (MULTICLASS, 4)),
        (np.array([0.0, 4.0, 2.0]), (MULTICLASS, 5)),
        (np.array([[0], [2], [1]]), (MULTICLASS, 3)),
        (np.array([0.5, 1.0, 2.25]), (REGRESSION, None)),
    ],
)
def test_task_inference_rules(labels, expected):
    assert infer_task(labels) == expected


def test_many_integer_values_with_few_examples_each_are_a_regression_target():
    """scikit-learn's diabetes target: 214 distinct integers in 442 rows."""
    from sklearn.datasets import load_diabetes

    target = load_diabetes().target
    assert np.all(target == np.round(target)) and len(np.unique(target)) == 214
    # Taken as a target, with a warning that says so and how to say otherwise
    # (a user's 30 classes of 8 images each trained as a regression without a word).
    with pytest.warns(InferredRegressionWarning, match=r"^y's 214 distinct integer values have 2.1 examples each "
                      r"on average \(fewer than 10\): taken as a regression target; pass task='multiclass'"):
        assert infer_task(target) == (REGRESSION, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning where the labels are classes
        # 21 classes with 10 examples each stay classes; 21 with 9 each are a target.
        assert infer_task(np.repeat(np.arange(21), 10)) == (MULTICLASS, 21)
        # 20 distinct values are always classes when the task is inferred.
        assert infer_task(np.arange(20)) == (MULTICLASS, 20)
        # An explicit task or number of classes is never overridden.
        assert infer_task(target, task=MULTICLASS)[0] == MULTICLASS
        assert infer_task(target, task=REGRESSION)[0] == REGRESSION
    with pytest.warns(InferredRegressionWarning, match="21 distinct integer values have 9.0 examples"):
        assert infer_task(np.repeat(np.arange(21), 9)) == (REGRESSION, None)


def test_num_classes_beyond_max_label_is_kept():
    assert infer_task(np.array([0, 1, 2]), num_classes=7) == (MULTICLASS, 7)
    assert infer_task(np.array([0, 1]), num_classes=5) == (MULTICLASS, 5)


def test_explicit_task_overrides_inference():
    assert infer_task(np.array([0, 1, 2]), task=REGRESSION) == (REGRESSION, None)
    assert infer_task(np.array([0, 1]), task=MULTICLASS) == (MULTICLASS, 2)


def test_label_errors():
    with pytest.raises(ValueError, match="non-negative"):
        infer_task(np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="single class"):
        infer_task(np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="single class"):
        infer_task(np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        infer_task(np.array([0, 1, 3]), num_classes=3)
    with pytest.raises(ValueError, match="binary labels must be 0 and 1"):
        infer_task(np.array([1, 2, 1]))
    with pytest.raises(ValueError, match="binary labels must be 0 and 1"):
        infer_task(np.array([0, 2]), task=BINARY)
    with pytest.raises(ValueError, match="integer class labels"):
        infer_task(np.array([0.5, 1.0]), task=MULTICLASS)
    with pytest.raises(ValueError, match="NaN"):
        infer_task(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="numeric"):
        infer_task(np.array(["cat", "dog"]))


def test_one_hot_labels_get_a_helpful_error(digits):
    x, y = digits
    one_hot = np.eye(10)[y]
    with pytest.raises(ValueError, match=r"one-hot.*argmax"):
        infer_data_spec(x, one_hot)
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\)"):
        infer_data_spec(x, np.ones((len(x), 2)) * 0.5)


# ---------------------------------------------------------------- data errors


def test_data_errors(digits):
    x, y = digits
    with pytest.raises(ValueError, match="lengths differ"):
        infer_data_spec(x, y[:-1])
    bad = x.copy()
    bad[7, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite.*example 7"):
        infer_data_spec(bad, y)
    bad[7, 2, 3, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        infer_data_spec(bad, y)
    with pytest.raises(ValueError, match="empty"):
        infer_data_spec(x[:0], y[:0])
    with pytest.raises(ValueError, match="y is required"):
        infer_data_spec(x)


def test_validation_data_checks(digits):
    x, y = digits
    spec = infer_data_spec(x, y)
    check_validation_data(spec, x[:20], y[:20])
    with pytest.raises(ValueError, match=r"validation x has per-example shape \(8, 8\)"):
        check_validation_data(spec, x[:20, :, :, 0], y[:20])
    with pytest.raises(ValueError, match=r"validation labels: .*\[0, 10\)"):
        check_validation_data(spec, x[:3], np.array([0, 1, 10]))
    with pytest.raises(ValueError, match="lengths differ"):
        check_validation_data(spec, x[:3], y[:2])


# ---------------------------------------------------------------- statistics


def test_input_statistics_are_per_channel():
    rng = np.random.default_rng(1)
    x = rng.normal(loc=[1.0, -2.0, 5.0], scale=[1.0, 3.0, 0.5], size=(50, 4, 4, 3))
    spec = infer_data_spec(x, np.arange(50) % 2)
    mean, variance = input_statistics(x, spec)
    np.testing.assert_allclose(mean, x.reshape(-1, 3).mean(axis=0))
    np.testing.assert_allclose(variance, x.reshape(-1, 3).var(axis=0))


def test_constant_channel_gets_unit_variance():
    x = np.column_stack([np.zeros(10), np.arange(10.0)])
    spec = infer_data_spec(x, np.arange(10) % 2)
    mean, variance = input_statistics(x, spec)
    np.testing.assert_allclose(mean, [0.0, 4.5])
    np.testing.assert_allclose(variance, [1.0, np.var(np.arange(10.0))])


def test_grayscale_statistics_have_one_channel():
    x = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    spec = infer_data_spec(x, np.array([0, 1]))
    mean, variance = input_statistics(x, spec)
    np.testing.assert_allclose(mean, [x.mean()])
    np.testing.assert_allclose(variance, [x.var()])


# ---------------------------------------------------------------- tf.data


@pytest.mark.parametrize("batch_size", [None, 16])
def test_dataset_spec_matches_arrays(digits, batch_size):
    import tensorflow as tf

    x, y = digits
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    assert infer_data_spec(dataset) == infer_data_spec(x, y)
    mean, variance = input_statistics(dataset, infer_data_spec(x, y))
    np.testing.assert_allclose(mean, [x.mean()], rtol=1e-6)
    np.testing.assert_allclose(variance, [x.var()], rtol=1e-5)


def test_dataset_labels_are_sampled_with_a_bound(digits):
    import tensorflow as tf

    x, y = digits
    # Only the first 40 examples are read: their labels are the binary 0/1 ones.
    order = np.argsort(y >= 2, kind="stable")
    x_sorted, y_sorted = x[order], y[order]
    assert set(y_sorted[:40]) == {0, 1}
    dataset = tf.data.Dataset.from_tensor_slices((x_sorted, y_sorted)).batch(8)
    assert infer_data_spec(dataset, max_examples=40).task == BINARY
    assert infer_data_spec(dataset).task == MULTICLASS


def test_dataset_errors(digits):
    import tensorflow as tf

    x, y = digits
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        infer_data_spec(tf.data.Dataset.from_tensor_slices(x))
    with pytest.raises(ValueError, match="empty"):
        infer_data_spec(tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(4))
    with pytest.raises(ValueError, match="y=None"):
        infer_data_spec(tf.data.Dataset.from_tensor_slices((x, y)), y)
    spec = infer_data_spec(x, y)
    with pytest.raises(ValueError, match="per-example shape"):
        check_validation_data(spec, tf.data.Dataset.from_tensor_slices((x[:, :4], y)).batch(4))


def test_numpy_path_does_not_import_tensorflow():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from kbnas.data_inference import infer_data_spec, input_statistics
        x = np.random.default_rng(0).normal(size=(30, 5, 2))
        spec = infer_data_spec(x, np.arange(30) % 3)
        input_statistics(x, spec)
        heavy = [name for name in ("tensorflow", "keras", "keras_tuner") if name in sys.modules]
        assert not heavy, heavy
        print(spec.task)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=pathlib.Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == MULTICLASS


def test_example_shape_of_arrays_and_datasets(digits):
    import tensorflow as tf

    from kbnas.data_inference import example_shape

    x, y = digits
    assert example_shape(x) == (8, 8, 1)
    assert example_shape(tf.data.Dataset.from_tensor_slices((x, y))) == (8, 8, 1)
    assert example_shape(tf.data.Dataset.from_tensor_slices((x, y)).batch(5)) == (8, 8, 1)
    assert example_shape(tf.data.Dataset.from_tensor_slices((x, y)).batch(5, drop_remainder=True)) == (8, 8, 1)


def test_target_statistics_of_a_regression_target_in_closed_form():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), 1000.0 + 40.0 * rng.normal(size=50)
    spec = infer_data_spec(x, y, task="regression")
    mean, std = target_statistics(x, y, spec)
    assert mean == pytest.approx(float(np.mean(y))) and std == pytest.approx(float(np.std(y)))
    # (n, 1) targets and a tf.data dataset give the same.
    assert target_statistics(x, y[:, None], spec) == pytest.approx((mean, std))
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    assert target_statistics(dataset, None, spec) == pytest.approx((mean, std))
    # A constant target keeps a unit scale; classification has none.
    assert target_statistics(x, np.full(50, 3.0), spec) == (3.0, 1.0)
    labels = np.arange(50) % 3
    assert target_statistics(x, labels, infer_data_spec(x, labels)) is None


def test_regression_targets_beyond_float32_are_refused_in_training_and_validation_data():
    x = np.zeros((20, 3), dtype="float32")
    y = np.linspace(-1.5, 2.5, 20)  # fractional: a regression target
    spec = infer_data_spec(x, y)
    assert spec.task == "regression"
    largest = float(np.finfo(np.float32).max)
    # float32 holds it, not the square of its error: the loss would be infinite.
    with pytest.raises(ValueError, match=r"^y's regression targets lie up to 3.2e\+38 from their mean: squared "):
        infer_data_spec(x, np.where(y == y[0], -largest, y))
    edge = 0.9 * np.sqrt(largest)
    assert infer_data_spec(x, np.where(y == y[0], edge, y)).task == "regression"  # its square's edge holds
    with pytest.raises(ValueError, match=r"^y holds the regression target -1e\+39, beyond float32's range"):
        infer_data_spec(x, np.where(y == y[3], -1e39, y))
    with pytest.raises(ValueError, match=r"^validation y holds the regression target 4e\+38"):
        check_validation_data(spec, x, np.where(y == y[3], 4e38, y))
    check_validation_data(spec, x, y)


def test_a_constant_regression_target_is_refused_in_arrays_not_in_a_datasets_sample():
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(0).random((300, 4)).astype("float32")
    with pytest.raises(ValueError, match=r"^y is constant \(every target is 0\): a constant target cannot be learned"):
        infer_data_spec(x, np.zeros(300), task="regression")
    # Zero-inflated targets, the zeros first: the sample a dataset is judged by holds only zeros.
    y = np.concatenate([np.zeros(200), np.random.default_rng(1).gamma(2.0, 1.0, 100)])
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    assert infer_data_spec(dataset, task="regression", max_examples=128).task == "regression"
