"""Tests for kbnas.space: encoding, validity, shapes and parameters, sampling,
mutations, enumeration and the KerasTuner mapping."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from kbnas.space import (
    AVGPOOL,
    BATCHNORM,
    CONV3,
    CONV5,
    DENSE,
    DROPOUT,
    LAYER_KINDS,
    MAXPOOL,
    RELU,
    Architecture,
    InvalidArchitectureError,
    Layer,
    SearchSpace,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

decode = Architecture.decode


@pytest.fixture
def image_space() -> SearchSpace:
    """Conv/pool/relu/dense over an 8×8 image, depth up to 6 (kbnas' default before issue 9)."""
    return SearchSpace(
        (8, 8, 1),
        vocabulary=("conv3", "conv5", "maxpool", "avgpool", "relu", "dense"),
        filters=(16, 32, 64),
        units=(32, 64, 128),
        max_depth=6,
    )


def test_default_space_holds_the_textbook_convnet_and_wider_deeper_ones():
    """Issue 9: activations, batchnorm and dropout, widths up to 128, depth up to 12."""
    space = SearchSpace((8, 8, 1))
    assert set(space.vocabulary) == set(LAYER_KINDS)
    assert max(space.filters) >= 128 and max(space.units) >= 128
    assert space.max_depth >= 12
    textbook = Architecture.decode("conv3-32|relu|conv3-64|relu|maxpool|dropout|dense-128|relu")
    assert space.is_valid(textbook)
    deeper = Architecture.decode(
        "conv3-32|batchnorm|relu|conv3-64|batchnorm|relu|maxpool|conv3-128|relu|dropout|dense-256|relu"
    )
    assert space.is_valid(deeper)


@pytest.fixture
def full_space() -> SearchSpace:
    """Every layer kind, an 8×8 image input, depth up to 7."""
    return SearchSpace(
        (8, 8, 1), vocabulary=LAYER_KINDS, filters=(8, 16), units=(16, 32), max_depth=7
    )


# ---------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    "layer, token",
    [
        (Layer(CONV3, 32), "conv3-32"),
        (Layer(DENSE, 64), "dense-64"),
        (Layer(MAXPOOL), "maxpool"),
        (Layer(CONV5, 7), "conv5-7"),
    ],
)
def test_layer_encode_decode(layer, token):
    assert layer.encode() == token
    assert str(layer) == token
    assert Layer.decode(token) == layer


@pytest.mark.parametrize(
    "token, message",
    [
        ("conv7-32", "unknown layer kind 'conv7'"),
        ("conv3", "lacks a width"),
        ("relu-4", "takes no width"),
        ("conv3-032", "leading zeros"),
        ("conv3-0", "leading zeros"),
        ("dense-", "malformed"),
        ("dense-x", "malformed"),
        (" relu", "malformed"),
        ("", "malformed"),
        ("Conv3-32", "malformed"),
    ],
)
def test_layer_decode_rejects(token, message):
    with pytest.raises(ValueError, match=message):
        Layer.decode(token)


def test_layer_constructor_validates():
    with pytest.raises(ValueError, match="unknown layer kind"):
        Layer("conv4", 3)
    with pytest.raises(ValueError, match="width of a dense layer must be a positive integer"):
        Layer(DENSE)
    with pytest.raises(ValueError, match="has no width"):
        Layer(RELU, 3)
    assert Layer(DENSE, np.int64(8)).width == 8
    assert type(Layer(DENSE, np.int64(8)).width) is int


