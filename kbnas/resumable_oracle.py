"""`ResumableOracle`: a KerasTuner Oracle that survives being killed at any moment.

KerasTuner writes a search's state as many small files (each trial's
``trial.json``, the oracle's ``oracle.json``) in an order that leaves windows
where a kill loses or repeats work: it saves the oracle before it drops a
finished trial from ``ongoing_trials`` (a reload re-runs it), writes a new
trial's file before the oracle's (a reload never retries it), and writes files
in place (a kill mid-write leaves them unreadable). This class closes those
windows: atomic writes (`kbnas.atomic_files`), a reload that retries exactly
the trials that did not finish, KerasTuner's run counts and end order restored
for one that finished between its two files, and a consecutive-failure limit
that stops the search instead of leaving KerasTuner's lock held and counts only
the failures at the end (KerasTuner's counts a run anywhere in the history, so
a resumed search stopped after one trial). It also keeps
``seed=0`` (KerasTuner does ``seed or random.randint(...)``).

`kbnas.BayesianNASOracle` is built on it; KerasTuner details it relies on are in
`kbnas.keras_tuner_internals`.
"""

from __future__ import annotations

import os
import random
from typing import Any

import keras_tuner
import numpy as np

from kbnas import keras_tuner_internals as kt_internals
from kbnas.atomic_files import check_json_files, is_local_path, write_json_atomic
from kbnas.reads import not_recorded

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"


