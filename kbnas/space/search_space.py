"""Architectures as plain data, and the search space they are drawn from.

An *architecture* is an immutable sequence of layers drawn from a declared
vocabulary. A *search space* declares the vocabulary, the width choices, the depth
bounds, the input shape and an optional parameter budget.

This module imports only the standard library and numpy: it never imports
TensorFlow, Keras or KerasTuner.

Encoding:
    A layer is a token, ``kind`` or ``kind-width``: ``"conv3-32"``, ``"dense-64"``,
    ``"maxpool"``. An architecture joins its tokens with ``"|"``:
    ``"conv3-32|relu|maxpool|dense-64|relu"``. The encoding is canonical (one string
    per architecture) and round-trips exactly, so KerasTuner can store an
    architecture as one string hyperparameter and detect duplicates by equality.

Model semantics (the Keras HyperModel builds exactly this):
    Shapes carry no batch dimension. The input is (H, W, C) for images, (T, C) for
    sequences or (F,) for flat features; d = len(shape) - 1 spatial dimensions.

    ``conv3-F``, ``conv5-F``  convolution, kernel k = 3 or 5 (k×k for images, k for
                              sequences), F filters, stride 1, padding "same", no
                              built-in activation. (…, C) -> (…, F);
                              params = k^d · C · F + F.
    ``maxpool``, ``avgpool``  pool size 2, stride 2, padding "valid": every spatial
                              dimension s becomes floor(s / 2); invalid when some
                              spatial dimension is below 2. 0 params.
    ``relu``                  elementwise ReLU. 0 params.
    ``dense-U``               flattens a spatial input first, then U units:
                              shape -> (U,); params = prod(shape) · U + U. Nothing
                              spatial (convolution, pooling) may follow a dense layer.
    ``batchnorm``             batch normalisation over the last axis; params = 4 · C
                              (Keras counts gamma, beta, moving mean and moving
                              variance).
    ``dropout``               dropout at `SearchSpace.dropout_rate`. 0 params.
    head                      flatten, then Dense(num_outputs):
                              params = prod(shape) · num_outputs + num_outputs.

Validity (`SearchSpace.violations` lists every broken rule):
    depth in [min_depth, max_depth]; every kind in the vocabulary; every width among
    the space's choices; no convolution or pooling on a flat tensor (after a dense
    layer, or on a flat input); no pooling of a spatial dimension below 2; no two
    consecutive identical ``relu``, ``batchnorm`` or ``dropout`` layers (redundant);
    total parameter count (stack plus head) at most max_params.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

#: Layer kinds of the vocabulary, with the canonical token used in encodings.
CONV3 = "conv3"
CONV5 = "conv5"
MAXPOOL = "maxpool"
AVGPOOL = "avgpool"
RELU = "relu"
DENSE = "dense"
BATCHNORM = "batchnorm"
DROPOUT = "dropout"

LAYER_KINDS = (CONV3, CONV5, MAXPOOL, AVGPOOL, RELU, DENSE, BATCHNORM, DROPOUT)
CONV_KINDS = (CONV3, CONV5)
POOL_KINDS = (MAXPOOL, AVGPOOL)
#: Kinds that carry a width (filters for convolutions, units for dense layers).
WIDTH_KINDS = (CONV3, CONV5, DENSE)
#: Kinds that need a spatial input: (H, W, C) or (T, C).
SPATIAL_KINDS = CONV_KINDS + POOL_KINDS
#: Kinds for which two consecutive copies are redundant, hence invalid.
NO_REPEAT_KINDS = (RELU, BATCHNORM, DROPOUT)
#: Kernel size k of each convolution kind.
KERNEL_SIZES = {CONV3: 3, CONV5: 5}
#: Pool size and stride of the pooling layers.
POOL_SIZE = 2

#: Separator between layer tokens in an architecture encoding.
TOKEN_SEPARATOR = "|"

_TOKEN_PATTERN = re.compile(r"^([a-z][a-z0-9]*)(?:-([0-9]+))?$")
_MAX_SAMPLE_TRIES = 1000
_MAX_MUTATE_TRIES = 100
_MAX_UNIQUE_COLLISIONS = 1000

Shape = tuple[int, ...]


class InvalidArchitectureError(ValueError):
    """An architecture breaks the rules of a search space.

    Attributes:
        architecture: the offending architecture.
        reasons: every broken rule, one readable sentence each.
    """

    def __init__(self, architecture: "Architecture", reasons: Sequence[str]):
        self.architecture = architecture
        self.reasons = list(reasons)
        super().__init__(
            f"invalid architecture {architecture.encode()!r}: " + "; ".join(self.reasons)
        )


def _as_positive_int(value: Any, what: str) -> int:
    """Return ``value`` as an int, or raise a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True, order=True)
