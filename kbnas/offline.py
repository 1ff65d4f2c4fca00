"""Driving any KerasTuner oracle against a Python function, without training.

Used by the tests (closed-form objectives) and the benchmarks (replaying a
tabular NAS benchmark). It speaks KerasTuner's own protocol, so what it measures
is what a `keras_tuner.Tuner` would see: ``create_trial`` -> ``update_trial`` ->
``end_trial``, with optional concurrency (several trials running at once, as
with KerasTuner's chief/worker tuning).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from typing import Any, Callable

import keras_tuner

from kbnas import keras_tuner_internals as kt_internals
from kbnas.reads import ReadRecorder, drop_unread, droppable_names


@dataclasses.dataclass
class OfflineTrial:
    """One finished trial: its values, reported metrics, status and timing."""

    trial_id: str
    values: dict
    metrics: dict
    status: str
    oracle_seconds: float


def run_oracle(
    oracle: keras_tuner.Oracle,
    evaluate: Callable[[dict], dict | float | None],
    n_trials: int,
    *,
    directory: str | None = None,
    project_name: str = "offline",
    concurrency: int = 1,
    metric_name: str | None = None,
    verbose: int = 0,
    report_reads: bool = False,
) -> list[OfflineTrial]:
    """Runs ``n_trials`` trials of ``oracle`` against ``evaluate``.

    Args:
        oracle: any `keras_tuner.Oracle` (its ``hyperparameters`` must already hold
            the search space).
        evaluate: ``values -> metrics dict`` (or a float reported under
            ``metric_name``, default the objective's name). Returning None or
            raising marks the trial FAILED.
        n_trials: number of trials to finish (fewer if the oracle stops).
        directory: where the oracle writes its files (a temporary directory
            by default).
        project_name: project folder inside ``directory``.
        concurrency: trials kept running at once; with ``concurrency > 1`` each new
            trial is proposed while the others are still running.
        metric_name: name under which a float result is reported.
        verbose: KerasTuner's per-trial display (0: silent).
        report_reads: as `kbnas.BayesianNAS` does, a trial that completes reaches
            ``end_trial`` without the unconditional values ``evaluate`` never read
            (`kbnas.reads`); ``evaluate`` then gets a `kbnas.reads.ReadRecorder`.

    Returns:
        The finished trials in the order they ended.
    """
    if directory is None:
        directory = tempfile.mkdtemp(prefix="kbnas-offline-")
    kt_internals.set_project_dir(oracle, directory, project_name)
    oracle.verbose = verbose
    name = metric_name or oracle.objective.name
    running: list[tuple[Any, float]] = []
    finished: list[OfflineTrial] = []
    created = 0
    while len(finished) < n_trials:
        while len(running) < concurrency and created < n_trials:
            start = time.perf_counter()
            trial = oracle.create_trial(f"worker{len(running)}-{created}")
            seconds = time.perf_counter() - start
            if trial.status != "RUNNING":
                break
            created += 1
            running.append((trial, seconds))
        if not running:
            break
        trial, seconds = running.pop(0)
        values = dict(trial.hyperparameters.values)
        recorder = ReadRecorder(values)
        try:
            result = evaluate(recorder if report_reads else values)
        except Exception as error:  # noqa: BLE001 - a failing evaluation is a failed trial
            result, trial.message = None, f"{type(error).__name__}: {error}"
        if result is None:
            trial.status = "FAILED"
            metrics: dict = {}
        else:
            metrics = dict(result) if isinstance(result, dict) else {name: float(result)}
            if oracle.objective.name not in metrics:
                # As KerasTuner's Tuner does for a History: a multi-objective
                # value is reported under the objective's own name.
                metrics[oracle.objective.name] = oracle.objective.get_value(metrics)
            oracle.update_trial(trial.trial_id, metrics)
            trial.status = "COMPLETED"
            if report_reads:
                trial.hyperparameters.values = drop_unread(values, recorder.read, droppable_names(trial.hyperparameters))
        oracle.end_trial(trial)
        finished.append(
            OfflineTrial(trial.trial_id, values, metrics, oracle.trials[trial.trial_id].status, seconds)
        )
    return finished
