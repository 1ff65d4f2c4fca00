"""The early-stopping bookkeeping of `kbnas.BayesianNASOracle` (multi-fidelity search).

`EarlyStoppingBook` is a mixin of the oracle: the per-epoch reports of the
KerasTuner protocol (`update_trial`) become learning curves and rung records,
the rule of `kbnas.EarlyStopping` (`kbnas.core.early_stopping`, pure numpy) is
applied to them, and what it stopped, or what the time budget cut short, is a
lower fidelity f = epochs / full epochs for the GP (`_fidelities`) and the
recommendation. The rule and its math are in docs/oracle.md §10; the oracle's
proposals (promotions, re-evaluations) read `_promotable` and `_is_unjudged`.

State it reads and writes, owned, initialized and saved by the oracle:
``early_stopping`` (the settings, or None), ``learning_curves`` (trial id ->
epochs, best value so far, last step, execution), ``rung_values`` (rung ->
trial id -> best value by that rung), ``stopped_early`` (trial id -> epochs,
rung, value, peers, and ``reason`` "time budget" for a cut), ``promoted``,
``proposal_log``, ``training_epochs`` and ``max_time``; and the oracle's
``_maximize_sign``, ``_configuration_space``, ``_initial_points``, ``_key``,
``_values_of`` and ``remaining_time``.
"""

from __future__ import annotations

import copy
import warnings
from typing import Sequence

import keras_tuner
import numpy as np

from kbnas import keras_tuner_internals as kt_internals
from kbnas.layout import TIME_BUDGET_REASON
from kbnas.core.early_stopping import best_so_far, keeps, keeps_against_best

#: Seconds of `max_time` left at which a trial that ends short of a full training
#: counts as cut by the budget (`EarlyStoppingBook._mark_cut_by_time_budget`).
TIME_BUDGET_SLACK = 1.0
#: The marker metric of a tuner's final report (`EarlyStoppingBook.update_trial`):
#: what ``run_trial`` returned, where it scores differently from the per-epoch reports.
FINAL_REPORT_METRIC = "kbnas_final_report"
RUNNING = "RUNNING"
STOPPED = "STOPPED"
COMPLETED = "COMPLETED"


