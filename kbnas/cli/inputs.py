"""The data of a run and its output folder: loading and splitting ``--data``,
checking it, and the run file that makes a rerun resume the same search.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np

from kbnas.layout import LOCK_FILE, PROJECT_NAME, RUN_FILE
from kbnas.cli.common import (
    LEGACY_LEARNING_RATE,
    MIN_EXAMPLES,
    MIN_EXAMPLES_PER_CLASS,
    USER_SPLIT_FRACTIONS,
    USER_SPLIT_SEED,
    UsageError,
    _read_json,
)


def _load_split(args, check_split: bool = True, saved: dict | None = None) -> tuple[dict, dict]:
    """Train/validation/test arrays and a description of where they came from.

    ``saved``: the run file of the search resumed or exported, if any.
    """
    from kbnas import datasets

    _check_image_size(args)
    _check_label_column(args)
    if args.data is None:
        split = datasets.load_digits_split()
        arrays = {
            "train": (split.x_train, split.y_train),
            "val": (split.x_val, split.y_val),
            "test": (split.x_test, split.y_test),
        }
        return arrays, {"data": "bundled digits", "digest": _digest(split.x_train, split.y_train),
                        "task": _task_description(split.x_train, split.y_train, args),
                        "image_size": None, "label_column": None, "class_names": None, "feature_columns": None}

    from kbnas.data_files import DEFAULT_IMAGE_SIZE, DEFAULT_LABEL_COLUMN, read_data_file

    # How the data are read, recorded in the run file: export and resume read them alike.
    folder, csv = os.path.isdir(args.data), args.data.lower().endswith(".csv")
    image_size = (getattr(args, "image_size", None) or DEFAULT_IMAGE_SIZE) if folder else None
    if csv and not folder:
        label_column = DEFAULT_LABEL_COLUMN if args.label_column is None else args.label_column
    else:
        label_column = None
    data = read_data_file(args.data, image_size=image_size or DEFAULT_IMAGE_SIZE,
                          label_column=DEFAULT_LABEL_COLUMN if label_column is None else label_column)
    x, y, class_names = data.x, data.y, data.class_names
    # Named classes are classes, however many (auto would make more than 20 with
    # few examples each a regression target): the task given to the model too.
    # Not for a search whose run file predates the rule (no "class_task"): it
    # resumes and exports with the task it was searched with.
    args.class_task = None
    if class_names is not None:
        if getattr(args, "task", "auto") == "regression":
            raise UsageError(f"--task regression needs numeric labels, but the labels of {args.data} are "
                             f"{len(class_names)} class names")
        if len(class_names) == 1:  # named as the file names it, not as class 0 (infer_task's message)
            raise UsageError(f"{args.data}: every label is {class_names[0]!r}, a single class; classification "
                             "needs at least two classes")
        legacy = saved is not None and "class_task" not in saved
        if getattr(args, "task", "auto") == "auto" and len(class_names) >= 2 and not legacy:
            args.class_task = "binary" if len(class_names) == 2 else "multiclass"
    task = _task_description(x, y, args)  # names NaN, shape and label problems
    strata = y if not task.startswith("regression") else np.zeros(len(x), dtype=int)
    if check_split:
        _check_splittable(y, task, class_names)
    train, val, test = datasets.stratified_split_indices(strata, USER_SPLIT_FRACTIONS, USER_SPLIT_SEED)
    arrays = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    return arrays, {"data": os.path.abspath(args.data), "digest": _digest(x, y), "task": task,
                    "image_size": image_size, "label_column": label_column, "class_names": class_names,
                    "feature_columns": data.feature_columns}


def _check_image_size(args) -> None:
    """``--image-size`` only with an image folder, the one kind of data it resizes.

    Raises:
        UsageError: ``--image-size`` given with the bundled digits or a data file.
    """
    if getattr(args, "image_size", None) is None:
        return
    if args.data is None:
        what = "the bundled digits (8x8 images, never resized)"
    elif os.path.exists(args.data) and not os.path.isdir(args.data):
        what = f"the file {args.data}"
    else:  # an image folder, or a missing path that load_data names
        return
    raise UsageError(f"--image-size resizes the images of an image folder, but the data are {what}; "
                     "leave --image-size out")


def _check_label_column(args) -> None:
    """``--label-column`` only with a CSV file, the one kind of data with columns.

    Raises:
        UsageError: ``--label-column`` given with the bundled digits, an .npz
            file or an image folder.
    """
    if getattr(args, "label_column", None) is None:
        return
    if args.data is None:
        what = "the bundled digits"
    elif os.path.isdir(args.data):
        what = f"the image folder {args.data} (its labels are its subfolders)"
    elif args.data.lower().endswith(".npz") and os.path.exists(args.data):
        what = f"the file {args.data} (its labels are its array y)"
    else:  # a CSV file, or a path that load_data names
        return
    raise UsageError(f"--label-column names the label column of a CSV file, but the data are {what}; "
                     "leave --label-column out")


def _reading_options(args, saved: dict | None, exporting: bool = False) -> None:
    """``--image-size`` and ``--label-column`` left out: those the run file
    recorded (how its search read the data), so that a resume or an export reads
    them alike. Only for the data the run file names: other ``--data`` is another
    search, which `_check_run_file` names as such.

    Raises:
        UsageError: ``kbnas export`` given one that differs from the recorded one.
    """
    if saved is None or saved.get("data") != ("bundled digits" if args.data is None else os.path.abspath(args.data)):
        return
    for option, key in (("--image-size", "image_size"), ("--label-column", "label_column")):
        recorded = saved.get(key)
        if recorded is None:
            continue
        given = getattr(args, key, None)
        if given is None:
            setattr(args, key, recorded)
        elif given != recorded and exporting:
            raise UsageError(f"the search read its data with {option} {recorded}, not {given}; "
                             f"leave {option} out to export it")


def _check_splittable(y: np.ndarray, task: str, class_names: list | None = None) -> None:
    """Every part of the 60/20/20 split non-empty, and for classification every
    class in each part: at least 3 examples (of each class), split 1/1/1.
    Classes are named by ``class_names`` (an image folder's, a CSV file's) when given.

    Raises:
        UsageError: too few examples, or a class with too few examples.
    """
    if len(y) < MIN_EXAMPLES:
        raise UsageError(
            f"too few examples to split: {len(y)}; the 60/20/20 train/validation/test split needs "
            f"at least {MIN_EXAMPLES}"
        )
    if task.startswith("regression"):
        return
    labels, counts = np.unique(y, return_counts=True)
    few = counts < MIN_EXAMPLES_PER_CLASS
    if few.any():
        shown = ", ".join(f"{_label_text(label, class_names)} ({count} example{'s' if count > 1 else ''})"
                          for label, count in list(zip(labels[few], counts[few]))[:5])
        if few.sum() > 5:
            shown += f" and {few.sum() - 5} more"
        raise UsageError(
            f"class{'es' if few.sum() > 1 else ''} with too few examples for the 60/20/20 split: {shown}; "
            f"each class needs at least {MIN_EXAMPLES_PER_CLASS} (one each for train, validation and test): "
            "add examples or drop the class"
        )


def _label_text(label, class_names: list | None = None) -> str:
    if class_names is not None:
        return repr(class_names[int(label)])
    value = float(label)
    return str(int(value)) if value.is_integer() else str(value)


def _task_description(x: np.ndarray, y: np.ndarray, args) -> str:
    """``"multiclass, 10 classes"``, with ``", inferred: …"`` when --task was left at auto.

    Raises:
        ValueError: the data or labels are invalid (`kbnas.data_inference.infer_data_spec`).
    """
    from kbnas.data_inference import infer_data_spec

    requested = getattr(args, "class_task", None) or getattr(args, "task", "auto")
    spec = infer_data_spec(x, y, task=requested)
    task = spec.task + (f", {spec.num_classes} classes" if spec.task == "multiclass" else "")
    return task + (", inferred: pass --task to change" if getattr(args, "task", "auto") == "auto" else "")


def _digest(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (x, y):
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _run_settings(args, source: dict) -> dict:
    return {
        "data": source["data"],
        "digest": source["digest"],
        "seed": args.seed,
        "acquisition": args.acquisition,
        "distance": args.distance,
        "max_depth": args.max_depth,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "task": args.task,
        "early_stopping": bool(getattr(args, "early_stopping", True)),
        "selection": getattr(args, "selection", "auto"),
        # Regression models end with the target's scale (kbnas.model_builder); a
        # search from before it resumes, and exports, without it.
        "scale_targets": bool(getattr(args, "scale_targets", True)),
        # How the data were read (None: not an image folder, not a CSV file).
        "image_size": source["image_size"],
        "label_column": source["label_column"],
        # The task of named classes (`_load_split`; None: numeric labels, or --task given).
        "class_task": getattr(args, "class_task", None),
    }


def _check_output(output: pathlib.Path, option: str = "--output") -> pathlib.Path:
    """``--output`` (or ``option``) is a folder, or can be made one; the path itself otherwise.

    Raises:
        UsageError: it, or a folder above it, is a file; or it cannot be written.
    """
    for path in (output, *output.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file, not a folder" if path == output else f"cannot be a folder: {path} is a file"
                raise UsageError(f"{option} {output} {what}; choose another {option}")
            if not os.access(path, os.W_OK | os.X_OK):
                raise UsageError(f"{option} {output}: {path} is not writable; choose another {option}")
            return output
    return output


def _check_run_file(output: pathlib.Path, settings: dict) -> bool:
    """True when ``output`` holds this search (resume); error when another."""
    path = output / RUN_FILE
    if not path.exists():
        # (A kill during the first write of RUN_FILE leaves only its temporary file, and the lock file.)
        leftovers = ([p for p in output.iterdir() if not p.name.startswith(f".{RUN_FILE}.") and p.name != LOCK_FILE]
                     if output.exists() else [])
        if (output / PROJECT_NAME).exists() or leftovers:
            raise UsageError(f"output directory {output} is not empty and holds no kbnas search; choose another --output")
        return False
    saved = _read_json(path)
    # Searches from before early stopping existed trained every trial fully.
    saved.setdefault("early_stopping", False)
    # … and chose the exported trial by the oracle (the choice does not change the trials).
    saved.setdefault("selection", settings.get("selection"))
    saved.setdefault("scale_targets", False)
    saved.setdefault("learning_rate", LEGACY_LEARNING_RATE)
    # … and did not record how they read the data (the digest still tells other data).
    saved.setdefault("image_size", settings.get("image_size"))
    saved.setdefault("label_column", settings.get("label_column"))
    saved.setdefault("class_task", None)  # (`_load_split` leaves it None for such a search)
    differences = [k for k in settings if saved.get(k) != settings[k]]
    if differences:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {settings[k]!r} now" for k in differences)
        raise UsageError(f"output directory {output} holds a different search ({detail}); use another --output")
    return True


def _default_epochs(saved: dict | None, input_shape) -> int:
    """--epochs when not given: a resumed search keeps its own (every kbnas_run.json
    records them), a new one gets `kbnas.training.default_max_epochs` of its input kind."""
    from kbnas.training import default_max_epochs

    if saved is not None and saved.get("epochs"):
        return int(saved["epochs"])
    return default_max_epochs(input_shape)
