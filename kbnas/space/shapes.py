"""Shapes and parameter counts: the rule of one layer, and its application through
a stack of layers (the model semantics written out in `kbnas.space`)."""

from __future__ import annotations

import dataclasses
import math

from kbnas.space.layers import (
    BATCHNORM,
    CONV_KINDS,
    DENSE,
    KERNEL_SIZES,
    POOL_KINDS,
    POOL_SIZE,
    SPATIAL_KINDS,
    Architecture,
    Layer,
    _describe,
)

#: A tensor shape without the batch dimension: (H, W, C), (T, C) or (F,).
Shape = tuple[int, ...]


def _output_shape_and_params(layer: Layer, shape: Shape) -> tuple[Shape, int]:
    """Shape after ``layer`` and its parameter count, for a structurally valid input."""
    kind = layer.kind
    if kind in CONV_KINDS:
        spatial_dims = len(shape) - 1
        params = KERNEL_SIZES[kind] ** spatial_dims * shape[-1] * layer.width + layer.width
        return shape[:-1] + (layer.width,), params
    if kind in POOL_KINDS:
        return tuple(size // POOL_SIZE for size in shape[:-1]) + (shape[-1],), 0
    if kind == DENSE:
        return (layer.width,), math.prod(shape) * layer.width + layer.width
    if kind == BATCHNORM:
        return shape, 4 * shape[-1]
    return shape, 0


def _is_flat(shape: Shape) -> bool:
    return len(shape) == 1


def _can_pool(shape: Shape) -> bool:
    return not _is_flat(shape) and min(shape[:-1]) >= POOL_SIZE


@dataclasses.dataclass
class _Propagation:
    """Per-layer shapes and parameters, and the structural problems met on the way."""

    shapes: list[Shape]
    params: list[int]
    problems: list[str]


def _propagate(input_shape: Shape, architecture: Architecture) -> _Propagation:
    """Shapes and params layer by layer; a layer that cannot apply leaves the shape as is."""
    shape = input_shape
    shapes: list[Shape] = []
    params: list[int] = []
    problems: list[str] = []
    seen_dense = False
    for position, layer in enumerate(architecture):
        problem = None
        if layer.kind in SPATIAL_KINDS and _is_flat(shape):
            if seen_dense:
                problem = f"{_describe(position, layer)} follows a dense layer"
            else:
                problem = (
                    f"{_describe(position, layer)} needs a spatial input "
                    f"but the input shape {shape} is flat"
                )
        elif layer.kind in POOL_KINDS and not _can_pool(shape):
            problem = (
                f"{_describe(position, layer)} would shrink spatial size "
                f"{min(shape[:-1])} below 1"
            )
        if problem is None:
            shape, layer_params = _output_shape_and_params(layer, shape)
        else:
            problems.append(problem)
            layer_params = 0
        shapes.append(shape)
        params.append(layer_params)
        seen_dense = seen_dense or layer.kind == DENSE
    return _Propagation(shapes, params, problems)