def test_architecture_basics():
    arch = decode("conv3-32|relu|maxpool|dense-64|relu")
    assert len(arch) == 5
    layers = [Layer(CONV3, 32), Layer(RELU), Layer(MAXPOOL), Layer(DENSE, 64), Layer(RELU)]
    assert list(arch) == layers
    assert str(arch) == arch.encode() == "conv3-32|relu|maxpool|dense-64|relu"
    tokens_and_layers = ["conv3-32", Layer(RELU), "maxpool", "dense-64", "relu"]
    assert Architecture.from_layers(tokens_and_layers) == arch
    assert Architecture([Layer(RELU)]) == Architecture((Layer(RELU),))
    assert hash(decode("relu|dense-4")) == hash(Architecture.from_layers(["relu", "dense-4"]))
    assert decode("") == Architecture(()) and Architecture(()).encode() == ""
    assert eval(repr(arch), {"Architecture": Architecture}) == arch


def test_architecture_decode_names_bad_token():
    with pytest.raises(ValueError, match="token 2: malformed layer token ''"):
        decode("relu||dense-4")
    with pytest.raises(ValueError, match="token 3: unknown layer kind 'pool'"):
        decode("conv3-8|relu|pool")


def test_encoding_round_trips_for_thousands_of_samples(full_space):
    for arch in full_space.sample_many(3000, rng=11):
        text = arch.encode()
        assert decode(text) == arch
        assert decode(text).encode() == text


# ---------------------------------------------------------------- space validation


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(input_shape=(8, 8, 1), vocabulary=(CONV3, "conv7")),
            "vocabulary has unknown layer kind 'conv7'",
        ),
        (dict(input_shape=(8, 8, 1), vocabulary=(RELU, RELU)), "vocabulary repeats"),
        (dict(input_shape=(8, 8, 1), vocabulary=()), "vocabulary must name at least one"),
        (dict(input_shape=(8, 8, 1), vocabulary="relu"), "not the string"),
        (
            dict(input_shape=(8, 8, 1), filters=()),
            "filters is empty but the vocabulary contains conv3, conv5",
        ),
        (dict(input_shape=(8, 8, 1), units=()), "units is empty but the vocabulary contains dense"),
        (dict(input_shape=(8, 8, 1), filters=(16, 0)), "filters entry 0 must be a positive"),
        (dict(input_shape=(8, 8, 1), units=(32, -1)), "units entry -1 must be a positive integer"),
        (dict(input_shape=(8, 8, 1), units=(32, 32)), "units repeats a width"),
        (dict(input_shape=(8, 8, 1), min_depth=0), "min_depth must be a positive integer"),
        (dict(input_shape=(8, 8, 1), min_depth=4, max_depth=3), "max_depth 3 is below min_depth 4"),
        (
            dict(input_shape=(64,)),
            "vocabulary contains conv3, conv5, maxpool, avgpool, which need a spatial input",
        ),
        (dict(input_shape=(8, 8, 8, 1)), "input_shape must be"),
        (dict(input_shape=()), "input_shape must be"),
        (dict(input_shape=(8, 0, 1)), "input_shape entry 0"),
        (dict(input_shape=(8, 8.5, 1)), "input_shape entry 8.5"),
        (dict(input_shape=(8, 8, 1), max_params=0), "max_params must be a positive integer"),
        (dict(input_shape=(8, 8, 1), num_outputs=0), "num_outputs must be a positive integer"),
        (dict(input_shape=(8, 8, 1), dropout_rate=1.0), r"dropout_rate must be in \[0, 1\)"),
    ],
)
def test_space_post_init_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(**kwargs)


def test_space_normalises_lists_to_tuples():
    space = SearchSpace([8, 8, 1], vocabulary=[CONV3, RELU, DENSE], filters=[4], units=[8, 16])
    assert space.input_shape == (8, 8, 1)
    assert space.vocabulary == (CONV3, RELU, DENSE)
    assert space.filters == (4,) and space.units == (8, 16)
    same = SearchSpace((8, 8, 1), vocabulary=(CONV3, RELU, DENSE), filters=(4,), units=(8, 16))
    assert space == same and hash(space) == hash(same)


def test_flat_space_without_spatial_kinds_is_allowed():
    space = SearchSpace((64,), vocabulary=(DENSE, RELU, DROPOUT, BATCHNORM))
    assert space.input_kind == "flat"


