"""Loading a user's data file for the command line: ``.npz``, CSV or an image folder.

Every ``read_*`` function returns numpy arrays ``(x, y)`` and the class names
(None where the labels are numbers), every ``load_*`` function ``(x, y)`` alone;
they raise `DataFileError` (a `ValueError`) with a one-line message naming the
problem: the file, and for a CSV file the line and the column.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import math
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


#: Cells read as a missing value in the messages (pandas' default NA strings and '?'), lower case.
MISSING_VALUE_MARKERS = frozenset({"na", "n/a", "nan", "null", "none", "?", "-", "--", "#n/a", "missing", "<na>"})


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


def _cell_error(path: pathlib.Path, line: int, column: str, cell: str) -> DataFileError:
    """The message for a feature cell that is not a finite number."""
    where = f"{path}: line {line}, " + (column if column.endswith("(no name)") else f"column {column!r}")
    if not cell.strip():
        return DataFileError(f"{where} is empty (a missing value); fill it in (impute) or drop the row")
    try:
        value = float(cell)
    except ValueError:
        if cell.strip().lower() in MISSING_VALUE_MARKERS:
            return DataFileError(f"{where} holds {cell.strip()!r}, a missing value; fill it in (impute) or drop "
                                 "the row")
        return DataFileError(f"{where} holds {cell!r}, not a number; encode such a column as numbers "
                             "(e.g. one column per category) or drop it")
    if math.isfinite(value):  # finite, but not as float32
        return DataFileError(f"{where} holds {cell.strip()!r}, beyond float32's range (±3.4e38); rescale the column")
    return DataFileError(f"{where} holds {cell.strip()!r}, not a finite number; "
                         "fill it in (impute) or drop the row")


def _label_column_values(path: pathlib.Path, cells: list[str], label_column: str) -> tuple[np.ndarray, list | None]:
    """The labels of a CSV file, and the class names when they are not numbers.

    Numbers are labels as they are (`_as_labels`). When no label is a number,
    every label is a class name, and the classes are numbered 0 … k − 1 in the
    sorted order of their names, as the class folders of an image folder are.
    Numbers and names mixed are refused: a regression target with ``NA`` in it
    would otherwise become the alphabetical ranks of its values.
    """
    for line, cell in enumerate(cells, start=2):
        if not cell.strip():
            raise DataFileError(f"{path}: line {line}, column {label_column!r} (the label) is empty; "
                                "give every row a label or drop the row")
    try:
        y = np.array([float(cell) for cell in cells], dtype=np.float64)
    except ValueError:
        numbers = [_is_number(cell) for cell in cells]
        if any(numbers):  # "NA" among numbers is a missing value, not a class
            line = 2 + numbers.index(False)
            raise DataFileError(
                f"{path}: line {line}, column {label_column!r} (the label) holds {cells[line - 2].strip()!r}, "
                f"not a number, while line {2 + numbers.index(True)} holds {cells[numbers.index(True)].strip()!r}; "
                "give every row a number, or every row a class name"
            ) from None
        names = sorted({cell.strip() for cell in cells})
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[cell.strip()] for cell in cells], dtype=np.int64), names
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise DataFileError(f"{path}: line {bad[0] + 2}, column {label_column!r} (the label) holds "
                            f"{cells[bad[0]].strip()!r}, not a finite number; drop the row")
    with np.errstate(over="ignore"):
        huge = np.flatnonzero(np.isinf(y.astype(np.float32)))  # as float32 models see it (`_is_finite32`)
    if huge.size:
        raise DataFileError(f"{path}: line {huge[0] + 2}, column {label_column!r} (the label) holds "
                            f"{cells[huge[0]].strip()!r}, beyond float32's range (±3.4e38); rescale a regression "
                            "target, or number the classes 0 … K−1")
    return _as_labels(y), None


def read_csv(path: pathlib.Path, label_column: str) -> tuple[np.ndarray, np.ndarray, list | None]:
    """Feature columns (all but ``label_column``), the labels and the class names
    (None for numeric labels) of a CSV file (`read_csv_file` without the column names)."""
    data = read_csv_file(path, label_column)
    return data.x, data.y, data.class_names


@dataclasses.dataclass(frozen=True)
class DataFile:
    """What a data file holds.

    Attributes:
        x: the features, one row (or image) per example.
        y: the labels.
        class_names: class_names[k] names class k (an image folder's class
            folders, a CSV file's label names); None for numeric labels.
        feature_columns: a CSV file's feature column names, in the order of x's
            columns (the file's order without the label column); None for
            other files.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list | None = None
    feature_columns: list | None = None


def read_csv_file(path: pathlib.Path, label_column: str) -> DataFile:
    """A CSV file's features, labels, class names and feature column names.

    The file is UTF-8 text; the first row holds column names (the label
    column's once; spaces around a name are dropped, as in ``a, b, label``).
    Every feature cell must be a finite number; the labels are all numbers or
    all class names (`_label_column_values`).
    """
    rows = list(csv.reader(io.StringIO(_read_text(path), newline="")))
    if not rows:
        raise DataFileError(f"{path}: empty CSV file")
    header, body = [name.strip() for name in rows[0]], [r for r in rows[1:] if r]
    label_column = label_column.strip()
    _check_header(path, header, label_column)
    if label_column not in header:
        separator = next((sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]), None)
        if separator is not None:
            raise DataFileError(
                f"{path}: one column named {header[0]!r}: the file seems separated by {separator!r}, and kbnas "
                "reads comma-separated values (decimal points, not commas); write it with ',' between cells"
            )
        raise DataFileError(
            f"{path}: no column named {label_column!r} (columns: {', '.join(header)}); "
            "choose it with --label-column"
        )
    if not body:
        raise DataFileError(f"{path}: no data rows")
    label_index = header.index(label_column)
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataFileError(f"{path}: line {i} has {len(row)} cells, the header has {len(header)}")
    # A column without a name or any value (a trailing comma on every line) holds nothing.
    features = [j for j in range(len(header)) if j != label_index
                and (header[j] or any(row[j].strip() for row in body))]
    if not features:
        raise DataFileError(f"{path}: no feature columns, only the label column {label_column!r}")
    x = np.empty((len(body), len(features)), dtype=np.float32)
    with np.errstate(over="ignore"):  # beyond float32: inf, named below
        for i, row in enumerate(body, start=2):
            try:
                x[i - 2] = [float(row[j]) for j in features]
            except ValueError:
                _check_finite(path, header, features, body, x[: i - 2])  # an earlier line's first
                bad = next(j for j in features if not _is_finite32(row[j]))  # this line's first
                raise _cell_error(path, i, _column_name(header, bad), row[bad]) from None
    _check_finite(path, header, features, body, x)
    y, class_names = _label_column_values(path, [row[label_index] for row in body], label_column)
    return DataFile(x, y, class_names, [_column_name(header, j) for j in features])


def _check_finite(path: pathlib.Path, header: list[str], features: list[int], body: list[list[str]],
                  x: np.ndarray) -> None:
    """The first cell of ``x`` (rows of ``body``) that is NaN or infinite, named."""
    rows_bad, columns_bad = np.nonzero(~np.isfinite(x))
    if rows_bad.size:
        i, j = int(rows_bad[0]), features[int(columns_bad[0])]
        raise _cell_error(path, i + 2, _column_name(header, j), body[i][j])


def _column_name(header: list[str], j: int) -> str:
    return header[j] or f"column {j + 1} (no name)"


def _is_finite32(cell: str) -> bool:
    """Whether a cell reads as a finite float32."""
    try:
        return bool(np.isfinite(np.float32(float(cell))))
    except (ValueError, OverflowError):
        return False


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def load_csv(path: pathlib.Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of `read_csv` (class names given as labels numbered in their sorted order)."""
    x, y, _ = read_csv(path, label_column)
    return x, y


def load_image_folder(path: pathlib.Path, image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of `read_image_folder`."""
    x, y, _ = read_image_folder(path, image_size)
    return x, y


def read_image_folder(path: pathlib.Path, image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray, list]:
    """Images of a folder with one subfolder per class, resized to a square.

    Args:
        path: the folder; its subfolders, in sorted name order, are the classes
            (those whose name starts with a dot are not, as in Keras).
        image_size: side of the square, 1 to `MAX_IMAGE_SIZE`.

    Returns:
        (x, y, class_names): x is (n, image_size, image_size, 3) float32 with
        values 0..255, y is (n,) int32 class indices into class_names.

    Raises:
        DataFileError: a bad ``image_size``, fewer than two class folders, no
            images, a class folder without images (named), or an image file
            that cannot be decoded (named).
    """
    import keras  # only this loader needs Keras (and TensorFlow)
    import tensorflow as tf

    if not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise DataFileError(f"{path}: the image size must be between 1 and {MAX_IMAGE_SIZE}, got {image_size}")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataFileError(f"{path}: an image folder needs one subfolder per class (found {len(classes)})")
    try:
        dataset = keras.utils.image_dataset_from_directory(
            str(path),
            labels="inferred",
            label_mode="int",
            class_names=classes,
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
    # Before decoding anything: a class folder without images (Keras would skip
    # its class index and leave the model an output no example has).
    counts = collections.Counter(os.path.relpath(name, path).split(os.sep)[0] for name in dataset.file_paths)
    empty = [name for name in classes if counts[name] == 0]
    if empty:
        raise DataFileError(f"{path / empty[0]}: no images in this class folder ({IMAGE_FORMATS} files); "
                            "add images or remove the folder")
    xs, ys = [], []
    try:
        for xb, yb in dataset:
            xs.append(np.asarray(xb))
            ys.append(np.asarray(yb))
    except tf.errors.InvalidArgumentError:
        raise _undecodable_image(path, dataset.file_paths) from None
    if not xs:
        raise DataFileError(f"{path}: no images found")
    return np.concatenate(xs), np.concatenate(ys), classes


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
    """``(x, y)`` of `read_data`."""
    x, y, _ = read_data(path, label_column=label_column, image_size=image_size)
    return x, y


def read_data(
    path: str, *, label_column: str = DEFAULT_LABEL_COLUMN, image_size: int = DEFAULT_IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray, list | None]:
    """Reads ``.npz``, ``.csv`` or an image folder, chosen by what ``path`` is.

    Returns:
        (x, y, class_names): class_names[k] names class k, for an image folder
        (its class folders) and a CSV file whose labels are names; None when
        the labels are numbers.
    """
    data = read_data_file(path, label_column=label_column, image_size=image_size)
    return data.x, data.y, data.class_names


def read_data_file(
    path: str, *, label_column: str = DEFAULT_LABEL_COLUMN, image_size: int = DEFAULT_IMAGE_SIZE
) -> DataFile:
    """`read_data`, with a CSV file's feature column names (`DataFile`)."""
    if not str(path):  # pathlib would read "" as the current folder
        raise DataFileError("the data path is empty; name an .npz file, a .csv file or an image folder")
    p = pathlib.Path(path)
    if not p.exists():
        raise DataFileError(f"{path}: no such file or directory")
    if p.is_dir():
        return DataFile(*read_image_folder(p, image_size))
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return DataFile(*load_npz(p))
    if suffix == ".csv":
        return read_csv_file(p, label_column)
    raise DataFileError(f"{path}: unsupported data file {os.path.basename(path)!r} (use .npz, .csv or an image folder)")
