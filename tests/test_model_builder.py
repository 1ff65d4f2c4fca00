"""Tests for kbnas.model_builder: the models ConvNetHyperModel.build_architecture builds."""

from __future__ import annotations

import keras
import pytest

from kbnas.hypermodel import ConvNetHyperModel
from kbnas.model_builder import BATCHNORM_MOMENTUM
from kbnas.space import LAYER_KINDS, SPATIAL_KINDS, Architecture

ALL_SPATIAL = LAYER_KINDS
ALL_FLAT = tuple(kind for kind in LAYER_KINDS if kind not in SPATIAL_KINDS)


def tiny_hypermodel(**kwargs) -> ConvNetHyperModel:
    settings = dict(filters=(4, 8), units=(8,), max_depth=4)
    settings.update(kwargs)
    return ConvNetHyperModel(**settings)


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
    batchnorm = model.get_layer("l1_batchnorm")
    assert isinstance(batchnorm, keras.layers.BatchNormalization)
    assert batchnorm.momentum == BATCHNORM_MOMENTUM == 0.9  # not Keras's 0.99: see model_builder


def test_sequence_layers_are_one_dimensional():
    hypermodel = ConvNetHyperModel(input_shape=(16, 2), task="regression", filters=(4,))
    model = hypermodel.build_architecture("conv5-4|maxpool|conv3-4")
    assert isinstance(model.get_layer("l0_conv5_4"), keras.layers.Conv1D)
    assert isinstance(model.get_layer("l1_maxpool"), keras.layers.MaxPooling1D)
    assert model.get_layer("l1_maxpool").output.shape == (None, 8, 4)
    assert [layer.name for layer in model.layers][-2:] == ["head_flatten", "head"]


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
