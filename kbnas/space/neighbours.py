"""Single-step neighbours: the implementation of `SearchSpace.mutations` and
`SearchSpace.mutate` (the steps and their order are documented there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

from kbnas.space.layers import Architecture, Layer

if TYPE_CHECKING:
    from kbnas.space.search_space import SearchSpace

_MAX_MUTATE_TRIES = 100


def _swapped(layers: tuple[Layer, ...], position: int) -> tuple[Layer, ...]:
    """``layers`` with the layers at ``position`` and ``position + 1`` exchanged."""
    return layers[:position] + (layers[position + 1], layers[position]) + layers[position + 2 :]


def _candidate_neighbours(
    space: SearchSpace, architecture: Architecture
) -> Iterator[tuple[Layer, ...]]:
    """Every single-step edit, in order: insert, delete, substitute, swap.

    Substitution covers both a change of kind and a change of width: the layer
    is replaced by any other layer of the alphabet.
    """
    layers = architecture.layers
    alphabet = space._alphabet
    for position in range(len(layers) + 1):
        for layer in alphabet:
            yield layers[:position] + (layer,) + layers[position:]
    for position in range(len(layers)):
        yield layers[:position] + layers[position + 1 :]
    for position, old in enumerate(layers):
        for layer in alphabet:
            if layer != old:
                yield layers[:position] + (layer,) + layers[position + 1 :]
    for position in range(len(layers) - 1):
        if layers[position] != layers[position + 1]:
            yield _swapped(layers, position)


def mutations(space: SearchSpace, architecture: Architecture) -> list[Architecture]:
    """`SearchSpace.mutations`: the valid candidates, first occurrence kept."""
    neighbours: dict[Architecture, None] = {}
    for layers in _candidate_neighbours(space, architecture):
        candidate = Architecture(layers)
        if candidate == architecture or candidate in neighbours:
            continue
        if space.is_valid(candidate):
            neighbours[candidate] = None
    return list(neighbours)


def mutate(
    space: SearchSpace, architecture: Architecture, rng: np.random.Generator | int | None = None
) -> Architecture:
    """`SearchSpace.mutate`: random steps until one is valid, then `mutations` as a fallback."""
    rng = np.random.default_rng(rng)
    layers = architecture.layers
    depth = len(layers)
    for _ in range(_MAX_MUTATE_TRIES):
        step = int(rng.integers(5))
        if step == 0:
            position = int(rng.integers(depth + 1))
            new_layer = space._alphabet[int(rng.integers(len(space._alphabet)))]
            candidate = layers[:position] + (new_layer,) + layers[position:]
        elif depth == 0:
            continue
        elif step == 1:
            position = int(rng.integers(depth))
            candidate = layers[:position] + layers[position + 1 :]
        elif step == 2:
            position = int(rng.integers(depth))
            kinds = [kind for kind in space.vocabulary if kind != layers[position].kind]
            if not kinds:
                continue
            choices = space._layers_by_kind[kinds[int(rng.integers(len(kinds)))]]
            new_layer = choices[int(rng.integers(len(choices)))]
            candidate = layers[:position] + (new_layer,) + layers[position + 1 :]
        elif step == 3:
            position = int(rng.integers(depth))
            old = layers[position]
            choices = [layer for layer in space._layers_by_kind.get(old.kind, ()) if layer != old]
            if not choices:
                continue
            new_layer = choices[int(rng.integers(len(choices)))]
            candidate = layers[:position] + (new_layer,) + layers[position + 1 :]
        else:
            if depth < 2:
                continue
            position = int(rng.integers(depth - 1))
            candidate = _swapped(layers, position)
        mutant = Architecture(candidate)
        if mutant != architecture and space.is_valid(mutant):
            return mutant
    neighbours = space.mutations(architecture)
    if not neighbours:
        raise ValueError(
            f"architecture {architecture.encode()!r} has no valid neighbour in this space"
        )
    return neighbours[int(rng.integers(len(neighbours)))]
