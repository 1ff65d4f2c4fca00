"""OTMANN, the optimal-transport distance of NASBOT (Kandasamy et al., 2018), for layer chains.

An architecture is read as a chain graph with nodes u = 0 (input), 1 … L (its layers
in order) and L + 1 (output). Each node has a label, a mass and path lengths; the
distance transports the mass of one network onto the other.

Notation:
    c_0                  channels of the input: ``space.input_shape[-1]``.
    c_k                  channels after layer k: its width for conv/dense, else c_{k−1}.
    m(u)                 layer mass, NASBOT's computation-based mass (from its code):
                           conv                            c_{k−1} · c_k
                           dense                           ρ · c_{k−1} · c_k   (ρ = 0.1)
                           pool, relu, batchnorm, dropout  c_{k−1}
                           input, output                   max(ζ · Σ_layers m, m_min)
                         with ζ = 0.1 and m_min = 100. Like NASBOT, a dense layer after
                         a convolution is measured by the channels it receives, not
                         by the flattened size, so that one flatten does not outweigh
                         the rest of the network.
    M = Σ_u m(u)         total mass of a network.
    C_lmm(u, v)          label mismatch in units of ν_nas (NASBOT's CNN table): 0 for
                         the same label; conv3 ↔ conv5: (√2/10)·√|3 − 5| = 0.2;
                         maxpool ↔ avgpool: 0.5; every other pair (input or output with
                         anything else, conv with pool, relu with dropout, …): ∞.
    δ^g_bwd(u), δ^g_fwd(u)  lengths of the paths input → u and u → output counting only
                         the edges that leave, in the direction of travel, a node of
                         group g ∈ G = {all, conv, pool, dense} (NASBOT's layer groups).
                         On a chain the shortest, longest and random-walk path lengths
                         coincide, so NASBOT's average over the three path types is this
                         one value: δ^g_bwd(k) = #{1 ≤ t ≤ k : t ∈ g} and
                         δ^g_fwd(k) = #{k ≤ t ≤ L : t ∈ g}, where the input and the
                         output belong only to "all" (so δ^all_bwd(k) = k and
                         δ^all_fwd(k) = L + 1 − k).
    C_str(u, v)          = ½ [mean_g |δ^g_bwd(u) − δ^g_bwd(v)| + mean_g |δ^g_fwd(u) − δ^g_fwd(v)|].
    C(u, v)              = μ · ν_nas · C_lmm(u, v) + ν_str · C_str(u, v).

    d(a, b) = min_Z ⟨Z, C⟩ + ν_nas · (M_a − Σ Z) + ν_nas · (M_b − Σ Z)
              over Z ≥ 0 with row sums ≤ m_a(u) and column sums ≤ m_b(v);
    d̄(a, b) = d(a, b) / (M_a + M_b)            (the normalised distance, in [0, ν_nas]).

NASBOT poses the partial transport as a balanced one with one dummy node per side:
supplies (m_a, M_b), demands (m_b, M_a), the cost matrix C bordered by a row and a
column of ν_nas with 0 in the dummy–dummy corner, and infinite costs replaced by
7.65432e5. `transport_problem` builds exactly that and `otmann_distance` solves it
by linear programming (scipy's HiGHS): the reference implementation.

The batched exact solver of `pairwise_otmann_distances` uses the equivalent form

    d(a, b) = ν_nas · (M_a + M_b) − max_Z Σ_uv Z_uv · w_uv,   w_uv = 2ν_nas − C(u, v),

over the same partial plans Z, where only pairs with w_uv > 0 are worth using (mass
over a pair costing ≥ 2ν_nas can be rerouted through both dummies at cost exactly
2ν_nas). This maximum-profit transportation problem is solved for all pairs of a
block at once by successive longest augmenting paths (`max_profit_transport`),
which is exact, not an approximation; pairs it cannot finish within its augmentation
budget (none in the tests) are handed to the LP.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import scipy.optimize

from kbnas.space import (
    AVGPOOL,
    CONV3,
    CONV5,
    CONV_KINDS,
    DENSE,
    LAYER_KINDS,
    MAXPOOL,
    POOL_KINDS,
    Architecture,
    SearchSpace,
)

#: Node labels: the input, the output, then the layer kinds.
INPUT_LABEL = "input"
OUTPUT_LABEL = "output"
NODE_LABELS = (INPUT_LABEL, OUTPUT_LABEL) + LAYER_KINDS
#: Groups of the structural path lengths: every edge, then edges leaving each group.
PATH_GROUPS = ("all", "conv", "pool", "dense")
#: Finite stand-in for an infinite label mismatch in the LP (NASBOT's value).
INFINITE_COST_REPLACEMENT = 7.65432e5

_CONV_SCALE = math.sqrt(2.0) / 10.0
_POOL_MISMATCH = 0.5
_DEFAULT_MAX_PAIRS_PER_BLOCK = 8192
#: Flows and capacities below this (masses are normalised to sum to 1) count as zero.
_MASS_TOLERANCE = 1e-12


@dataclasses.dataclass(frozen=True)
class OtmannSettings:
    """Parameters of the OTMANN distance (defaults from NASBOT).

    Attributes:
        non_assignment_penalty: ν_nas, cost per unit of unassigned mass.
        mislabel_coeff: μ, weight of the label-mismatch costs.
        struct_coeff: ν_str, weight of the structural costs. NASBOT sums kernels
            over ν_str ∈ {0.1, 0.2, 0.4, 0.8}; a single distance uses the smallest.
        io_mass_fraction: ζ, input/output mass as a fraction of the layer mass.
        min_io_mass: m_min, lower bound of the input/output mass.
        dense_mass_coeff: ρ, factor on c_in · c_out for dense layers.
    """

    non_assignment_penalty: float = 1.0
    mislabel_coeff: float = 1.0
    struct_coeff: float = 0.1
    io_mass_fraction: float = 0.1
    min_io_mass: float = 100.0
    dense_mass_coeff: float = 0.1

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            positive = field.name in ("non_assignment_penalty", "min_io_mass")
            if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
                bound = "positive" if positive else "non-negative"
                raise ValueError(f"{field.name} must be finite and {bound}, got {value!r}")


DEFAULT_SETTINGS = OtmannSettings()


def label_mismatch_table() -> np.ndarray:
    """C_lmm between the `NODE_LABELS`, in units of ν_nas, ``inf`` for incompatible labels.

    Returns:
        (len(NODE_LABELS), len(NODE_LABELS)) symmetric array.
    """
    size = len(NODE_LABELS)
    table = np.full((size, size), np.inf)
    np.fill_diagonal(table, 0.0)
    conv3, conv5 = NODE_LABELS.index(CONV3), NODE_LABELS.index(CONV5)
    table[conv3, conv5] = table[conv5, conv3] = _CONV_SCALE * math.sqrt(5 - 3)
    maxpool, avgpool = NODE_LABELS.index(MAXPOOL), NODE_LABELS.index(AVGPOOL)
    table[maxpool, avgpool] = table[avgpool, maxpool] = _POOL_MISMATCH
    return table


_LABEL_MISMATCH = label_mismatch_table()
_LABEL_INDEX = {label: index for index, label in enumerate(NODE_LABELS)}
_GROUP_OF_KIND = {kind: 1 for kind in CONV_KINDS} | {kind: 2 for kind in POOL_KINDS} | {DENSE: 3}


@dataclasses.dataclass(frozen=True)
class ChainGraph:
    """The OTMANN view of one architecture with L layers: L + 2 nodes.

    Attributes:
        labels: (L + 2,) indices into `NODE_LABELS` (input, layers, output).
        masses: (L + 2,) masses m(u).
        path_lengths: (L + 2, 2|G|) integers, δ^g_bwd(u) for the groups
            `PATH_GROUPS` in the first |G| columns, then δ^g_fwd(u).
    """

    labels: np.ndarray
    masses: np.ndarray
    path_lengths: np.ndarray

    @property
    def total_mass(self) -> float:
        """M = Σ_u m(u)."""
        return float(self.masses.sum())


def input_channels(space: SearchSpace) -> int:
    """c_0: the channels (or flat features) of the space's input, ``input_shape[-1]``."""
    return int(space.input_shape[-1])


