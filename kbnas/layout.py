"""The files of a kbnas search directory (``kbnas search --output DIR``).

    DIR/kbnas_run.json        the run's settings (data, seed, recipe)
    DIR/search/               KerasTuner's project: oracle.json, trial_<id>/trial.json
    DIR/selection.json        the cross-validated choice of the exported trial (small data)
    DIR/export/               the exported model and its architecture.json
    DIR/report.html           the search's report (`kbnas.report`)
    DIR/tensorboard/          TensorBoard HParams logs of every trial (`kbnas.tensorboard_log`)

Stdlib only.
"""

from __future__ import annotations

RUN_FILE = "kbnas_run.json"
PROJECT_NAME = "search"
EXPORT_DIR = "export"
SELECTION_FILE = "selection.json"
REPORT_FILE = "report.html"
TENSORBOARD_DIR = "tensorboard"
