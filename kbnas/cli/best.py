"""The exported model: the trial chosen (by validation or by cross-validation),
retrained as the mean of K members, exported, and the report page.
"""

from __future__ import annotations

import math
import pathlib
import sys
import time

import numpy as np

from kbnas.atomic_files import write_json_atomic
from kbnas.layout import EXPORT_DIR, RUN_FILE, SELECTION_FILE
from kbnas.cli.budget import (
    _ensemble_settings,
    _members_deadline,
    _selection_settings,
    _selects_by_cross_validation,
)
from kbnas.cli.common import UsageError, _format_seconds, _read_json, _trial_number


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


def _export_best(tuner, hypermodel, arrays, output, args) -> int:
    from kbnas.export import export_model, exported_versions

    export_dir = pathlib.Path(args.to) if getattr(args, "to", None) else output / EXPORT_DIR  # kbnas export --to
    _check_export_folder(export_dir)  # before the (long) selection and retraining
    best = tuner.oracle.get_best_trials(1)
    if not best or best[0].status != "COMPLETED":
        if not tuner.oracle.trials:
            raise UsageError(f"the search in {output} has no trial yet: nothing to export; "
                             "run kbnas search with this --output")
        statuses = [t.status for t in tuner.oracle.trials.values()]
        failed, running = sum(s in ("FAILED", "INVALID") for s in statuses), statuses.count("RUNNING")
        raise UsageError(f"no trial of the search in {output} completed ({failed} failed, {running} interrupted): "
                         "nothing to export; kbnas show --output lists them, kbnas search resumes it")
    trial = best[0]
    selection = _selection(tuner, arrays, output, args)
    if selection is not None:
        trial = tuner.oracle.trials[selection.trial_id]
    model = _load_searched_model(tuner, trial)
    settings = _read_json(output / RUN_FILE)
    if getattr(args, "class_names", None) is not None:
        settings["class_names"] = list(args.class_names)  # output k of the model is class_names[k]
    if getattr(args, "feature_columns", None) is not None:
        settings["feature_columns"] = list(args.feature_columns)  # input column j is feature_columns[j]
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
        # A versioned folder stays versioned: an unversioned export would delete its versions.
        versioned=bool(getattr(args, "versioned", False)) or bool(exported_versions(export_dir)),
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
        print(f"{metrics}  (search time {_format_seconds(tuner.oracle.search_seconds())})")
        print(f"exported to {export_dir}/: SavedModel {paths.saved_model.relative_to(export_dir)}/, "
              f"{paths.keras_model.name}, {paths.architecture_json.name}")
    if getattr(args, "report", True):
        _write_report(tuner, args)
    return 0


def _check_export_folder(export_dir: pathlib.Path) -> None:
    """``export_dir`` is absent, empty or a previous export (`kbnas.export.export_model` replaces only those).

    Raises:
        UsageError: it is a file, holds other files, or its ``architecture.json`` is damaged.
    """
    from kbnas.export import ARCHITECTURE_FILENAME, EXPORT_FORMAT, holds_files

    if export_dir.exists() and not export_dir.is_dir():
        raise UsageError(f"{export_dir} is a file, not the export's folder; move it away to export")
    if not export_dir.is_dir() or not holds_files(export_dir):
        return  # (what a killed export left, export_model removes)
    described = export_dir / ARCHITECTURE_FILENAME
    remedy = _export_remedy(export_dir)
    if not described.exists():
        raise UsageError(f"{export_dir} holds files and no kbnas export (no {ARCHITECTURE_FILENAME}); "
                         "move them away to export")
    if _read_json(described, remedy=remedy)["format"] != EXPORT_FORMAT:
        raise UsageError(f"{described} is damaged (its \"format\" is not {EXPORT_FORMAT!r}); {remedy}")


def _export_remedy(export_dir: pathlib.Path) -> str:
    """What to do about a damaged export."""
    return f"restore it, or remove the folder {export_dir} and run `kbnas export` to export again"


def _load_searched_model(tuner, trial):
    """The trial's model with the weights of its checkpoint (KerasTuner's ``load_model``).

    Raises:
        UsageError: the checkpoint is missing or damaged (named).
    """
    from kbnas import keras_tuner_internals as kt_internals

    checkpoint = pathlib.Path(kt_internals.checkpoint_file(tuner, trial.trial_id))
    remedy = "restore it, or start over in another directory"
    weights = f"the weights of trial {_trial_number(trial.trial_id)}"
    if not checkpoint.exists():
        raise UsageError(f"{checkpoint} is missing ({weights}); {remedy}")
    try:
        return tuner.load_model(trial)  # without Keras's optimizer warning (`BayesianNAS.load_model`)
    except OSError as error:  # h5py's: not an HDF5 file, cut short, unreadable
        why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"{checkpoint} is damaged ({weights}: {why}); {remedy}") from None


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
                                           fit_kwargs=dict(epochs=args.epochs, batch_size=_global_batch_size(args)))
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


def _global_batch_size(args) -> int | None:
    """The batch of the chief's cross-validation and retraining: the trials' global batch.

    ``--batch-size`` is per device; a trial trained on ``args.trial_devices``
    devices (`kbnas.cli.search._trial_devices`: a worker's GPUs under
    ``--gpus-per-worker``, or a MirroredStrategy) took ``--batch-size`` × that
    many examples a step. The chief trains on one device: with the same global
    batch an epoch has the search's number of steps, and the epochs the trial
    chose mean what they meant in the search.
    """
    if args.batch_size is None:
        return None
    return args.batch_size * int(getattr(args, "trial_devices", 1) or 1)


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
        devices = getattr(args, "trial_devices", 1)
        batch = (f", batches of {_global_batch_size(args)} (the trials' {args.batch_size} per device x {devices})"
                 if devices > 1 and args.batch_size else "")
        print(f"retraining trial {_trial_number(trial.trial_id)} on {len(x)} train + validation examples for "
              f"{epochs} epochs{members}{batch}", flush=True)

    models, seconds = retrain(lambda: hypermodel.build(trial.hyperparameters), x, y, seed=seed, epochs=epochs,
                              members=settings.members, batch_size=_global_batch_size(args),
                              deadline=_members_deadline(args))
    if not args.quiet and settings.members > 1:
        ended = "" if len(models) == settings.members else f" (the budget's share ended after {len(models)})"
        print(f"  {len(models)} member{'s' if len(models) != 1 else ''} in {_format_seconds(sum(seconds))}{ended}; "
              "the exported model predicts their mean", flush=True)
    info = {"on": "train+validation", "examples": int(len(x)), "epochs": epochs, "members": len(models),
            "member_seconds": [round(value, 3) for value in seconds]}
    return average_models(models, task=hypermodel.task), models[0], info