@pytest.mark.parametrize(
    "shape, kind", [((8, 8, 1), "image"), ((20, 3), "sequence"), ((5,), "flat")]
)
def test_input_kind(shape, kind):
    vocabulary = (DENSE,) if len(shape) == 1 else (CONV3, DENSE)
    assert SearchSpace(shape, vocabulary=vocabulary).input_kind == kind


def test_to_config_round_trip(full_space):
    sequence_space = SearchSpace((20, 3), max_params=5000, dropout_rate=0.5, num_outputs=3)
    for space in (full_space, sequence_space):
        config = space.to_config()
        assert SearchSpace.from_config(json.loads(json.dumps(config))) == space
    with pytest.raises(ValueError, match="unknown SearchSpace config keys \\['colour'\\]"):
        SearchSpace.from_config({**full_space.to_config(), "colour": "red"})


# ---------------------------------------------------------------- alphabet


def test_alphabet_and_token_ids():
    space = SearchSpace(
        (8, 8, 1), vocabulary=(CONV3, RELU, DENSE, MAXPOOL), filters=(8, 16), units=(32,)
    )
    tokens = [layer.encode() for layer in space.alphabet()]
    assert tokens == ["conv3-8", "conv3-16", "relu", "dense-32", "maxpool"]
    ids = space.token_ids(decode("conv3-16|relu|maxpool|dense-32"))
    assert ids.dtype.kind == "i"
    np.testing.assert_array_equal(ids, [1, 2, 4, 3])
    assert space.token_ids(Architecture(())).shape == (0,)
    with pytest.raises(ValueError, match=r"layer 2 \(conv3-32\) is not in this space's alphabet"):
        space.token_ids(decode("relu|conv3-32"))


def test_alphabet_covers_every_sampled_layer(full_space):
    alphabet = set(full_space.alphabet())
    assert len(alphabet) == len(full_space.alphabet())
    assert {layer for arch in full_space.sample_many(500, rng=2) for layer in arch} == alphabet


# ---------------------------------------------------------------- violations, one rule each


def test_rejects_pool_below_size_one():
    space = SearchSpace((2, 2, 1))
    assert space.violations(decode("conv3-16|maxpool|maxpool")) == [
        "layer 3 (maxpool) would shrink spatial size 1 below 1"
    ]


def test_rejects_conv_after_dense(image_space):
    assert image_space.violations(decode("conv3-16|relu|dense-32|conv3-32")) == [
        "layer 4 (conv3-32) follows a dense layer"
    ]
    assert image_space.violations(decode("dense-32|avgpool")) == [
        "layer 2 (avgpool) follows a dense layer"
    ]


def test_rejects_too_deep(image_space):
    assert image_space.violations(decode("|".join(["conv3-16", "relu"] * 4 + ["dense-32"]))) == [
        "depth 9 exceeds max_depth 6"
    ]


def test_rejects_too_shallow(image_space):
    assert image_space.violations(Architecture(())) == ["depth 0 below min_depth 1"]
    deep_space = SearchSpace((8, 8, 1), min_depth=3)
    assert deep_space.violations(decode("dense-32|relu")) == ["depth 2 below min_depth 3"]


def test_rejects_width_not_among_choices(image_space):
    assert image_space.violations(decode("conv3-16|dense-48")) == [
        "layer 2 (dense-48): width 48 not in units (32, 64, 128)"
    ]
    assert image_space.violations(decode("conv5-8")) == [
        "layer 1 (conv5-8): width 8 not in filters (16, 32, 64)"
    ]


def test_rejects_kind_outside_vocabulary():
    space = SearchSpace((8, 8, 1), vocabulary=(CONV3, RELU, DENSE))
    assert space.violations(decode("conv5-16|relu")) == [
        "layer 1 (conv5-16): kind conv5 not in vocabulary"
    ]


