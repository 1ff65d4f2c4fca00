"""The search report: one self-contained HTML page per search.

    kbnas report --output DIR           (DIR/report.html; `kbnas search` writes it at the end)
    kbnas.write_report(tuner_or_dir)    (the same from Python)

The page holds the best score against trials and against wall time (initial
design, early-stopped and recommended trials marked), the surrogate's
leave-one-out predictions with their rank correlation, a sortable table of every
trial (architecture, parameters, score, epochs, seconds, how it was proposed),
a drawing of the recommended architecture, and the run's data, settings, space,
seeds, versions and time split. It opens offline: images are embedded, and the
page loads no script, style or font from anywhere.

Modules: `record` (the search as plain data), `figures` (matplotlib, imported on
first use) and `page` (the HTML).
"""

from __future__ import annotations

import pathlib
from typing import Any

from kbnas.atomic_files import write_text_atomic
from kbnas.layout import REPORT_FILE
from kbnas.report.record import SearchRecord, TrialRecord, read_search

__all__ = ["SearchRecord", "TrialRecord", "read_search", "write_report"]


def write_report(source: Any, path: str | pathlib.Path | None = None) -> pathlib.Path:
    """Write the report of a search and return its path.

    Args:
        source: a `kbnas.BayesianNAS` tuner, or a search directory (``kbnas search
            --output DIR``, or a KerasTuner project directory with ``oracle.json``).
        path: the HTML file to write; default ``report.html`` in the search's
            directory (``DIR/report.html``).

    Raises:
        ValueError: ``source`` holds no kbnas search, or a damaged one; or
            ``path`` is a folder, or below a file.
    """
    from kbnas.report.page import render

    record = read_search(source)
    target = pathlib.Path(path) if path is not None else record.source / REPORT_FILE
    if target.is_dir():
        raise ValueError(f"{target} is a folder: name the report's file, e.g. {target / REPORT_FILE}")
    below_file = next((folder for folder in target.parents if folder.exists() and not folder.is_dir()), None)
    if below_file is not None:
        raise ValueError(f"cannot write the report to {target}: {below_file} is a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, render(record))
    return target
