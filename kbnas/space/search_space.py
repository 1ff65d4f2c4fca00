"""The search space: a declared vocabulary, width choices, depth bounds, input shape
and parameter budget; which architectures it contains, their shapes and parameter
counts, its default architecture, and its KerasTuner and config forms.

Sampling, neighbours and enumeration are methods of `SearchSpace` too; their
implementations live in `kbnas.space.sampling`, `kbnas.space.neighbours` and
`kbnas.space.enumeration`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, Iterable, Iterator

import numpy as np

from kbnas.space import enumeration, neighbours, sampling
from kbnas.space.layers import (
    AVGPOOL,
    BATCHNORM,
    CONV3,
    CONV5,
    CONV_KINDS,
    DENSE,
    DROPOUT,
    LAYER_KINDS,
    MAXPOOL,
    NO_REPEAT_KINDS,
    POOL_KINDS,
    RELU,
    SPATIAL_KINDS,
    WIDTH_KINDS,
    Architecture,
    InvalidArchitectureError,
    Layer,
    _as_positive_int,
    _describe,
)
from kbnas.space.shapes import Shape, _can_pool, _is_flat, _Propagation, _propagate


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A declared space of architectures.

    Attributes:
        input_shape: (H, W, C) images, (T, C) sequences or (F,) flat features.
        vocabulary: layer kinds that may appear.
        filters: filter-count choices for convolutions.
        units: unit-count choices for dense layers.
        min_depth, max_depth: bounds on the number of layers.
        max_params: optional budget on the parameter count (stack plus head).
        num_outputs: units of the output head, used for parameter counting.
        dropout_rate: rate of every ``dropout`` layer (not searched).

    Lists are accepted for the sequence fields and stored as tuples, so two spaces
    built from equal lists are equal and hashable.
    """

    input_shape: tuple[int, ...]
    vocabulary: tuple[str, ...] = (CONV3, CONV5, MAXPOOL, AVGPOOL, RELU, DENSE, BATCHNORM, DROPOUT)
    filters: tuple[int, ...] = (16, 32, 64, 128)
    units: tuple[int, ...] = (32, 64, 128, 256)
    min_depth: int = 1
    max_depth: int = 12
    max_params: int | None = None
    num_outputs: int = 10
    dropout_rate: float = 0.25

    def __post_init__(self) -> None:
        set_field = functools.partial(object.__setattr__, self)

        if isinstance(self.input_shape, (str, bytes)) or not isinstance(self.input_shape, Iterable):
            raise ValueError(
                f"input_shape must be a tuple of 1 to 3 positive integers, got {self.input_shape!r}"
            )
        input_shape = tuple(self.input_shape)
        if not 1 <= len(input_shape) <= 3:
            raise ValueError(
                "input_shape must be (H, W, C), (T, C) or (F,) without the batch "
                f"dimension, got {input_shape!r}"
            )
        set_field(
            "input_shape",
            tuple(_as_positive_int(size, f"input_shape entry {size!r}") for size in input_shape),
        )

        if isinstance(self.vocabulary, str):
            raise ValueError(
                f"vocabulary must be a sequence of layer kinds, not the string {self.vocabulary!r}"
            )
        vocabulary = tuple(self.vocabulary)
        if not vocabulary:
            raise ValueError("vocabulary must name at least one layer kind")
        for kind in vocabulary:
            if kind not in LAYER_KINDS:
                raise ValueError(
                    f"vocabulary has unknown layer kind {kind!r}; expected kinds from {LAYER_KINDS}"
                )
        duplicates = sorted({kind for kind in vocabulary if vocabulary.count(kind) > 1})
        if duplicates:
            raise ValueError(f"vocabulary repeats layer kinds {duplicates}")
        set_field("vocabulary", vocabulary)

        for name, needed_by in (("filters", CONV_KINDS), ("units", (DENSE,))):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ValueError(f"{name} must be a sequence of positive integers, got {value!r}")
            widths = tuple(_as_positive_int(width, f"{name} entry {width!r}") for width in value)
            if len(set(widths)) != len(widths):
                raise ValueError(f"{name} repeats a width: {widths}")
            users = [kind for kind in vocabulary if kind in needed_by]
            if users and not widths:
                raise ValueError(f"{name} is empty but the vocabulary contains {', '.join(users)}")
            set_field(name, widths)

        set_field("min_depth", _as_positive_int(self.min_depth, "min_depth"))
        set_field("max_depth", _as_positive_int(self.max_depth, "max_depth"))
        if self.max_depth < self.min_depth:
            raise ValueError(f"max_depth {self.max_depth} is below min_depth {self.min_depth}")

        if _is_flat(self.input_shape):
            spatial = [kind for kind in vocabulary if kind in SPATIAL_KINDS]
            if spatial:
                raise ValueError(
                    f"vocabulary contains {', '.join(spatial)}, which need a spatial input, "
                    f"but input_shape {self.input_shape} is flat"
                )

        if self.max_params is not None:
            set_field("max_params", _as_positive_int(self.max_params, "max_params"))
        set_field("num_outputs", _as_positive_int(self.num_outputs, "num_outputs"))
        if isinstance(self.dropout_rate, bool) or not isinstance(self.dropout_rate, numbers.Real):
            raise ValueError(f"dropout_rate must be a number in [0, 1), got {self.dropout_rate!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
        set_field("dropout_rate", float(self.dropout_rate))

    # ------------------------------------------------------------------ vocabulary

    @property
    def input_kind(self) -> str:
        """``"image"`` for (H, W, C), ``"sequence"`` for (T, C), ``"flat"`` for (F,)."""
        return {3: "image", 2: "sequence", 1: "flat"}[len(self.input_shape)]

    def widths(self, kind: str) -> tuple[int, ...]:
        """Width choices of ``kind``: filters, units, or ``()`` for kinds without width."""
        if kind in CONV_KINDS:
            return self.filters
        if kind == DENSE:
            return self.units
        return ()

    def alphabet(self) -> tuple[Layer, ...]:
        """Every distinct layer the space can produce, in a deterministic order.

        Kinds in vocabulary order; a width kind contributes one layer per width
        choice (in declared order), other kinds one layer with width None.
        """
        return self._alphabet

    @functools.cached_property
    def _alphabet(self) -> tuple[Layer, ...]:
        layers = []
        for kind in self.vocabulary:
            if kind in WIDTH_KINDS:
                layers.extend(Layer(kind, width) for width in self.widths(kind))
            else:
                layers.append(Layer(kind))
        return tuple(layers)

    @functools.cached_property
    def _alphabet_index(self) -> dict[Layer, int]:
        return {layer: index for index, layer in enumerate(self._alphabet)}

    @functools.cached_property
    def _layers_by_kind(self) -> dict[str, tuple[Layer, ...]]:
        return {
            kind: tuple(layer for layer in self._alphabet if layer.kind == kind)
            for kind in self.vocabulary
        }

    def token_ids(self, architecture: Architecture) -> np.ndarray:
        """Index of each layer of ``architecture`` in `alphabet`.

        Returns:
            (len(architecture),) integer array.

        Raises:
            ValueError: some layer is not in the alphabet.
        """
        index = self._alphabet_index
        ids = np.empty(len(architecture), dtype=np.intp)
        for position, layer in enumerate(architecture):
            token_id = index.get(layer)
            if token_id is None:
                raise ValueError(f"{_describe(position, layer)} is not in this space's alphabet")
            ids[position] = token_id
        return ids

    # ------------------------------------------------------------------ validity

    def _kind_allowed(self, kind: str, shape: Shape, previous_kind: str | None) -> bool:
        """Whether a ``kind`` layer may follow ``previous_kind`` on a ``shape`` tensor."""
        if kind in CONV_KINDS:
            return not _is_flat(shape)
        if kind in POOL_KINDS:
            return _can_pool(shape)
        if kind in NO_REPEAT_KINDS:
            return kind != previous_kind
        return True

    def _allowed_kinds(self, shape: Shape, previous_kind: str | None) -> list[str]:
        return [kind for kind in self.vocabulary if self._kind_allowed(kind, shape, previous_kind)]

    def _head_params(self, shape: Shape) -> int:
        return math.prod(shape) * self.num_outputs + self.num_outputs

    def violations(self, architecture: Architecture) -> list[str]:
        """Every reason ``architecture`` is not in this space, as readable sentences.

        Order: depth, then per-layer problems by position, then runs of repeated
        layers, then the parameter budget (checked only when every shape is
        defined). An empty list means the architecture is valid.
        """
        reasons = []
        depth = len(architecture)
        if depth < self.min_depth:
            reasons.append(f"depth {depth} below min_depth {self.min_depth}")
        if depth > self.max_depth:
            reasons.append(f"depth {depth} exceeds max_depth {self.max_depth}")

        for position, layer in enumerate(architecture):
            if layer.kind not in self.vocabulary:
                reasons.append(f"{_describe(position, layer)}: kind {layer.kind} not in vocabulary")
            elif layer.kind in WIDTH_KINDS and layer.width not in self.widths(layer.kind):
                choices_name = "units" if layer.kind == DENSE else "filters"
                reasons.append(
                    f"{_describe(position, layer)}: width {layer.width} not in "
                    f"{choices_name} {self.widths(layer.kind)}"
                )

        propagation = _propagate(self.input_shape, architecture)
        reasons.extend(propagation.problems)

        run_start = 0
        for position in range(1, depth + 1):
            if position < depth and architecture[position] == architecture[run_start]:
                continue
            run_length = position - run_start
            kind = architecture[run_start].kind
            if run_length > 1 and kind in NO_REPEAT_KINDS:
                reasons.append(
                    f"{run_length} consecutive {kind} layers at {run_start + 1}-{position}"
                )
            run_start = position

        if self.max_params is not None and not propagation.problems:
            final_shape = propagation.shapes[-1] if depth else self.input_shape
            total = sum(propagation.params) + self._head_params(final_shape)
            if total > self.max_params:
                reasons.append(f"parameter count {total} exceeds max_params {self.max_params}")
        return reasons

    def is_valid(self, architecture: Architecture) -> bool:
        """Whether ``architecture`` breaks none of the rules of `violations`."""
        return not self.violations(architecture)

    def validate(self, architecture: Architecture) -> Architecture:
        """Return ``architecture`` unchanged if valid.

        Raises:
            InvalidArchitectureError: listing every reason from `violations`.
        """
        reasons = self.violations(architecture)
        if reasons:
            raise InvalidArchitectureError(architecture, reasons)
        return architecture

    # ------------------------------------------------------------------ shapes and parameters

    def _shapes_and_params(self, architecture: Architecture) -> _Propagation:
        propagation = _propagate(self.input_shape, architecture)
        if propagation.problems:
            raise InvalidArchitectureError(architecture, propagation.problems)
        return propagation

    def output_shapes(self, architecture: Architecture) -> list[Shape]:
        """Shape after each layer, without the batch dimension.

        Raises:
            InvalidArchitectureError: some layer cannot apply to its input shape.
        """
        return self._shapes_and_params(architecture).shapes

    def param_counts(self, architecture: Architecture) -> list[int]:
        """Parameter count of each layer (head excluded), as Keras counts them.

        Raises:
            InvalidArchitectureError: some layer cannot apply to its input shape.
        """
        return self._shapes_and_params(architecture).params

    def head_param_count(self, architecture: Architecture) -> int:
        """Parameters of the output head: prod(final shape) · num_outputs + num_outputs."""
        shapes = self.output_shapes(architecture)
        return self._head_params(shapes[-1] if shapes else self.input_shape)

    def param_count(self, architecture: Architecture) -> int:
        """Total parameter count: the layer stack plus the output head."""
        propagation = self._shapes_and_params(architecture)
        final_shape = propagation.shapes[-1] if propagation.shapes else self.input_shape
        return sum(propagation.params) + self._head_params(final_shape)

    def summary(self, architecture: Architecture) -> str:
        """A compact table: one line per layer, then the head and the total.

        Raises:
            InvalidArchitectureError: some layer cannot apply to its input shape.
        """
        propagation = self._shapes_and_params(architecture)
        final_shape = propagation.shapes[-1] if propagation.shapes else self.input_shape
        head_params = self._head_params(final_shape)
        rows = [
            ("#", "layer", "output shape", "params"),
            ("0", "input", str(self.input_shape), "0"),
        ]
        rows += [
            (str(position), layer.encode(), str(shape), f"{params:,}")
            for position, (layer, shape, params) in enumerate(
                zip(architecture, propagation.shapes, propagation.params), start=1
            )
        ]
        rows.append(("", f"head-{self.num_outputs}", str((self.num_outputs,)), f"{head_params:,}"))
        column_widths = [max(len(row[column]) for row in rows) for column in range(4)]
        lines = [
            f"{row[0]:>{column_widths[0]}}  {row[1]:<{column_widths[1]}}  "
            f"{row[2]:<{column_widths[2]}}  {row[3]:>{column_widths[3]}}"
            for row in rows
        ]
        total = sum(propagation.params) + head_params
        lines.append(f"total params: {total:,}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ sampling

    def sample(self, rng: np.random.Generator | int | None = None) -> Architecture:
        """Draw one valid architecture.

        Distribution: the depth is uniform in [min_depth, max_depth]; then each
        layer in turn has a kind drawn uniformly among the vocabulary kinds allowed
        at that position given the shape so far (no pooling when a spatial
        dimension is below 2, no convolution or pooling on a flat tensor, no
        ``relu``/``batchnorm``/``dropout`` right after the same kind), and a width
        drawn uniformly among that kind's choices. A draw that reaches a position
        with no allowed kind, or that breaks max_params, is rejected and the whole
        architecture is redrawn: the result is that construction conditioned on
        validity.

        Args:
            rng: a numpy Generator, an int seed, or None for fresh entropy.

        Raises:
            RuntimeError: no valid architecture after 1000 draws (the space is empty
                or the parameter budget leaves almost nothing).
        """
        return sampling.sample(self, rng)

    def sample_many(
        self, n: int, rng: np.random.Generator | int | None = None, unique: bool = False
    ) -> list[Architecture]:
        """Draw ``n`` architectures with `sample`.

        Args:
            n: how many.
            rng: a numpy Generator, an int seed, or None.
            unique: if True, no architecture appears twice (duplicates are redrawn).

        Raises:
            RuntimeError: ``unique`` and 1000 consecutive draws gave only duplicates,
                e.g. the space has fewer than ``n`` architectures.
        """
        return sampling.sample_many(self, n, rng, unique)

    # ------------------------------------------------------------------ neighbours

    def mutations(self, architecture: Architecture) -> list[Architecture]:
        """All distinct valid single-step neighbours of ``architecture``.

        Steps: insert any alphabet layer at any position, delete a layer,
        substitute a layer by another alphabet layer (another kind, or the same
        kind with another width), swap two neighbouring layers. The architecture
        itself is excluded; the order is deterministic (by step, then position,
        then alphabet order; first occurrence kept).
        """
        return neighbours.mutations(self, architecture)

    def mutate(
        self, architecture: Architecture, rng: np.random.Generator | int | None = None
    ) -> Architecture:
        """One random valid single-step neighbour of ``architecture``.

        Draws a step uniformly among insert, delete, change kind, change width and
        swap, then a position and a choice uniformly, and retries when the result
        is invalid or unchanged; after 100 failed tries it picks uniformly from
        `mutations`. Neighbours are therefore not exactly equiprobable.

        Raises:
            ValueError: ``architecture`` has no valid neighbour.
        """
        return neighbours.mutate(self, architecture, rng)

    # ------------------------------------------------------------------ enumeration

    def enumerate(self) -> Iterator[Architecture]:
        """Every valid architecture exactly once: depth-first, in alphabet order.

        A prefix is yielded before its extensions. Can be huge: see `count`.
        """
        return enumeration.architectures(self)

    def count(self) -> int:
        """Number of valid architectures.

        Without max_params, a dynamic programme over (layers left, spatial
        dimensions, previous kind); with max_params, by enumeration.
        """
        return enumeration.count(self)

    # ------------------------------------------------------------------ defaults and KerasTuner

    def default_architecture(self) -> Architecture:
        """A sensible valid architecture: ``conv3-32|relu|maxpool|dense-64|relu`` adapted.

        Each template layer is kept when its kind (or the alternative conv5 /
        avgpool) is in the vocabulary and it may follow the kept prefix (a ReLU only
        right after a convolution or dense layer); widths are
        the choices nearest to 32 filters and 64 units (in log ratio). The result is
        cut to max_depth; when it is still invalid (too shallow, over budget) the
        first valid extension in `enumerate` order is taken, first from the
        template with the smallest widths, then from scratch.

        Raises:
            ValueError: the space contains no valid architecture.
        """
        return enumeration.default_architecture(self)

    def to_hp_value(self, architecture: Architecture) -> str:
        """The KerasTuner hyperparameter value of ``architecture``: its encoding.

        Raises:
            InvalidArchitectureError: ``architecture`` is not in this space.
        """
        return self.validate(architecture).encode()

    def from_hp_value(self, value: str) -> Architecture:
        """Decode and validate a KerasTuner hyperparameter value.

        Raises:
            ValueError: ``value`` is not an architecture encoding.
            InvalidArchitectureError: it decodes to an architecture outside this space.
        """
        if not isinstance(value, str):
            raise ValueError(f"architecture hyperparameter value must be a string, got {value!r}")
        try:
            architecture = Architecture.decode(value)
        except ValueError as error:
            raise ValueError(
                f"architecture hyperparameter value {value!r} is not an encoding: {error}"
            ) from None
        return self.validate(architecture)

    # ------------------------------------------------------------------ configuration

    def to_config(self) -> dict[str, Any]:
        """A JSON-serialisable dict; `from_config` rebuilds an equal space."""
        config = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            config[field.name] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SearchSpace":
        """Rebuild a space from `to_config` output.

        Raises:
            ValueError: unknown keys, or an invalid space.
        """
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(
                f"unknown SearchSpace config keys {unknown}; expected keys from {sorted(names)}"
            )
        return cls(**config)
