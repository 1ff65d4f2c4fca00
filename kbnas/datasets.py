"""Small bundled datasets for examples, tests and benchmarks.

The UCI 8×8 handwritten digits (Alpaydin & Kaynak 1998; CC BY 4.0) ship with the
package as ``kbnas/data/digits.npz``: 1,797 grey-level images, pixel values 0..16,
10 classes. See ``kbnas/data/README.md`` for provenance.

The loaders return images as float32 arrays of shape (n, 8, 8, 1) with the raw
values 0..16 (the model does its own rescaling) and labels as int64 arrays of
shape (n,) with values 0..9.

The fixed split is stratified per class: with n_c images of class c, round(0.2·n_c)
go to validation, as many to test and the rest to training, each class shuffled by
``numpy.random.default_rng(DIGITS_SPLIT_SEED)``. Sizes: 1,079 train, 359
validation, 359 test.

This module imports only the standard library and numpy.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Sequence

import numpy as np

#: The bundled digits archive: ``x`` uint8 (1797, 8, 8, 1), ``y`` uint8 (1797,).
DIGITS_PATH = pathlib.Path(__file__).resolve().parent / "data" / "digits.npz"
#: Shape of one digits image, without the batch dimension.
DIGITS_INPUT_SHAPE = (8, 8, 1)
DIGITS_NUM_CLASSES = 10
#: Largest pixel value of the digits images (the smallest is 0).
DIGITS_MAX_PIXEL = 16
#: Seed of the fixed train/validation/test split.
DIGITS_SPLIT_SEED = 20240607
#: Fractions of each class going to (train, validation, test).
DIGITS_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
#: Sizes of the fixed split: (train, validation, test).
DIGITS_SPLIT_SIZES = (1079, 359, 359)

SPLIT_NAMES = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Split:
    """A train/validation/test split.

    Attributes:
        x_train, x_val, x_test: (n, 8, 8, 1) float32 images, values 0..16.
        y_train, y_val, y_test: (n,) int64 labels.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def stratified_split_indices(
    labels: np.ndarray,
    fractions: Sequence[float] = DIGITS_SPLIT_FRACTIONS,
    seed: int = DIGITS_SPLIT_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic stratified train/validation/test indices.

    For each class c (in increasing label order) with n_c members, the members are
    permuted by one ``default_rng(seed)`` and split into
    n_val = floor(f_val·n_c + 1/2), n_test = floor(f_test·n_c + 1/2) and
    n_train = n_c − n_val − n_test (the train fraction takes the rounding slack).

    Args:
        labels: (n,) integer class labels.
        fractions: (f_train, f_val, f_test), non-negative, summing to 1.
        seed: seed of the permutation.

    Returns:
        (train, val, test): sorted int64 index arrays into ``labels``, disjoint,
        together covering every index.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}"
        )
    _, val_fraction, test_fraction = fractions
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = math.floor(val_fraction * len(members) + 0.5)
        n_test = math.floor(test_fraction * len(members) + 0.5)
        n_train = len(members) - n_val - n_test
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train : n_train + n_val])
        parts[2].append(members[n_train + n_val :])
    train, val, test = (np.sort(np.concatenate(part)).astype(np.int64) for part in parts)
    return train, val, test


def _load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    with np.load(DIGITS_PATH) as archive:
        images = archive["x"].astype(np.float32)
        labels = archive["y"].astype(np.int64)
    return images, labels


def load_digits(split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The UCI 8×8 digits, whole or one part of the fixed split.

    Args:
        split: None for all 1,797 images in file order, or ``"train"`` (1,079),
            ``"val"`` (359) or ``"test"`` (359) for a part of the fixed stratified
            split (see the module docstring).

    Returns:
        (x, y): x is (n, 8, 8, 1) float32 with values 0..16, y is (n,) int64 with
        values 0..9. Fresh arrays on every call.
    """
    images, labels = _load_digits_arrays()
    if split is None:
        return images, labels
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be None or one of {SPLIT_NAMES}, got {split!r}")
    indices = stratified_split_indices(labels)[SPLIT_NAMES.index(split)]
    return images[indices], labels[indices]


def load_digits_split() -> Split:
    """The fixed stratified 60/20/20 split of the digits: 1,079 / 359 / 359 images."""
    images, labels = _load_digits_arrays()
    train, val, test = stratified_split_indices(labels)
    return Split(
        x_train=images[train],
        y_train=labels[train],
        x_val=images[val],
        y_val=labels[val],
        x_test=images[test],
        y_test=labels[test],
    )
