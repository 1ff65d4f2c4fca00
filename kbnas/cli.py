"""The ``kbnas`` command: ``search``, ``show`` and ``export``.

``kbnas search`` searches architectures on the bundled 8x8 digits (or ``--data``),
shows one line per trial, exports the best model into ``OUTPUT/export`` and
reports its test accuracy. Running the same command again in the same output
directory resumes the search. Bad input ends with a one-line error and exit code
2 (the stack trace only with ``--debug``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import sys
import time
import warnings
from typing import Any, Sequence

import numpy as np

from kbnas.atomic_files import write_json_atomic  # stdlib only
from kbnas.layout import EXPORT_DIR, PROJECT_NAME, REPORT_FILE, RUN_FILE, SELECTION_FILE, TENSORBOARD_DIR  # stdlib only
from kbnas.parallel import (  # stdlib only
    ChiefUnreachableError,
    ListenError,
    ParallelSearch,
    ParallelSettings,
    WarmWorkers,
    WorkerFailedError,
    default_workers,
    gpu_devices_present,
    is_worker_process,
    parse_address,
)
from kbnas.core.early_stopping import EarlyStopping  # numpy only
from kbnas.ensemble import EnsembleSettings  # stdlib only
from kbnas.selection import SelectionSettings  # numpy only

EXIT_USAGE = 2

DEFAULT_OUTPUT = "kbnas_search"
DEFAULT_TIME_BUDGET = 180.0
DEFAULT_MAX_TRIALS = 100
DEFAULT_MAX_DEPTH = 12
#: The learning rate of searches from before kbnas_run.json recorded one.
LEGACY_LEARNING_RATE = 1e-3
#: Deepest stack the command accepts: far beyond what a 2-core search trains, and
#: well inside Python's recursion limit for the space's enumeration.
MAX_DEPTH_LIMIT = 100
#: Fractions of a user's data held out for validation and test.
USER_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
USER_SPLIT_SEED = 0
#: --selection choices (kbnas.selection).
SELECTIONS = ("auto", "cross-validation", "validation")
#: How small-data searches choose the exported trial (its seed is --seed).
SELECTION = SelectionSettings()
#: The exported model's ensemble (`kbnas.ensemble`); --ensemble sets its members.
ENSEMBLE = EnsembleSettings()
#: The early-stopping rule of --early-stopping (the default).
EARLY_STOPPING = EarlyStopping()
#: The fewest examples (and examples per class) for which every part of the split is non-empty.
MIN_EXAMPLES = 3
MIN_EXAMPLES_PER_CLASS = 3


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints the usage too
        command = self.prog.split()[-1]
        raise UsageError(message if command == "kbnas" else f"{command}: {message}")


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def _workers_option(text: str) -> int | None:
    """``--workers``: a positive integer, or ``auto`` (None)."""
    if str(text).strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of workers or auto, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    """``--seed``: an integer ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def parse_duration(text: str) -> float | None:
    """Seconds of a duration such as ``"90"``, ``"90s"``, ``"3m"``, ``"1.5h"``; ``"none"`` is None.

    Raises:
        argparse.ArgumentTypeError: not a positive duration.
    """
    value = str(text).strip().lower()
    if value in ("none", "off"):
        return None
    scale = _DURATION_UNITS.get(value[-1:], None)
    number = value[:-1] if scale is not None else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive duration such as 90s, 3m or 1h (or none), got {text!r}"
        )
    return seconds


# ---------------------------------------------------------------------- data
def _load_split(args, check_split: bool = True) -> tuple[dict, dict]:
    """Train/validation/test arrays and a description of where they came from."""
    from kbnas import datasets

    if args.data is None:
        split = datasets.load_digits_split()
        arrays = {
            "train": (split.x_train, split.y_train),
            "val": (split.x_val, split.y_val),
            "test": (split.x_test, split.y_test),
        }
        return arrays, {"data": "bundled digits", "digest": _digest(split.x_train, split.y_train),
                        "task": _task_description(split.x_train, split.y_train, args)}

    from kbnas.data_files import load_data

    x, y = load_data(args.data, label_column=args.label_column, image_size=args.image_size)
    task = _task_description(x, y, args)  # names NaN, shape and label problems
    strata = y if not task.startswith("regression") else np.zeros(len(x), dtype=int)
    if check_split:
        _check_splittable(y, task)
    train, val, test = datasets.stratified_split_indices(strata, USER_SPLIT_FRACTIONS, USER_SPLIT_SEED)
    arrays = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    return arrays, {"data": os.path.abspath(args.data), "digest": _digest(x, y), "task": task}