def chain_graph(
    architecture: Architecture, channels: int, settings: OtmannSettings = DEFAULT_SETTINGS
) -> ChainGraph:
    """Labels, masses and path lengths of ``architecture`` read as a chain.

    Args:
        architecture: the layers, applied in order.
        channels: c_0, channels of the input tensor.
        settings: the mass parameters ρ, ζ and m_min.
    """
    layers = tuple(architecture)
    depth = len(layers)
    labels = np.empty(depth + 2, dtype=np.intp)
    labels[0], labels[-1] = _LABEL_INDEX[INPUT_LABEL], _LABEL_INDEX[OUTPUT_LABEL]
    masses = np.empty(depth + 2)
    membership = np.zeros((depth + 2, len(PATH_GROUPS)), dtype=np.int64)
    membership[:, 0] = 1
    for position, layer in enumerate(layers, start=1):
        labels[position] = _LABEL_INDEX[layer.kind]
        if layer.kind in CONV_KINDS:
            masses[position] = channels * layer.width
            channels = layer.width
        elif layer.kind == DENSE:
            masses[position] = settings.dense_mass_coeff * channels * layer.width
            channels = layer.width
        else:
            masses[position] = channels
        group = _GROUP_OF_KIND.get(layer.kind)
        if group is not None:
            membership[position, group] = 1
    masses[0] = masses[-1] = max(settings.io_mass_fraction * masses[1:-1].sum(), settings.min_io_mass)
    backward = np.zeros_like(membership)
    backward[1:] = np.cumsum(membership[1:], axis=0)
    forward = np.zeros_like(membership)
    forward[:-1] = np.cumsum(membership[:-1][::-1], axis=0)[::-1]
    return ChainGraph(labels, masses, np.concatenate([backward, forward], axis=1))


