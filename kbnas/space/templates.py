"""Known-good starting architectures, adapted to a search space.

A search that starts from uniform random stacks spends trials on networks near
chance (``maxpool|relu|maxpool|maxpool|conv5-16``). The initial design of
`kbnas.BayesianNASOracle` starts instead from the networks a Keras user would
write by hand, adapted to the space's input kind, vocabulary, widths, depth and
parameter budget:

* images (H, W, C) and sequences (T, C): convolution → activation → pooling
  families, the first of them the textbook Keras convnet
  ``Conv(32) ReLU Conv(64) ReLU MaxPool Dropout Dense(128) ReLU``;
* flat features (F,): multilayer perceptrons and the linear model.

`random_template` draws from the same families at random (block counts, kernel
sizes, widths, batchnorm, pooling and dropout): the initial design's random
draws come from it, so they explore the space without spending trials on stacks
that a uniform draw produces, such as convolutions without any activation.

Random template, per draw (every choice uniform and independent):
    spatial: 1–3 blocks of ``conv{3,5}-F [batchnorm] relu [pool]`` (F from the
             space's filters, pool from maxpool/avgpool), then ``[dropout]``,
             then 0–2 blocks of ``dense-U relu [dropout]``;
    flat:    1–3 blocks of ``dense-U [batchnorm] relu [dropout]``;
then adapted like a fixed template.

Adaptation of one template to a space, token by token: a kind outside the
vocabulary takes its sibling (``conv3`` ↔ ``conv5``, ``maxpool`` ↔ ``avgpool``)
or is dropped; a width becomes the space's nearest choice (in log ratio, ties to
the smaller); a pooling layer that would shrink a spatial side below 1 is
dropped, and so is a layer that would repeat the ``relu``/``batchnorm``/
``dropout`` before it. A template longer than ``max_depth`` loses its dropout,
then its batchnorm layers, then its last layers. A result that is still invalid
(e.g. over ``max_params``) is left out, as is a repeat of an earlier template.

This module imports only the standard library (and the space).
"""

from __future__ import annotations

from typing import Sequence

from kbnas.space import (
    AVGPOOL,
    BATCHNORM,
    CONV3,
    CONV5,
    DENSE,
    DROPOUT,
    MAXPOOL,
    NO_REPEAT_KINDS,
    POOL_KINDS,
    POOL_SIZE,
    SPATIAL_KINDS,
    WIDTH_KINDS,
    Architecture,
    Layer,
    SearchSpace,
)
from kbnas.space.enumeration import _nearest_width

#: Convolutional templates (images and sequences), best-known first.
SPATIAL_TEMPLATES = (
    "conv3-32|relu|conv3-64|relu|maxpool|dropout|dense-128|relu",
    "conv3-32|batchnorm|relu|maxpool|conv3-64|batchnorm|relu|maxpool|dropout|dense-128|relu|dropout",
    "conv3-64|relu|conv3-64|relu|maxpool|conv3-128|relu|dropout|dense-128|relu",
    "conv5-32|relu|maxpool|dense-64|relu",
)
#: Flat features: multilayer perceptrons and the linear model (``dropout``: input
#: dropout, then the head: a regularized logistic or linear regression), in the
#: order the initial design takes them. The linear model comes second: it is the
#: best of these on the breast-cancer data at the flat learning rate, 0.9824 in
#: 5-fold cross-validation against 0.9693-0.9802 for the perceptrons, and the
#: worst on the digits (0.9522 against 0.9633-0.9777), so it is worth one trial
#: early (``python -m benchmarks.flat_learning_rate``, docs/benchmarks.md).
FLAT_TEMPLATES = (
    "dense-128|relu|dropout|dense-64|relu",
    "dropout",
    "dense-64|relu",
    "dense-256|relu|dropout|dense-128|relu|dropout",
    "dense-32|relu|dropout|dense-32|relu",
)

_SIBLINGS = {CONV3: CONV5, CONV5: CONV3, MAXPOOL: AVGPOOL, AVGPOOL: MAXPOOL}
#: Kinds given up first, in this order, when a template exceeds max_depth.
_OPTIONAL_KINDS = (DROPOUT, BATCHNORM)


def _is_spatial(space: SearchSpace) -> bool:
    """Whether the convolutional families apply: a spatial input and a convolution to use."""
    return space.input_kind != "flat" and any(kind in space.vocabulary for kind in (CONV3, CONV5))


