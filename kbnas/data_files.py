"""Loading a user's data file for the command line: ``.npz``, CSV or an image folder.

Every loader returns numpy arrays ``(x, y)`` and raises `DataFileError` (a
`ValueError`) with a one-line message naming the problem.
"""

from __future__ import annotations

import csv
import os
import zipfile
import pathlib

import numpy as np


class DataFileError(ValueError):
    """A data file that cannot be used, with a message naming the problem."""


def load_npz(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` and ``y`` of an ``.npz`` file."""
    if not zipfile.is_zipfile(path):
        raise DataFileError(f"{path}: not an .npz archive (write one with numpy.savez(path, x=x, y=y))")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("x", "y") if k not in data.files]
            if missing:
                raise DataFileError(
                    f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(data.files) or 'none'} "
                    "(expected arrays named x and y)"
                )
            return np.asarray(data["x"]), np.asarray(data["y"])
    except (OSError, ValueError) as error:
        if isinstance(error, DataFileError):
            raise
        raise DataFileError(f"{path}: not a readable .npz file ({error})") from None


def load_csv(path: pathlib.Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Feature columns (all but ``label_column``) and the label column of a CSV file.

    The first row holds column names; every other cell must be a number.
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataFileError(f"{path}: empty CSV file")
    header, body = rows[0], [r for r in rows[1:] if r]
    if label_column not in header:
        raise DataFileError(
            f"{path}: no column named {label_column!r} (columns: {', '.join(header)}); "
            "choose it with --label-column"
        )
    if not body:
        raise DataFileError(f"{path}: no data rows")
    label_index = header.index(label_column)
    x = np.empty((len(body), len(header) - 1), dtype=np.float32)
    y = np.empty(len(body), dtype=np.float64)
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataFileError(f"{path}: line {i} has {len(row)} cells, the header has {len(header)}")
        try:
            values = [float(v) for v in row]
        except ValueError:
            raise DataFileError(f"{path}: line {i} holds a non-numeric cell") from None
        y[i - 2] = values[label_index]
        x[i - 2] = values[:label_index] + values[label_index + 1 :]
    if np.all(np.mod(y[np.isfinite(y)], 1) == 0):
        y = y.astype(np.int64) if np.all(np.isfinite(y)) else y
    return x, y


def load_image_folder(path: pathlib.Path, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images of a folder with one subfolder per class, resized to a square."""
    import keras  # only this loader needs Keras

    classes = sorted(d.name for d in path.iterdir() if d.is_dir())
    if len(classes) < 2:
        raise DataFileError(f"{path}: an image folder needs one subfolder per class (found {len(classes)})")
    try:
        dataset = keras.utils.image_dataset_from_directory(
            str(path),
            labels="inferred",
            label_mode="int",
            image_size=(image_size, image_size),
            batch_size=256,
            shuffle=False,
            verbose=False,
        )
    except ValueError as error:  # Keras: "No images found in directory …. Allowed formats: …"
        if "No images found" not in str(error):
            raise DataFileError(f"{path}: {error}") from None
        detail = str(error).split(". ", 1)[-1]
        raise DataFileError(f"{path}: no images found in the class folders ({detail})") from None
    xs, ys = [], []
    for xb, yb in dataset:
        xs.append(np.asarray(xb))
        ys.append(np.asarray(yb))
    if not xs:
        raise DataFileError(f"{path}: no images found")
    return np.concatenate(xs), np.concatenate(ys)


def load_data(path: str, *, label_column: str = "label", image_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Loads ``.npz``, ``.csv`` or an image folder, chosen by what ``path`` is."""
    p = pathlib.Path(path)
    if not p.exists():
        raise DataFileError(f"{path}: no such file or directory")
    if p.is_dir():
        return load_image_folder(p, image_size)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return load_npz(p)
    if suffix == ".csv":
        return load_csv(p, label_column)
    raise DataFileError(f"{path}: unsupported data file {os.path.basename(path)!r} (use .npz, .csv or an image folder)")
