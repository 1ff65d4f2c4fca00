"""``kbnas show``, ``kbnas export`` and ``kbnas report`` on a finished or
running search folder.
"""

from __future__ import annotations

import pathlib

from kbnas import search_lock
from kbnas.atomic_files import ORACLE_RECORD_SHAPE, TRIAL_RECORD_SHAPE
from kbnas.layout import EXPORT_DIR, PROJECT_NAME, RUN_FILE, cut_by_time_budget
from kbnas.cli.best import _check_ensemble, _export_best, _export_remedy
from kbnas.cli.common import (
    LEGACY_LEARNING_RATE,
    UsageError,
    _check_run_settings,
    _quiet_tensorflow,
    _read_json,
    _trial_number,
)
from kbnas.cli.inputs import _check_output, _load_split, _reading_options
from kbnas.cli.search import _hypermodel, _make_tuner


def cmd_report(args) -> int:
    """Write the report of a finished (or running) search: ``DIR/report.html``, or ``--to FILE``."""
    from kbnas.report import write_report

    output = pathlib.Path(args.output)
    _check_project_folder(output)
    if not (output / PROJECT_NAME / "oracle.json").exists() and not (output / "oracle.json").exists():
        raise UsageError(f"{output} holds no kbnas search (no {PROJECT_NAME}/oracle.json); "
                         f"run `kbnas search --output {output}` first")
    _quiet_tensorflow(args.debug)
    path = write_report(output, args.to)
    print(f"report: {path}")
    return 0


def cmd_show(args) -> int:
    """The trials of a search, best score first, numbered 1, 2, … as the progress lines.

    The exported trial (the recommendation) is marked ``*``; ``how`` is how the
    oracle proposed each trial, ``seconds`` its wall time.
    """
    output = pathlib.Path(args.output)
    _check_project_folder(output)
    trial_files = sorted((output / PROJECT_NAME).glob("trial_*/trial.json"))
    if not trial_files:
        raise UsageError(f"{output} holds no kbnas search (no {PROJECT_NAME}/trial_*/trial.json)")
    rows = []
    for f in trial_files:
        t = _read_json(f, shape=TRIAL_RECORD_SHAPE)
        values = (t.get("hyperparameters") or {}).get("values") or {}
        rows.append((t["trial_id"], t["status"], t.get("score"), values))
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
    print(f"{'trial':>6}  {'status':<9}  {'score':>8}  {'how':<9}  {'seconds':>7}  {'stopped':>9}  "
          "architecture / hyperparameters")
    for trial_id, status, score, values in rows:
        score_text = f"{score:.4f}" if isinstance(score, (int, float)) else "-"
        mark = "*" if trial_id == exported else " "
        how = (proposals.get(trial_id) or {}).get("method", "-")
        took = f"{seconds[trial_id]:.1f}" if trial_id in seconds else "-"
        arch = values.get("architecture", "")
        others = ", ".join(f"{k}={v}" for k, v in values.items() if k != "architecture")
        cut = ""
        if trial_id in stopped:
            cut = f"ep {stopped[trial_id]['epochs']}" + (" (b)" if cut_by_time_budget(stopped[trial_id]) else "")
        print(f"{mark}{_trial_number(trial_id):>5}  {status:<9}  {score_text:>8}  {how:<9}  {took:>7}  {cut:>9}  "
              f"{arch}{'  ' + others if others else ''}")
    if exported is not None:
        print("* the exported trial (the recommendation, see docs/oracle.md)")
    # Counted as the rows show them: completed trials (as the report counts them).
    shown = [stopped[trial_id] for trial_id, status, _, _ in rows if status == "COMPLETED" and trial_id in stopped]
    by_budget = sum(cut_by_time_budget(stop) for stop in shown)
    if len(shown) > by_budget:
        print(f"stopped: {_trials(len(shown) - by_budget)} stopped early at that epoch by the early-stopping "
              "rule (scored at fewer epochs; see docs/oracle.md)")
    if by_budget:
        print(f"(b): {_trials(by_budget)} cut short at that epoch by the time budget (scored at fewer epochs)")
    running = search_lock.holder(output)
    if running is not None:
        print(f"running: {running}")
    elif search_lock.AVAILABLE and any(status == "RUNNING" for _, status, _, _ in rows):
        print("RUNNING: interrupted (no kbnas search or export holds this folder now); the same kbnas search "
              "command trains it again")
    return 0