def _check_splittable(y: np.ndarray, task: str) -> None:
    """Every part of the 60/20/20 split non-empty, and for classification every
    class in each part: at least 3 examples (of each class), split 1/1/1.

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
        shown = ", ".join(f"{_label_text(label)} ({count} example{'s' if count > 1 else ''})"
                          for label, count in list(zip(labels[few], counts[few]))[:5])
        if few.sum() > 5:
            shown += f" and {few.sum() - 5} more"
        raise UsageError(
            f"class{'es' if few.sum() > 1 else ''} with too few examples for the 60/20/20 split: {shown}; "
            f"each class needs at least {MIN_EXAMPLES_PER_CLASS} (one each for train, validation and test): "
            "add examples or drop the class"
        )


def _label_text(label) -> str:
    value = float(label)
    return str(int(value)) if value.is_integer() else str(value)


def _task_description(x: np.ndarray, y: np.ndarray, args) -> str:
    """``"multiclass, 10 classes"``, with ``", inferred: …"`` when --task was left at auto.

    Raises:
        ValueError: the data or labels are invalid (`kbnas.data_inference.infer_data_spec`).
    """
    from kbnas.data_inference import infer_data_spec

    requested = getattr(args, "task", "auto")
    spec = infer_data_spec(x, y, task=requested)
    task = spec.task + (f", {spec.num_classes} classes" if spec.task == "multiclass" else "")
    return task + (", inferred: pass --task to change" if requested == "auto" else "")


def _digest(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (x, y):
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------- run record
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
    }


def _check_output(output: pathlib.Path) -> pathlib.Path:
    """``--output`` is a folder, or can be made one; the path itself otherwise.

    Raises:
        UsageError: it, or a folder above it, is a file; or it cannot be written.
    """
    for path in (output, *output.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file, not a folder" if path == output else f"cannot be a folder: {path} is a file"
                raise UsageError(f"--output {output} {what}; choose another --output")
            if not os.access(path, os.W_OK | os.X_OK):
                raise UsageError(f"--output {output}: {path} is not writable; choose another --output")
            return output
    return output


def _read_json(path: pathlib.Path) -> Any:
    """A JSON file of the search directory; a one-line error naming it if damaged."""
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is damaged ({error}); restore it, or choose another --output to start over") from None


def _check_run_file(output: pathlib.Path, settings: dict) -> bool:
    """True when ``output`` holds this search (resume); error when another."""
    path = output / RUN_FILE
    if not path.exists():
        # (A kill during the first write of RUN_FILE leaves only its temporary file.)
        leftovers = [p for p in output.iterdir() if not p.name.startswith(f".{RUN_FILE}.")] if output.exists() else []
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
    differences = [k for k in settings if saved.get(k) != settings[k]]
    if differences:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {settings[k]!r} now" for k in differences)
        raise UsageError(f"output directory {output} holds a different search ({detail}); use another --output")
    return True


# ---------------------------------------------------------------------- progress
def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class _ProgressLines:
    """``callback(oracle, trial)`` of the oracle: one line per finished trial.

    The trial's number (1-based, as ``kbnas show``), architecture, score, the
    best score of a fully trained trial so far, and times. It runs where the
    oracle lives, so a parallel search's lines come from every worker.
    """

    def __init__(self, oracle, architecture_hp: str) -> None:
        self._started = time.perf_counter()
        self._ended_at_start = _ended_trials(oracle)
        self._architecture_hp = architecture_hp

    def __call__(self, oracle, finished) -> None:
        if finished.status not in ("COMPLETED", "FAILED"):
            return  # sent back for a retry: its line comes when it ends
        elapsed = time.perf_counter() - self._started
        ended = _ended_trials(oracle)
        remaining = elapsed / max(1, ended - self._ended_at_start) * max(0, oracle.max_trials - ended)
        budget_left = oracle.remaining_time()
        if budget_left is not None:
            remaining = min(remaining, budget_left)
        top = _best_observed_trial(oracle)
        best_score = top.score if top is not None else float("nan")
        arch = finished.hyperparameters.values.get(self._architecture_hp, "?")
        if finished.status == "COMPLETED":
            result = f"{oracle.objective.name}={finished.score:.4f}"
            stop = oracle.stopped_early.get(finished.trial_id)
            if stop is not None:
                why = "cut by the time budget" if stop.get("reason") == "time budget" else "stopped"
                result += f" ({why} at epoch {stop['epochs']})"
        else:
            reason = (finished.message or "").strip().splitlines()
            result = f"{finished.status}: {reason[-1] if reason else 'no message'}"
        method = oracle.proposal_log.get(finished.trial_id, {}).get("method", "resumed")
        budget = "" if oracle.max_time is None else f" of a {_format_seconds(oracle.max_time)} budget"
        print(
            f"trial {_trial_number(finished.trial_id)}/{oracle.max_trials} [{method}] {arch}  {result}  "
            f"best={best_score:.4f}  elapsed {_format_seconds(elapsed)}, "
            f"~{_format_seconds(remaining)} left{budget}",
            flush=True,
        )


def _ended_trials(oracle) -> int:
    return sum(t.status in ("COMPLETED", "FAILED") for t in oracle.trials.values())


def _make_tuner(args, hypermodel):
    from kbnas.tuner import BayesianNAS

    return BayesianNAS(
        hypermodel,
        max_trials=args.max_trials,
        seed=args.seed,
        acquisition=args.acquisition,
        distance=args.distance,
        directory=args.output,
        project_name=PROJECT_NAME,
        overwrite=False,
        max_consecutive_failed_trials=max(3, args.max_trials),
        max_time=getattr(args, "search_budget", args.time_budget),
        initial_points=list(getattr(args, "start", None) or ()),
        early_stopping=EARLY_STOPPING if getattr(args, "early_stopping", True) else None,
    )


def _build_tuner(args):
    """The search's tuner, from the command's arguments: also what each worker
    process of ``--workers N`` calls (it is pickled into them)."""
    if is_worker_process():  # mixed precision is set where the GPU is
        _enable_mixed_precision(args, announce=False)
    return _make_tuner(args, _hypermodel(args))


def _hypermodel(args):
    from kbnas.hypermodel import ConvNetHyperModel

    rate = getattr(args, "learning_rate", None)
    return ConvNetHyperModel(max_depth=args.max_depth, seed=args.seed, task=getattr(args, "task", "auto"),
                             scale_targets=getattr(args, "scale_targets", True),
                             learning_rates=None if rate is None else (rate,))


# ---------------------------------------------------------------------- commands
def cmd_search(args) -> int:
    # Started by `main` before TensorFlow's import (not pickled into the workers with args).
    warm = vars(args).pop("warm_workers", None)
    if args.max_trials < 1:
        raise UsageError(f"--max-trials must be at least 1, got {args.max_trials}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.learning_rate is not None and not (0 < args.learning_rate < math.inf):
        raise UsageError(f"--learning-rate must be a positive number, got {args.learning_rate}")
    if not 1 <= args.max_depth <= MAX_DEPTH_LIMIT:
        raise UsageError(f"--max-depth must be between 1 and {MAX_DEPTH_LIMIT}, got {args.max_depth}")
    if args.gpus_per_worker < 1:
        raise UsageError(f"--gpus-per-worker must be at least 1, got {args.gpus_per_worker}")
    _check_ensemble(args)
    output = pathlib.Path(args.output) if args.connect else _check_output(pathlib.Path(args.output))
    # A search begun before the split checks existed resumes as it began.
    arrays, source = _load_split(args, check_split=not (output / RUN_FILE).exists())
    saved = _read_json(output / RUN_FILE) if (output / RUN_FILE).exists() else None
    if args.batch_size is None:
        from kbnas.training import auto_batch_size

        # A resumed search keeps the batch size it began with.
        args.batch_size = (saved or {}).get("batch_size") or auto_batch_size(len(arrays["train"][0]))
    if args.epochs is None:
        args.epochs = _default_epochs(saved, arrays["train"][0].shape[1:])
    if args.learning_rate is None:
        from kbnas.training import default_learning_rate

        # A resumed search keeps its learning rate (searches from before it was recorded: 1e-3).
        args.learning_rate = (
            saved.get("learning_rate", LEGACY_LEARNING_RATE) if saved is not None
            else default_learning_rate(arrays["train"][0].shape[1:])
        )
    if saved is not None:
        # A search from before regression models had the target's scale resumes without it.
        args.scale_targets = bool(saved.get("scale_targets", False))
    args.search_budget = _search_budget(args, arrays)
    settings = _run_settings(args, source)
    if args.connect:
        return _run_remote_workers(args, arrays, output, settings, warm)
    resuming = _check_run_file(output, settings)
    _quiet_tensorflow(args.debug)
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output / RUN_FILE, settings)

    workers = _number_of_workers(args)
    parallel = workers > 1 or args.listen is not None
    if parallel:
        search = ParallelSearch(functools.partial(_build_tuner, args), _parallel_settings(args, workers), warm=warm)
        tuner = search.tuner
    else:
        tuner = _build_tuner(args)
    # (A parallel search's chief keeps one GPU for the retraining and the export.)
    _enable_mixed_precision(args, announce=not args.quiet)
    hypermodel = tuner.hypermodel
    if not args.quiet:
        tuner.oracle.trial_end_callbacks.append(_ProgressLines(tuner.oracle, hypermodel.architecture_hp))
    (x_train, y_train), (x_val, y_val) = arrays["train"], arrays["val"]
    if not args.quiet:
        done = len(tuner.oracle.trials)
        print(
            f"kbnas: {'resuming' if resuming else 'starting'} search in {output} on {source['data']} "
            f"({source['task']}; {len(x_train)} train / {len(x_val)} validation / {len(arrays['test'][0])} "
            f"test examples), "
            f"up to {args.max_trials} trial{'s' if args.max_trials != 1 else ''}"
            f"{f' in {_format_seconds(args.time_budget)}' if args.time_budget else ''}"
            f"{_selection_note(args, arrays)}"
            f"{_ensemble_note(args)}"
            f"{f', {done} done' if resuming else ''}"
            f"{_workers_note(search) if parallel else ''}",
            flush=True,
        )
    start = time.perf_counter()
    (search if parallel else tuner).search(*arrays["train"], **_fit_keywords(args, arrays))
    return _export_best(tuner, hypermodel, arrays, output, args, time.perf_counter() - start)


def _default_epochs(saved: dict | None, input_shape) -> int:
    """--epochs when not given: a resumed search keeps its own (every kbnas_run.json
    records them), a new one gets `kbnas.training.default_max_epochs` of its input kind."""
    from kbnas.training import default_max_epochs

    if saved is not None and saved.get("epochs"):
        return int(saved["epochs"])
    return default_max_epochs(input_shape)


def _selection_settings(seed: int | None = None) -> SelectionSettings:
    """`SELECTION`, with ``seed`` when given."""
    return SELECTION if seed is None else dataclasses.replace(SELECTION, seed=seed)


def _selects_by_cross_validation(args, arrays) -> bool:
    """--selection, with auto resolved by the size of train + validation."""
    choice = getattr(args, "selection", "validation")
    if choice == "auto":
        return _selection_settings().applies(len(arrays["train"][0]) + len(arrays["val"][0]))
    return choice == "cross-validation"


def _ensemble_settings(args) -> EnsembleSettings:
    """`ENSEMBLE` with --ensemble's members (one member without retraining: the searched model)."""
    members = getattr(args, "ensemble", None) or ENSEMBLE.members
    return dataclasses.replace(ENSEMBLE, members=members if getattr(args, "retrain", False) else 1)