@pytest.mark.parametrize("kind", [RELU, BATCHNORM, DROPOUT])
def test_rejects_consecutive_repeats(kind):
    space = SearchSpace((8, 8, 1), vocabulary=LAYER_KINDS)
    pair = decode(f"conv3-16|dense-32|{kind}|{kind}")
    assert space.violations(pair) == [f"2 consecutive {kind} layers at 3-4"]
    triple = decode(f"{kind}|{kind}|{kind}|dense-32")
    assert space.violations(triple) == [f"3 consecutive {kind} layers at 1-3"]
    assert space.is_valid(decode(f"{kind}|dense-32|{kind}"))


def test_repeated_spatial_or_dense_layers_are_fine(image_space):
    assert image_space.is_valid(decode("conv3-16|conv3-16|maxpool|maxpool|dense-32|dense-32"))


def test_rejects_parameter_budget():
    # conv3-16 on (8, 8, 1): 9·1·16 + 16 = 160; head: 8·8·16·10 + 10 = 10250; total 10410.
    space = SearchSpace((8, 8, 1), max_params=10_000)
    assert space.violations(decode("conv3-16")) == [
        "parameter count 10410 exceeds max_params 10000"
    ]
    assert SearchSpace((8, 8, 1), max_params=10_410).is_valid(decode("conv3-16"))


def test_rejects_conv_on_flat_input():
    space = SearchSpace((16,), vocabulary=(DENSE, RELU))
    assert space.violations(decode("conv3-16")) == [
        "layer 1 (conv3-16): kind conv3 not in vocabulary",
        "layer 1 (conv3-16) needs a spatial input but the input shape (16,) is flat",
    ]


def test_violations_lists_every_reason(image_space):
    arch = decode("relu|relu|dense-48|conv3-16|maxpool|relu|relu|relu|batchnorm")
    assert image_space.violations(arch) == [
        "depth 9 exceeds max_depth 6",
        "layer 3 (dense-48): width 48 not in units (32, 64, 128)",
        "layer 9 (batchnorm): kind batchnorm not in vocabulary",
        "layer 4 (conv3-16) follows a dense layer",
        "layer 5 (maxpool) follows a dense layer",
        "2 consecutive relu layers at 1-2",
        "3 consecutive relu layers at 6-8",
    ]
    with pytest.raises(InvalidArchitectureError) as raised:
        image_space.validate(arch)
    assert isinstance(raised.value, ValueError)
    assert raised.value.reasons == image_space.violations(arch)
    assert "3 consecutive relu layers at 6-8" in str(raised.value)
    assert arch.encode() in str(raised.value)


def test_validate_returns_valid_architecture(image_space):
    arch = decode("conv3-32|relu|maxpool|dense-64|relu")
    assert image_space.validate(arch) is arch
    assert image_space.is_valid(arch)


# ---------------------------------------------------------------- shapes and parameters


def test_image_shapes_and_params_by_hand():
    space = SearchSpace((8, 8, 1), vocabulary=LAYER_KINDS, filters=(16,), units=(32,))
    arch = decode("conv3-16|batchnorm|relu|maxpool|conv5-16|avgpool|dense-32|dropout")
    assert space.output_shapes(arch) == [
        (8, 8, 16), (8, 8, 16), (8, 8, 16), (4, 4, 16), (4, 4, 16), (2, 2, 16), (32,), (32,)
    ]
    assert space.param_counts(arch) == [
        3 * 3 * 1 * 16 + 16,  # 160
        4 * 16,  # 64
        0,
        0,
        5 * 5 * 16 * 16 + 16,  # 6416
        0,
        2 * 2 * 16 * 32 + 32,  # 2080
        0,
    ]
    assert space.head_param_count(arch) == 32 * 10 + 10
    assert space.param_count(arch) == 160 + 64 + 6416 + 2080 + 330 == 9050