def _node_costs(
    labels_a: np.ndarray,
    paths_a: np.ndarray,
    labels_b: np.ndarray,
    paths_b: np.ndarray,
    settings: OtmannSettings,
) -> np.ndarray:
    """C = μ·ν_nas·C_lmm + ν_str·C_str between the nodes of (batched) graphs.

    Args:
        labels_a: (..., N_a) label indices; paths_a: (..., N_a, 2|G|) path lengths.
        labels_b, paths_b: the same for the other side, with N_b nodes.

    Returns:
        (..., N_a, N_b) costs, ``inf`` where the labels are incompatible.
    """
    mismatch = _LABEL_MISMATCH[labels_a[..., :, np.newaxis], labels_b[..., np.newaxis, :]]
    # C_str is an L1 distance between path-length vectors: small integers, summed exactly.
    paths_a = paths_a.astype(np.int16)
    paths_b = paths_b.astype(np.int16)
    path_gap = np.zeros(mismatch.shape, dtype=np.int16)
    for column in range(paths_a.shape[-1]):
        path_gap += np.abs(paths_a[..., :, np.newaxis, column] - paths_b[..., np.newaxis, :, column])
    structural_weight = settings.struct_coeff / paths_a.shape[-1]
    with np.errstate(invalid="ignore"):
        label_part = (settings.mislabel_coeff * settings.non_assignment_penalty) * mismatch
    # μ = 0 must keep incompatible labels incompatible (0·∞ is NaN).
    label_part[np.isinf(mismatch)] = np.inf
    return label_part + structural_weight * path_gap