def _search_budget(args, arrays) -> float | None:
    """The oracle's time budget: the whole --time-budget, less the shares kept for
    cross-validation when the exported trial is chosen by it, and for the
    ensemble's members (`kbnas.ensemble`)."""
    if args.time_budget is None:
        return None
    kept = _ensemble_settings(args).reserved_share
    if _selects_by_cross_validation(args, arrays):
        kept += _selection_settings().time_share
    if kept >= 1.0:
        raise ValueError(f"the selection's and the ensemble's time shares leave no time to search ({kept:g} of it)")
    return args.time_budget * (1.0 - kept)


def _members_deadline(args) -> float | None:
    """When the ensemble's members must have ended (a `time.monotonic` value): its
    share of --time-budget from now, or None without a budget."""
    budget = getattr(args, "time_budget", None)
    return time.monotonic() + budget * _ensemble_settings(args).time_share if budget else None


def _ensemble_note(args) -> str:
    settings = _ensemble_settings(args)
    if settings.members == 1:
        return ""
    note = f"; then up to {settings.members} retrainings of the best architecture, exported as their mean"
    if args.time_budget:
        note += f" ({_format_seconds(args.time_budget * settings.time_share)} of the budget)"
    return note


def _selection_note(args, arrays) -> str:
    if not _selects_by_cross_validation(args, arrays):
        return ""
    settings = _selection_settings()
    note = f"; then {settings.folds}-fold cross-validation of up to {settings.candidates} candidates"
    if args.time_budget:
        note += f" ({_format_seconds(args.time_budget * settings.time_share)} of the budget)"
    return note