class Layer:
    """One layer of an architecture.

    Attributes:
        kind: one of `LAYER_KINDS`.
        width: number of filters (convolutions) or units (dense); `None` for
            kinds without a width.
    """

    kind: str
    width: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"unknown layer kind {self.kind!r}; expected one of {LAYER_KINDS}")
        if self.kind in WIDTH_KINDS:
            width = _as_positive_int(self.width, f"width of a {self.kind} layer")
            object.__setattr__(self, "width", width)
        elif self.width is not None:
            raise ValueError(f"a {self.kind} layer has no width, got width={self.width!r}")

    def encode(self) -> str:
        """Canonical token: ``"conv3-32"``, ``"dense-64"``, ``"maxpool"``."""
        return self.kind if self.width is None else f"{self.kind}-{self.width}"

    @classmethod
    def decode(cls, token: str) -> "Layer":
        """Parse a canonical token; the inverse of `encode`.

        Args:
            token: ``kind`` or ``kind-width`` with a decimal width without leading
                zeros, e.g. ``"conv5-16"``.

        Raises:
            ValueError: the token is not canonical, names an unknown kind, lacks a
                width its kind needs or has one its kind does not take.
        """
        if not isinstance(token, str):
            raise ValueError(f"layer token must be a string, got {token!r}")
        match = _TOKEN_PATTERN.match(token)
        if match is None:
            raise ValueError(
                f"malformed layer token {token!r}; expected 'kind' or 'kind-width', "
                "e.g. 'conv3-32' or 'maxpool'"
            )
        kind, width_text = match.groups()
        if kind not in LAYER_KINDS:
            raise ValueError(
                f"unknown layer kind {kind!r} in token {token!r}; expected one of {LAYER_KINDS}"
            )
        if kind in WIDTH_KINDS:
            if width_text is None:
                raise ValueError(f"layer token {token!r} lacks a width, e.g. '{kind}-32'")
            if width_text.startswith("0"):
                raise ValueError(
                    f"width in layer token {token!r} must be a positive integer "
                    "without leading zeros"
                )
            return cls(kind, int(width_text))
        if width_text is not None:
            raise ValueError(f"layer token {token!r}: a {kind} layer takes no width")
        return cls(kind)

    def __str__(self) -> str:
        return self.encode()


@dataclasses.dataclass(frozen=True, order=True)
class Architecture:
    """An immutable stack of layers, applied in order to the input.

    The canonical string encoding joins layer tokens with ``"|"``, e.g.
    ``"conv3-32|relu|maxpool|dense-64|relu"``; it round-trips exactly. The empty
    architecture encodes as ``""``.
    """

    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        for position, layer in enumerate(layers, start=1):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {position} must be a Layer, got {layer!r}")
        object.__setattr__(self, "layers", layers)

    @classmethod
    def from_layers(cls, layers: Iterable[Layer | str]) -> "Architecture":
        """Build from `Layer` objects or their tokens, e.g. ``["conv3-32", "relu"]``."""
        return cls(
            tuple(layer if isinstance(layer, Layer) else Layer.decode(layer) for layer in layers)
        )

    def encode(self) -> str:
        """Canonical encoding: layer tokens joined with ``"|"``."""
        return TOKEN_SEPARATOR.join(layer.encode() for layer in self.layers)

    @classmethod
    def decode(cls, text: str) -> "Architecture":
        """Parse a canonical encoding; the inverse of `encode`.

        Raises:
            ValueError: some token is malformed; the message names its position.
        """
        if not isinstance(text, str):
            raise ValueError(f"architecture encoding must be a string, got {text!r}")
        if text == "":
            return cls(())
        layers = []
        for position, token in enumerate(text.split(TOKEN_SEPARATOR), start=1):
            try:
                layers.append(Layer.decode(token))
            except ValueError as error:
                raise ValueError(
                    f"cannot decode architecture {text!r}: token {position}: {error}"
                ) from None
        return cls(tuple(layers))

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"Architecture.decode({self.encode()!r})"