def _translate(layers: Sequence[Layer], space: SearchSpace) -> list[Layer]:
    """The template's layers in the space's vocabulary and widths, shape-checked."""
    kept: list[Layer] = []
    shape = space.input_shape
    for layer in layers:
        kind = layer.kind
        if kind not in space.vocabulary:
            kind = _SIBLINGS.get(kind)
            if kind is None or kind not in space.vocabulary:
                continue
        if kind in SPATIAL_KINDS and len(shape) == 1:
            continue
        if kind in POOL_KINDS and min(shape[:-1]) < POOL_SIZE:
            continue
        if kind in NO_REPEAT_KINDS and kept and kept[-1].kind == kind:
            continue
        width = _nearest_width(space.widths(kind), layer.width) if kind in WIDTH_KINDS else None
        kept.append(Layer(kind, width))
        shape = space.output_shapes(Architecture(tuple(kept)))[-1]
    return kept


def _shorten(layers: list[Layer], max_depth: int) -> list[Layer]:
    for kind in _OPTIONAL_KINDS:
        while len(layers) > max_depth and any(layer.kind == kind for layer in layers):
            last = max(i for i, layer in enumerate(layers) if layer.kind == kind)
            layers = layers[:last] + layers[last + 1 :]
    return layers[:max_depth]


def _no_repeats(layers: list[Layer]) -> list[Layer]:
    out: list[Layer] = []
    for layer in layers:
        if layer.kind in NO_REPEAT_KINDS and out and out[-1].kind == layer.kind:
            continue
        out.append(layer)
    return out


def adapt_template(template: str | Architecture, space: SearchSpace) -> Architecture | None:
    """One template adapted to ``space`` (module docstring), or None if none fits.

    Args:
        template: an architecture or its encoding, in any widths and kinds.
        space: the space to adapt it to.
    """
    if isinstance(template, str):
        template = Architecture.decode(template)
    # Shortening can bring two relu/batchnorm/dropout layers together: drop repeats after it.
    layers = _no_repeats(_shorten(_translate(template.layers, space), space.max_depth))
    candidate = Architecture(tuple(layers))
    return candidate if space.is_valid(candidate) else None


def templates(space: SearchSpace) -> list[Architecture]:
    """The known-good starting architectures of ``space``, best-known first.

    Convolutional templates for image and sequence inputs whose vocabulary has a
    convolution, perceptrons otherwise (flat inputs, or a vocabulary without
    convolutions); each adapted with `adapt_template`, invalid ones and repeats
    left out. May be empty (e.g. a vocabulary without dense layers or convolutions).
    """
    found: dict[Architecture, None] = {}
    for template in SPATIAL_TEMPLATES if _is_spatial(space) else FLAT_TEMPLATES:
        adapted = adapt_template(template, space)
        if adapted is not None and len(adapted) > 0:
            found.setdefault(adapted, None)
    return list(found)


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _coin(rng) -> bool:
    return bool(rng.integers(2))


def random_template(space: SearchSpace, rng) -> Architecture | None:
    """A random member of the template families (module docstring), adapted to ``space``.

    Args:
        space: the space to draw for.
        rng: a numpy Generator.

    Returns:
        A valid architecture of ``space``, or None when the draw does not fit it.
    """
    tokens: list[str] = []
    units = space.units or (64,)
    if _is_spatial(space):
        for _ in range(int(rng.integers(1, 4))):
            tokens.append(f"{_pick(rng, (CONV3, CONV5))}-{_pick(rng, space.filters)}")
            if _coin(rng):
                tokens.append(BATCHNORM)
            tokens.append("relu")
            if _coin(rng):
                tokens.append(_pick(rng, (MAXPOOL, AVGPOOL)))
        if _coin(rng):
            tokens.append(DROPOUT)
        for _ in range(int(rng.integers(0, 3))):
            tokens += [f"{DENSE}-{_pick(rng, units)}", "relu"]
            if _coin(rng):
                tokens.append(DROPOUT)
    else:
        for _ in range(int(rng.integers(1, 4))):
            tokens.append(f"{DENSE}-{_pick(rng, units)}")
            if _coin(rng):
                tokens.append(BATCHNORM)
            tokens.append("relu")
            if _coin(rng):
                tokens.append(DROPOUT)
    adapted = adapt_template("|".join(tokens), space)
    return adapted if adapted is not None and len(adapted) > 0 else None
