"""The command line: ``kbnas search|show|export|report`` and their options.
"""

from __future__ import annotations

import argparse
import math

from kbnas.layout import EXPORT_DIR, REPORT_FILE
from kbnas.cli import common
from kbnas.cli.common import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_TRIALS,
    DEFAULT_OUTPUT,
    DEFAULT_TIME_BUDGET,
    SELECTIONS,
    UsageError,
)
from kbnas.cli.inspect import cmd_export, cmd_report, cmd_show
from kbnas.cli.search import check_search_options, cmd_search


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints the usage too
        command = self.prog.split()[-1]
        raise UsageError(message if command == "kbnas" else f"{command}: {message}")


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
#: Largest --batch-size, far beyond any data set: a huge one (beyond int64) failed inside every trial.
MAX_BATCH_SIZE = 2**31 - 1


def _data_option(text: str) -> str:
    """``--data``: a path that is not empty (an empty one would mean the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError(
            "expected an .npz file, a .csv file or an image folder, got an empty path"
        )
    return text


def _int_within(text: str, lowest: int, highest: int | None = None) -> int | None:
    """``text`` as an integer from ``lowest`` to ``highest`` (no bound: None); None if it is not one."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if lowest <= value and (highest is None or value <= highest) else None


def _image_size_option(text: str) -> int:
    """``--image-size``: an integer from 1 to `kbnas.data_files.MAX_IMAGE_SIZE`."""
    from kbnas.data_files import MAX_IMAGE_SIZE

    value = _int_within(text, 1, MAX_IMAGE_SIZE)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected an image side from 1 to {MAX_IMAGE_SIZE} pixels, got {text!r}")
    return value


def _batch_size_option(text: str) -> int:
    """``--batch-size``: an integer of at most `MAX_BATCH_SIZE` (``cmd_search`` checks it is ≥ 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value > MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_BATCH_SIZE} (2**31 - 1), got {text!r}")
    return value


def _workers_option(text: str) -> int | None:
    """``--workers``: a positive integer, or ``auto`` (None)."""
    if str(text).strip().lower() == "auto":
        return None
    value = _int_within(text, 1)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a positive number of workers or auto, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    """``--seed``: an integer ≥ 0."""
    value = _int_within(text, 0)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


#: The longest --time-budget, in seconds (a year; ``none`` is no limit).
MAX_DURATION = 366 * 86400.0


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
    if seconds > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_DURATION // 86400:.0f} days (or none for no limit), "
                                         f"got {text!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    from kbnas.core.acquisition import ACQUISITIONS  # numpy/scipy only: --help stays fast
    from kbnas.data_files import DEFAULT_IMAGE_SIZE, MAX_IMAGE_SIZE  # numpy only

    parser = _OneLineParser(prog="kbnas", description="Neural architecture search by Bayesian optimization.")
    parser.add_argument("--debug", action="store_true", help="show stack traces")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    search = sub.add_parser("search", help="search architectures and export the best model")
    search.add_argument("--data", type=_data_option,
                        help=".npz (arrays x, y), .csv (see --label-column) or an image folder; "
                             "default: the bundled 8x8 digits")
    search.add_argument("--label-column", default=None, type=str.strip,  # as the header's names
                        help="label column of a CSV file (default: label; a resumed search: its own)")
    search.add_argument("--image-size", type=_image_size_option, default=None, metavar="N",
                        help=f"side of resized images of an image folder, 1 to {MAX_IMAGE_SIZE} (default "
                             f"{DEFAULT_IMAGE_SIZE}; a resumed search: its own; only with an image folder)")
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
    search.add_argument("--batch-size", type=_batch_size_option, default=None,
                        help="batch size per replica, 1 to 2**31 - 1 (default auto: 64, smaller on small data so "
                             "that an epoch has at least 16 steps, but never below 16)")
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
    # A worker host (--connect) does not listen: both together would ignore --listen.
    chief_or_worker = search.add_mutually_exclusive_group()
    chief_or_worker.add_argument("--listen", metavar="HOST:PORT",
                                 help="with --workers: where the chief listens (default 127.0.0.1 on a free "
                                      "port; 0.0.0.0:PORT or [::]:PORT for workers on other machines, see "
                                      "--connect)")
    chief_or_worker.add_argument("--connect", metavar="HOST:PORT",
                                 help="only run --workers N workers for the chief at HOST:PORT (another "
                                      "machine sharing --output; not with --listen); the chief exports the model")
    search.add_argument("--retrain", action=argparse.BooleanOptionalAction, default=True,
                        help="retrain the best architecture on train + validation before exporting "
                             "(default; --no-retrain exports the searched model)")
    search.add_argument("--ensemble", type=int, default=None, metavar="K",
                        help=f"with --retrain: the exported model is the mean of K trainings of the best "
                             f"architecture from K seeds (default {common.ENSEMBLE.members}; 1: one model), trained in the last "
                             f"{100 * common.ENSEMBLE.time_share:.0f}%% of --time-budget; see docs/cli.md")
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
    search.set_defaults(func=cmd_search, check=check_search_options)

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
    export.add_argument("--label-column", default=None, type=str.strip,
                        help="label column of the search's CSV file (default: the one it was searched with; "
                             "label for a search from before it was recorded)")
    export.add_argument("--image-size", type=_image_size_option, default=None, metavar="N",
                        help=f"image side of the search's image folder (default: the one it was searched with; "
                             f"{DEFAULT_IMAGE_SIZE} for a search from before it was recorded)")
    export.add_argument("--retrain", action=argparse.BooleanOptionalAction, default=True,
                        help="retrain the best architecture on train + validation before exporting "
                             "(default; --no-retrain exports the searched model)")
    export.add_argument("--ensemble", type=int, default=None, metavar="K",
                        help=f"with --retrain: the exported model is the mean of K trainings of the best "
                             f"architecture from K seeds (default: as many as the export it replaces, else "
                             f"{common.ENSEMBLE.members}; 1: one model); see docs/cli.md")
    export.add_argument("--to", metavar="FOLDER", default=None,
                        help=f"the folder to export into, absent, empty or a previous kbnas export (default "
                             f"OUTPUT/{EXPORT_DIR}; the search's report describes OUTPUT/{EXPORT_DIR})")
    export.add_argument("--versioned", action="store_true",
                        help="the SavedModel into saved_model/N/, N one above the folder's highest version, "
                             "earlier versions kept: the layout TensorFlow Serving serves (docs/exporting.md); "
                             "a folder that holds versions always gets the next one")
    export.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                        help=f"rewrite OUTPUT/{REPORT_FILE} after the export (default)")
    export.add_argument("--quiet", action="store_true", help="print only errors")
    export.add_argument("--debug", action="store_true", help="show stack traces")
    export.set_defaults(func=cmd_export)
    return parser
