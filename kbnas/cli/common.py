"""What the command's modules share: defaults, the settings of the selection, the
ensemble and early stopping (benchmarks replace them here, per process), the
usage error, and small helpers.
"""

from __future__ import annotations

import math
import os
import pathlib
import sys
from typing import Any

from kbnas.atomic_files import DamagedFileError, read_state_file
from kbnas.core.early_stopping import EarlyStopping
from kbnas.ensemble import EnsembleSettings
from kbnas.selection import SelectionSettings


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


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _read_json(path: pathlib.Path, remedy: str | None = None, shape: Any = None) -> Any:
    """A JSON file of the search directory, checked against ``shape`` (by default
    `kbnas.atomic_files.STATE_FILE_SHAPES`'s for its name; any other file: a JSON object).

    Raises:
        UsageError: it is damaged: one line naming it, what is wrong, and ``remedy``
            (by default `kbnas.atomic_files.read_state_file`'s).
    """
    try:
        return read_state_file(path, shape=shape, remedy=remedy)
    except DamagedFileError as error:
        raise UsageError(str(error)) from None


def _check_run_settings(path: pathlib.Path, saved: dict) -> None:
    """The settings of a run file (`_read_json` checked their types) are ones ``kbnas search`` accepts.

    Raises:
        UsageError: one is not: ``path`` is damaged.
    """
    from kbnas.core.acquisition import ACQUISITIONS
    from kbnas.data_files import MAX_IMAGE_SIZE
    from kbnas.data_inference import TASKS
    from kbnas.settings import DISTANCES

    choices = {"acquisition": ACQUISITIONS, "distance": DISTANCES, "task": ("auto", *TASKS), "selection": SELECTIONS}
    lowest = {"seed": 0, "max_depth": 1, "epochs": 1, "batch_size": 1}
    problems = [f'"{key}" is {saved[key]!r}, expected one of {", ".join(allowed)}'
                for key, allowed in choices.items() if key in saved and saved[key] not in allowed]
    problems += [f'"{key}" is {saved[key]}, expected at least {least}'
                 for key, least in lowest.items() if saved[key] is not None and saved[key] < least]
    if saved["max_depth"] > MAX_DEPTH_LIMIT:
        problems.append(f'"max_depth" is {saved["max_depth"]}, expected at most {MAX_DEPTH_LIMIT}')
    if saved.get("image_size") is not None and not 1 <= saved["image_size"] <= MAX_IMAGE_SIZE:
        problems.append(f'"image_size" is {saved["image_size"]}, expected 1 to {MAX_IMAGE_SIZE}')
    rate = saved.get("learning_rate")
    rate = LEGACY_LEARNING_RATE if rate is None else rate
    if not 0 < rate < math.inf:
        problems.append(f'"learning_rate" is {rate}, expected a positive number')
    if problems:
        raise UsageError(f"{path} is damaged ({problems[0]}); restore it, or start over in another directory")


def _trial_number(trial_id: str) -> str:
    """KerasTuner's zero-padded trial id as the 1-based number the progress lines show."""
    return str(int(trial_id) + 1) if trial_id.isdigit() else trial_id


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
