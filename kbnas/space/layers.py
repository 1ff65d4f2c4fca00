"""Layers and architectures: the layer kinds and their canonical string encoding."""

from __future__ import annotations

import dataclasses
import numbers
import re
from typing import Any, Iterable, Iterator, Sequence

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