def test_sequence_shapes_and_params_by_hand():
    space = SearchSpace(
        (20, 3),
        vocabulary=(CONV3, CONV5, MAXPOOL, RELU, DENSE),
        filters=(8,),
        units=(4,),
        num_outputs=2,
    )
    arch = decode("conv5-8|maxpool|conv3-8|maxpool|relu")
    assert space.output_shapes(arch) == [(20, 8), (10, 8), (10, 8), (5, 8), (5, 8)]
    assert space.param_counts(arch) == [5 * 3 * 8 + 8, 0, 3 * 8 * 8 + 8, 0, 0]
    assert space.param_count(arch) == 128 + 200 + (5 * 8 * 2 + 2)
    # Odd sizes are floored: 5 -> 2 -> 1, and a third pooling is invalid.
    assert space.output_shapes(decode("maxpool|maxpool|maxpool|maxpool"))[-1] == (1, 3)
    assert not space.is_valid(decode("maxpool|maxpool|maxpool|maxpool|maxpool"))


def test_dense_flattens_spatial_input_and_empty_stack_head():
    space = SearchSpace((3, 5, 2), vocabulary=(DENSE,), units=(7,), num_outputs=4)
    assert space.output_shapes(decode("dense-7")) == [(7,)]
    assert space.param_counts(decode("dense-7")) == [3 * 5 * 2 * 7 + 7]
    assert space.param_count(decode("dense-7")) == 217 + 7 * 4 + 4
    assert space.param_count(Architecture(())) == 30 * 4 + 4


def test_shape_queries_reject_structurally_invalid(image_space):
    with pytest.raises(InvalidArchitectureError, match="follows a dense layer"):
        image_space.output_shapes(decode("dense-32|conv3-16"))
    with pytest.raises(InvalidArchitectureError, match="shrink spatial size 1 below 1"):
        image_space.param_count(decode("maxpool|maxpool|maxpool|maxpool"))


def test_summary_has_one_line_per_layer(image_space):
    arch = decode("conv3-32|relu|maxpool|dense-64|relu")
    lines = image_space.summary(arch).splitlines()
    assert len(lines) == 1 + 1 + len(arch) + 1 + 1  # header, input, layers, head, total
    for index, (layer, shape, params) in enumerate(
        zip(arch, image_space.output_shapes(arch), image_space.param_counts(arch)), start=1
    ):
        fields = lines[1 + index].split()
        assert fields[0] == str(index) and fields[1] == layer.encode()
        assert str(shape) in lines[1 + index]
        assert fields[-1] == f"{params:,}"
    assert lines[-1] == f"total params: {image_space.param_count(arch):,}" == "total params: 33,802"
    assert "head-10" in lines[-2] and lines[-2].split()[-1] == "650"


# ---------------------------------------------------------------- sampling


def test_sampling_covers_every_kind_and_depth_and_is_valid(full_space):
    archs = full_space.sample_many(2000, rng=0)
    assert all(full_space.is_valid(arch) for arch in archs)
    kinds = Counter(layer.kind for arch in archs for layer in arch)
    assert set(kinds) == set(LAYER_KINDS)
    depths = Counter(len(arch) for arch in archs)
    assert set(depths) == set(range(full_space.min_depth, full_space.max_depth + 1))
    # Without a budget nothing is rejected, so depth is uniform: ~286 per depth.
    assert min(depths.values()) > 200 and max(depths.values()) < 380


def test_sampling_first_layer_kind_is_uniform(image_space):
    archs = image_space.sample_many(3000, rng=5)
    first_kinds = Counter(arch[0].kind for arch in archs)
    # Six kinds allowed at position 1 of an 8x8 image: 500 expected each.
    assert set(first_kinds) == set(image_space.vocabulary)
    assert all(400 < count < 600 for count in first_kinds.values())


def test_sampling_is_reproducible(full_space):
    assert full_space.sample_many(50, rng=123) == full_space.sample_many(50, rng=123)
    assert full_space.sample_many(50, rng=np.random.default_rng(7)) == full_space.sample_many(
        50, rng=np.random.default_rng(7)
    )
    assert full_space.sample_many(50, rng=1) != full_space.sample_many(50, rng=2)
    assert full_space.sample(rng=9) == full_space.sample(rng=9)