def _describe(position: int, layer: Layer) -> str:
    """``"layer 3 (maxpool)"`` with a 0-based ``position``."""
    return f"layer {position + 1} ({layer.encode()})"


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


def _swapped(layers: tuple[Layer, ...], position: int) -> tuple[Layer, ...]:
    """``layers`` with the layers at ``position`` and ``position + 1`` exchanged."""
    return layers[:position] + (layers[position + 1], layers[position]) + layers[position + 2 :]


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
    vocabulary: tuple[str, ...] = (CONV3, CONV5, MAXPOOL, AVGPOOL, RELU, DENSE)
    filters: tuple[int, ...] = (16, 32, 64)
    units: tuple[int, ...] = (32, 64, 128)
    min_depth: int = 1
    max_depth: int = 6
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

    def _propagate(self, architecture: Architecture) -> _Propagation:
        """Shapes and params layer by layer; a layer that cannot apply leaves the shape as is."""
        shape = self.input_shape
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

        propagation = self._propagate(architecture)
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
        propagation = self._propagate(architecture)
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
        rng = np.random.default_rng(rng)
        for _ in range(_MAX_SAMPLE_TRIES):
            architecture = self._draw_once(rng)
            if architecture is not None:
                return architecture
        raise RuntimeError(
            f"no valid architecture in {_MAX_SAMPLE_TRIES} draws from {self!r}; the space is "
            "empty or max_params leaves too few architectures"
        )

    def _draw_once(self, rng: np.random.Generator) -> Architecture | None:
        depth = int(rng.integers(self.min_depth, self.max_depth + 1))
        shape = self.input_shape
        previous_kind = None
        stack_params = 0
        layers = []
        for _ in range(depth):
            kinds = self._allowed_kinds(shape, previous_kind)
            if not kinds:
                return None
            kind = kinds[int(rng.integers(len(kinds)))]
            choices = self._layers_by_kind[kind]
            layer = choices[int(rng.integers(len(choices)))]
            shape, layer_params = _output_shape_and_params(layer, shape)
            stack_params += layer_params
            layers.append(layer)
            previous_kind = kind
        total_params = stack_params + self._head_params(shape)
        if self.max_params is not None and total_params > self.max_params:
            return None
        return Architecture(tuple(layers))

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
        rng = np.random.default_rng(rng)
        if not unique:
            return [self.sample(rng) for _ in range(n)]
        found: dict[Architecture, None] = {}
        collisions = 0
        while len(found) < n:
            architecture = self.sample(rng)
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

    # ------------------------------------------------------------------ neighbours

    def _candidate_neighbours(self, architecture: Architecture) -> Iterator[tuple[Layer, ...]]:
        """Every single-step edit, in order: insert, delete, substitute, swap.

        Substitution covers both a change of kind and a change of width: the layer
        is replaced by any other layer of the alphabet.
        """
        layers = architecture.layers
        alphabet = self._alphabet
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

    def mutations(self, architecture: Architecture) -> list[Architecture]:
        """All distinct valid single-step neighbours of ``architecture``.

        Steps: insert any alphabet layer at any position, delete a layer,
        substitute a layer by another alphabet layer (another kind, or the same
        kind with another width), swap two neighbouring layers. The architecture
        itself is excluded; the order is deterministic (by step, then position,
        then alphabet order; first occurrence kept).
        """
        neighbours: dict[Architecture, None] = {}
        for layers in self._candidate_neighbours(architecture):
            candidate = Architecture(layers)
            if candidate == architecture or candidate in neighbours:
                continue
            if self.is_valid(candidate):
                neighbours[candidate] = None
        return list(neighbours)

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
        rng = np.random.default_rng(rng)
        layers = architecture.layers
        depth = len(layers)
        for _ in range(_MAX_MUTATE_TRIES):
            step = int(rng.integers(5))
            if step == 0:
                position = int(rng.integers(depth + 1))
                new_layer = self._alphabet[int(rng.integers(len(self._alphabet)))]
                candidate = layers[:position] + (new_layer,) + layers[position:]
            elif depth == 0:
                continue
            elif step == 1:
                position = int(rng.integers(depth))
                candidate = layers[:position] + layers[position + 1 :]
            elif step == 2:
                position = int(rng.integers(depth))
                kinds = [kind for kind in self.vocabulary if kind != layers[position].kind]
                if not kinds:
                    continue
                choices = self._layers_by_kind[kinds[int(rng.integers(len(kinds)))]]
                new_layer = choices[int(rng.integers(len(choices)))]
                candidate = layers[:position] + (new_layer,) + layers[position + 1 :]
            elif step == 3:
                position = int(rng.integers(depth))
                old = layers[position]
                choices = [
                    layer for layer in self._layers_by_kind.get(old.kind, ()) if layer != old
                ]
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
            if mutant != architecture and self.is_valid(mutant):
                return mutant
        neighbours = self.mutations(architecture)
        if not neighbours:
            raise ValueError(
                f"architecture {architecture.encode()!r} has no valid neighbour in this space"
            )
        return neighbours[int(rng.integers(len(neighbours)))]

    # ------------------------------------------------------------------ enumeration

    def _extensions(
        self, layers: tuple[Layer, ...], shape: Shape, previous_kind: str | None, stack_params: int
    ) -> Iterator[Architecture]:
        """Valid architectures that extend the structurally valid prefix ``layers``, pre-order.

        Pruning is exact: structural rules only look backwards, and the stack's
        parameter count only grows, while any head has at least 2·num_outputs
        parameters.
        """
        depth = len(layers)
        if depth >= self.min_depth and (
            self.max_params is None or stack_params + self._head_params(shape) <= self.max_params
        ):
            yield Architecture(layers)
        if depth == self.max_depth:
            return
        for kind in self._allowed_kinds(shape, previous_kind):
            for layer in self._layers_by_kind[kind]:
                next_shape, layer_params = _output_shape_and_params(layer, shape)
                next_params = stack_params + layer_params
                smallest_total = next_params + 2 * self.num_outputs
                if self.max_params is not None and smallest_total > self.max_params:
                    continue
                yield from self._extensions(layers + (layer,), next_shape, kind, next_params)

    def enumerate(self) -> Iterator[Architecture]:
        """Every valid architecture exactly once: depth-first, in alphabet order.

        A prefix is yielded before its extensions. Can be huge: see `count`.
        """
        return self._extensions((), self.input_shape, None, 0)

    def count(self) -> int:
        """Number of valid architectures.

        Without max_params, a dynamic programme over (layers left, spatial
        dimensions, previous kind); with max_params, by enumeration.
        """
        if self.max_params is not None:
            return sum(1 for _ in self.enumerate())

        @functools.lru_cache(maxsize=None)
        def sequences(layers_left: int, shape: Shape, previous_kind: str | None) -> int:
            if layers_left == 0:
                return 1
            total = 0
            for kind in self._allowed_kinds(shape, previous_kind):
                choices = self._layers_by_kind[kind]
                # Channels do not affect validity, so one representative width stands for all.
                next_shape, _ = _output_shape_and_params(choices[0], shape)
                next_shape = next_shape[:-1] + (1,)
                total += len(choices) * sequences(layers_left - 1, next_shape, kind)
            return total

        start = self.input_shape[:-1] + (1,)
        depths = range(self.min_depth, self.max_depth + 1)
        return sum(sequences(depth, start, None) for depth in depths)

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
        def nearest(choices: tuple[int, ...], target: int) -> int:
            return min(choices, key=lambda width: (abs(math.log(width / target)), width))

        for preferred_filters, preferred_units in ((32, 64), (1, 1)):
            layers: list[Layer] = []
            shape = self.input_shape
            previous_kind = None
            stack_params = 0
            for options in ((CONV3, CONV5), (RELU,), (MAXPOOL, AVGPOOL), (DENSE,), (RELU,)):
                kind = next((kind for kind in options if kind in self.vocabulary), None)
                if kind is None or not self._kind_allowed(kind, shape, previous_kind):
                    continue
                if kind == RELU and previous_kind not in WIDTH_KINDS:
                    continue
                if kind in CONV_KINDS:
                    layer = Layer(kind, nearest(self.filters, preferred_filters))
                elif kind == DENSE:
                    layer = Layer(kind, nearest(self.units, preferred_units))
                else:
                    layer = Layer(kind)
                shape, layer_params = _output_shape_and_params(layer, shape)
                stack_params += layer_params
                layers.append(layer)
                previous_kind = kind
                if len(layers) == self.max_depth:
                    break
            found = next(self._extensions(tuple(layers), shape, previous_kind, stack_params), None)
            if found is not None:
                return found
        found = next(self.enumerate(), None)
        if found is None:
            raise ValueError(f"{self!r} contains no valid architecture")
        return found

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
