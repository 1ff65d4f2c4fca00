"""Atomic file writes: a kill during a save leaves the old file or the new one, never
half of either; and the check of a state file read back.

KerasTuner writes ``oracle.json``, ``tuner0.json`` and every ``trial.json`` in
place (``open(path, "w")`` then ``write``). A process killed between the two
leaves an empty or truncated file, and the next run cannot resume: its
``json.loads`` fails on the file. kbnas writes these files, and its own
``kbnas_run.json``, by writing a temporary file in the same folder, flushing and
``fsync``-ing it, then ``os.replace``-ing it over the target, which POSIX and
Windows make atomic within one file system.

Paths with a scheme (``gs://…``, ``s3://…``: KerasTuner's ``tf.io.gfile``
back ends) are not local files: for them the caller keeps KerasTuner's writer.

Read back, a state file can still be damaged: cut short by a copy, or edited.
Their readers index them without checks (KerasTuner's ``set_state`` does
``state["hyperparameters"]["values"]``), so a file that is valid JSON of
another shape ends in a ``TypeError`` or ``AttributeError`` far from the file.
`read_state_file` and `check_json_files` check each file's shape (by file name,
`STATE_FILE_SHAPES`: what KerasTuner's reload and ``kbnas export`` read; or the
part a reader reads, ``TRIAL_RECORD_SHAPE`` for ``kbnas show`` and the report)
and name the file and what is wrong in one line. A shape is a type (``str``,
``int``, ``list`` …; ``NUMBER`` for int or float; ``None`` for null; ``object``
for anything), a `JSONObject` or `JSONList`, or a tuple of shapes any of which
may match; a bool is not a number.

This module imports only the standard library.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import secrets
from typing import Any, Mapping


class DamagedFileError(ValueError):
    """A state file that is not valid JSON (written by something else, or cut short), or not of its shape."""


NUMBER = (int, float)


@dataclasses.dataclass(frozen=True)
class JSONObject:
    """The shape of a JSON object (module docstring).

    Attributes:
        required: key -> shape of the keys its readers index without a default.
        optional: key -> shape of the keys that may be absent (older files).
        each: the shape of every value (objects keyed by trial id); ``object``: any.
    """

    required: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    optional: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    each: Any = object


@dataclasses.dataclass(frozen=True)
class JSONList:
    """The shape of a JSON array whose items all have shape ``each``."""

    each: Any = object


_HYPERPARAMETERS = JSONObject(required={"space": JSONList(JSONObject(required={"class_name": str, "config": dict})),
                                        "values": dict})
_METRIC_HISTORY = JSONObject(required={"direction": str, "observations": JSONList(
    JSONObject(required={"value": (list, *NUMBER), "step": int}))})
#: KerasTuner 1.4's ``trial.json``, as its reload reads it (``Trial.set_state``).
TRIAL_SHAPE = JSONObject(required={
    "trial_id": str, "hyperparameters": _HYPERPARAMETERS, "metrics": JSONObject(required={"metrics": JSONObject(
        each=_METRIC_HISTORY)}), "score": (*NUMBER, None), "best_step": (*NUMBER, None), "status": str,
    "message": (str, None)})
#: The parts of ``trial.json`` that ``kbnas show`` and the report read (`kbnas.report.record`).
TRIAL_RECORD_SHAPE = JSONObject(
    required={"trial_id": str, "status": str},
    optional={"score": (*NUMBER, None), "hyperparameters": JSONObject(optional={"values": dict}),
              "metrics": JSONObject(optional={"metrics": JSONObject(each=JSONObject(optional={
                  "observations": JSONList(JSONObject(optional={"step": NUMBER}))}))})})
_PROPOSAL = JSONObject(optional={"method": str, "seconds": NUMBER, "acquisition": (*NUMBER, None),
                                 "predicted_mean": (*NUMBER, None), "predicted_std": (*NUMBER, None)})
#: The fields of ``BayesianNASOracle.get_state()["kbnas"]`` (`kbnas.oracle`).
_KBNAS_FIELDS = {
    "search_space": (dict, None), "theta": (JSONList(NUMBER), None), "architecture_hp": str, "distance": str,
    "acquisition": str, "kappa": NUMBER, "xi": NUMBER, "num_initial_points": (*NUMBER, None), "score_warping": str,
    "recommendation": str, "objective": (JSONObject(optional={"name": str, "direction": str}), None),
    "proposal_log": JSONObject(each=_PROPOSAL), "search_seconds": NUMBER, "trial_seconds": JSONObject(each=NUMBER),
    "trial_ended_at": JSONObject(each=NUMBER), "early_stopping": (dict, None),
    "learning_curves": JSONObject(each=JSONObject(required={"best": NUMBER})),
    "rung_values": JSONObject(each=JSONObject(each=NUMBER)),
    "stopped_early": JSONObject(each=JSONObject(required={"epochs": int})), "promoted": JSONObject(each=str)}
#: The reload indexes these two; the others were added over time (absent from older searches).
_KBNAS_RELOADED = ("search_space", "theta")
#: KerasTuner 1.4's ``oracle.json``, as its reload reads it (``Oracle.set_state``), with kbnas's part.
ORACLE_SHAPE = JSONObject(
    required={"ongoing_trials": JSONObject(each=str), "hyperparameters": _HYPERPARAMETERS, "start_order": list,
              "end_order": list, "run_times": JSONObject(each=int), "retry_queue": list, "seed": int,
              "seed_state": int, "tried_so_far": list, "id_to_hash": dict,
              "display": JSONObject(required={"search_start": (str, None), "trial_start": JSONObject(each=str),
                                              "trial_number": dict})},
    optional={"kbnas": JSONObject(required={key: _KBNAS_FIELDS[key] for key in _KBNAS_RELOADED},
                                  optional={k: v for k, v in _KBNAS_FIELDS.items() if k not in _KBNAS_RELOADED})})
#: The parts of ``oracle.json`` that ``kbnas show`` and the report read: kbnas's.
ORACLE_RECORD_SHAPE = JSONObject(optional={"kbnas": JSONObject(optional=_KBNAS_FIELDS)})
#: ``kbnas_run.json``: the settings of a ``kbnas search`` (`kbnas.cli.inputs._run_settings`).
RUN_SHAPE = JSONObject(
    required={"data": str, "digest": str, "seed": int, "acquisition": str, "distance": str, "max_depth": int,
              "epochs": int, "batch_size": (int, None)},
    optional={"learning_rate": (*NUMBER, None), "task": str, "early_stopping": bool, "selection": str,
              "scale_targets": bool, "image_size": (int, None), "label_column": (str, None),
              "class_task": (str, None), "trial_devices": int})
#: ``selection.json``: the cross-validated choice of the exported trial (`kbnas.selection.Selection`).
SELECTION_SHAPE = JSONObject(
    required={"trial_id": str, "epochs": (int, None), "objective": str, "direction": str, "skipped": list,
              "scores": JSONList(JSONObject(required={"trial_id": str, "fold_scores": list, "best_epochs": list,
                                                      "seconds": NUMBER}))},
    optional={"completed_trials": int})
#: An export's ``architecture.json`` (`kbnas.export.describe_model`), the parts kbnas reads back.
EXPORT_DESCRIPTION_SHAPE = JSONObject(
    required={"format": str},
    optional={"trial_id": (str, None), "ensemble": (JSONObject(optional={"members": int}), None),
              "versions": (dict, None),
              "search_settings": (JSONObject(optional={"test_metrics": JSONObject(each=NUMBER),
                                                       "retrained": (JSONObject(optional={"members": int}), None)}),
                                  None)})
#: File name -> the shape `read_state_file` checks by default (the strictest reader's); any
#: other state file is a JSON object (KerasTuner's ``<tuner_id>.json``, …).
STATE_FILE_SHAPES = {"trial.json": TRIAL_SHAPE, "oracle.json": ORACLE_SHAPE, "kbnas_run.json": RUN_SHAPE,
                     "selection.json": SELECTION_SHAPE, "architecture.json": EXPORT_DESCRIPTION_SHAPE}


def shape_mismatch(value: Any, shape: Any, where: str = "") -> str | None:
    """What in ``value`` differs from ``shape`` (module docstring), or None.

    Args:
        value: a decoded JSON value.
        shape: its expected shape.
        where: the path of ``value`` in its file (``hyperparameters.values``); "" for the file itself.

    Returns:
        The first difference, as ``'"hyperparameters" is null, expected an object'``.
    """
    alternatives = shape if isinstance(shape, tuple) else (shape,)
    for alternative in alternatives:
        if isinstance(alternative, JSONObject) and isinstance(value, dict):
            return _object_mismatch(value, alternative, where)
        if isinstance(alternative, JSONList) and isinstance(value, list):
            return next((why for i, item in enumerate(value)
                         if (why := shape_mismatch(item, alternative.each, f"{where}[{i}]")) is not None), None)
        if alternative is None and value is None:
            return None
        if isinstance(alternative, type) and isinstance(value, alternative):
            if not (isinstance(value, bool) and alternative in NUMBER):
                return None
    # (int or float reads "a number")
    expected = " or ".join(dict.fromkeys(_kind(a) for a in alternatives if not (a is int and float in alternatives)))
    subject = f'"{where}"' if where else "it"
    return f"{subject} is {_kind_of(value)}, expected {expected}"


def _object_mismatch(value: dict, shape: JSONObject, where: str) -> str | None:
    prefix = f"{where}." if where else ""
    for key in shape.required:
        if key not in value:
            return f'"{prefix}{key}" is missing'
    for key, item in value.items():
        expected = shape.required.get(key, shape.optional.get(key, shape.each))
        if expected is not object and (why := shape_mismatch(item, expected, f"{prefix}{key}")) is not None:
            return why
    return None


def _kind(shape: Any) -> str:
    if isinstance(shape, JSONObject) or shape is dict:
        return "an object"
    if isinstance(shape, JSONList) or shape is list:
        return "an array"
    return {None: "null", str: "a string", int: "an integer", float: "a number", bool: "true or false",
            object: "any value"}.get(shape, getattr(shape, "__name__", str(shape)))


def _kind_of(value: Any) -> str:
    for shape in (None, bool, int, float, str, list, dict):
        if value is None if shape is None else isinstance(value, shape):
            return _kind(shape)
    return type(value).__name__


def read_state_file(path: str | os.PathLike, *, shape: Any = None, remedy: str | None = None) -> Any:
    """The decoded JSON of a state file, checked against its shape.

    Args:
        path: a local file.
        shape: what its reader reads (module docstring); default `STATE_FILE_SHAPES`'s for its name.
        remedy: what the error message tells the user to do; by default to
            restore the file (or remove its trial folder), or start over.

    Raises:
        DamagedFileError: it cannot be read, is not JSON, or is not of its shape;
            the message names it and what is wrong.
        FileNotFoundError: it does not exist.
    """
    name = os.path.basename(path)
    if remedy is None:
        remedy = ("restore it or remove its trial folder" if name == "trial.json" else "restore it") + \
            ", or start over in another directory"
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise DamagedFileError(f"{path} is damaged ({error.strerror or error}); {remedy}") from None
    except ValueError as error:  # json's errors, and UnicodeDecodeError
        raise DamagedFileError(f"{path} is damaged ({error}); {remedy}") from None
    why = shape_mismatch(value, shape if shape is not None else STATE_FILE_SHAPES.get(name, JSONObject()))
    if why is not None:
        raise DamagedFileError(f"{path} is damaged ({why}); {remedy}")
    return value


def check_json_files(paths) -> None:
    """Raise `DamagedFileError` naming the first local file of ``paths`` that is
    not valid JSON of its shape (`read_state_file`).

    Used before KerasTuner's reload, whose own errors (``json.loads``'s, or a
    ``TypeError`` deep in ``set_state``) do not say which file is damaged.
    """
    for path in paths:
        if is_local_path(path) and os.path.exists(path):
            read_state_file(path)


def is_local_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a local file path (not ``scheme://…``)."""
    return "://" not in os.fspath(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace ``path``'s content by ``text`` atomically (module docstring).

    Raises:
        OSError: the folder cannot be written; ``path`` is then unchanged.
    """
    target = pathlib.Path(path)
    temporary = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # Created 0666 less the umask, as open() would; an existing target's mode is kept.
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            os.chmod(temporary, target.stat().st_mode & 0o7777)
        except FileNotFoundError:
            pass
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> str:
    """``json.dumps(obj)`` written atomically to ``path``; returns the text."""
    text = json.dumps(obj, indent=indent)
    write_text_atomic(path, text)
    return text