def test_sampling_respects_budget():
    space = SearchSpace((8, 8, 1), max_params=20_000)
    archs = space.sample_many(300, rng=3)
    assert all(space.param_count(arch) <= 20_000 for arch in archs)


def test_sample_many_unique():
    space = SearchSpace(
        (4, 4, 1), vocabulary=(CONV3, MAXPOOL, DENSE), filters=(8,), units=(16,), max_depth=3
    )
    archs = space.sample_many(24, rng=0, unique=True)
    assert len(set(archs)) == 24 == space.count()
    with pytest.raises(RuntimeError, match="found only 24 distinct architectures of the 25"):
        space.sample_many(25, rng=0, unique=True)


def test_sampling_an_empty_space_fails_clearly():
    space = SearchSpace((8,), vocabulary=(RELU,), min_depth=2, max_depth=2)
    with pytest.raises(RuntimeError, match="no valid architecture in 1000 draws"):
        space.sample(rng=0)


# ---------------------------------------------------------------- mutations


def test_every_mutation_is_valid_and_differs(full_space):
    for arch in full_space.sample_many(60, rng=4):
        neighbours = full_space.mutations(arch)
        assert neighbours
        assert len(set(neighbours)) == len(neighbours)
        assert arch not in neighbours
        for neighbour in neighbours:
            assert full_space.is_valid(neighbour), neighbour
            assert abs(len(neighbour) - len(arch)) <= 1


def test_mutations_of_a_small_case_by_hand():
    space = SearchSpace(
        (4, 4, 1), vocabulary=(CONV3, MAXPOOL, DENSE), filters=(8, 16), units=(16,), max_depth=2
    )
    neighbours = {n.encode() for n in space.mutations(decode("conv3-8|dense-16"))}
    assert neighbours == {
        # insert (depth 3 exceeds max_depth 2: none)
        # delete
        "dense-16", "conv3-8",
        # substitute layer 1
        "conv3-16|dense-16", "maxpool|dense-16", "dense-16|dense-16",
        # substitute layer 2
        "conv3-8|conv3-8", "conv3-8|conv3-16", "conv3-8|maxpool",
        # swap gives dense-16|conv3-8: conv after dense, invalid
    }


def test_mutations_are_deterministic(full_space):
    arch = full_space.sample(rng=8)
    assert full_space.mutations(arch) == full_space.mutations(arch)


def test_mutate_gives_valid_neighbours(full_space):
    rng = np.random.default_rng(0)
    for arch in full_space.sample_many(100, rng=rng):
        mutant = full_space.mutate(arch, rng)
        assert mutant != arch
        assert full_space.is_valid(mutant)
        assert mutant in set(full_space.mutations(arch))


def test_mutate_reaches_every_neighbour_of_a_small_case():
    space = SearchSpace(
        (4, 4, 1), vocabulary=(CONV3, MAXPOOL, DENSE), filters=(8, 16), units=(16,), max_depth=2
    )
    arch = decode("conv3-8|dense-16")
    rng = np.random.default_rng(1)
    assert {space.mutate(arch, rng) for _ in range(400)} == set(space.mutations(arch))


def test_mutate_without_neighbours_fails_clearly():
    space = SearchSpace((4,), vocabulary=(DENSE,), units=(8,), min_depth=1, max_depth=1)
    with pytest.raises(ValueError, match="has no valid neighbour"):
        space.mutate(decode("dense-8"), rng=0)


# ---------------------------------------------------------------- enumeration


