"""Architectures as plain data, and the search space they are drawn from.

An *architecture* is an immutable sequence of layers drawn from a declared
vocabulary. A *search space* declares the vocabulary, the width choices, the depth
bounds, the input shape and an optional parameter budget.

This package imports only the standard library and numpy: it never imports
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

Modules:
    ``layers``        layer kinds, `Layer`, `Architecture` and their encoding.
    ``shapes``        shape and parameter count after each layer.
    ``search_space``  `SearchSpace`: validity, shapes and parameters, defaults,
                      KerasTuner values, config.
    ``sampling``, ``neighbours``, ``enumeration``
                      what `SearchSpace.sample`, `SearchSpace.mutate` and
                      `SearchSpace.enumerate` (with their siblings) delegate to.
"""

from kbnas.space.layers import (
    AVGPOOL,
    BATCHNORM,
    CONV3,
    CONV5,
    CONV_KINDS,
    DENSE,
    DROPOUT,
    KERNEL_SIZES,
    LAYER_KINDS,
    MAXPOOL,
    NO_REPEAT_KINDS,
    POOL_KINDS,
    POOL_SIZE,
    RELU,
    SPATIAL_KINDS,
    TOKEN_SEPARATOR,
    WIDTH_KINDS,
    Architecture,
    InvalidArchitectureError,
    Layer,
)
from kbnas.space.search_space import SearchSpace
from kbnas.space.shapes import Shape

__all__ = [
    "CONV3",
    "CONV5",
    "MAXPOOL",
    "AVGPOOL",
    "RELU",
    "DENSE",
    "BATCHNORM",
    "DROPOUT",
    "LAYER_KINDS",
    "CONV_KINDS",
    "POOL_KINDS",
    "WIDTH_KINDS",
    "SPATIAL_KINDS",
    "NO_REPEAT_KINDS",
    "KERNEL_SIZES",
    "POOL_SIZE",
    "TOKEN_SEPARATOR",
    "Shape",
    "Layer",
    "Architecture",
    "InvalidArchitectureError",
    "SearchSpace",
]