class ResumableOracle(keras_tuner.Oracle):
    """A `keras_tuner.Oracle` whose reload never re-runs a finished trial.

    KerasTuner saves the oracle before it drops a finished trial from
    `ongoing_trials`, and a reload sends every "ongoing" trial back for a retry,
    so a plain reload re-runs the last finished trial. It also keeps ``seed=0``:
    `keras_tuner.Oracle` does ``seed or random.randint(...)``.
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        seed: int | None = None,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self.seed = seed if seed is not None else random.randint(1, 10000)
        kt_internals.set_seed_state(self, self.seed)
        #: KerasTuner's error message once `max_consecutive_failed_trials` trials
        #: failed in a row (None before): the search then stops.
        self.failure_limit: str | None = None

    #: KerasTuner's error text when `max_consecutive_failed_trials` is reached.
    _FAILURE_LIMIT_MESSAGE = "Number of consecutive failures"

    @keras_tuner.synchronized
    def end_trial(self, trial) -> None:
        try:
            super().end_trial(trial)
        except RuntimeError as error:
            if not str(error).startswith(self._FAILURE_LIMIT_MESSAGE):
                raise
            # KerasTuner raises this under its lock, which it then never releases
            # (every other worker of a parallel search would hang), and before it
            # saves and drops the trial. Finish that here; no new trial is proposed
            # (`failure_limit`), and `kbnas.BayesianNAS.search` raises the error.
            self.failure_limit = str(error)
            kt_internals.save_trial(self, self.trials[trial.trial_id])
            for tuner_id, ongoing in list(self.ongoing_trials.items()):
                if ongoing.trial_id == trial.trial_id:
                    del self.ongoing_trials[tuner_id]
        # KerasTuner saves the oracle before it drops the trial from
        # `ongoing_trials`; a reload would then re-run a finished trial.
        self.save()

    def _check_consecutive_failures(self) -> None:
        """KerasTuner's limit on failed trials in a row, counted back from the last one ended.

        KerasTuner 1.4 raises once any run of ``max_consecutive_failed_trials``
        failures appears anywhere in ``end_order``, so a search resumed after a run
        that ended in failures (say, from a data mistake since fixed) stops after
        its next trial, whatever that trial's status, on every resume. Here only
        the failures since the last trial that did not fail count.

        Raises:
            RuntimeError: KerasTuner's message, once the last
                ``max_consecutive_failed_trials`` ended trials all failed.
        """
        if self.max_consecutive_failed_trials is None:  # KerasTuner: no limit
            return
        failed_in_a_row = 0
        for trial_id in reversed(self.end_order):
            if self.trials[trial_id].status != "FAILED":
                break
            failed_in_a_row += 1
        if failed_in_a_row >= self.max_consecutive_failed_trials:
            last = self.trials[self.end_order[-1]]
            raise RuntimeError(
                f"{self._FAILURE_LIMIT_MESSAGE} exceeded the limit of {self.max_consecutive_failed_trials}.\n"
                + (last.message or "")
            )

    def score_trial(self, trial) -> None:
        """KerasTuner's score; NaN (not an exception) when the objective was never reported.

        KerasTuner raises for a missing metric inside `end_trial`, under its lock,
        which it then never releases (a parallel search would hang); with a NaN
        score it marks the trial INVALID (retried, then FAILED) instead.
        """
        try:
            super().score_trial(trial)
        except (ValueError, KeyError):
            trial.score, trial.best_step = float("nan"), None

    def save(self) -> None:
        """KerasTuner's ``oracle.json``, written atomically (`kbnas.atomic_files`)."""
        # KerasTuner 1.4: Oracle.save() is Stateful.save(self._get_oracle_fname()),
        # i.e. utils.save_json, which writes in place (tests/test_atomic_files.py).
        path = kt_internals.oracle_file(self)
        if not is_local_path(path):
            return super().save()
        write_json_atomic(path, self.get_state(), indent=None)

    def _save_trial(self, trial) -> None:
        """KerasTuner's ``trial_<id>/trial.json``, written atomically."""
        # KerasTuner 1.4: Oracle._save_trial(trial) is trial.save(<trial dir>/trial.json).
        path = os.path.join(kt_internals.trial_dir(self, trial.trial_id), "trial.json")
        # A running trial's values record its build's reads (kbnas.reads); saving it is not one.
        with not_recorded(trial.hyperparameters):
            if not is_local_path(path):
                return super()._save_trial(trial)
            write_json_atomic(path, trial.get_state(), indent=None)

    def reload(self) -> None:
        """KerasTuner's reload; a damaged state file is named (`kbnas.atomic_files.DamagedFileError`)."""
        project = kt_internals.project_dir(self)
        trial_files = [os.path.join(project, name, "trial.json") for name in sorted(os.listdir(project))
                       if name.startswith("trial_")] if is_local_path(project) and os.path.isdir(project) else []
        check_json_files([*trial_files, kt_internals.oracle_file(self)])
        super().reload()
        # Only trials that did not finish are sent back for a retry. A finished one
        # can be there: KerasTuner's end_trial writes trial.json, then oracle.json,
        # and a kill between the two leaves the trial listed as running, without
        # KerasTuner's count of its run and its place in end_order (kbnas's own
        # record of it was saved before, in end_trial). Both are restored here:
        # at least one run (a trial retried before counts one short), in end_order.
        queue = kt_internals.retry_queue(self)
        ended = [trial_id for trial_id in queue if self.trials[trial_id].status in (COMPLETED, "FAILED")]
        runs = kt_internals.run_times(self)
        for trial_id in ended:
            runs[trial_id] = max(runs[trial_id], 1)
            if trial_id not in self.end_order:
                self.end_order.append(trial_id)
        # KerasTuner's create_trial writes the new trial.json (RUNNING), then
        # oracle.json: a kill between the two leaves a running trial that
        # oracle.json does not know. Nothing runs during a reload, so every
        # RUNNING trial is an orphan; unretried it would count towards max_trials
        # and never complete. It is retried like any trial running at a kill.
        queue = [trial_id for trial_id in queue if trial_id not in ended]
        orphans = sorted((trial_id for trial_id, trial in self.trials.items()
                          if trial.status == RUNNING and trial_id not in queue), key=_id_order, reverse=True)
        kt_internals.set_retry_queue(self, orphans + queue)  # KerasTuner pops from the end


def _id_order(trial_id: str) -> tuple:
    """Trial ids in creation order (KerasTuner's zero-padded numbers; others last)."""
    return (0, int(trial_id), "") if str(trial_id).isdigit() else (1, 0, str(trial_id))