def test_enumeration_count_by_hand_image():
    # Input (4, 4, 1), vocabulary {C = conv3-8, P = maxpool, D = dense-16}, depth 1..3.
    # Rules: nothing spatial after D; P halves 4 -> 2 -> 1, so at most two Ps.
    #   depth 1: C, P, D                                        = 3
    #   depth 2: 3·3 = 9 minus DC, DP                           = 7
    #   depth 3: a {C,P} prefix of length k then D^(3-k):
    #            k=3: 2^3 = 8 minus PPP = 7; k=2: 4; k=1: 2; k=0: 1 = 14
    #   total 3 + 7 + 14                                        = 24
    space = SearchSpace(
        (4, 4, 1),
        vocabulary=(CONV3, MAXPOOL, DENSE),
        filters=(8,),
        units=(16,),
        min_depth=1,
        max_depth=3,
    )
    assert space.count() == 24
    assert len(list(space.enumerate())) == 24


def test_enumeration_count_by_hand_flat_with_budget():
    # Input (3,), vocabulary {R = relu, D = dense-4}, depth 1..3, no RR.
    #   depth 1: R, D = 2; depth 2: RD, DR, DD = 3; depth 3: DDD, DDR, DRD, RDD, RDR = 5: total 10.
    # With num_outputs 2: D on (3,) has 3·4+4 = 16 params, D on (4,) 20; the head on (3,)
    # has 3·2+2 = 8, on (4,) 10. max_params 30 keeps R (8), D (26), RD (26), DR (26),
    # RDR (26) and drops everything with two Ds (16+20+10 = 46): 5.
    space = SearchSpace(
        (3,), vocabulary=(RELU, DENSE), units=(4,), min_depth=1, max_depth=3, num_outputs=2
    )
    assert space.count() == 10
    budget_space = dataclasses.replace(space, max_params=30)
    assert {arch.encode() for arch in budget_space.enumerate()} == {
        "relu", "dense-4", "relu|dense-4", "dense-4|relu", "relu|dense-4|relu"
    }
    assert budget_space.count() == 5


@pytest.mark.parametrize(
    "space",
    [
        SearchSpace((4, 4, 2), vocabulary=LAYER_KINDS, filters=(2, 3), units=(4,), max_depth=4),
        SearchSpace((8, 8, 1), max_depth=3),
        SearchSpace(
            (6, 2),
            vocabulary=(CONV5, AVGPOOL, RELU, DENSE, DROPOUT),
            filters=(2,),
            units=(3, 5),
            min_depth=2,
            max_depth=4,
        ),
        SearchSpace(
            (4, 4, 1),
            vocabulary=(CONV3, MAXPOOL, RELU, DENSE),
            filters=(4, 8),
            units=(8,),
            max_depth=4,
            max_params=700,
        ),
    ],
)
def test_enumeration_yields_every_valid_architecture_once(space):
    archs = list(space.enumerate())
    assert len(archs) == len(set(archs)) == space.count()
    assert all(space.is_valid(arch) for arch in archs)
    assert list(space.enumerate()) == archs
    # Completeness: brute force over every sequence of alphabet layers.
    alphabet = space.alphabet()
    brute_force = 0
    frontier = [()]
    for _ in range(space.max_depth):
        frontier = [prefix + (layer,) for prefix in frontier for layer in alphabet]
        brute_force += sum(space.is_valid(Architecture(layers)) for layers in frontier)
    assert brute_force == len(archs)


# ---------------------------------------------------------------- defaults and KerasTuner


def test_default_architecture():
    default = SearchSpace((8, 8, 1)).default_architecture()
    assert default.encode() == "conv3-32|relu|maxpool|dense-64|relu"
    flat = SearchSpace((10,), vocabulary=(DENSE, RELU), units=(50, 100))
    assert flat.default_architecture().encode() == "dense-50|relu"
    shallow = SearchSpace((8, 8, 1), max_depth=2)
    assert shallow.default_architecture().encode() == "conv3-32|relu"
    deep = SearchSpace((8, 8, 1), min_depth=6, max_depth=6)
    assert len(deep.default_architecture()) == 6


