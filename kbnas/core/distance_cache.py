"""A pairwise distance matrix grown by blocks, and a memo of candidate rows.

Distances are computed once: the GP tunes its kernel on the cached matrix, and each
proposal only computes what is new (NASBOT grows its distance matrices the same way).

Notation:
    x_1 … x_n     the cached items (architectures, or any hashable keys), in the
                  order they were added.
    D             (n, n) matrix, D[i, j] = distance_fn([x_i], [x_j]).
    Y             k new items.

    extend(Y):  D ← [[D, Bᵀ], [B, E]] with B = distance_fn(Y, x_1..x_n) (k, n) and
                E = distance_fn(Y, Y) (k, k): only the k·n + k² new pairs are computed.
    cross(Y):   the (k, n) rows of Y against the cache; rows of cached items are read
                from D, rows of others come from the memo and are topped up with the
                columns added since they were computed.

``distance_fn(items_a, items_b) -> (len(items_a), len(items_b))`` must be symmetric
(d(x, y) = d(y, x)), since the block above the diagonal is the transpose of the block
below.
"""

from __future__ import annotations

import collections
from typing import Callable, Generic, Hashable, Iterable, Sequence, TypeVar

import numpy as np

Item = TypeVar("Item", bound=Hashable)

#: Default number of candidate rows kept by the memo.
DEFAULT_MEMO_SIZE = 4096