def _number_of_workers(args) -> int:
    """``--workers``, or with ``auto`` one per visible GPU (1 without GPUs)."""
    if args.workers is not None:
        return args.workers
    import tensorflow as tf

    return default_workers(len(tf.config.list_physical_devices("GPU")), args.gpus_per_worker)


def _fit_keywords(args, arrays) -> dict:
    """What every trial's ``fit`` gets besides the training arrays."""
    return dict(validation_data=arrays["val"], epochs=args.epochs, batch_size=args.batch_size, verbose=0)


def _parallel_settings(args, workers: int | None):
    host, port = _address(args.listen, "--listen", allow_zero=True) if args.listen else ("127.0.0.1", 0)
    if args.connect:
        _address(args.connect, "--connect", allow_zero=False)
    return ParallelSettings(workers=workers, gpus_per_worker=args.gpus_per_worker, host=host, port=port,
                            connect=args.connect, log_dir=str(pathlib.Path(args.output) / PROJECT_NAME / "workers"))


def _address(text: str, option: str, allow_zero: bool) -> tuple[str, int]:
    try:
        return parse_address(text, allow_zero=allow_zero)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def _workers_note(search) -> str:
    plan = search.plans[0]
    devices = f"{len(plan.gpus)} GPU(s) each" if plan.gpus else f"{plan.threads} CPU thread(s) each"
    return f"; {search.workers} workers ({devices})"


def _enable_mixed_precision(args, announce: bool) -> None:
    if not getattr(args, "mixed_precision", False):
        return
    from kbnas.distribute import enable_mixed_precision_if_gpu

    enabled = enable_mixed_precision_if_gpu(True)
    if announce:
        print(f"kbnas: mixed precision {'on (GPU)' if enabled else 'off: no GPU'}", flush=True)


def _run_remote_workers(args, arrays, output, settings, warm=None) -> int:
    """``--connect``: this host trains trials for a chief on another machine."""
    if (output / RUN_FILE).exists():
        _check_run_file(output, settings)
    _quiet_tensorflow(args.debug)
    search = ParallelSearch(functools.partial(_build_tuner, args),
                            _parallel_settings(args, _number_of_workers(args)), warm=warm)
    if not args.quiet:
        print(f"kbnas: {search.workers} worker(s) training trials for the chief at {args.connect}", flush=True)
    search.search(*arrays["train"], **_fit_keywords(args, arrays))
    if not args.quiet:
        print("kbnas: the chief has no more trials; the chief exports the best model", flush=True)
    return 0


def _trial_number(trial_id: str) -> str:
    """KerasTuner's zero-padded trial id as the 1-based number the progress lines show."""
    return str(int(trial_id) + 1) if trial_id.isdigit() else trial_id


def _best_observed_trial(oracle):
    """The completed trial with the best finite score (KerasTuner's ranking) among
    the fully trained ones (all completed ones when early stopping stopped every
    trial), or None."""
    completed = [t for t in oracle.trials.values()
                 if t.status == "COMPLETED" and t.score is not None and math.isfinite(t.score)]
    stopped = getattr(oracle, "stopped_early", {})
    completed = [t for t in completed if t.trial_id not in stopped] or completed
    if not completed:
        return None
    pick = max if oracle.objective.direction == "max" else min
    return pick(completed, key=lambda t: t.score)


def _best_trial_heading(oracle, trial, selection=None) -> str:
    """Which trial is exported, and why when it is not the one with the best score."""
    name = oracle.objective.name
    heading = f"best architecture (trial {_trial_number(trial.trial_id)}, {name}={trial.score:.4f}"
    top = _best_observed_trial(oracle) or trial
    if selection is not None and len(selection.scores) > 1:
        score = next(s for s in selection.scores if s.trial_id == trial.trial_id)
        heading += (f"; chosen by {len(score.fold_scores)}-fold cross-validation among {len(selection.scores)} "
                    f"candidates, mean {name} {score.mean:.4f}")
    elif top.score != trial.score:
        heading += (
            f"; ranked first by the GP posterior mean, the best single score is {top.score:.4f} "
            f"in trial {_trial_number(top.trial_id)}, see docs/oracle.md"
        )
    return heading + ")"


