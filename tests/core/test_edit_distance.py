from __future__ import annotations

import itertools

import numpy as np
import pytest

from kbnas.core.edit_distance import (
    KIND_FAMILIES,
    edit_distance,
    indel_cost,
    kind_cost,
    pairwise_edit_distances,
    substitution_cost,
    width_cost,
)
from kbnas.space import LAYER_KINDS, WIDTH_KINDS, Architecture, Layer, SearchSpace

ALL_KINDS_SPACE = SearchSpace(
    input_shape=(32, 32, 3),
    vocabulary=LAYER_KINDS,
    filters=(16, 32, 64),
    units=(32, 64, 128),
    max_depth=8,
)
WIDTHS = (8, 16, 32, 64, 128, 256)
ALL_LAYERS = [Layer(kind, width) for kind in WIDTH_KINDS for width in WIDTHS] + [
    Layer(kind) for kind in LAYER_KINDS if kind not in WIDTH_KINDS
]


def arch(text: str) -> Architecture:
    return Architecture.decode(text)


def random_layer_lists(count: int, seed: int, max_depth: int = 8) -> list[Architecture]:
    """Architectures of random layers (not necessarily valid in a space), empty ones included."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        depth = int(rng.integers(0, max_depth + 1))
        result.append(Architecture(tuple(ALL_LAYERS[int(rng.integers(len(ALL_LAYERS)))] for _ in range(depth))))
    return result


def test_kind_cost_is_a_metric_on_kinds_and_the_absent_layer():
    points = list(LAYER_KINDS) + [None]
    for x, y in itertools.product(points, repeat=2):
        assert kind_cost(x, y) == kind_cost(y, x)
        assert (kind_cost(x, y) == 0) == (x == y)
    for x, y, z in itertools.product(points, repeat=3):
        assert kind_cost(x, z) <= kind_cost(x, y) + kind_cost(y, z) + 1e-12


def test_substitution_cost_is_a_metric_on_layers_and_the_absent_layer():
    points = ALL_LAYERS + [None]
    costs = np.array([[substitution_cost(x, y) for y in points] for x in points])
    np.testing.assert_array_equal(costs, costs.T)
    off_diagonal = ~np.eye(len(points), dtype=bool)
    assert np.all(costs[off_diagonal] > 0)
    assert np.all(np.diag(costs) == 0)
    # costs[i, k] <= costs[i, j] + costs[j, k] for every triple (i, j, k).
    through = costs[:, :, np.newaxis] + costs[np.newaxis, :, :]
    assert np.all(costs[:, np.newaxis, :] <= through + 1e-12)


@pytest.mark.parametrize(
    "token_a, token_b, expected",
    [
        ("conv3-32", "conv3-32", 0.0),
        ("conv3-16", "conv3-32", 0.25),
        ("conv3-16", "conv3-64", 0.5),
        ("conv3-16", "conv3-128", 0.5),  # capped at two octaves
        ("conv3-32", "conv5-32", 0.25),
        ("conv3-32", "conv5-64", 0.5),
        ("maxpool", "avgpool", 0.25),
        ("relu", "batchnorm", 0.5),
        ("relu", "dropout", 0.5),
        ("conv3-32", "maxpool", 0.875),
        ("conv5-16", "avgpool", 0.875),
        ("conv3-32", "dense-32", 1.0),
        ("conv3-32", "dense-128", 1.5),
        ("maxpool", "relu", 0.75),
        ("conv3-32", "relu", 1.25),
        ("dense-64", "dropout", 1.25),
        ("maxpool", "dense-64", 1.5),
        ("dense-32", "dense-64", 0.25),
    ],
)
def test_documented_substitution_costs(token_a, token_b, expected):
    layer_a, layer_b = Layer.decode(token_a), Layer.decode(token_b)
    assert substitution_cost(layer_a, layer_b) == pytest.approx(expected)
    assert substitution_cost(layer_b, layer_a) == pytest.approx(expected)


@pytest.mark.parametrize(
    "token, expected",
    [("conv3-16", 1.0), ("conv5-64", 1.0), ("dense-128", 1.0), ("maxpool", 0.75), ("avgpool", 0.75),
     ("relu", 0.5), ("batchnorm", 0.5), ("dropout", 0.5)],
)
def test_documented_indel_costs(token, expected):
    assert indel_cost(Layer.decode(token)) == pytest.approx(expected)


def test_substitution_never_exceeds_delete_plus_insert():
    for x, y in itertools.product(ALL_LAYERS, repeat=2):
        assert substitution_cost(x, y) <= indel_cost(x) + indel_cost(y) + 1e-12


def test_family_order_conv_pool_cheaper_than_conv_dense():
    conv = Layer("conv3", 32)
    assert substitution_cost(conv, Layer("conv5", 32)) < substitution_cost(conv, Layer("maxpool"))
    assert substitution_cost(conv, Layer("maxpool")) < substitution_cost(conv, Layer("dense", 32))


def test_width_cost_is_logarithmic_and_capped():
    assert width_cost(32, 64) == width_cost(64, 128) == pytest.approx(0.25)
    assert width_cost(16, 1024) == pytest.approx(0.5)
    assert width_cost(None, None) == 0.0
    assert width_cost(None, 32) == pytest.approx(0.5)


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="no edit cost"):
        kind_cost("lstm", "conv3")
    assert set(KIND_FAMILIES) == set(LAYER_KINDS)


@pytest.mark.parametrize(
    "text_a, text_b, expected",
    [
        ("conv3-32|relu", "conv3-32|relu|maxpool", 0.75),  # insert a maxpool
        ("", "conv3-32|relu", 1.5),  # insert both layers
        ("", "", 0.0),
        ("conv3-32|relu|maxpool", "conv3-64|relu|maxpool", 0.25),  # double the filters
        ("conv3-32|maxpool", "maxpool|conv3-32", 1.5),  # swap: insert + delete maxpool beats two substitutions
        ("conv3-32|relu|dense-64", "conv3-32|dense-64", 0.5),  # delete relu
        ("conv3-32|relu|maxpool|dense-64|relu", "conv5-32|relu|avgpool|dense-64|relu", 0.5),
    ],
)
def test_known_pairs(text_a, text_b, expected):
    a, b = arch(text_a), arch(text_b)
    assert edit_distance(a, b) == pytest.approx(expected)
    assert edit_distance(b, a) == pytest.approx(expected)
    np.testing.assert_allclose(pairwise_edit_distances([a], [b]), [[expected]])


def test_pairwise_equals_reference_on_random_pairs():
    archs_a = random_layer_lists(40, seed=0) + [Architecture(())]
    archs_b = random_layer_lists(30, seed=1) + [Architecture(())]
    expected = np.array([[edit_distance(a, b) for b in archs_b] for a in archs_a])
    np.testing.assert_allclose(pairwise_edit_distances(archs_a, archs_b), expected, rtol=0, atol=1e-12)


def test_pairwise_equals_reference_on_sampled_architectures_in_small_blocks():
    archs_a = ALL_KINDS_SPACE.sample_many(25, rng=2)
    archs_b = ALL_KINDS_SPACE.sample_many(20, rng=3)
    expected = np.array([[edit_distance(a, b) for b in archs_b] for a in archs_a])
    # A tiny block bound forces one row of archs_a per block.
    blocked = pairwise_edit_distances(archs_a, archs_b, max_cells_per_block=1)
    np.testing.assert_allclose(blocked, expected, rtol=0, atol=1e-12)


def test_pairwise_with_duplicates_and_empty_lists():
    a, b = arch("conv3-32|relu"), arch("dense-64")
    distances = pairwise_edit_distances([a, b, a], [b, a, b])
    expected = np.array([[edit_distance(x, y) for y in (b, a, b)] for x in (a, b, a)])
    np.testing.assert_allclose(distances, expected)
    assert pairwise_edit_distances([], [a, b]).shape == (0, 2)
    assert pairwise_edit_distances([a], []).shape == (1, 0)


def test_symmetric_with_zero_diagonal_and_positive_elsewhere():
    archs = list(dict.fromkeys(random_layer_lists(50, seed=4)))
    distances = pairwise_edit_distances(archs, archs)
    np.testing.assert_array_equal(distances, distances.T)
    np.testing.assert_array_equal(np.diag(distances), 0.0)
    assert np.all(distances[~np.eye(len(archs), dtype=bool)] > 0)


def test_triangle_inequality_on_random_triples():
    archs = random_layer_lists(60, seed=5)
    distances = pairwise_edit_distances(archs, archs)
    # distances[i, k] <= distances[i, j] + distances[j, k] for all 60^3 triples.
    through = distances[:, :, np.newaxis] + distances[np.newaxis, :, :]
    assert np.all(distances[:, np.newaxis, :] <= through + 1e-9)


def test_blocked_500_by_200_matrix_matches_the_scalar_reference():
    # The size the oracle scores per proposal, in blocks smaller than the matrix;
    # its speed is measured in benchmarks/distance_speed.py, not here.
    candidates = ALL_KINDS_SPACE.sample_many(500, rng=6)
    observed = ALL_KINDS_SPACE.sample_many(200, rng=7)
    distances = pairwise_edit_distances(candidates, observed, max_cells_per_block=20_000)
    assert distances.shape == (500, 200)
    rows = np.random.default_rng(0).choice(500, size=25, replace=False)
    for i in rows:
        for j in range(0, 200, 7):
            assert distances[i, j] == pytest.approx(edit_distance(candidates[i], observed[j]), abs=1e-9)


