"""Every valid architecture in order: the implementation of `SearchSpace.enumerate`,
`SearchSpace.count` and `SearchSpace.default_architecture` (the first valid
extension of a template in that order)."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Iterator

from kbnas.space.layers import (
    AVGPOOL,
    CONV3,
    CONV5,
    CONV_KINDS,
    DENSE,
    MAXPOOL,
    RELU,
    WIDTH_KINDS,
    Architecture,
    Layer,
)
from kbnas.space.shapes import Shape, _output_shape_and_params

if TYPE_CHECKING:
    from kbnas.space.search_space import SearchSpace


def extensions(
    space: SearchSpace,
    layers: tuple[Layer, ...],
    shape: Shape,
    previous_kind: str | None,
    stack_params: int,
) -> Iterator[Architecture]:
    """Valid architectures that extend the structurally valid prefix ``layers``, pre-order.

    ``shape`` is the shape after the prefix, ``previous_kind`` the kind of its last
    layer and ``stack_params`` its parameter count. Pruning is exact: structural
    rules only look backwards, and the stack's parameter count only grows, while
    any head has at least 2·num_outputs parameters.
    """
    depth = len(layers)
    if depth >= space.min_depth and (
        space.max_params is None or stack_params + space._head_params(shape) <= space.max_params
    ):
        yield Architecture(layers)
    if depth == space.max_depth:
        return
    for kind in space._allowed_kinds(shape, previous_kind):
        for layer in space._layers_by_kind[kind]:
            next_shape, layer_params = _output_shape_and_params(layer, shape)
            next_params = stack_params + layer_params
            smallest_total = next_params + 2 * space.num_outputs
            if space.max_params is not None and smallest_total > space.max_params:
                continue
            yield from extensions(space, layers + (layer,), next_shape, kind, next_params)


def architectures(space: SearchSpace) -> Iterator[Architecture]:
    """`SearchSpace.enumerate`: the extensions of the empty prefix."""
    return extensions(space, (), space.input_shape, None, 0)


def count(space: SearchSpace) -> int:
    """`SearchSpace.count`: a dynamic programme, or enumeration under max_params."""
    if space.max_params is not None:
        return sum(1 for _ in space.enumerate())

    @functools.lru_cache(maxsize=None)
    def sequences(layers_left: int, shape: Shape, previous_kind: str | None) -> int:
        if layers_left == 0:
            return 1
        total = 0
        for kind in space._allowed_kinds(shape, previous_kind):
            choices = space._layers_by_kind[kind]
            # Channels do not affect validity, so one representative width stands for all.
            next_shape, _ = _output_shape_and_params(choices[0], shape)
            next_shape = next_shape[:-1] + (1,)
            total += len(choices) * sequences(layers_left - 1, next_shape, kind)
        return total

    start = space.input_shape[:-1] + (1,)
    depths = range(space.min_depth, space.max_depth + 1)
    return sum(sequences(depth, start, None) for depth in depths)


def _nearest_width(choices: tuple[int, ...], target: int) -> int:
    """The choice nearest ``target`` in log ratio; the smaller one on a tie."""
    return min(choices, key=lambda width: (abs(math.log(width / target)), width))


def default_architecture(space: SearchSpace) -> Architecture:
    """`SearchSpace.default_architecture`: the template, then its first valid extension."""
    for preferred_filters, preferred_units in ((32, 64), (1, 1)):
        layers: list[Layer] = []
        shape = space.input_shape
        previous_kind = None
        stack_params = 0
        for options in ((CONV3, CONV5), (RELU,), (MAXPOOL, AVGPOOL), (DENSE,), (RELU,)):
            kind = next((kind for kind in options if kind in space.vocabulary), None)
            if kind is None or not space._kind_allowed(kind, shape, previous_kind):
                continue
            if kind == RELU and previous_kind not in WIDTH_KINDS:
                continue
            if kind in CONV_KINDS:
                layer = Layer(kind, _nearest_width(space.filters, preferred_filters))
            elif kind == DENSE:
                layer = Layer(kind, _nearest_width(space.units, preferred_units))
            else:
                layer = Layer(kind)
            shape, layer_params = _output_shape_and_params(layer, shape)
            stack_params += layer_params
            layers.append(layer)
            previous_kind = kind
            if len(layers) == space.max_depth:
                break
        found = next(extensions(space, tuple(layers), shape, previous_kind, stack_params), None)
        if found is not None:
            return found
    found = next(space.enumerate(), None)
    if found is None:
        raise ValueError(f"{space!r} contains no valid architecture")
    return found