def _export_best(tuner, hypermodel, arrays, output, args, seconds) -> int:
    from kbnas.export import export_model

    best = tuner.oracle.get_best_trials(1)
    if not best or best[0].status != "COMPLETED":
        raise UsageError("no trial completed: nothing to export (see the messages of the failed trials above)")
    trial = best[0]
    selection = _selection(tuner, arrays, output, args)
    if selection is not None:
        trial = tuner.oracle.trials[selection.trial_id]
    with warnings.catch_warnings():
        # Keras warns that the checkpoint's optimizer state is not restored: only
        # the weights are needed for evaluation and export.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.load_model(trial)
    settings = json.loads((output / RUN_FILE).read_text())
    x_test, y_test = arrays["test"]
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    if getattr(args, "retrain", False):
        # The searched model's test metrics are kept beside the retrained one's:
        # the benchmarks measure what retraining gives (docs/benchmarks.md).
        settings["test_metrics_before_retraining"] = results
        model, first, settings["retrained"] = _retrain(hypermodel, trial, arrays, args,
                                                       epochs=selection.epochs if selection is not None else None)
        if model is not first:
            # The first member alone is the model one retraining gives: the
            # benchmarks pair it with the ensemble (docs/benchmarks.md).
            settings["test_metrics_first_member"] = first.evaluate(x_test, y_test, verbose=0, return_dict=True)
        results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    arch = hypermodel.search_space.from_hp_value(trial.hyperparameters.values[hypermodel.architecture_hp])
    export_dir = output / EXPORT_DIR
    paths = export_model(
        model,
        str(export_dir),
        architecture=arch,
        search_space=hypermodel.search_space,
        score=trial.score,
        objective=tuner.oracle.objective,
        trial_id=trial.trial_id,
        search_settings={**settings, "test_metrics": results,
                         **({"selection": selection.as_dict()} if selection is not None else {})},
    )
    if not args.quiet:
        print(f"\n{_best_trial_heading(tuner.oracle, trial, selection)}:")
        print(hypermodel.search_space.summary(arch))
        members = (settings.get("retrained") or {}).get("members", 1)
        if members > 1:
            each = hypermodel.search_space.param_count(arch)
            print(f"exported: the mean of {members} retrainings of it "
                  f"({members} x {each:,} = {members * each:,} params)")
        metrics = ", ".join(f"test {k}={v:.4f}" for k, v in results.items())
        print(f"{metrics}  (search time {_format_seconds(seconds)})")
        print(f"exported to {export_dir}/: SavedModel {paths.saved_model.name}/, "
              f"{paths.keras_model.name}, {paths.architecture_json.name}")
    if getattr(args, "report", True):
        _write_report(tuner, args)
    return 0


def _write_report(source, args) -> None:
    """The search's report.html (`kbnas.report`); a failure is a warning, never a failed search."""
    from kbnas.report import write_report

    try:
        path = write_report(source)
    except Exception as error:  # noqa: BLE001 - the export is done; the report is extra
        if args.debug:
            raise
        print(f"kbnas: warning: the report could not be written ({type(error).__name__}: {error}); "
              f"run `kbnas report --output {args.output}` to retry", file=sys.stderr)
        return
    if not args.quiet:
        print(f"report: {path}")


def cmd_report(args) -> int:
    """Write the report of a finished (or running) search: ``DIR/report.html``, or ``--to FILE``."""
    from kbnas.report import write_report

    output = pathlib.Path(args.output)
    if not (output / PROJECT_NAME / "oracle.json").exists() and not (output / "oracle.json").exists():
        raise UsageError(f"{output} holds no kbnas search (no {PROJECT_NAME}/oracle.json); "
                         f"run `kbnas search --output {output}` first")
    _quiet_tensorflow(args.debug)
    path = write_report(output, args.to)
    print(f"report: {path}")
    return 0


def _selection(tuner, arrays, output, args):
    """The cross-validated choice of the exported trial (`kbnas.selection`), or None
    when the oracle's pick stands (--selection, small data).

    The choice is kept in ``output/selection.json`` with the number of completed
    trials it saw; `kbnas export` reuses it while that number is unchanged.
    """
    if not _selects_by_cross_validation(args, arrays):
        return None
    from kbnas.selection import CandidateScore, Selection, select_by_cross_validation

    completed = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    settings = _selection_settings(args.seed)
    # The choice depends on these; a selection.json from before they were recorded is reused.
    recorded = {"candidates": settings.candidates, "folds": settings.folds, "parsimony": settings.parsimony,
                "choice_parsimony": settings.choice_parsimony, "baseline": settings.baseline}
    path = output / SELECTION_FILE
    if path.exists():
        saved = _read_json(path)
        same = all(saved.get(key, value) == value for key, value in recorded.items())
        if same and saved.get("completed_trials") == completed and saved.get("trial_id") in tuner.oracle.trials:
            scores = tuple(CandidateScore(s["trial_id"], tuple(s["fold_scores"]), tuple(s["best_epochs"]),
                                          s["seconds"]) for s in saved["scores"])
            return Selection(saved["trial_id"], saved["epochs"], scores, tuple(saved["skipped"]),
                             saved["objective"], saved["direction"])
    x = np.concatenate([arrays["train"][0], arrays["val"][0]])
    y = np.concatenate([arrays["train"][1], arrays["val"][1]])
    deadline = time.monotonic() + args.time_budget * settings.time_share if args.time_budget else None
    if not args.quiet:
        print(f"cross-validating up to {settings.candidates} candidates on {len(x)} train + validation "
              f"examples ({settings.folds} folds)", flush=True)
    space, name = tuner.hypermodel.search_space, tuner.hypermodel.architecture_hp

    def size(trial) -> float:  # parameters, for the parsimonious pool (kbnas.selection)
        try:
            return space.param_count(space.from_hp_value(trial.hyperparameters.values[name]))
        except (KeyError, ValueError):  # not an architecture of this space: last in the pool
            return math.inf

    selection = select_by_cross_validation(tuner, x, y, settings, deadline=deadline, size=size,
                                           validation_examples=len(arrays["val"][0]),
                                           fit_kwargs=dict(epochs=args.epochs, batch_size=args.batch_size))
    if not args.quiet:
        for score in selection.scores:
            print(f"  trial {_trial_number(score.trial_id)}: mean {selection.objective} {score.mean:.4f} "
                  f"over {len(score.fold_scores)} folds ({_format_seconds(score.seconds)})", flush=True)
        if not selection.scores and not selection.skipped:
            print("  the oracle's pick is the smallest trial and no other is within one standard error "
                  "of the best validation score: it stands", flush=True)
        if selection.skipped:
            print(f"  not scored before the deadline: trial(s) "
                  f"{', '.join(_trial_number(t) for t in selection.skipped)}", flush=True)
    write_json_atomic(path, {**selection.as_dict(), "completed_trials": completed, **recorded})
    return selection


