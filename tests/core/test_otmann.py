from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize

from kbnas.core.otmann import (
    NODE_LABELS,
    OtmannSettings,
    chain_graph,
    label_mismatch_table,
    max_profit_transport,
    otmann_distance,
    pairwise_otmann_distances,
    transport_problem,
)
from kbnas.space import LAYER_KINDS, Architecture, SearchSpace

IMAGE_SPACE = SearchSpace(input_shape=(8, 8, 1), vocabulary=LAYER_KINDS, max_depth=8)
CIFAR_SPACE = SearchSpace(input_shape=(32, 32, 3), vocabulary=LAYER_KINDS, max_depth=8)
FLAT_SPACE = SearchSpace(input_shape=(20,), vocabulary=("dense", "relu", "batchnorm", "dropout"), max_depth=6)


def arch(text: str) -> Architecture:
    return Architecture.decode(text)


def exact_matrix(archs_a, archs_b, space, **kwargs) -> np.ndarray:
    return np.array([[otmann_distance(a, b, space, **kwargs) for b in archs_b] for a in archs_a])


def test_chain_graph_masses_and_path_lengths_by_hand():
    graph = chain_graph(arch("conv3-32|relu|maxpool|dense-64"), channels=3)
    # conv: 3·32; relu, maxpool: 32 channels in; dense: 0.1·32·64; input/output: max(0.1·364.8, 100).
    np.testing.assert_allclose(graph.masses, [100.0, 96.0, 32.0, 32.0, 204.8, 100.0])
    assert graph.total_mass == pytest.approx(564.8)
    labels = [NODE_LABELS[label] for label in graph.labels]
    assert labels == ["input", "conv3", "relu", "maxpool", "dense", "output"]
    backward, forward = graph.path_lengths[:, :4], graph.path_lengths[:, 4:]
    # Columns: all, conv, pool, dense.
    np.testing.assert_array_equal(
        backward, [[0, 0, 0, 0], [1, 1, 0, 0], [2, 1, 0, 0], [3, 1, 1, 0], [4, 1, 1, 1], [5, 1, 1, 1]]
    )
    np.testing.assert_array_equal(
        forward, [[5, 1, 1, 1], [4, 1, 1, 1], [3, 0, 1, 1], [2, 0, 1, 1], [1, 0, 0, 1], [0, 0, 0, 0]]
    )


def test_large_network_input_output_mass_is_a_fraction_of_the_layer_mass():
    graph = chain_graph(arch("conv3-64|conv3-64"), channels=64)
    assert graph.masses[0] == graph.masses[-1] == pytest.approx(0.1 * 2 * 64 * 64)


def test_label_mismatch_table_follows_nasbot():
    table = label_mismatch_table()
    np.testing.assert_array_equal(table, table.T)
    np.testing.assert_array_equal(np.diag(table), 0.0)
    index = NODE_LABELS.index
    assert table[index("conv3"), index("conv5")] == pytest.approx(math.sqrt(2) / 10 * math.sqrt(2))
    assert table[index("maxpool"), index("avgpool")] == pytest.approx(0.5)
    for first, second in [("input", "conv3"), ("output", "input"), ("conv3", "maxpool"), ("relu", "dropout"),
                          ("dense", "conv5")]:
        assert np.isinf(table[index(first), index(second)])


def test_transport_problem_has_dummy_nodes():
    graph_a = chain_graph(arch("conv3-16"), channels=1)
    graph_b = chain_graph(arch("conv3-32|relu"), channels=1)
    supplies, demands, costs = transport_problem(graph_a, graph_b)
    np.testing.assert_allclose(supplies, np.append(graph_a.masses, graph_b.total_mass))
    np.testing.assert_allclose(demands, np.append(graph_b.masses, graph_a.total_mass))
    assert supplies.sum() == pytest.approx(demands.sum())
    np.testing.assert_array_equal(costs[-1, :-1], 1.0)
    np.testing.assert_array_equal(costs[:-1, -1], 1.0)
    assert costs[-1, -1] == 0.0