class IncrementalDistanceMatrix(Generic[Item]):
    """The (n, n) distance matrix of a growing list of distinct items.

    Args:
        distance_fn: ``(items_a, items_b) -> (len(items_a), len(items_b))`` array of
            symmetric distances, e.g. `kbnas.core.edit_distance.pairwise_edit_distances`.
        memo_size: how many rows of items outside the cache `cross` remembers
            (least recently used first out); 0 disables the memo.
    """

    def __init__(
        self,
        distance_fn: Callable[[Sequence[Item], Sequence[Item]], np.ndarray],
        *,
        memo_size: int = DEFAULT_MEMO_SIZE,
    ):
        if memo_size < 0:
            raise ValueError(f"memo_size must be non-negative, got {memo_size}")
        self._distance_fn = distance_fn
        self._memo_size = memo_size
        self._items: list[Item] = []
        self._index: dict[Item, int] = {}
        self._buffer = np.zeros((0, 0))
        # Row of an uncached item against the first len(row) cached items.
        self._memo: collections.OrderedDict[Item, np.ndarray] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: object) -> bool:
        return item in self._index

    @property
    def items(self) -> tuple[Item, ...]:
        """The cached items x_1 … x_n, in insertion order."""
        return tuple(self._items)

    @property
    def matrix(self) -> np.ndarray:
        """(n, n) copy of D."""
        size = len(self._items)
        return self._buffer[:size, :size].copy()

    def submatrix(self, indices: np.ndarray) -> np.ndarray:
        """D[indices][:, indices] for cached positions, copying only that block."""
        indices = np.asarray(indices, dtype=np.intp)
        return self._buffer[np.ix_(indices, indices)]

    def pairwise(self, items: Sequence[Item]) -> np.ndarray:
        """(k, k) distances among ``items`` without caching the uncached ones.

        The cached block is reused; the other entries are computed (the memo is
        not consulted: it holds rows against the cache, not among new items).
        """
        items = list(items)
        known = np.array([item in self._index for item in items], dtype=bool)
        if known.all():
            return self.submatrix(self.indices_of(items))
        result = np.empty((len(items), len(items)))
        cached = np.flatnonzero(known)
        fresh = np.flatnonzero(~known)
        if cached.size:
            result[np.ix_(cached, cached)] = self.submatrix(self.indices_of([items[i] for i in cached]))
            across = self._call([items[i] for i in fresh], [items[i] for i in cached])
            result[np.ix_(fresh, cached)] = across
            result[np.ix_(cached, fresh)] = across.T
        result[np.ix_(fresh, fresh)] = self._call([items[i] for i in fresh], [items[i] for i in fresh])
        return result

    def index_of(self, item: Item) -> int:
        """Position of ``item`` in the cache.

        Raises:
            KeyError: ``item`` is not cached.
        """
        try:
            return self._index[item]
        except KeyError:
            raise KeyError(f"{item!r} is not in the distance cache") from None

    def indices_of(self, items: Iterable[Item]) -> np.ndarray:
        """Positions of ``items`` in the cache, as an int array; KeyError if one is absent."""
        return np.array([self.index_of(item) for item in items], dtype=np.intp)

    def extend(self, items: Iterable[Item]) -> np.ndarray:
        """Add the items not yet cached, computing only the new rows and columns.

        Duplicates (within ``items`` or with the cache) are added once. New items
        whose memo row is known only need the columns added since.

        Args:
            items: items to add.

        Returns:
            (len(items),) positions of every given item in the cache.
        """
        items = list(items)
        new_items = [item for item in dict.fromkeys(items) if item not in self._index]
        if new_items:
            old_size, added = len(self._items), len(new_items)
            against_old = self._rows_against_cache(new_items)
            among_new = self._call(new_items, new_items)
            self._reserve(old_size + added)
            self._buffer[old_size : old_size + added, :old_size] = against_old
            self._buffer[:old_size, old_size : old_size + added] = against_old.T
            self._buffer[old_size : old_size + added, old_size : old_size + added] = among_new
            for item in new_items:
                self._index[item] = len(self._items)
                self._items.append(item)
                self._memo.pop(item, None)
        return self.indices_of(items)

    def cross(self, items: Sequence[Item]) -> np.ndarray:
        """Distances from ``items`` to every cached item, reusing what is known.

        Args:
            items: k items, cached or not.

        Returns:
            (k, n) array, row i = distances from items[i] to x_1 … x_n.
        """
        items = list(items)
        size = len(self._items)
        rows = np.empty((len(items), size))
        uncached = [item for item in dict.fromkeys(items) if item not in self._index]
        uncached_rows = dict(zip(uncached, self._rows_against_cache(uncached)))
        for position, item in enumerate(items):
            index = self._index.get(item)
            rows[position] = self._buffer[index, :size] if index is not None else uncached_rows[item]
        return rows

    def _rows_against_cache(self, items: list[Item]) -> np.ndarray:
        """(k, n) rows of uncached ``items`` against the cache, through the memo."""
        size = len(self._items)
        rows = np.empty((len(items), size))
        by_known_length: dict[int, list[int]] = collections.defaultdict(list)
        for position, item in enumerate(items):
            known = self._memo.get(item)
            by_known_length[0 if known is None else known.size].append(position)
        for known_length, positions in by_known_length.items():
            group = [items[position] for position in positions]
            for position, item in zip(positions, group):
                if known_length:
                    rows[position, :known_length] = self._memo[item]
            if known_length < size:
                rows[positions, known_length:] = self._call(group, self._items[known_length:])
        for position, item in enumerate(items):
            self._remember(item, rows[position].copy())
        return rows

    def _remember(self, item: Item, row: np.ndarray) -> None:
        if self._memo_size == 0:
            return
        self._memo[item] = row
        self._memo.move_to_end(item)
        while len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)

    def _call(self, items_a: list[Item], items_b: list[Item]) -> np.ndarray:
        """distance_fn on two non-empty lists, with its shape checked."""
        if not items_a or not items_b:
            return np.zeros((len(items_a), len(items_b)))
        distances = np.asarray(self._distance_fn(items_a, items_b), dtype=float)
        if distances.shape != (len(items_a), len(items_b)):
            raise ValueError(
                f"distance_fn returned shape {distances.shape} for {len(items_a)} x {len(items_b)} items"
            )
        return distances

    def _reserve(self, size: int) -> None:
        """Grow the buffer geometrically so that appending k rows costs O(k·n) amortised."""
        capacity = self._buffer.shape[0]
        if size <= capacity:
            return
        new_capacity = max(size, 2 * capacity, 16)
        buffer = np.zeros((new_capacity, new_capacity))
        old_size = len(self._items)
        buffer[:old_size, :old_size] = self._buffer[:old_size, :old_size]
        self._buffer = buffer
