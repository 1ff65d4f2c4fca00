"""Layer-aware edit distance between architectures (the default architecture distance).

Notation:
    a = (a_1, …, a_p), b = (b_1, …, b_q)   architectures as sequences of layers.
    ∅              the absent layer (an insertion is ∅ → x, a deletion x → ∅).
    s(x, y)        cost of substituting layer x by layer y; δ(x) = s(x, ∅) = s(∅, x)
                   is the cost of inserting or deleting x.
    D              (p + 1, q + 1) Wagner–Fischer table over prefixes:
        D[0, 0] = 0,   D[i, 0] = Σ_{k≤i} δ(a_k),   D[0, j] = Σ_{k≤j} δ(b_k),
        D[i, j] = min(D[i−1, j] + δ(a_i),  D[i, j−1] + δ(b_j),  D[i−1, j−1] + s(a_i, b_j)),
    d(a, b) = D[p, q].

Cost model: s(x, y) = K(kind x, kind y) + W(x, y), on layers extended by ∅, with

    K, a metric on the kinds and ∅ (families: conv = {conv3, conv5},
    pool = {maxpool, avgpool}, dense = {dense}, free = {relu, batchnorm, dropout}):

        =========  =====  ======  =====  =====  =====
        K          conv   pool    dense  free   ∅
        =========  =====  ======  =====  =====  =====
        conv       0.25   0.375   1.0    0.75   0.5
        pool              0.25    1.0    0.75   0.75
        dense                     0      0.75   0.5
        free                             0.5    0.5
        =========  =====  ======  =====  =====  =====

    (within a family: 0 for the same kind, the diagonal entry for the other kind),
    and W, a pseudometric on widths (∅ and the kinds without width have none):

        W(x, y) = min(0.25 · |log2 w_x − log2 w_y|, 0.5)   both have a width
                = 0.5                                     exactly one has a width
                = 0                                       neither has a width.

Resulting substitution and insertion/deletion costs (``w`` terms are
min(0.25 · |log2 ratio of widths|, 0.5), i.e. 0.25 per octave, capped at two):

    ==========================================  ====================
    pair                                        cost
    ==========================================  ====================
    identical layers                            0
    same kind, other width (conv3-16, conv3-32)  w
    conv3 ↔ conv5                               0.25 + w
    maxpool ↔ avgpool                           0.25
    relu ↔ batchnorm ↔ dropout                  0.5
    conv ↔ pool                                 0.875
    conv ↔ dense                                1.0 + w
    pool ↔ relu/batchnorm/dropout               0.75
    conv or dense ↔ relu/batchnorm/dropout      1.25
    pool ↔ dense                                1.5
    insert/delete conv3, conv5, dense           1.0
    insert/delete maxpool, avgpool              0.75
    insert/delete relu, batchnorm, dropout      0.5
    ==========================================  ====================

Metric: K is a metric on the nine points {kinds} ∪ {∅} (checked exhaustively by the
tests) and W is a pseudometric (a truncated metric on log widths, with all width-less
points at distance 0.5 from every width-carrying point), so s = K + W is a metric
on layers ∪ {∅}. In particular s(x, y) ≤ δ(x) + δ(y) and |δ(x) − δ(y)| ≤ s(x, y).
With such costs the alignment distance computed by the table above equals the
cheapest sequence of edits (Wagner & Fischer, 1974) and is a metric on
architectures: d(a, b) = 0 iff a = b, d is symmetric, and it obeys the triangle
inequality.

Speed: `pairwise_edit_distances` runs the recurrence once per cell (i, j) with
numpy operations over all pairs of a block at once, so its Python-level cost is
O(p_max · q_max) per block, independent of the number of pairs.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from kbnas.space import (
    AVGPOOL,
    BATCHNORM,
    CONV3,
    CONV5,
    DENSE,
    DROPOUT,
    MAXPOOL,
    RELU,
    Architecture,
    Layer,
)

#: Family of each layer kind for the edit costs.
KIND_FAMILIES = {
    CONV3: "conv",
    CONV5: "conv",
    MAXPOOL: "pool",
    AVGPOOL: "pool",
    DENSE: "dense",
    RELU: "free",
    BATCHNORM: "free",
    DROPOUT: "free",
}
#: K between two different kinds of the same family.
_WITHIN_FAMILY_KIND_COST = {"conv": 0.25, "pool": 0.25, "free": 0.5}
#: K between kinds of different families.
_ACROSS_FAMILY_KIND_COST = {
    frozenset(("conv", "pool")): 0.375,
    frozenset(("conv", "dense")): 1.0,
    frozenset(("pool", "dense")): 1.0,
    frozenset(("conv", "free")): 0.75,
    frozenset(("pool", "free")): 0.75,
    frozenset(("dense", "free")): 0.75,
}
#: K between a kind and the absent layer ∅.
_ABSENT_KIND_COST = {"conv": 0.5, "pool": 0.75, "dense": 0.5, "free": 0.5}
#: W per octave of width ratio, and its cap.
WIDTH_COST_PER_OCTAVE = 0.25
WIDTH_COST_CAP = 0.5

#: Default bound on the DP cells held at once by `pairwise_edit_distances`.
_DEFAULT_MAX_CELLS_PER_BLOCK = 4_000_000


def kind_cost(kind_a: str | None, kind_b: str | None) -> float:
    """The kind metric K; ``None`` stands for the absent layer ∅.

    Raises:
        ValueError: a kind has no edit cost (not a kind of `kbnas.space`).
    """
    if kind_a == kind_b:
        return 0.0
    if kind_a is None or kind_b is None:
        return _ABSENT_KIND_COST[_family(kind_b if kind_a is None else kind_a)]
    family_a, family_b = _family(kind_a), _family(kind_b)
    if family_a == family_b:
        return _WITHIN_FAMILY_KIND_COST[family_a]
    return _ACROSS_FAMILY_KIND_COST[frozenset((family_a, family_b))]


def _family(kind: str) -> str:
    family = KIND_FAMILIES.get(kind)
    if family is None:
        raise ValueError(f"no edit cost for layer kind {kind!r}; known kinds: {tuple(KIND_FAMILIES)}")
    return family


def width_cost(width_a: int | None, width_b: int | None) -> float:
    """The width pseudometric W; ``None`` means the layer (or ∅) has no width."""
    if width_a is None and width_b is None:
        return 0.0
    if width_a is None or width_b is None:
        return WIDTH_COST_CAP
    octaves = abs(math.log2(width_a) - math.log2(width_b))
    return min(WIDTH_COST_PER_OCTAVE * octaves, WIDTH_COST_CAP)


def substitution_cost(layer_a: Layer | None, layer_b: Layer | None) -> float:
    """s(x, y) = K(kind x, kind y) + W(x, y); ``None`` is the absent layer ∅.

    ``substitution_cost(x, None)`` is the insertion/deletion cost δ(x).
    """
    kind_a = None if layer_a is None else layer_a.kind
    kind_b = None if layer_b is None else layer_b.kind
    width_a = None if layer_a is None else layer_a.width
    width_b = None if layer_b is None else layer_b.width
    return kind_cost(kind_a, kind_b) + width_cost(width_a, width_b)


def indel_cost(layer: Layer) -> float:
    """δ(x): the cost of inserting or deleting ``layer``."""
    return substitution_cost(layer, None)


def edit_distance(a: Architecture, b: Architecture) -> float:
    """Layer-aware edit distance d(a, b) of one pair, by the plain Wagner–Fischer DP.

    O(p·q) scalar operations; this is the reference implementation. Use
    `pairwise_edit_distances` for many pairs.

    Args:
        a, b: architectures (or any sequences of `Layer`).

    Returns:
        d(a, b) ≥ 0, see the module docstring for the costs.
    """
    layers_a, layers_b = tuple(a), tuple(b)
    previous = [0.0]
    for layer in layers_b:
        previous.append(previous[-1] + indel_cost(layer))
    for layer_a in layers_a:
        delete_a = indel_cost(layer_a)
        current = [previous[0] + delete_a]
        for j, layer_b in enumerate(layers_b, start=1):
            current.append(
                min(
                    previous[j] + delete_a,
                    current[j - 1] + indel_cost(layer_b),
                    previous[j - 1] + substitution_cost(layer_a, layer_b),
                )
            )
        previous = current
    return previous[-1]


class _TokenTable:
    """Integer tokens for the distinct layers of some architectures, and their costs.

    Attributes:
        substitution: (V + 1, V + 1) array, s between tokens; the last token is a
            padding token whose costs are 0 (padded cells are never read).
        indel: (V + 1,) array, δ of each token (0 for padding).
    """

    def __init__(self, architectures: Sequence[Architecture]):
        index: dict[Layer, int] = {}
        for architecture in architectures:
            for layer in architecture:
                if layer not in index:
                    index[layer] = len(index)
        self._index = index
        layers = list(index)
        size = len(layers)
        self.pad = size
        self.substitution = np.zeros((size + 1, size + 1))
        self.indel = np.zeros(size + 1)
        for i, layer_i in enumerate(layers):
            self.indel[i] = indel_cost(layer_i)
            for j in range(i + 1, size):
                cost = substitution_cost(layer_i, layers[j])
                self.substitution[i, j] = self.substitution[j, i] = cost

    def encode(self, architectures: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """Padded token matrix (n, L_max) and lengths (n,) of ``architectures``."""
        lengths = np.fromiter((len(architecture) for architecture in architectures), dtype=np.intp,
                              count=len(architectures))
        tokens = np.full((len(architectures), int(lengths.max(initial=0))), self.pad, dtype=np.intp)
        for row, architecture in enumerate(architectures):
            tokens[row, : lengths[row]] = [self._index[layer] for layer in architecture]
        return tokens, lengths


def _unique_architectures(architectures: Sequence[Architecture]) -> tuple[list[Architecture], np.ndarray]:
    """Distinct architectures in first-seen order, and the index of each input among them."""
    position: dict[Architecture, int] = {}
    inverse = np.empty(len(architectures), dtype=np.intp)
    for row, architecture in enumerate(architectures):
        inverse[row] = position.setdefault(architecture, len(position))
    return list(position), inverse


def pairwise_edit_distances(
    archs_a: Sequence[Architecture],
    archs_b: Sequence[Architecture],
    *,
    max_cells_per_block: int = _DEFAULT_MAX_CELLS_PER_BLOCK,
) -> np.ndarray:
    """Layer-aware edit distances between every architecture of two lists.

    Equal to `edit_distance` on every pair (same costs, same recurrence), computed
    for all pairs at once: each distinct architecture is tokenised once into a
    padded int array; the substitution costs of a row i against every column are
    gathered from a (V, V) table; the DP then sweeps the cells (i, j) keeping one
    row of the table, of shape (q_max + 1, n_block, m), for every pair of the
    block, and reads D[p, q] of each pair when the sweep passes row i = p.

    Args:
        archs_a: n architectures.
        archs_b: m architectures.
        max_cells_per_block: bound on (q_max + 1)·n_block·m, the DP cells held at
            once; rows of ``archs_a`` are processed in blocks of that size.

    Returns:
        (n, m) array of distances d(archs_a[i], archs_b[j]).
    """
    archs_a, archs_b = list(archs_a), list(archs_b)
    if not archs_a or not archs_b:
        return np.zeros((len(archs_a), len(archs_b)))
    unique_a, inverse_a = _unique_architectures(archs_a)
    unique_b, inverse_b = _unique_architectures(archs_b)
    table = _TokenTable(unique_a + unique_b)
    tokens_a, lengths_a = table.encode(unique_a)
    tokens_b, lengths_b = table.encode(unique_b)
    distances = _wagner_fischer_all_pairs(
        tokens_a, lengths_a, tokens_b, lengths_b, table.substitution, table.indel, max_cells_per_block
    )
    return distances[inverse_a[:, np.newaxis], inverse_b[np.newaxis, :]]


def _wagner_fischer_all_pairs(
    tokens_a: np.ndarray,
    lengths_a: np.ndarray,
    tokens_b: np.ndarray,
    lengths_b: np.ndarray,
    substitution: np.ndarray,
    indel: np.ndarray,
    max_cells_per_block: int,
) -> np.ndarray:
    """The vectorised DP of `pairwise_edit_distances` on token matrices.

    Args:
        tokens_a: (n, p_max) padded tokens; lengths_a: (n,) true lengths.
        tokens_b: (m, q_max) padded tokens; lengths_b: (m,) true lengths.
        substitution: (V + 1, V + 1) token substitution costs.
        indel: (V + 1,) token insertion/deletion costs.
        max_cells_per_block: see `pairwise_edit_distances`.

    Returns:
        (n, m) distances.
    """
    n, m = tokens_a.shape[0], tokens_b.shape[0]
    q_max = tokens_b.shape[1]
    distances = np.empty((n, m))
    insert_b = indel[tokens_b].T  # (q_max, m): δ(b_j) per column j
    # D[0, j] for every column architecture, broadcast over the rows of a block.
    first_row = np.concatenate([np.zeros((1, m)), np.cumsum(insert_b, axis=0)])  # (q_max + 1, m)
    columns = np.arange(m)
    block_rows = max(1, max_cells_per_block // ((q_max + 1) * m))
    for start in range(0, n, block_rows):
        block_tokens = tokens_a[start : start + block_rows]
        block_lengths = lengths_a[start : start + block_rows]
        rows = block_tokens.shape[0]
        row = np.broadcast_to(first_row[:, np.newaxis, :], (q_max + 1, rows, m)).copy()
        _store_finished(distances, start, row, block_lengths, lengths_b, 0, columns)
        candidate = np.empty((rows, m))
        for i in range(1, int(block_lengths.max()) + 1):
            token_i = block_tokens[:, i - 1]
            delete_i = indel[token_i][:, np.newaxis]  # (rows, 1)
            substitute_i = substitution[token_i[np.newaxis, :, np.newaxis], tokens_b.T[:, np.newaxis, :]]
            next_row = np.empty_like(row)
            np.add(row[0], delete_i, out=next_row[0])
            for j in range(1, q_max + 1):
                np.add(row[j], delete_i, out=next_row[j])
                np.add(next_row[j - 1], insert_b[j - 1], out=candidate)
                np.minimum(next_row[j], candidate, out=next_row[j])
                np.add(row[j - 1], substitute_i[j - 1], out=candidate)
                np.minimum(next_row[j], candidate, out=next_row[j])
            row = next_row
            _store_finished(distances, start, row, block_lengths, lengths_b, i, columns)
    return distances


def _store_finished(
    distances: np.ndarray,
    start: int,
    row: np.ndarray,
    block_lengths: np.ndarray,
    lengths_b: np.ndarray,
    i: int,
    columns: np.ndarray,
) -> None:
    """Copy D[i, q] into ``distances`` for the block rows whose length p is i."""
    finished = np.flatnonzero(block_lengths == i)
    if finished.size:
        distances[start + finished] = row[lengths_b[np.newaxis, :], finished[:, np.newaxis], columns[np.newaxis, :]]