def test_distance_by_hand_width_change():
    # Masses (c_0 = 1): a = (100, 16, 100), b = (100, 32, 100); same positions, same labels,
    # so everything matches at cost 0 except 16 units of b's conv, unassigned at ν_nas = 1.
    a, b = arch("conv3-16"), arch("conv3-32")
    assert otmann_distance(a, b, IMAGE_SPACE, normalized=False) == pytest.approx(16.0)
    assert otmann_distance(a, b, IMAGE_SPACE) == pytest.approx(16.0 / (216 + 232))


def test_distance_by_hand_with_structural_cost():
    # b has an extra relu (mass 1, unassigned: cost 1). Input, conv and output each match
    # with C_str = ½·(|Δ all| = 1)/4 = 0.125 on one side, times ν_str = 0.1:
    # d = 0.0125 · (100 + 16 + 100) + 1 = 3.7.
    a, b = arch("conv3-16"), arch("relu|conv3-16")
    assert otmann_distance(a, b, IMAGE_SPACE, normalized=False) == pytest.approx(3.7)
    np.testing.assert_allclose(pairwise_otmann_distances([a], [b], IMAGE_SPACE, normalized=False), [[3.7]])


def test_zero_on_identical_networks_and_symmetric():
    archs = CIFAR_SPACE.sample_many(6, rng=0, unique=True)
    for a in archs:
        assert otmann_distance(a, a, CIFAR_SPACE) == pytest.approx(0.0, abs=1e-12)
    for a, b in zip(archs, archs[1:]):
        assert otmann_distance(a, b, CIFAR_SPACE) == pytest.approx(otmann_distance(b, a, CIFAR_SPACE), abs=1e-12)
        assert otmann_distance(a, b, CIFAR_SPACE) > 0


def test_empty_architecture():
    empty = Architecture(())
    assert otmann_distance(empty, empty, IMAGE_SPACE) == 0.0
    # Only conv3-16 (mass 16) is unassigned; input and output match with struct costs.
    distance = otmann_distance(empty, arch("conv3-16"), IMAGE_SPACE, normalized=False)
    assert distance == pytest.approx(16.0 + 0.1 * 2 * 100 * 0.5 * (1 + 1) / 4)
    np.testing.assert_allclose(
        pairwise_otmann_distances([empty], [arch("conv3-16"), empty], IMAGE_SPACE, normalized=False),
        [[distance, 0.0]],
    )


@pytest.mark.parametrize(
    "chain",
    [
        # Growing a network layer by layer.
        ["conv3-32", "conv3-32|relu", "conv3-32|relu|maxpool", "conv3-32|relu|maxpool|dense-64",
         "conv3-32|relu|maxpool|dense-64|relu|dense-128"],
        # Widening a convolution.
        ["conv3-16", "conv3-32", "conv3-64", "conv3-128"],
        # Changing more and more layers.
        ["conv3-32|relu|maxpool", "conv5-32|relu|maxpool", "conv5-32|relu|avgpool", "conv5-32|dropout|avgpool",
         "conv5-64|dropout|avgpool"],
    ],
)
def test_larger_for_more_different_networks(chain):
    archs = [arch(text) for text in chain]
    exact = [otmann_distance(archs[0], other, IMAGE_SPACE) for other in archs]
    assert exact[0] == 0.0
    assert all(earlier < later for earlier, later in zip(exact, exact[1:]))
    np.testing.assert_allclose(pairwise_otmann_distances(archs[:1], archs, IMAGE_SPACE)[0], exact, atol=1e-12)


@pytest.mark.parametrize("space, seed", [(CIFAR_SPACE, 1), (IMAGE_SPACE, 2), (FLAT_SPACE, 3)])
def test_pairwise_matches_exact_lp_on_random_pairs(space, seed):
    archs_a = space.sample_many(12, rng=seed)
    archs_b = space.sample_many(10, rng=seed + 100) + [archs_a[0]]
    expected = exact_matrix(archs_a, archs_b, space)
    np.testing.assert_allclose(pairwise_otmann_distances(archs_a, archs_b, space), expected, rtol=0, atol=1e-10)
    expected_raw = exact_matrix(archs_a[:5], archs_b, space, normalized=False)
    np.testing.assert_allclose(
        pairwise_otmann_distances(archs_a[:5], archs_b, space, normalized=False), expected_raw, rtol=1e-10, atol=1e-9
    )


