"""Known-good starting architectures (`kbnas.space.templates`) for every input kind."""

from __future__ import annotations

import numpy as np
import pytest

from kbnas.space import LAYER_KINDS, SPATIAL_KINDS, Architecture, SearchSpace
from kbnas.space.templates import FLAT_TEMPLATES, SPATIAL_TEMPLATES, adapt_template, random_template, templates

FLAT_VOCABULARY = tuple(kind for kind in LAYER_KINDS if kind not in SPATIAL_KINDS)
SPACES = {
    "image 8x8": SearchSpace(input_shape=(8, 8, 1)),
    "image 32x32x3": SearchSpace(input_shape=(32, 32, 3)),
    "image 2x2 (one pooling fits)": SearchSpace(input_shape=(2, 2, 1)),
    "sequence": SearchSpace(input_shape=(100, 4)),
    "short sequence": SearchSpace(input_shape=(3, 2)),
    "flat": SearchSpace(input_shape=(30,), vocabulary=FLAT_VOCABULARY),
    "old 6-layer default": SearchSpace(
        input_shape=(8, 8, 1), vocabulary=("conv3", "conv5", "maxpool", "avgpool", "relu", "dense"),
        filters=(16, 32, 64), units=(32, 64, 128), max_depth=6,
    ),
    "no relu, tiny widths": SearchSpace(input_shape=(8, 8, 1), vocabulary=("conv5", "avgpool", "dense"),
                                        filters=(8,), units=(16,), max_depth=4),
}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_templates_are_valid_distinct_and_non_empty(name):
    space = SPACES[name]
    found = templates(space)
    assert found, name
    assert len(set(found)) == len(found)
    for architecture in found:
        assert space.is_valid(architecture), (architecture, space.violations(architecture))


@pytest.mark.parametrize("name", ["image 8x8", "image 32x32x3", "sequence"])
def test_spatial_inputs_start_from_the_textbook_convnet(name):
    assert templates(SPACES[name])[0] == Architecture.decode(SPATIAL_TEMPLATES[0])
    assert SPATIAL_TEMPLATES[0] == "conv3-32|relu|conv3-64|relu|maxpool|dropout|dense-128|relu"


def test_flat_inputs_get_perceptrons_and_the_linear_model_second():
    found = templates(SPACES["flat"])
    assert found[0] == Architecture.decode(FLAT_TEMPLATES[0])
    assert all(layer.kind not in SPATIAL_KINDS for a in found for layer in a)
    # The linear model: no hidden dense layer, so the head is the only weight layer.
    assert found[1] == Architecture.decode("dropout")
    assert SPACES["flat"].param_count(found[1]) == (SPACES["flat"].input_shape[0] + 1) * SPACES["flat"].num_outputs


def test_adaptation_substitutes_siblings_and_nearest_widths():
    space = SPACES["no relu, tiny widths"]
    adapted = adapt_template("conv3-32|relu|maxpool|dense-128|relu", space)
    assert adapted == Architecture.decode("conv5-8|avgpool|dense-16")


def test_adaptation_drops_poolings_that_do_not_fit():
    space = SPACES["image 2x2 (one pooling fits)"]
    adapted = adapt_template("conv3-32|maxpool|conv3-32|maxpool|dense-64", space)
    assert adapted == Architecture.decode("conv3-32|maxpool|conv3-32|dense-64")


def test_adaptation_to_a_short_depth_drops_dropout_then_batchnorm_first():
    template = "conv3-32|batchnorm|relu|dropout|dense-64|relu|dropout"
    five = adapt_template(template, SearchSpace(input_shape=(8, 8, 1), max_depth=5))
    assert five == Architecture.decode("conv3-32|batchnorm|relu|dense-64|relu")
    four = adapt_template(template, SearchSpace(input_shape=(8, 8, 1), max_depth=4))
    assert four == Architecture.decode("conv3-32|relu|dense-64|relu")
    three = adapt_template(template, SearchSpace(input_shape=(8, 8, 1), max_depth=3))
    assert three == Architecture.decode("conv3-32|relu|dense-64")


def test_a_template_over_the_parameter_budget_is_left_out():
    space = SearchSpace(input_shape=(8, 8, 1), max_params=5_000)
    for architecture in templates(space):
        assert space.param_count(architecture) <= 5_000
    assert Architecture.decode(SPATIAL_TEMPLATES[0]) not in templates(space)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_random_templates_are_valid_and_varied(name):
    space = SPACES[name]
    rng = np.random.default_rng(0)
    draws = [random_template(space, rng) for _ in range(200)]
    valid = [d for d in draws if d is not None]
    assert len(valid) >= 100
    for architecture in valid:
        assert space.is_valid(architecture), (architecture, space.violations(architecture))
    # The tiny space has few architectures of this family; the others have many.
    assert len(set(valid)) >= (10 if name == "no relu, tiny widths" else 40)


def test_random_convolutions_are_always_followed_by_an_activation():
    """The point of random templates: no stack of convolutions without a ReLU."""
    space = SPACES["image 8x8"]
    rng = np.random.default_rng(1)
    for _ in range(200):
        architecture = random_template(space, rng)
        kinds = [layer.kind for layer in architecture]
        for position, kind in enumerate(kinds):
            if kind.startswith("conv"):
                following = kinds[position + 1 : position + 3]
                assert "relu" in following, architecture
