"""Loading a user's data file for the command line: ``.npz``, CSV or an image folder.

Every loader returns numpy arrays ``(x, y)`` and raises `DataFileError` (a
`ValueError`) with a one-line message naming the problem.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
import pathlib

import numpy as np

#: Side of the square the images of an image folder are resized to, by default.
DEFAULT_IMAGE_SIZE = 32
#: The label column of a CSV file unless ``--label-column`` names another.
DEFAULT_LABEL_COLUMN = "label"
#: Largest such side: a 1024×1024 RGB image is 12 MB of float32, far beyond what a
#: search trains on, while much larger sides exhaust memory in the resizing itself.
MAX_IMAGE_SIZE = 1024
#: Image formats Keras's ``image_dataset_from_directory`` reads (by file extension).
IMAGE_FORMATS = "BMP, GIF, JPEG or PNG"
#: Labels are cast to int64 when they are all whole numbers of at most this size.
_INT64_LIMIT = 2.0**63


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
            x, y = np.asarray(data["x"]), np.asarray(data["y"])
    except (OSError, ValueError) as error:
        if isinstance(error, DataFileError):
            raise
        raise DataFileError(f"{path}: not a readable .npz file ({error})") from None
    for name, array in (("x", x), ("y", y)):
        if np.iscomplexobj(array):
            raise DataFileError(f"{path}: {name} must be real numbers, got {array.dtype}")
    # (N, 1) labels are one label per example, as the data formats promise.
    return x, (y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y)


def _read_text(path: pathlib.Path) -> str:
    """The UTF-8 text of a file (a leading byte-order mark dropped).

    Raises:
        DataFileError: an unreadable file, or a byte that is not UTF-8, naming its line.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataFileError(f"{path}: cannot read the file ({error.strerror or error})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = error.object.count(b"\n", 0, error.start) + 1
        raise DataFileError(
            f"{path}: line {line} is not UTF-8 text (byte 0x{error.object[error.start]:02x}); "
            "save the file as UTF-8"
        ) from None


def _check_header(path: pathlib.Path, header: list[str], label_column: str) -> None:
    """The label column named once: a second one would be read as a feature, the
    labels leaking into the inputs. (Features are read by position: repeated or
    empty feature names, as spreadsheets write them, are fine.)"""
    if header.count(label_column) > 1:
        raise DataFileError(f"{path}: the header names the label column {label_column!r} "
                            f"{header.count(label_column)} times; give it one column")


def _as_labels(y: np.ndarray) -> np.ndarray:
    """CSV labels as int64 when all are whole numbers that fit it, else as they are."""
    whole = np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0) and np.all(np.abs(y) < _INT64_LIMIT)
    return y.astype(np.int64) if whole else y


def load_csv(path: pathlib.Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Feature columns (all but ``label_column``) and the label column of a CSV file.

    The file is UTF-8 text; the first row holds column names (the label
    column's once), and every other cell must be a number.
    """
    rows = list(csv.reader(io.StringIO(_read_text(path), newline="")))
    if not rows:
        raise DataFileError(f"{path}: empty CSV file")
    header, body = rows[0], [r for r in rows[1:] if r]
    _check_header(path, header, label_column)
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
    return x, _as_labels(y)


def load_image_folder(path: pathlib.Path, image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Images of a folder with one subfolder per class, resized to a square.

    Args:
        path: the folder; its subfolders, in sorted name order, are the classes.
        image_size: side of the square, 1 to `MAX_IMAGE_SIZE`.

    Returns:
        (x, y): x is (n, image_size, image_size, 3) float32 with values 0..255,
        y is (n,) int32 class indices.

    Raises:
        DataFileError: a bad ``image_size``, fewer than two class folders, no
            images, or an image file that cannot be decoded (named).
    """
    import keras  # only this loader needs Keras (and TensorFlow)
    import tensorflow as tf

    if not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise DataFileError(f"{path}: the image size must be between 1 and {MAX_IMAGE_SIZE}, got {image_size}")
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
    try:
        for xb, yb in dataset:
            xs.append(np.asarray(xb))
            ys.append(np.asarray(yb))
    except tf.errors.InvalidArgumentError:
        raise _undecodable_image(path, dataset.file_paths) from None
    if not xs:
        raise DataFileError(f"{path}: no images found")
    return np.concatenate(xs), np.concatenate(ys)


def _undecodable_image(path: pathlib.Path, files: list[str]) -> DataFileError:
    """The error naming the first of ``files`` that TensorFlow cannot decode.

    Called only after decoding failed, so the good case decodes every image once.
    """
    import tensorflow as tf

    for name in files:
        try:
            # As Keras's loader decodes them (image_dataset_utils.load_image).
            tf.image.decode_image(tf.io.read_file(name), channels=3, expand_animations=False)
        except tf.errors.OpError:
            return DataFileError(
                f"{name}: cannot decode this image (damaged, or not a {IMAGE_FORMATS} file despite "
                f"its name); remove or replace it"
            )
    return DataFileError(f"{path}: an image cannot be decoded (damaged, or not a {IMAGE_FORMATS} file)")


def load_data(
    path: str, *, label_column: str = DEFAULT_LABEL_COLUMN, image_size: int = DEFAULT_IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Loads ``.npz``, ``.csv`` or an image folder, chosen by what ``path`` is."""
    if not str(path):  # pathlib would read "" as the current folder
        raise DataFileError("the data path is empty; name an .npz file, a .csv file or an image folder")
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
