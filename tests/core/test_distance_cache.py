from __future__ import annotations

import numpy as np
import pytest

from kbnas.core.distance_cache import IncrementalDistanceMatrix
from kbnas.core.edit_distance import pairwise_edit_distances
from kbnas.space import LAYER_KINDS, SearchSpace

SPACE = SearchSpace(input_shape=(16, 16, 3), vocabulary=LAYER_KINDS, max_depth=6)


class CountingDistance:
    """Wraps a pairwise distance and records every pair it is asked for."""

    def __init__(self, function):
        self.function = function
        self.pairs: list[tuple] = []

    def __call__(self, items_a, items_b):
        self.pairs.extend((a, b) for a in items_a for b in items_b)
        return self.function(items_a, items_b)


def absolute_difference(items_a, items_b):
    return np.abs(np.subtract.outer(np.asarray(items_a, dtype=float), np.asarray(items_b, dtype=float)))


def test_grown_matrix_equals_full_recomputation_and_computes_only_new_pairs():
    archs = SPACE.sample_many(45, rng=0, unique=True)
    counting = CountingDistance(pairwise_edit_distances)
    cache = IncrementalDistanceMatrix(counting)
    sizes = []
    for block in (archs[:20], archs[20:21], archs[21:45]):
        before = len(cache)
        counting.pairs.clear()
        cache.extend(block)
        sizes.append(len(counting.pairs))
        # new x old and new x new, nothing else.
        assert len(counting.pairs) == len(block) * before + len(block) ** 2
        assert all(a in block for a, _ in counting.pairs)
    assert sizes == [400, 21, 24 * 21 + 24**2]
    np.testing.assert_allclose(cache.matrix, pairwise_edit_distances(archs, archs), rtol=0, atol=1e-12)
    assert cache.items == tuple(archs)


def test_extend_skips_known_items_and_returns_positions():
    counting = CountingDistance(absolute_difference)
    cache = IncrementalDistanceMatrix(counting)
    np.testing.assert_array_equal(cache.extend([5, 1, 5]), [0, 1, 0])
    counting.pairs.clear()
    np.testing.assert_array_equal(cache.extend([1, 5]), [1, 0])
    assert counting.pairs == []
    np.testing.assert_array_equal(cache.extend([9, 1]), [2, 1])
    assert sorted(counting.pairs) == sorted([(9, 5), (9, 1), (9, 9)])
    np.testing.assert_array_equal(cache.matrix, [[0, 4, 4], [4, 0, 8], [4, 8, 0]])
    assert cache.index_of(9) == 2 and 9 in cache and 7 not in cache and len(cache) == 3
    np.testing.assert_array_equal(cache.indices_of([9, 5]), [2, 0])
    with pytest.raises(KeyError, match="not in the distance cache"):
        cache.index_of(7)


def test_cross_reuses_cached_rows_and_memoised_candidate_rows():
    counting = CountingDistance(absolute_difference)
    cache = IncrementalDistanceMatrix(counting)
    cache.extend([0, 10, 20])
    counting.pairs.clear()

    np.testing.assert_array_equal(cache.cross([10, 3, 10]), [[10, 0, 10], [3, 7, 17], [10, 0, 10]])
    assert sorted(counting.pairs) == [(3, 0), (3, 10), (3, 20)]  # cached item 10 costs nothing

    counting.pairs.clear()
    np.testing.assert_array_equal(cache.cross([3]), [[3, 7, 17]])
    assert counting.pairs == []  # candidate rows recur across proposals

    cache.extend([30])
    counting.pairs.clear()
    np.testing.assert_array_equal(cache.cross([3, 4]), [[3, 7, 17, 27], [4, 6, 16, 26]])
    # The memoised row of 3 only needs the new column; 4 is new.
    assert sorted(counting.pairs) == sorted([(3, 30), (4, 0), (4, 10), (4, 20), (4, 30)])


def test_extend_with_memoised_items_computes_only_missing_columns():
    counting = CountingDistance(absolute_difference)
    cache = IncrementalDistanceMatrix(counting)
    cache.extend([0, 10])
    cache.cross([3])
    cache.extend([20])
    counting.pairs.clear()
    cache.extend([3])  # its row against 0 and 10 is memoised
    assert sorted(counting.pairs) == [(3, 3), (3, 20)]
    np.testing.assert_array_equal(cache.matrix, absolute_difference([0, 10, 20, 3], [0, 10, 20, 3]))


def test_memo_forgets_least_recently_used_rows():
    counting = CountingDistance(absolute_difference)
    cache = IncrementalDistanceMatrix(counting, memo_size=1)
    cache.extend([0])
    cache.cross([1])
    cache.cross([2])
    counting.pairs.clear()
    cache.cross([2, 1])
    assert counting.pairs == [(1, 0)]


def test_memo_can_be_disabled():
    counting = CountingDistance(absolute_difference)
    cache = IncrementalDistanceMatrix(counting, memo_size=0)
    cache.extend([0])
    cache.cross([1])
    counting.pairs.clear()
    cache.cross([1])
    assert counting.pairs == [(1, 0)]
    with pytest.raises(ValueError, match="memo_size"):
        IncrementalDistanceMatrix(absolute_difference, memo_size=-1)


def test_empty_cache():
    counting = CountingDistance(absolute_difference)
    cache = IncrementalDistanceMatrix(counting)
    assert cache.matrix.shape == (0, 0)
    assert cache.cross([1, 2]).shape == (2, 0)
    assert counting.pairs == []


def test_matrix_is_a_copy():
    cache = IncrementalDistanceMatrix(absolute_difference)
    cache.extend([1, 2])
    matrix = cache.matrix
    matrix[0, 1] = 99.0
    assert cache.matrix[0, 1] == 1.0


def test_many_small_extensions_keep_the_matrix_right():
    rng = np.random.default_rng(1)
    values = rng.permutation(200).tolist()
    cache = IncrementalDistanceMatrix(absolute_difference)
    for start in range(0, 200, 7):
        cache.extend(values[start : start + 7])
    np.testing.assert_array_equal(cache.matrix, absolute_difference(values, values))


def test_wrong_shape_from_distance_function_raises():
    cache = IncrementalDistanceMatrix(lambda a, b: np.zeros((len(b), len(a))))
    cache.extend([1])
    with pytest.raises(ValueError, match=r"shape \(1, 2\) for 2 x 1"):
        cache.extend([2, 3])


def test_pairwise_among_new_items_matches_recomputation_and_caches_nothing():
    archs = SPACE.sample_many(30, rng=3, unique=True)
    cache = IncrementalDistanceMatrix(pairwise_edit_distances)
    cache.extend(archs[:10])
    mixed = archs[5:25]  # five cached, fifteen not
    np.testing.assert_allclose(cache.pairwise(mixed), pairwise_edit_distances(mixed, mixed), rtol=0, atol=1e-12)
    assert len(cache) == 10
    np.testing.assert_allclose(cache.pairwise(archs[:4]), pairwise_edit_distances(archs[:4], archs[:4]))
    np.testing.assert_array_equal(cache.submatrix([3, 1]), cache.matrix[np.ix_([3, 1], [3, 1])])
