"""Turn an architecture of a `SearchSpace` into a functional `keras.Model`.

`build_model` is a pure function of its arguments: the architecture, its search
space, the data spec (raw input shape and task) and the normalisation statistics.
`compile_model` compiles the result for its task with a named optimizer;
`kbnas.hypermodel.ConvNetHyperModel` calls both.

Model built for an architecture ``l_0 … l_{n-1}`` over a space with input shape S:

    Input(data_shape) → [Reshape(S) for grayscale (H, W)] → Normalization
        → l_0 → … → l_{n-1} → [Flatten] → Dense(num_outputs, head activation)

The Normalization layer holds the per-channel mean and variance of the training
inputs (computed by `ConvNetHyperModel.configure`), so the model — and its export
— takes raw inputs. It has no weights, so
``model.count_params() == space.param_count(arch)``. The head is softmax
(multiclass), sigmoid (binary) or linear (regression), and runs in float32 even
under a ``mixed_float16`` policy; for regression trained from data it is followed
by ``target_scale``, ŷ = μ + σ·z with the training target's mean and standard
deviation, so that the model predicts in the target's units and starts at its
mean; `_HEAD` maps each task to its head activation,
loss and metrics.

Layer semantics are exactly those of `kbnas.space`: convolutions stride 1,
padding "same", no activation; pooling size 2 stride 2 "valid"; a dense layer on a
spatial tensor flattens it first; ``batchnorm`` is a ``BatchNormalization`` with
momentum `BATCHNORM_MOMENTUM` (0.9, not Keras's 0.99, see there). Layers are named ``l{i}_{token}``, e.g.
``l0_conv3_32``, ``l1_relu``, ``l2_maxpool``, ``l3_flatten``, ``l3_dense_64``; the
fixed layers are ``inputs``, ``add_channel_axis`` (the grayscale Reshape),
``normalization``, ``head_flatten`` (when the last layer is spatial), ``head`` and,
for regression, ``target_scale``.
"""

from __future__ import annotations

import re

import keras
import numpy as np

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
    Architecture,
    InvalidArchitectureError,
    Layer,
    SearchSpace,
)

#: Momentum m of every ``batchnorm`` layer's moving mean and variance. After n
#: training steps the moving statistics hold a weight 1 − m^n on the batches seen
#: and m^n on their initial values (mean 0, variance 1), and validation, which uses
#: them, sees a network that is not the one being trained until m^n is small.
#: With Keras's default m = 0.99 that takes a few hundred steps: the digits' 1,079
#: training images at batch 64 make 17 steps per epoch, so after the first rung of
#: early stopping (3 epochs, 51 steps) m^n = 0.60, and a batchnorm network's
#: validation accuracy lags its learning. Measured on the digits (3 seeds,
#: ``conv3-32|batchnorm|relu|maxpool|conv3-64|batchnorm|relu|maxpool|dropout|dense-128|relu|dropout``,
#: the search recipe): best validation accuracy over the first 3 epochs 0.875 at
#: m = 0.99 against 0.945 at m = 0.9, over 9 epochs 0.880 against 0.982, at the end
#: 0.982 against 0.985 (26 against 17 epochs; test 0.9851 against 0.9842). With
#: 0.99 the rule stopped most batchnorm candidates at epoch 3 as hopeless
#: (docs/benchmarks.md). With m = 0.9, m^n = 0.005 after 51 steps.
BATCHNORM_MOMENTUM = 0.9

#: Task -> (head activation, loss, metrics).
_HEAD = {
    MULTICLASS: ("softmax", "sparse_categorical_crossentropy", ["accuracy"]),
    BINARY: ("sigmoid", "binary_crossentropy", ["accuracy"]),
    REGRESSION: ("linear", "mean_squared_error", ["mean_absolute_error"]),
}


#: Names of the Keras layers of architecture layers: ``l<position>_<kind>[_<width>]``.
LAYER_NAME = re.compile(r"^l\d+_")


def layer_name(position: int, layer: Layer) -> str:
    """The Keras name of the architecture's layer at ``position`` (0-based), e.g. ``l0_conv3_32``."""
    return f"l{position}_{layer.kind}" + ("" if layer.width is None else f"_{layer.width}")


def architecture_layer_names(model: keras.Model) -> list[str]:
    """The names of the architecture's layers in a model `build_model` made, in order
    (the Flatten it inserts before a first dense layer left out); [] for another model."""
    return [layer.name for layer in model.layers
            if LAYER_NAME.match(layer.name) and not layer.name.endswith("_flatten")]


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A Keras optimizer from its name (``"adam"``, ``"sgd"``, ``"rmsprop"``, …).

    Args:
        name: any name `keras.optimizers.get` accepts as a class name.
        learning_rate: initial learning rate.
    """
    return keras.optimizers.get({"class_name": name, "config": {"learning_rate": float(learning_rate)}})


def build_model(
    architecture: Architecture,
    space: SearchSpace,
    spec: DataSpec,
    *,
    input_mean: np.ndarray,
    input_variance: np.ndarray,
    target_scale: tuple[float, float] | None = None,
) -> keras.Model:
    """The uncompiled functional model of one architecture (see the module docstring).

    Args:
        architecture: an architecture already validated against `space`.
        space: its search space (input shape, dropout rate).
        spec: the data spec: raw per-example shape (``spec.data_shape``), task
            and number of outputs.
        input_mean, input_variance: per-channel statistics of the
            Normalization layer.
        target_scale: (μ, σ) of a regression target
            (`kbnas.data_inference.target_statistics`): the head's output z
            becomes μ + σ·z (a ``Rescaling`` layer named ``target_scale``, no
            weights). None: no rescaling.

    Returns:
        A `keras.Model` named ``"convnet"`` taking raw inputs of shape
        (batch, *spec.data_shape).

    Raises:
        InvalidArchitectureError: a layer kind the builder does not know.
    """
    inputs = keras.Input(shape=spec.data_shape, name="inputs")
    tensor = inputs
    if spec.data_shape != space.input_shape:
        tensor = keras.layers.Reshape(space.input_shape, name="add_channel_axis")(tensor)
    tensor = keras.layers.Normalization(
        axis=-1,
        mean=input_mean,
        variance=input_variance,
        dtype="float32",
        name="normalization",
    )(tensor)
    spatial_rank = len(space.input_shape) - 1
    for position, layer in enumerate(architecture):
        name = layer_name(position, layer)
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
            tensor = keras.layers.BatchNormalization(momentum=BATCHNORM_MOMENTUM, name=name)(tensor)
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
    if target_scale is not None and spec.task == REGRESSION:
        mean, std = (float(value) for value in target_scale)
        outputs = keras.layers.Rescaling(scale=std, offset=mean, dtype="float32", name="target_scale")(outputs)
    return keras.Model(inputs, outputs, name="convnet")


def compile_model(model: keras.Model, task: str, *, optimizer: str, learning_rate: float) -> keras.Model:
    """Compile `model` with the loss and metrics of `task` (`_HEAD`).

    Args:
        model: a model from `build_model`.
        task: ``"multiclass"``, ``"binary"`` or ``"regression"``.
        optimizer: optimizer name, for `make_optimizer`.
        learning_rate: its learning rate.

    Returns:
        `model`, compiled in place.
    """
    _, loss, metrics = _HEAD[task]
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=loss,
        metrics=list(metrics),
    )
    return model