def _trials(count: int) -> str:
    return f"{count} trial was" if count == 1 else f"{count} trials were"


def _oracle_state(output: pathlib.Path) -> dict:
    """The kbnas part of a search's oracle.json ({} when absent).

    Raises:
        UsageError: oracle.json is damaged.
    """
    oracle_file = output / PROJECT_NAME / "oracle.json"
    if not oracle_file.exists():
        return {}
    return _read_json(oracle_file, shape=ORACLE_RECORD_SHAPE).get("kbnas") or {}


def _check_project_folder(output: pathlib.Path) -> None:
    """``OUTPUT/search`` is a folder when it exists (a file there is damage, not "no trials")."""
    project = output / PROJECT_NAME
    if project.exists() and not project.is_dir():
        raise UsageError(f"{project} is damaged (a file, not the search's folder); restore it, "
                         "or start over in another directory")


def _export_description(output: pathlib.Path) -> dict | None:
    """The previous export's ``architecture.json``, or None without one.

    Raises:
        UsageError: it is damaged.
    """
    path = output / EXPORT_DIR / "architecture.json"
    return _read_json(path, remedy=_export_remedy(output / EXPORT_DIR)) if path.exists() else None


def _exported_members(output: pathlib.Path) -> int | None:
    """Members of the previous export's ensemble (1: one model), or None without one."""
    described = _export_description(output)
    if described is None:
        return None
    retrained = (described.get("search_settings") or {}).get("retrained") or {}
    members = retrained.get("members", 1 if retrained else None)  # before ensembles: one model
    return int(members) if members else None


def _exported_trial_id(output: pathlib.Path) -> str | None:
    described = _export_description(output)
    return None if described is None or described.get("trial_id") is None else described["trial_id"]


def restore_search_arguments(args, saved: dict) -> None:
    """The search's own settings on ``args``, from its run file ``saved``: ``kbnas export``
    rebuilds the search as it ran (older run files: the defaults of their time)."""
    for key in ("seed", "acquisition", "distance", "max_depth", "epochs", "batch_size"):
        setattr(args, key, saved[key])
    args.task = saved.get("task", "auto")
    args.early_stopping = saved.get("early_stopping", False)
    args.selection = saved.get("selection", "validation")
    args.scale_targets = saved.get("scale_targets", False)
    args.learning_rate = saved.get("learning_rate", LEGACY_LEARNING_RATE)
    args.trial_devices = saved.get("trial_devices", 1)  # (searches from before it was recorded: 1)
    args.data = None if saved["data"] == "bundled digits" else saved["data"]


def cmd_export(args) -> int:
    output = pathlib.Path(args.output)
    run_file = output / RUN_FILE
    if not run_file.exists():
        raise UsageError(f"{output} holds no kbnas search (no {RUN_FILE}); run `kbnas search --output {output}` first")
    if args.to is not None:  # before the data, TensorFlow and the retraining
        if not args.to.strip():
            raise UsageError("--to is empty; name the folder to export into")
        _check_output(pathlib.Path(args.to), option="--to")
    saved = _read_json(run_file)  # of its shape (kbnas.atomic_files.RUN_SHAPE)
    _check_run_settings(run_file, saved)
    _check_project_folder(output)
    with search_lock.acquire(output, "kbnas export"):  # not beside a running search (it writes the trials)
        restore_search_arguments(args, saved)
        _reading_options(args, saved, exporting=True)
        args.max_trials = 1
        args.time_budget = None
        _check_ensemble(args)
        if args.ensemble is None:
            # As many members as the export it replaces (the search's budget may have cut them).
            args.ensemble = _exported_members(output)
        args.start = None
        arrays, source = _load_split(args, check_split=False, saved=saved)
        args.class_names = source["class_names"]
        args.feature_columns = source["feature_columns"]
        if source["digest"] != saved["digest"]:
            raise UsageError(f"the data of {output} changed since the search ({saved['data']})")
        _quiet_tensorflow(args.debug)
        hypermodel = _hypermodel(args)
        hypermodel.configure(*arrays["train"])
        tuner = _make_tuner(args, hypermodel)
        tuner.oracle.set_search_space(hypermodel.search_space)
        return _export_best(tuner, hypermodel, arrays, output, args)