def transport_problem(
    graph_a: ChainGraph, graph_b: ChainGraph, settings: OtmannSettings = DEFAULT_SETTINGS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NASBOT's balanced transport problem with one dummy node per side.

    Returns:
        supplies: (N_a + 1,) = (m_a, M_b); demands: (N_b + 1,) = (m_b, M_a); costs:
        (N_a + 1, N_b + 1), C bordered by ν_nas with a 0 corner, infinite entries
        replaced by `INFINITE_COST_REPLACEMENT`.
    """
    node_costs = _node_costs(graph_a.labels, graph_a.path_lengths, graph_b.labels, graph_b.path_lengths, settings)
    node_costs[np.isinf(node_costs)] = INFINITE_COST_REPLACEMENT
    costs = np.full((node_costs.shape[0] + 1, node_costs.shape[1] + 1), settings.non_assignment_penalty)
    costs[:-1, :-1] = node_costs
    costs[-1, -1] = 0.0
    supplies = np.append(graph_a.masses, graph_b.total_mass)
    demands = np.append(graph_b.masses, graph_a.total_mass)
    return supplies, demands, costs


def solve_transport_exactly(supplies: np.ndarray, demands: np.ndarray, costs: np.ndarray) -> float:
    """min ⟨Z, costs⟩ over Z ≥ 0 with Z 1 = supplies and Zᵀ 1 = demands, by linear programming.

    Args:
        supplies: (r,) and demands: (c,), non-negative with equal sums.
        costs: (r, c) finite costs.

    Returns:
        The optimal value.
    """
    rows, columns = costs.shape
    row_sums = np.kron(np.eye(rows), np.ones((1, columns)))
    column_sums = np.kron(np.ones((1, rows)), np.eye(columns))
    # Equal totals make one equality redundant; dropping it keeps the system full rank.
    result = scipy.optimize.linprog(
        costs.ravel(),
        A_eq=np.vstack([row_sums, column_sums[:-1]]),
        b_eq=np.concatenate([supplies, demands[:-1]]),
        bounds=(0, None),
        method="highs",
    )
    if result.status != 0:
        raise RuntimeError(f"the transport linear programme failed: {result.message}")
    return float(result.fun)


def otmann_distance(
    a: Architecture,
    b: Architecture,
    space: SearchSpace,
    *,
    normalized: bool = True,
    settings: OtmannSettings = DEFAULT_SETTINGS,
) -> float:
    """OTMANN distance of one pair, from NASBOT's dummy-node LP solved by HiGHS.

    The reference implementation (about a millisecond per pair).

    Args:
        a, b: architectures.
        space: the search space; only ``space.input_shape[-1]`` (c_0) is used.
        normalized: return d̄ = d / (M_a + M_b) instead of d.
        settings: distance parameters.

    Returns:
        d(a, b), or d̄(a, b) when ``normalized``.
    """
    channels = input_channels(space)
    graph_a, graph_b = chain_graph(a, channels, settings), chain_graph(b, channels, settings)
    distance = solve_transport_exactly(*transport_problem(graph_a, graph_b, settings))
    if normalized:
        return distance / (graph_a.total_mass + graph_b.total_mass)
    return distance


def pairwise_otmann_distances(
    archs_a: Sequence[Architecture],
    archs_b: Sequence[Architecture],
    space: SearchSpace,
    normalized: bool = True,
    *,
    settings: OtmannSettings = DEFAULT_SETTINGS,
    max_pairs_per_block: int = _DEFAULT_MAX_PAIRS_PER_BLOCK,
    max_augmentations: int | None = None,
) -> np.ndarray:
    """Exact OTMANN distances between every architecture of two lists.

    Each distinct architecture becomes a chain graph once; each unordered pair of
    distinct architectures is solved once, in blocks, by `max_profit_transport`
    (so the matrix of a list against itself is exactly symmetric); identical
    architectures get exactly 0. Agrees with `otmann_distance` to rounding error.

    Args:
        archs_a: n architectures.
        archs_b: m architectures.
        space: the search space; only ``space.input_shape[-1]`` (c_0) is used.
        normalized: return d̄ instead of d.
        settings: distance parameters.
        max_pairs_per_block: pairs solved together (bounds memory).
        max_augmentations: augmenting paths allowed per pair before the pair is
            handed to the LP; None for the default of `max_profit_transport`.

    Returns:
        (n, m) array of distances.
    """
    archs_a, archs_b = list(archs_a), list(archs_b)
    n, m = len(archs_a), len(archs_b)
    if n == 0 or m == 0:
        return np.zeros((n, m))
    position: dict[Architecture, int] = {}
    ids_a = np.array([position.setdefault(arch, len(position)) for arch in archs_a], dtype=np.intp)
    ids_b = np.array([position.setdefault(arch, len(position)) for arch in archs_b], dtype=np.intp)
    channels = input_channels(space)
    graphs = _PaddedGraphs([chain_graph(arch, channels, settings) for arch in position])

    count = len(position)
    first = np.minimum(ids_a[:, np.newaxis], ids_b[np.newaxis, :])
    second = np.maximum(ids_a[:, np.newaxis], ids_b[np.newaxis, :])
    pair_keys, pair_of_entry = np.unique(first * count + second, return_inverse=True)
    pair_first, pair_second = np.divmod(pair_keys, count)
    pair_distances = np.zeros(pair_keys.size)
    distinct = np.flatnonzero(pair_first != pair_second)
    for start in range(0, distinct.size, max_pairs_per_block):
        block = distinct[start : start + max_pairs_per_block]
        pair_distances[block] = _normalised_distances(
            graphs, pair_first[block], pair_second[block], settings, max_augmentations
        )
    if not normalized:
        pair_distances *= graphs.total_masses[pair_first] + graphs.total_masses[pair_second]
    return pair_distances[pair_of_entry.reshape(n, m)]


class _PaddedGraphs:
    """Chain graphs stacked and padded to N_max nodes (padding nodes have zero mass).

    Attributes:
        labels: (U, N_max); masses: (U, N_max); path_lengths: (U, N_max, 2|G|);
        node_counts: (U,); total_masses: (U,).
    """

    def __init__(self, graphs: Sequence[ChainGraph]):
        self.node_counts = np.array([graph.labels.size for graph in graphs], dtype=np.intp)
        size = int(self.node_counts.max())
        count = len(graphs)
        self.labels = np.full((count, size), _LABEL_INDEX[INPUT_LABEL], dtype=np.intp)
        self.masses = np.zeros((count, size))
        self.path_lengths = np.zeros((count, size, 2 * len(PATH_GROUPS)), dtype=np.int16)
        for row, graph in enumerate(graphs):
            nodes = graph.labels.size
            self.labels[row, :nodes] = graph.labels
            self.masses[row, :nodes] = graph.masses
            self.path_lengths[row, :nodes] = graph.path_lengths
        self.total_masses = self.masses.sum(axis=1)

    def graph(self, row: int) -> ChainGraph:
        """The unpadded graph of row ``row``."""
        nodes = self.node_counts[row]
        return ChainGraph(self.labels[row, :nodes], self.masses[row, :nodes], self.path_lengths[row, :nodes])


def _normalised_distances(
    graphs: _PaddedGraphs,
    first: np.ndarray,
    second: np.ndarray,
    settings: OtmannSettings,
    max_augmentations: int | None,
) -> np.ndarray:
    """d̄ of the B pairs (graphs[first[k]], graphs[second[k]]), shape (B,).

    d̄ = ν_nas − max Σ Z̃_uv w_uv with capacities m(u)/(M_a + M_b); pairs the
    batched solver does not finish are solved by the LP.
    """
    penalty = settings.non_assignment_penalty
    costs = _node_costs(
        graphs.labels[first], graphs.path_lengths[first], graphs.labels[second], graphs.path_lengths[second], settings
    )
    total = (graphs.total_masses[first] + graphs.total_masses[second])[:, np.newaxis]
    row_capacities = graphs.masses[first] / total
    column_capacities = graphs.masses[second] / total
    profits = 2.0 * penalty - costs
    profit, solved = max_profit_transport(
        profits, row_capacities, column_capacities, max_augmentations=max_augmentations
    )
    # Rounding can leave −1e−17 where the networks nearly coincide; distances are ≥ 0.
    distances = np.maximum(penalty - profit, 0.0)
    for pair in np.flatnonzero(~solved):
        graph_a, graph_b = graphs.graph(first[pair]), graphs.graph(second[pair])
        distances[pair] = solve_transport_exactly(*transport_problem(graph_a, graph_b, settings)) / total[pair, 0]
    return distances


def max_profit_transport(
    profits: np.ndarray,
    row_capacities: np.ndarray,
    column_capacities: np.ndarray,
    *,
    max_augmentations: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact maximum-profit partial transport for a batch of small bipartite problems.

    For each problem k of the batch:

        maximise Σ_ij w_ij Z_ij  over Z ≥ 0 with Σ_j Z_ij ≤ p_i, Σ_i Z_ij ≤ q_j,

    where only pairs with w_ij > 0 may carry mass. Algorithm: successive longest
    augmenting paths, the maximum-profit form of the successive-shortest-path
    algorithm for minimum-cost flow. In the residual graph (source → row i while
    p_i has room, row i → column j with profit w_ij, column j → row i with profit
    −w_ij while Z_ij > 0, column j → sink while q_j has room) Bellman–Ford labels
    are computed for every problem at once with (B, R, C) array operations; the
    best path is traced back, its bottleneck pushed, and a problem stops when no
    path has positive profit. Each augmentation along a longest path keeps the
    residual graph free of positive cycles, so the final flow is optimal (the
    profit is concave in the flow value and the last path's marginal profit is
    ≤ 0). A problem still running after ``max_augmentations`` augmentations, or
    whose predecessor labels do not trace back to the source, is reported
    unsolved.

    Args:
        profits: (B, R, C) array w; entries ≤ 0 (or −inf) are not edges.
        row_capacities: (B, R) non-negative p.
        column_capacities: (B, C) non-negative q.
        max_augmentations: per problem; default 4 (R + C).

    Returns:
        profit: (B,) optimal Σ w Z (NaN where unsolved) and solved: (B,) booleans.
    """
    count, rows, columns = profits.shape
    if max_augmentations is None:
        max_augmentations = 4 * (rows + columns)
    profit = np.full(count, np.nan)
    solved = np.zeros(count, dtype=bool)
    edge_profits = np.where(profits > 0, profits, -np.inf)
    edge_profits[row_capacities <= _MASS_TOLERANCE] = -np.inf
    edge_profits.transpose(0, 2, 1)[column_capacities <= _MASS_TOLERANCE] = -np.inf
    state = _FlowState(
        np.arange(count), edge_profits, np.zeros(profits.shape), row_capacities.copy(), column_capacities.copy()
    )
    _saturate_isolated_edges(state)
    profit_tolerance = _MASS_TOLERANCE * max(1.0, float(np.max(profits, initial=0.0)))
    for augmentation in range(max_augmentations + 1):
        column_value, column_parent, row_parent = _longest_paths(state, profit_tolerance)
        end_value = np.where(state.column_room > _MASS_TOLERANCE, column_value, -np.inf)
        end_column = end_value.argmax(axis=1)
        best = np.take_along_axis(end_value, end_column[:, np.newaxis], axis=1)[:, 0]
        finished = ~(best > profit_tolerance)
        if finished.any():
            flow_profit = state.flow * np.where(np.isfinite(state.edge_profits), state.edge_profits, 0.0)
            profit[state.problems[finished]] = flow_profit[finished].sum(axis=(1, 2))
            solved[state.problems[finished]] = True
            state.keep(~finished)
            if state.problems.size == 0 or augmentation == max_augmentations:
                break
            end_column = end_column[~finished]
            column_parent = column_parent[~finished]
            row_parent = row_parent[~finished]
        elif augmentation == max_augmentations:
            break
        traced = _augment(state, end_column, column_parent, row_parent)
        state.keep(traced)
    return profit, solved


def _saturate_isolated_edges(state: _FlowState) -> None:
    """Push min(p_i, q_j) over every edge (i, j) that is alone in its row and its column.

    The problem separates over the connected components of the edge graph, and a
    one-edge component is solved by filling it. Afterwards it is inert: either its
    row has no room left or its column is full, and it has no other edge, so no
    augmenting path enters it. (The input–input and output–output pairs are such
    components whenever they are worth matching.)
    """
    edges = np.isfinite(state.edge_profits)
    isolated = (
        edges
        & (edges.sum(axis=2, keepdims=True) == 1)
        & (edges.sum(axis=1, keepdims=True) == 1)
    )
    fill = np.where(isolated, np.minimum(state.row_room[:, :, np.newaxis], state.column_room[:, np.newaxis, :]), 0.0)
    state.flow += fill
    state.row_room -= fill.sum(axis=2)
    state.column_room -= fill.sum(axis=1)
    state.row_room[state.row_room < _MASS_TOLERANCE] = 0.0
    state.column_room[state.column_room < _MASS_TOLERANCE] = 0.0


@dataclasses.dataclass
class _FlowState:
    """The problems of `max_profit_transport` still running.

    Attributes:
        problems: (b,) their indices in the batch.
        edge_profits: (b, R, C) profits, −inf where there is no edge.
        flow: (b, R, C) current Z.
        row_room: (b, R) p_i − Σ_j Z_ij; column_room: (b, C) q_j − Σ_i Z_ij.
    """

    problems: np.ndarray
    edge_profits: np.ndarray
    flow: np.ndarray
    row_room: np.ndarray
    column_room: np.ndarray

    def keep(self, mask: np.ndarray) -> None:
        """Drop the problems where ``mask`` is False."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name)[mask])


def _longest_paths(state: _FlowState, tolerance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bellman–Ford labels of the longest source → column paths in the residual graphs.

    A label changes only when it improves by more than ``tolerance``, which keeps the
    predecessor graph a tree even with zero-profit cycles (push then pull on one edge).

    Returns:
        column_value: (b, C) best profit reaching each column (−inf if unreachable);
        column_parent: (b, C) the row before each column;
        row_parent: (b, R) the column before each row, −1 when the row is entered
        from the source.
    """
    count, rows, columns = state.edge_profits.shape
    row_value = np.where(state.row_room > _MASS_TOLERANCE, 0.0, -np.inf)
    row_parent = np.full((count, rows), -1)
    column_value = np.full((count, columns), -np.inf)
    column_parent = np.zeros((count, columns), dtype=np.intp)
    backward_profits = np.where(state.flow > _MASS_TOLERANCE, -state.edge_profits, -np.inf)
    for _ in range(rows + columns + 1):
        reach_column = row_value[:, :, np.newaxis] + state.edge_profits
        best_row = reach_column.argmax(axis=1)
        candidate = np.take_along_axis(reach_column, best_row[:, np.newaxis, :], axis=1)[:, 0, :]
        improved = candidate > column_value + tolerance
        column_value = np.where(improved, candidate, column_value)
        column_parent = np.where(improved, best_row, column_parent)
        reach_row = column_value[:, np.newaxis, :] + backward_profits
        best_column = reach_row.argmax(axis=2)
        candidate = np.take_along_axis(reach_row, best_column[:, :, np.newaxis], axis=2)[:, :, 0]
        improved = candidate > row_value + tolerance
        if not improved.any():
            break
        row_value = np.where(improved, candidate, row_value)
        row_parent = np.where(improved, best_column, row_parent)
    return column_value, column_parent, row_parent


def _augment(
    state: _FlowState, end_column: np.ndarray, column_parent: np.ndarray, row_parent: np.ndarray
) -> np.ndarray:
    """Push the bottleneck along each problem's best path; return which paths traced back.

    A path is column ← row (forward edge) ← column (backward edge) ← row … ← source.
    Its bottleneck is the least of the end column's room, the start row's room and
    the flows on its backward edges.
    """
    count, rows, columns = state.flow.shape
    problem = np.arange(count)
    column = end_column
    tracing = np.ones(count, dtype=bool)
    bottleneck = state.column_room[problem, end_column].copy()
    start_row = np.zeros(count, dtype=np.intp)
    forward_edges, backward_edges = [], []
    for _ in range(rows + columns):
        row = column_parent[problem, column]
        forward_edges.append((row, column, tracing))
        previous_column = row_parent[problem, row]
        at_source = tracing & (previous_column < 0)
        bottleneck = np.where(at_source, np.minimum(bottleneck, state.row_room[problem, row]), bottleneck)
        start_row = np.where(at_source, row, start_row)
        tracing = tracing & (previous_column >= 0)
        previous_column = np.where(tracing, previous_column, 0)
        bottleneck = np.where(tracing, np.minimum(bottleneck, state.flow[problem, row, previous_column]), bottleneck)
        backward_edges.append((row, previous_column, tracing))
        column = np.where(tracing, previous_column, column)
        if not tracing.any():
            break
    traced = ~tracing
    push = np.where(traced, bottleneck, 0.0)
    for row, column, on_path in forward_edges:
        state.flow[problem, row, column] += np.where(on_path, push, 0.0)
    for row, column, on_path in backward_edges:
        state.flow[problem, row, column] -= np.where(on_path, push, 0.0)
    state.row_room[problem, start_row] -= push
    state.column_room[problem, end_column] -= push
    # Snap rounding crumbs to zero so they do not open phantom residual edges.
    state.flow[state.flow < _MASS_TOLERANCE] = 0.0
    state.row_room[state.row_room < _MASS_TOLERANCE] = 0.0
    state.column_room[state.column_room < _MASS_TOLERANCE] = 0.0
    return traced