def _check_ensemble(args) -> None:
    if getattr(args, "ensemble", None) is not None and args.ensemble < 1:
        raise UsageError(f"--ensemble must be at least 1, got {args.ensemble}")
    if getattr(args, "ensemble", None) not in (None, 1) and not getattr(args, "retrain", True):
        raise UsageError(f"--ensemble {args.ensemble} needs --retrain: the ensemble's members are retrainings "
                         "(--no-retrain exports the searched model alone)")


def _retrain(hypermodel, trial, arrays, args, epochs: int | None = None):
    """The best architecture trained afresh on train + validation, as an ensemble
    of up to --ensemble members (`kbnas.ensemble`).

    Each member is trained for ``epochs``, by default the number of epochs at
    which the trial's validation score was best during the search (early
    stopping cannot run without a validation set). Member 0 starts from the
    trial's own training seed, member k from `kbnas.ensemble.member_seed`, so
    the same search retrains the same models, and K members are the first K
    of any larger ensemble. With a time budget the members after the first
    train while `EnsembleSettings.time_share` of it lasts, so how many there
    are depends on the machine; `kbnas export` trains as many as the export
    it replaces had.

    Returns:
        The exported model, the first member alone, and what was done.
    """
    from kbnas.ensemble import average_models, retrain
    from kbnas.tuner import trial_training_seed

    settings = _ensemble_settings(args)
    seed = trial_training_seed(args.seed, trial.trial_id)
    epochs = epochs or int(trial.best_step or 0) + 1
    x = np.concatenate([arrays["train"][0], arrays["val"][0]])
    y = np.concatenate([arrays["train"][1], arrays["val"][1]])
    if not args.quiet:
        members = f", {settings.members} members" if settings.members > 1 else ""
        print(f"retraining trial {_trial_number(trial.trial_id)} on {len(x)} train + validation examples for "
              f"{epochs} epochs{members}", flush=True)

    models, seconds = retrain(lambda: hypermodel.build(trial.hyperparameters), x, y, seed=seed, epochs=epochs,
                              members=settings.members, batch_size=args.batch_size,
                              deadline=_members_deadline(args))
    if not args.quiet and settings.members > 1:
        ended = "" if len(models) == settings.members else f" (the budget's share ended after {len(models)})"
        print(f"  {len(models)} member{'s' if len(models) != 1 else ''} in {_format_seconds(sum(seconds))}{ended}; "
              "the exported model predicts their mean", flush=True)
    info = {"on": "train+validation", "examples": int(len(x)), "epochs": epochs, "members": len(models),
            "member_seconds": [round(value, 3) for value in seconds]}
    return average_models(models, task=hypermodel.task), models[0], info


def cmd_show(args) -> int:
    """The trials of a search, best score first, numbered 1, 2, … as the progress lines.

    The exported trial (the recommendation) is marked ``*``; ``how`` is how the
    oracle proposed each trial, ``seconds`` its wall time.
    """
    output = pathlib.Path(args.output)
    trial_files = sorted((output / PROJECT_NAME).glob("trial_*/trial.json"))
    if not trial_files:
        raise UsageError(f"{output} holds no kbnas search (no {PROJECT_NAME}/trial_*/trial.json)")
    rows = []
    for f in trial_files:
        t = json.loads(f.read_text())
        values = t.get("hyperparameters", {}).get("values", {})
        rows.append((str(t.get("trial_id")), t.get("status"), t.get("score"), values))
    saved = _oracle_state(output)
    direction = (saved.get("objective") or {}).get("direction", "max")
    proposals = saved.get("proposal_log") or {}
    seconds = saved.get("trial_seconds") or {}
    stopped = saved.get("stopped_early") or {}
    exported = _exported_trial_id(output)

    def sort_key(row):
        score = row[2]
        if score is None:
            return (1, 0.0)
        return (0, -score if direction == "max" else score)

    rows.sort(key=sort_key)
    print(f"{'trial':>6}  {'status':<9}  {'score':>8}  {'how':<9}  {'seconds':>7}  {'stopped':>7}  "
          "architecture / hyperparameters")
    for trial_id, status, score, values in rows:
        score_text = f"{score:.4f}" if isinstance(score, (int, float)) else "-"
        mark = "*" if trial_id == exported else " "
        how = (proposals.get(trial_id) or {}).get("method", "-")
        took = f"{seconds[trial_id]:.1f}" if trial_id in seconds else "-"
        arch = values.get("architecture", "")
        others = ", ".join(f"{k}={v}" for k, v in values.items() if k != "architecture")
        cut = f"ep {stopped[trial_id]['epochs']}" if trial_id in stopped else ""
        print(f"{mark}{_trial_number(trial_id):>5}  {status:<9}  {score_text:>8}  {how:<9}  {took:>7}  {cut:>7}  "
              f"{arch}{'  ' + others if others else ''}")
    if exported is not None:
        print("* the exported trial (the recommendation, see docs/oracle.md)")
    if stopped:
        print(f"stopped: {len(stopped)} trials were stopped early at that epoch (their score is "
              "that of fewer epochs; see docs/oracle.md)")
    return 0