@pytest.mark.parametrize(
    "space",
    [
        SearchSpace((8, 8, 1), max_params=3_000),
        SearchSpace(
            (1, 1, 3), vocabulary=(CONV5, AVGPOOL, BATCHNORM, DENSE), filters=(8,), units=(4,)
        ),
        SearchSpace(
            (12, 2),
            vocabulary=(CONV3, DROPOUT, DENSE),
            filters=(100, 4),
            units=(200, 8),
            min_depth=4,
        ),
        SearchSpace((5,), vocabulary=(BATCHNORM,), max_depth=1),
    ],
)
def test_default_architecture_is_valid_in_odd_spaces(space):
    assert space.is_valid(space.default_architecture())


def test_default_architecture_of_empty_space_fails():
    with pytest.raises(ValueError, match="contains no valid architecture"):
        SearchSpace((8,), vocabulary=(RELU,), min_depth=2, max_depth=2).default_architecture()


def test_hp_value_mapping(image_space):
    arch = decode("conv3-32|relu|maxpool|dense-64|relu")
    assert image_space.to_hp_value(arch) == "conv3-32|relu|maxpool|dense-64|relu"
    assert image_space.from_hp_value("conv3-32|relu|maxpool|dense-64|relu") == arch
    with pytest.raises(InvalidArchitectureError, match="follows a dense layer"):
        image_space.from_hp_value("dense-64|conv3-32")
    with pytest.raises(InvalidArchitectureError, match="width 7 not in filters"):
        image_space.to_hp_value(decode("conv3-7"))
    with pytest.raises(ValueError, match="is not an encoding: cannot decode"):
        image_space.from_hp_value("conv3-32|sigmoid")
    with pytest.raises(ValueError, match="must be a string"):
        image_space.from_hp_value(3)


def _keras_tuner_values_hash(values: dict) -> str:
    """KerasTuner's duplicate-detection hash of a values dict (Oracle._compute_values_hash)."""
    text = "".join(f"{key}={values[key]}" for key in sorted(values))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def test_equal_architectures_give_equal_keras_tuner_hashes(image_space):
    keras_tuner = pytest.importorskip("keras_tuner")

    def values_of(arch: Architecture) -> dict:
        hp = keras_tuner.HyperParameters()
        hp.Fixed("architecture", image_space.to_hp_value(arch))
        hp.Float("learning_rate", 1e-4, 1e-2, default=1e-3)
        return hp.values

    built = Architecture(
        (Layer(CONV3, 32), Layer(RELU), Layer(MAXPOOL), Layer(DENSE, 64), Layer(RELU))
    )
    parsed = decode("conv3-32|relu|maxpool|dense-64|relu")
    other = decode("conv3-32|relu|avgpool|dense-64|relu")
    assert built is not parsed
    assert values_of(built) == values_of(parsed)
    assert _keras_tuner_values_hash(values_of(built)) == _keras_tuner_values_hash(values_of(parsed))
    assert _keras_tuner_values_hash(values_of(built)) != _keras_tuner_values_hash(values_of(other))


def test_import_leaves_tensorflow_keras_and_keras_tuner_out():
    code = (
        "import sys, kbnas.space, kbnas.datasets; "
        "heavy = ('tensorflow', 'keras', 'keras_tuner', 'sklearn'); "
        "print(sorted(name for name in heavy if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_submodules_are_attributes_of_the_package_after_a_plain_import():
    # As the documentation writes them: kbnas.ensemble.ensemble_members(model), kbnas.space.Architecture.
    code = (
        "import sys, kbnas; "
        "print(kbnas.space.Architecture.__name__, 'tensorflow' in sys.modules, "
        "callable(kbnas.ensemble.ensemble_members), callable(kbnas.report.write_report)); "
        "print(hasattr(kbnas, 'nope'), hasattr(kbnas, '_LAZY_nope'), hasattr(kbnas, 'space.layers'))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.split() == ["Architecture", "False", "True", "True", "False", "False", "False"]