class EarlyStoppingBook:
    """Learning curves, rungs and early stops of an oracle (module docstring)."""

    @keras_tuner.synchronized
    def update_trial(self, trial_id: str, metrics: dict, step: int = 0):
        """Records ``metrics`` at ``step`` (KerasTuner protocol) and applies the
        early-stopping rule; the returned trial's status is ``"STOPPED"`` when
        the trial should stop training.

        A report holding `FINAL_REPORT_METRIC` is the tuner's final report (see
        `kbnas.BayesianNAS`, `_report_returned_results`): `_record_final_report`.
        """
        metrics = dict(metrics)  # (a protobuf map when it comes from a worker)
        if metrics.pop(FINAL_REPORT_METRIC, False):
            return self._record_final_report(trial_id, metrics, int(step))
        try:
            trial = super().update_trial(trial_id, metrics, step)
        except ValueError as error:
            # KerasTuner raises for a report without the objective, under its lock,
            # which it then never releases: the report is dropped instead.
            warnings.warn(f"kbnas: report of trial {trial_id} ignored: {error}", RuntimeWarning, stacklevel=2)
            return self.trials[trial_id]
        if trial.status != RUNNING:
            return trial
        if self.early_stopping is not None and trial_id in self.stopped_early:
            return self._stop_reply(trial)  # reports after the verdict change nothing
        try:
            value = self._maximize_sign() * float(self.objective.get_value(metrics))
        except Exception:  # noqa: BLE001 - a report the rule cannot read is only recorded
            return trial
        try:
            if self._judge_report(trial_id, value, int(step)):
                return self._stop_reply(trial)
        except Exception as error:  # noqa: BLE001 - never raise under the lock
            warnings.warn(
                f"kbnas: the early-stopping rule failed ({type(error).__name__}: {error}); "
                "the trial continues.",
                RuntimeWarning,
                stacklevel=2,
            )
        return trial

    def _record_final_report(self, trial_id: str, metrics: dict, step: int):
        """Each metric of a final report replaces that metric's observations: one
        observation at ``step``, as KerasTuner records what ``run_trial`` returns, so
        the trial is scored by it. The report may lack the objective (only metrics
        the epochs never reported); the learning curve and the rule are left as
        they are."""
        trial = self.trials[trial_id]
        for name, value in metrics.items():
            kt_internals.forget_metric(trial.metrics, name)
            trial.metrics.register(name, direction=self._direction_of(name))
            trial.metrics.update(name, float(value), step=step)
        kt_internals.save_trial(self, trial)
        return trial

    def _direction_of(self, name: str) -> str | None:
        """The objective's direction for one of its metrics; None (inferred from the
        name, as KerasTuner does) for any other."""
        directions = getattr(self.objective, "name_to_direction", None) or {self.objective.name: self.objective.direction}
        return directions.get(name)

    @staticmethod
    def _stop_reply(trial):
        """A copy of ``trial`` with status STOPPED: the verdict goes in the reply.

        The trial the oracle keeps stays RUNNING until it ends, so a worker that
        dies before then gets it back RUNNING (KerasTuner hands a restarted worker
        its ongoing trial) and trains it again.
        """
        reply = copy.copy(trial)
        reply.status = STOPPED
        return reply

    def _judge_report(self, trial_id: str, value: float, step: int) -> bool:
        """Updates the trial's curve and the rungs; True when the trial must stop.

        Only the first execution's curve is judged: a step that does not increase
        starts another execution (``executions_per_trial > 1``), whose reports are
        recorded by KerasTuner (averaged per step) but not judged. A trial's first
        report is recorded, never judged: a lone final report is not a curve.
        """
        settings = self.early_stopping
        curve = self.learning_curves.get(trial_id)
        if curve is None:
            # Recorded, never judged, and kept off the rungs: a lone final report
            # (at KerasTuner's best step) is not a point of a learning curve.
            self.learning_curves[trial_id] = {
                "epochs": step + 1,
                "best": best_so_far(value, -np.inf),
                "last_step": step,
                "execution": 0,
            }
            return False
        if step <= curve["last_step"]:
            curve["execution"] += 1
        curve["last_step"] = step
        if curve["execution"] > 0:
            return False
        curve["best"] = best_so_far(value, curve["best"])
        previous_epochs, curve["epochs"] = curve["epochs"], max(curve["epochs"], step + 1)
        if settings is None:
            # The curve still tells `_mark_cut_by_time_budget` the epochs.
            return False
        # Promotions and re-evaluations are never judged, but their values go on
        # the rungs: once trained fully they are best curves like any other.
        unjudged = self._is_unjudged(trial_id)
        stop = False
        full = self.training_epochs or self._full_epochs(ended=True)
        for k in settings.rungs_reached(curve["epochs"]):
            rung = settings.rung(k)
            if rung <= previous_epochs:
                continue
            record = self.rung_values.setdefault(str(rung), {})
            record[trial_id] = curve["best"]
            if unjudged or stop or not settings.judges(k, full):
                continue
            if not self._keeps(trial_id, curve["best"], record):
                stop = True
                self.stopped_early[trial_id] = {
                    "epochs": curve["epochs"],
                    "rung": rung,
                    "value": float(curve["best"]),
                    "peers": len(record) - 1,
                }
                self.proposal_log.setdefault(trial_id, {})["stopped_at_epoch"] = curve["epochs"]
        return stop

    def _keeps(self, trial_id: str, value: float, record: dict[str, float]) -> bool:
        """The rule's verdict on ``value`` = y_t(r_k) with the rung's record
        (t included).

        Y_k, which ASHA ranks and ``min_peers`` counts, is the record without the
        promotions and re-evaluations (never judged, so not peers). F_k of
        "best_curves" is every trial of the record that ended COMPLETED and not
        stopped early (neither by the rule nor by the time budget), promotions
        and re-evaluations included, each with its final score: KerasTuner's
        score of the trial (what the tuner's ``run_trial`` returned: with several
        executions the mean of each one's best epoch), on the oracle's "higher is
        better" scale.
        """
        settings = self.early_stopping
        peers = [v for u, v in record.items() if not self._is_unjudged(u)]
        if len(peers) <= self._min_peers():
            return True
        if settings.rule == "asha":
            return keeps(value, peers, settings.reduction_factor, self._min_peers())
        finished = []
        for other, rung_value in record.items():
            trial = self.trials.get(other)
            if (other == trial_id or trial is None or trial.status != COMPLETED or other in self.stopped_early
                    or trial.score is None or not np.isfinite(trial.score)):
                continue
            finished.append((self._maximize_sign() * float(trial.score), rung_value))
        return keeps_against_best(value, finished, settings.top_trials)

    def _is_unjudged(self, trial_id: str) -> bool:
        """A promotion or a re-evaluation: the rule never judges it."""
        return trial_id in self.promoted or self._is_reevaluation(trial_id)

    def _mark_cut_by_time_budget(self, trial) -> None:
        """Records a trial that the time budget cut short as stopped early.

        `BayesianNAS` (and each `kbnas.parallel` worker) stops training when
        `max_time` runs out (`StopAtDeadline`); the trial then completes with the
        score of fewer epochs than a full training. A completed trial is taken as
        cut when it ends with at most `TIME_BUDGET_SLACK` seconds of the budget
        left and its curve is shorter than a full training: the most epochs of another
        ended trial the rule did not stop, or, before any (the first trials of a budget
        too short for one training, side by side on several workers too), the recipe's
        `training_epochs`. It is then a lower
        fidelity f = epochs / full, exactly like a trial the rule stopped: the GP
        sees its fidelity, the recommendation ranks it after every fully trained
        trial, and a resumed search with a larger budget may promote it. (A trial
        whose own early stopping happened to end it in the epoch the budget ran
        out is taken as cut too.)
        """
        if self.max_time is None or trial.status != COMPLETED or trial.trial_id in self.stopped_early:
            return
        if self.remaining_time() > TIME_BUDGET_SLACK:
            return
        curve = self.learning_curves.get(trial.trial_id)
        others = [c["epochs"] for t, c in self.learning_curves.items()
                  if t != trial.trial_id and t not in self.stopped_early and not self._is_running(t)]
        full = max(others) if others else self.training_epochs
        if curve is None or full is None or curve["epochs"] >= full:
            return
        self.stopped_early[trial.trial_id] = {
            "epochs": curve["epochs"],
            "rung": None,
            "value": float(curve["best"]),
            "peers": 0,
            "reason": TIME_BUDGET_REASON,
        }
        self.proposal_log.setdefault(trial.trial_id, {})["stopped_at_epoch"] = curve["epochs"]

    def _is_reevaluation(self, trial_id: str) -> bool:
        return self.proposal_log.get(trial_id, {}).get("method") == "reevaluate"

    def _promotable(self) -> dict[str, str]:
        """Configuration key -> stopped trial id, for the stopped configurations a
        promotion may train fully: not trained fully already, not running, not
        promoted before."""
        if self.early_stopping is None or not self.early_stopping.promote:
            return {}
        cspace, _ = self._configuration_space()
        done = set()
        for trial in self.trials.values():
            if trial.trial_id in self.stopped_early or not trial.hyperparameters.values:
                continue
            if trial.status in (COMPLETED, RUNNING) or trial.trial_id in self.promoted:
                done.add(self._key(self._values_of(trial, cspace)))
        out = {}
        for trial_id in self.stopped_early:
            trial = self.trials.get(trial_id)
            # A stopped trial that has not ended yet is not in the GP yet.
            if trial is None or trial.status != COMPLETED or not trial.hyperparameters.values:
                continue
            key = self._key(self._values_of(trial, cspace))
            if key not in done:
                out.setdefault(key, trial_id)
        return out

    def _min_peers(self) -> int:
        if self.early_stopping.min_peers is not None:
            return self.early_stopping.min_peers
        cspace, _ = self._configuration_space()
        return self._initial_points(cspace)

    def is_stopped_early(self, trial_id: str) -> bool:
        """Whether the early-stopping rule stopped this trial, or the time budget cut it
        short (either way a low-fidelity result; ``stopped_early[trial_id]["reason"]``
        is ``"time budget"`` for the latter)."""
        return trial_id in self.stopped_early

    def _full_epochs(self, ended: bool = False) -> int | None:
        """Epochs of a full training: the most any trial the rule did not stop
        reported (None before any); ``ended``: of the trials that have ended only."""
        return max(
            (c["epochs"] for t, c in self.learning_curves.items()
             if t not in self.stopped_early and not (ended and self._is_running(t))),
            default=None,
        )

    def _is_running(self, trial_id: str) -> bool:
        trial = self.trials.get(trial_id)
        return trial is None or trial.status == RUNNING

    def _fidelities(self, trials: Sequence) -> np.ndarray | None:
        """f_t = epochs trained / `_full_epochs` (at most 1), 1 for trials the rule
        did not stop; None when none of ``trials`` was stopped."""
        if not any(t.trial_id in self.stopped_early for t in trials):
            return None
        full = self._full_epochs() or self.training_epochs or 1
        return np.array(
            [
                min(1.0, max(1, self.stopped_early[t.trial_id]["epochs"]) / full)
                if t.trial_id in self.stopped_early
                else 1.0
                for t in trials
            ]
        )