def _oracle_state(output: pathlib.Path) -> dict:
    """The kbnas part of a search's oracle.json ({} when absent or unreadable)."""
    oracle_file = output / PROJECT_NAME / "oracle.json"
    try:
        state = json.loads(oracle_file.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return state.get("kbnas") or {}


def _exported_members(output: pathlib.Path) -> int | None:
    """Members of the previous export's ensemble (1: one model), or None without one."""
    try:
        described = json.loads((output / EXPORT_DIR / "architecture.json").read_text())
        retrained = (described.get("search_settings") or {}).get("retrained") or {}
        members = retrained.get("members", 1 if retrained else None)  # before ensembles: one model
        return int(members) if members else None
    except (OSError, ValueError, AttributeError, TypeError):  # none, or damaged: the default
        return None


def _exported_trial_id(output: pathlib.Path) -> str | None:
    try:
        return str(json.loads((output / EXPORT_DIR / "architecture.json").read_text())["trial_id"])
    except (OSError, json.JSONDecodeError, KeyError):
        return None


def cmd_export(args) -> int:
    output = pathlib.Path(args.output)
    run_file = output / RUN_FILE
    if not run_file.exists():
        raise UsageError(f"{output} holds no kbnas search (no {RUN_FILE}); run `kbnas search --output {output}` first")
    saved = _read_json(run_file)
    for key in ("seed", "acquisition", "distance", "max_depth", "epochs", "batch_size"):
        setattr(args, key, saved[key])
    args.task = saved.get("task", "auto")
    args.early_stopping = saved.get("early_stopping", False)
    args.selection = saved.get("selection", "validation")
    args.scale_targets = saved.get("scale_targets", False)
    args.learning_rate = saved.get("learning_rate", LEGACY_LEARNING_RATE)
    args.data = None if saved["data"] == "bundled digits" else saved["data"]
    args.max_trials = 1
    args.time_budget = None
    _check_ensemble(args)
    if args.ensemble is None:
        # As many members as the export it replaces (the search's budget may have cut them).
        args.ensemble = _exported_members(output)
    args.start = None
    arrays, source = _load_split(args, check_split=False)
    if source["digest"] != saved["digest"]:
        raise UsageError(f"the data of {output} changed since the search ({saved['data']})")
    _quiet_tensorflow(args.debug)
    hypermodel = _hypermodel(args)
    hypermodel.configure(*arrays["train"])
    tuner = _make_tuner(args, hypermodel)
    tuner.oracle.set_search_space(hypermodel.search_space)
    return _export_best(tuner, hypermodel, arrays, output, args, 0.0)


def _quiet_tensorflow(debug: bool = False) -> None:
    """Silence TensorFlow's start-up lines unless ``debug``.

    TF_CPP_MIN_LOG_LEVEL hides the C++ INFO logs, but TensorFlow 2.21 prints its
    oneDNN notices through absl before absl's logging is initialized, ignoring
    it; those go to file descriptor 2 during ``import tensorflow``, which is
    therefore done here with that descriptor pointed at /dev/null. Python
    exceptions of the import are unaffected (they are printed after it).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if debug or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# ---------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    from kbnas.core.acquisition import ACQUISITIONS  # numpy/scipy only: --help stays fast

    parser = _OneLineParser(prog="kbnas", description="Neural architecture search by Bayesian optimization.")
    parser.add_argument("--debug", action="store_true", help="show stack traces")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    search = sub.add_parser("search", help="search architectures and export the best model")
    search.add_argument("--data", help=".npz (arrays x, y), .csv (see --label-column) or an image folder; "
                        "default: the bundled 8x8 digits")
    search.add_argument("--label-column", default="label", help="label column of a CSV file (default: label)")
    search.add_argument("--image-size", type=int, default=32, help="side of resized images of an image folder")
    search.add_argument("--task", choices=("auto", "multiclass", "binary", "regression"), default="auto",
                        help="what the labels are (default auto: non-integer labels, or more than 20 integer "
                             "values with fewer than 10 examples each, are a regression target)")
    search.add_argument("--time-budget", type=parse_duration, default=DEFAULT_TIME_BUDGET,
                        help="wall-clock budget of the search: 90s, 3m, 1h or none (default 3m); "
                             "the trial running at the deadline stops there")
    search.add_argument("--max-trials", type=int, default=DEFAULT_MAX_TRIALS,
                        help=f"most architectures to train (default {DEFAULT_MAX_TRIALS}; the time budget "
                             "usually ends the search first)")
    search.add_argument("--epochs", type=int, default=None,
                        help="maximum epochs per trial, with early stopping (default: 100 for flat features, 30 for "
                             "images and sequences)")
    search.add_argument("--batch-size", type=int, default=None,
                        help="batch size per replica (default auto: 64, smaller on small data so that an epoch "
                             "has at least 16 steps, never below 16)")
    search.add_argument("--learning-rate", type=float, default=None,
                        help="Adam's learning rate (default auto: 3e-3 for flat features, 1e-3 for images and "
                             "sequences; a resumed search keeps its own)")
    search.add_argument("--max-depth", type=int, default=DEFAULT_MAX_DEPTH,
                        help=f"maximum number of layers (default {DEFAULT_MAX_DEPTH})")
    search.add_argument("--start", action="append", metavar="ARCHITECTURE",
                        help="an architecture to train first, e.g. 'conv3-32|relu|maxpool|dense-64|relu' "
                             "(repeatable)")
    search.add_argument("--output", default=DEFAULT_OUTPUT, help=f"search directory (default {DEFAULT_OUTPUT})")
    search.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    search.add_argument("--acquisition", choices=ACQUISITIONS, default="ei", help="acquisition function (default ei)")
    search.add_argument("--distance", choices=("edit", "otmann"), default="edit",
                        help="architecture distance (default edit)")
    search.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, default=True,
                        help="stop hopeless candidates at epochs 3, 9, 27, ... when they are below each of "
                             "the three best fully trained candidates at that epoch, below the last such epoch "
                             "of a full training (3 and 9 of 30 epochs; default; --no-early-stopping trains "
                             "every candidate fully)")
    search.add_argument("--workers", type=_workers_option, default=None, metavar="N",
                        help="trials trained at once, each in its own process with its own GPU or share "
                             "of the CPU cores (default auto: one per GPU, 1 without GPUs); see docs/parallel.md")
    search.add_argument("--gpus-per-worker", type=int, default=1, metavar="K",
                        help="GPUs each worker owns (default 1); above 1 each candidate is trained under a "
                             "MirroredStrategy across its worker's GPUs")
    search.add_argument("--listen", metavar="HOST:PORT",
                        help="with --workers: where the chief listens (default 127.0.0.1 on a free port; "
                             "0.0.0.0:PORT or [::]:PORT for workers on other machines, see --connect)")
    search.add_argument("--connect", metavar="HOST:PORT",
                        help="only run --workers N workers for the chief at HOST:PORT (another machine "
                             "sharing --output); the chief exports the model")
    search.add_argument("--retrain", action=argparse.BooleanOptionalAction, default=True,
                        help="retrain the best architecture on train + validation before exporting "
                             "(default; --no-retrain exports the searched model)")
    search.add_argument("--ensemble", type=int, default=None, metavar="K",
                        help=f"with --retrain: the exported model is the mean of K trainings of the best "
                             f"architecture from K seeds (default {ENSEMBLE.members}; 1: one model), trained in the last "
                             f"{100 * ENSEMBLE.time_share:.0f}%% of --time-budget; see docs/cli.md")
    search.add_argument("--selection", choices=SELECTIONS, default="auto",
                        help="how the exported trial is chosen: validation (the oracle's pick), "
                             "cross-validation (3-fold on train + validation of up to 4 candidates, in a third "
                             "of the time budget, before the ensemble's sixth) or auto (default: cross-validation with at most "
                             "1000 train + validation examples); see docs/cli.md")
    search.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                        help=f"write OUTPUT/{REPORT_FILE}, the search's report with its figures, at the end "
                             "(default; --no-report skips it)")
    search.add_argument("--mixed-precision", action="store_true",
                        help="train in mixed_float16 when a GPU is present (ignored on CPU)")
    search.add_argument("--quiet", action="store_true", help="print only errors")
    search.add_argument("--debug", action="store_true", help="show stack traces")
    search.set_defaults(func=cmd_search)

    show = sub.add_parser("show", help="table of the trials of a search, best first")
    show.add_argument("--output", default=DEFAULT_OUTPUT, help=f"search directory (default {DEFAULT_OUTPUT})")
    show.add_argument("--debug", action="store_true", help="show stack traces")
    show.set_defaults(func=cmd_show)

    report = sub.add_parser("report", help=f"write a search's report (OUTPUT/{REPORT_FILE}): figures, "
                                           "every trial, the recommended architecture")
    report.add_argument("--output", default=DEFAULT_OUTPUT, help=f"search directory (default {DEFAULT_OUTPUT})")
    report.add_argument("--to", metavar="FILE", default=None,
                        help=f"the HTML file to write (default OUTPUT/{REPORT_FILE})")
    report.add_argument("--debug", action="store_true", help="show stack traces")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="export the best model of a search")
    export.add_argument("--output", default=DEFAULT_OUTPUT, help=f"search directory (default {DEFAULT_OUTPUT})")
    export.add_argument("--label-column", default="label", help="label column of the search's CSV file")
    export.add_argument("--image-size", type=int, default=32, help="image side used by the search's image folder")
    export.add_argument("--retrain", action=argparse.BooleanOptionalAction, default=True,
                        help="retrain the best architecture on train + validation before exporting "
                             "(default; --no-retrain exports the searched model)")
    export.add_argument("--ensemble", type=int, default=None, metavar="K",
                        help=f"with --retrain: the exported model is the mean of K trainings of the best "
                             f"architecture from K seeds (default: as many as the export it replaces, else "
                             f"{ENSEMBLE.members}; 1: one model); see docs/cli.md")
    export.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                        help=f"rewrite OUTPUT/{REPORT_FILE} after the export (default)")
    export.add_argument("--quiet", action="store_true", help="print only errors")
    export.add_argument("--debug", action="store_true", help="show stack traces")
    export.set_defaults(func=cmd_export)
    return parser


def _start_workers_early(args):
    """The worker processes of ``kbnas search --workers N`` (N >= 2), started
    before this process imports TensorFlow so that theirs overlaps with it
    (`kbnas.parallel.WarmWorkers`; hosts without GPU devices only), or None."""
    if getattr(args, "func", None) is not cmd_search or args.workers is None:  # None: auto
        return None
    if args.workers < 2 and args.listen is None and args.connect is None:  # a single-process search
        return None
    return None if gpu_devices_present() else WarmWorkers(args.workers)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    warm = None
    try:
        args = build_parser().parse_args(argv)
        args.debug = debug
        warm = args.warm_workers = _start_workers_early(args)
        _quiet_tensorflow()  # before anything else imports TensorFlow
        return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, NotADirectoryError, ChiefUnreachableError,
            ListenError) as error:
        if debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"kbnas: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerFailedError as error:
        if debug:
            raise
        print(f"kbnas: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kbnas: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        if warm is not None:
            warm.close()  # the ones no search took (a usage error, say)


if __name__ == "__main__":
    sys.exit(main())
