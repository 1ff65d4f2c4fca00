"""The files of a kbnas search directory (``kbnas search --output DIR``).

    DIR/kbnas_run.json        the run's settings (data, seed, recipe)
    DIR/kbnas.lock            held while a search or an export runs (`kbnas.search_lock`)
    DIR/search/               KerasTuner's project: oracle.json, trial_<id>/trial.json
    DIR/selection.json        the cross-validated choice of the exported trial (small data)
    DIR/export/               the exported model and its architecture.json
    DIR/report.html           the search's report (`kbnas.report`)
    DIR/tensorboard/          TensorBoard HParams logs of every trial (`kbnas.tensorboard_log`)

Stdlib only.
"""

from __future__ import annotations

RUN_FILE = "kbnas_run.json"
LOCK_FILE = "kbnas.lock"
PROJECT_NAME = "search"
EXPORT_DIR = "export"
#: Name prefix of the folder an export is written into before it replaces the previous one.
EXPORT_STAGING_PREFIX = ".kbnas-export-"
SELECTION_FILE = "selection.json"
REPORT_FILE = "report.html"
TENSORBOARD_DIR = "tensorboard"

#: ``reason`` of a ``stopped_early`` entry in oracle.json for a trial the time budget cut
#: short (entries without it are the early-stopping rule's).
TIME_BUDGET_REASON = "time budget"


def cut_by_time_budget(stop: object) -> bool:
    """Whether an oracle.json ``stopped_early`` entry is a trial the time budget cut, not the rule."""
    return isinstance(stop, dict) and stop.get("reason") == TIME_BUDGET_REASON