def test_pairwise_with_other_settings_and_small_blocks():
    settings = OtmannSettings(non_assignment_penalty=0.5, mislabel_coeff=2.0, struct_coeff=0.8)
    archs = CIFAR_SPACE.sample_many(9, rng=4)
    expected = exact_matrix(archs, archs, CIFAR_SPACE, settings=settings)
    fast = pairwise_otmann_distances(archs, archs, CIFAR_SPACE, settings=settings, max_pairs_per_block=5)
    np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-10)


def test_pairs_left_unfinished_fall_back_to_the_lp():
    archs_a = CIFAR_SPACE.sample_many(5, rng=5)
    archs_b = CIFAR_SPACE.sample_many(4, rng=6)
    fallback = pairwise_otmann_distances(archs_a, archs_b, CIFAR_SPACE, max_augmentations=0)
    np.testing.assert_allclose(fallback, exact_matrix(archs_a, archs_b, CIFAR_SPACE), rtol=0, atol=1e-10)


def test_pairwise_of_a_list_with_itself_is_exactly_symmetric_with_zero_diagonal():
    archs = CIFAR_SPACE.sample_many(40, rng=7) + IMAGE_SPACE.sample_many(5, rng=8)
    distances = pairwise_otmann_distances(archs, archs, CIFAR_SPACE)
    np.testing.assert_array_equal(distances, distances.T)
    np.testing.assert_array_equal(np.diag(distances), 0.0)
    assert np.all(distances >= 0)
    assert np.all(distances <= 1.0 + 1e-12)  # d̄ ≤ ν_nas


def _partial_transport_by_lp(profits, row_capacities, column_capacities):
    """max Σ w Z over Z ≥ 0, rows ≤ p, columns ≤ q, Z = 0 off the edges (w ≤ 0)."""
    rows, columns = profits.shape
    result = scipy.optimize.linprog(
        -np.where(profits > 0, profits, 0.0).ravel(),
        A_ub=np.vstack([np.kron(np.eye(rows), np.ones((1, columns))), np.kron(np.ones((1, rows)), np.eye(columns))]),
        b_ub=np.concatenate([row_capacities, column_capacities]),
        bounds=[(0, None) if w > 0 else (0, 0) for w in profits.ravel()],
        method="highs",
    )
    assert result.status == 0
    return -result.fun


@pytest.mark.parametrize("integer_profits", [False, True])
def test_max_profit_transport_matches_lp_on_random_problems(integer_profits):
    rng = np.random.default_rng(9)
    count, rows, columns = 300, 5, 6
    if integer_profits:
        # Small integers make many ties and zero-profit cycles.
        profits = rng.integers(-1, 3, size=(count, rows, columns)).astype(float)
    else:
        profits = np.where(rng.random((count, rows, columns)) < 0.3, -np.inf, rng.random((count, rows, columns)))
    row_capacities = rng.random((count, rows)) * (rng.random((count, rows)) < 0.9)
    column_capacities = rng.random((count, columns))
    profit, solved = max_profit_transport(profits, row_capacities, column_capacities)
    assert solved.all()
    expected = [_partial_transport_by_lp(profits[k], row_capacities[k], column_capacities[k]) for k in range(count)]
    np.testing.assert_allclose(profit, expected, rtol=0, atol=1e-10)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="non_assignment_penalty"):
        OtmannSettings(non_assignment_penalty=0.0)
    with pytest.raises(ValueError, match="struct_coeff"):
        OtmannSettings(struct_coeff=-1.0)


def test_500_by_200_matrix_matches_pairwise_distances():
    # Its speed is measured in benchmarks/distance_speed.py, not here.
    candidates = CIFAR_SPACE.sample_many(500, rng=10)
    observed = CIFAR_SPACE.sample_many(200, rng=11)
    distances = pairwise_otmann_distances(candidates, observed, CIFAR_SPACE)
    assert distances.shape == (500, 200)
    for i, j in [(0, 0), (17, 3), (250, 199), (499, 100), (333, 42)]:
        assert distances[i, j] == pytest.approx(otmann_distance(candidates[i], observed[j], CIFAR_SPACE), rel=1e-9, abs=1e-9)
