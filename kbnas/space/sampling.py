"""Random architectures: the implementation of `SearchSpace.sample` and
`SearchSpace.sample_many` (the distribution is documented there)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kbnas.space.layers import Architecture
from kbnas.space.shapes import _output_shape_and_params

if TYPE_CHECKING:
    from kbnas.space.search_space import SearchSpace

_MAX_SAMPLE_TRIES = 1000
_MAX_UNIQUE_COLLISIONS = 1000


def sample(space: SearchSpace, rng: np.random.Generator | int | None = None) -> Architecture:
    """`SearchSpace.sample`: redraw `_draw_once` until it gives a valid architecture."""
    rng = np.random.default_rng(rng)
    for _ in range(_MAX_SAMPLE_TRIES):
        architecture = _draw_once(space, rng)
        if architecture is not None:
            return architecture
    raise RuntimeError(
        f"no valid architecture in {_MAX_SAMPLE_TRIES} draws from {space!r}; the space is "
        "empty or max_params leaves too few architectures"
    )


def _draw_once(space: SearchSpace, rng: np.random.Generator) -> Architecture | None:
    """One constructive draw; None when it gets stuck or breaks max_params."""
    depth = int(rng.integers(space.min_depth, space.max_depth + 1))
    shape = space.input_shape
    previous_kind = None
    stack_params = 0
    layers = []
    for _ in range(depth):
        kinds = space._allowed_kinds(shape, previous_kind)
        if not kinds:
            return None
        kind = kinds[int(rng.integers(len(kinds)))]
        choices = space._layers_by_kind[kind]
        layer = choices[int(rng.integers(len(choices)))]
        shape, layer_params = _output_shape_and_params(layer, shape)
        stack_params += layer_params
        layers.append(layer)
        previous_kind = kind
    total_params = stack_params + space._head_params(shape)
    if space.max_params is not None and total_params > space.max_params:
        return None
    return Architecture(tuple(layers))


def sample_many(
    space: SearchSpace,
    n: int,
    rng: np.random.Generator | int | None = None,
    unique: bool = False,
) -> list[Architecture]:
    """`SearchSpace.sample_many`: ``n`` draws of `SearchSpace.sample`, redrawing duplicates
    when ``unique``."""
    rng = np.random.default_rng(rng)
    if not unique:
        return [space.sample(rng) for _ in range(n)]
    found: dict[Architecture, None] = {}
    collisions = 0
    while len(found) < n:
        architecture = space.sample(rng)
        if architecture in found:
            collisions += 1
            if collisions >= _MAX_UNIQUE_COLLISIONS:
                raise RuntimeError(
                    f"found only {len(found)} distinct architectures of the {n} asked for "
                    f"({collisions} consecutive duplicate draws)"
                )
            continue
        collisions = 0
        found[architecture] = None
    return list(found)
