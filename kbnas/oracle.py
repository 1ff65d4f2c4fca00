"""`BayesianNASOracle`: GP Bayesian optimization over architectures, as a KerasTuner Oracle.

Each new trial is a short pipeline of calls into the numeric core
(`kbnas.core`):

1. take the completed trials, their scores turned into "higher is better"
   (the sign is flipped once here for ``min`` objectives);
2. warp the scores (empirical-copula rank warp by default) so a few diverged
   trials do not flatten the model of the good region;
3. build distance channels between configurations: one architecture distance
   (edit distance or OTMANN, cached and grown incrementally) plus one channel per
   ordinary hyperparameter;
4. fit the GP kernel hyperparameters by maximum marginal likelihood, warm-started
   from the previous fit;
5. add running trials as fantasies at the GP mean (kriging believer);
6. maximize the acquisition over the discrete space (exactly when the space is
   small enough to enumerate, by evolutionary search from the best configurations
   otherwise), never proposing what was evaluated, failed or is running.

Any numeric failure in steps 2-6 falls back to a random proposal with a warning:
KerasTuner's ``synchronized`` lock is released only on a normal return.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Callable

import keras_tuner
import numpy as np
from threadpoolctl import threadpool_limits

from kbnas import keras_tuner_internals as kt_internals
from kbnas.configurations import ConfigurationSpace, infer_unread_conditions
from kbnas.core import acquisition as acq
from kbnas.core.acquisition_optimizer import (
    AcquisitionResult,
    maximize_evolutionary,
    maximize_exhaustive,
    maximize_thompson,
    thompson_pool,
)
from kbnas.core.early_stopping import EarlyStopping
from kbnas.core.surrogate import RefitPolicy, fit_surrogate
from kbnas.core.warping import warp_scores
from kbnas.featurizer import Featurizer
from kbnas.oracle_early_stopping import COMPLETED, RUNNING, STOPPED, EarlyStoppingBook
from kbnas.oracle_initial_design import (  # noqa: F401 - the constants: public here too
    MIN_RANDOM_INITIAL,
    RANDOM_TEMPLATE_TRIES,
    SPACE_FILLING_POOL,
    InitialDesign,
    _as_initial_point,
)
from kbnas.oracle_recommendation import MAX_EVALUATIONS, Recommendation  # noqa: F401 - MAX_EVALUATIONS too
from kbnas.resumable_oracle import ResumableOracle, _id_order  # noqa: F401 - _id_order: tests use it here
from kbnas.settings import RECOMMENDATIONS, SearchSettings  # noqa: F401 - RECOMMENDATIONS: public here too
from kbnas.space import SearchSpace

ACQUISITIONS = acq.ACQUISITIONS
#: How to start afresh where a saved search does not fit (an error's advice, here and in `kbnas.BayesianNAS`).
START_ELSEWHERE = ("start a new search elsewhere (overwrite=True or another project_name; kbnas search: "
                   "another --output)")
#: Up to this many observations the kernel hyperparameters are refitted at every proposal.
FULL_REFIT_LIMIT = RefitPolicy.full_refit_limit
#: Kernel hyperparameters are fitted on a random subset of at most this many observations.
MAX_HYPERPARAMETER_FIT_POINTS = RefitPolicy.max_fit_points


def _setting(name: str) -> property:
    """A read-only attribute of the oracle that is the field ``name`` of its settings."""
    return property(lambda self: getattr(self.settings, name), doc=f"``settings.{name}`` (read-only).")


def take_keras_tuner_gp_settings(alpha: float | None, beta: float | None, overrides: dict,
                                 settings: SearchSettings | None, stacklevel: int = 3) -> None:
    """KerasTuner's BayesianOptimization's ``alpha`` and ``beta``, accepted for a drop-in
    swap: ``alpha`` (the GP's noise) is not used, kbnas fits the noise by maximum
    marginal likelihood; ``beta`` (its UCB multiplier) becomes ``kappa`` unless a
    ``kappa`` or ``settings`` is given. Each warns with what kbnas does instead,
    except a ``beta`` that UCB uses; ``stacklevel`` points the warning at the caller."""
    if alpha is not None:
        warnings.warn(
            f"alpha={alpha} (KerasTuner's BayesianOptimization: the GP's noise) is not used: "
            "kbnas fits the noise by maximum marginal likelihood", UserWarning, stacklevel=stacklevel)
    if beta is None:
        return
    if "kappa" in overrides or settings is not None:
        kappa = overrides.get("kappa", settings.kappa if settings is not None else None)
        warnings.warn(f"beta={beta} is not used: kappa={kappa} is given", UserWarning, stacklevel=stacklevel)
        return
    overrides["kappa"] = beta
    acquisition = overrides.get("acquisition", "ei")
    if acquisition != "ucb":
        warnings.warn(
            f"beta={beta} (KerasTuner's BayesianOptimization: the UCB multiplier) becomes kappa, which "
            f"only acquisition='ucb' uses; this search maximizes acquisition={acquisition!r}",
            UserWarning, stacklevel=stacklevel)


def check_counts(**counts: Any) -> None:
    """KerasTuner's counts, checked where KerasTuner does not: ``max_trials`` and
    ``max_consecutive_failed_trials`` whole numbers >= 1 or None (no limit),
    ``max_retries_per_trial`` >= 0, ``executions_per_trial`` >= 1
    (``max_trials="3"`` failed inside the search, ``-1`` ran no trial, ``2.5`` ran three)."""
    lowest = {"max_trials": 1, "max_retries_per_trial": 0, "max_consecutive_failed_trials": 1,
              "executions_per_trial": 1}
    unlimited = ("max_trials", "max_consecutive_failed_trials")
    for name, value in counts.items():
        if value is None and name in unlimited:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest[name]:
            none = " or None (no limit)" if name in unlimited else ""
            raise ValueError(f"{name} must be a whole number >= {lowest[name]}{none}, got {value!r}")


class BayesianNASOracle(Recommendation, InitialDesign, EarlyStoppingBook, ResumableOracle):
    """Bayesian optimization with a distance-based Gaussian process.

    Works on any KerasTuner search space. When ``search_space`` is given, the
    string hyperparameter named ``architecture_hp`` holds an architecture of that
    space (see `kbnas.ConvNetHyperModel`) and is compared with an architecture
    distance; every other hyperparameter gets its own distance channel (Choice and
    Boolean as unordered categories, Int/Float on KerasTuner's [0, 1] scale,
    honouring log sampling). The kernel is

        k(x, x') = s² · exp(−d_arch(x, x')/ℓ_arch − Σ_j d_j(x, x')/ℓ_j),

    with s², the ℓ's and the noise variance learned by maximum marginal likelihood.
    Early stopping's bookkeeping (per-epoch reports, learning curves, rungs,
    stops, fidelities) is `kbnas.oracle_early_stopping.EarlyStoppingBook`; the
    initial design `kbnas.oracle_initial_design.InitialDesign`; the
    recommendation (`get_best_trials`) and re-evaluations
    `kbnas.oracle_recommendation.Recommendation`.

    The positional order is `keras_tuner.oracles.BayesianOptimizationOracle`'s.

    Args:
        objective, max_trials, hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: as in
            `keras_tuner.Oracle`.
        alpha, beta: KerasTuner's BayesianOptimization settings, accepted with a
            warning: ``alpha`` (the GP's noise) is not used, the noise is fitted;
            ``beta`` becomes ``kappa`` (used by ``acquisition="ucb"``).
        seed: random seed. ``seed=0`` is a real seed; ``None`` draws one.
        search_space: the architecture space, or None for plain hyperparameter
            spaces. `kbnas.BayesianNAS` fills it in from the hypermodel.
        architecture_hp: name of the architecture hyperparameter.
        settings: the search strategy, a `kbnas.SearchSettings` (default: its
            defaults). Each of its fields is also accepted as a keyword argument,
            which overrides the field, and reads as an attribute of the oracle
            (``oracle.acquisition``). The fields:
        distance, acquisition, kappa, xi, num_initial_points, score_warping,
        n_restarts: see `kbnas.SearchSettings`.
        refit_every: above `FULL_REFIT_LIMIT` observations, the kernel
            hyperparameters are re-optimized only every ``refit_every`` proposals
            (in between, the last θ is reused with a fresh factorization): the
            O(n³) likelihood gradient dominates the oracle's time there. Above
            `MAX_HYPERPARAMETER_FIT_POINTS` observations, θ is fitted on a random
            subset of that size; the posterior always uses every observation.
        exhaustive_limit: when the whole space has at most this many
            configurations, the acquisition is maximized exactly over all of them.
        evolution: budget of the evolutionary acquisition optimizer.
        recommendation: how `get_best_trials` ranks completed trials (and so
            ``tuner.get_best_models()``, ``get_best_hyperparameters()``,
            ``results_summary()`` and ``kbnas export``): ``"posterior_mean"``
            (default) by the GP's posterior mean at each trial's configuration,
            the score with its fitted noise smoothed out by similar configurations;
            ``"observed"`` by the raw score, as KerasTuner does. With noisy scores
            the best raw score is the luckiest draw (the winner's curse); see
            docs/oracle.md. Before the GP takes over (the initial design), and if
            its fit fails, trials are ranked by their score.
        initial_points: configurations evaluated first, in order, before anything
            else: each a dict of hyperparameter values (missing ones take their
            defaults) or, for an architecture search, an architecture encoding
            such as ``"conv3-32|relu|maxpool|dense-64|relu"``.
        templates: the initial design of issue 9: start an architecture search
            from the known-good templates of `kbnas.space.templates` (adapted to
            the space), then choose each random draw as the farthest of
            `SPACE_FILLING_POOL` random templates (uniform draws in a space small
            enough to enumerate). False: uniform random draws only, the design
            of earlier versions and of plain random search. A space without an
            architecture has uniform random draws either way (docs/oracle.md).
        max_time: wall-clock budget of the search in seconds (None: no limit).
            No trial is started once it is spent, nor when the time left is below
            half the median duration of the finished trials; `remaining_time`
            tells a tuner when to cut the running trial short. Time spent before
            a reload counts.
        early_stopping: the multi-fidelity rule of issue 10, a
            `kbnas.EarlyStopping` (default: rungs at epochs 3, 9, 27, ..., a trial
            stopped at a rung when it is below every one of the three best fully
            trained trials there), or None to train every trial fully. It acts on
            per-epoch reports, ``update_trial(trial_id, metrics, step=epoch)`` (what
            `kbnas.BayesianNAS` sends after every epoch): when the rule stops a
            trial, its status becomes ``"STOPPED"`` in the trial returned, the
            caller stops training, and the trial ends COMPLETED with its metrics
            so far. Stopped trials enter the GP as observations at their
            fidelity (epochs trained / the most epochs of a trial not stopped), an
            extra distance channel |log f − log f'|, and are recommended only
            after every fully trained trial. See docs/oracle.md §10.
    """

    distance = _setting("distance")
    acquisition = _setting("acquisition")
    kappa = _setting("kappa")
    xi = _setting("xi")
    num_initial_points = _setting("num_initial_points")
    score_warping = _setting("score_warping")
    n_restarts = _setting("n_restarts")
    refit_every = _setting("refit_every")
    exhaustive_limit = _setting("exhaustive_limit")
    evolution = _setting("evolution")
    recommendation = _setting("recommendation")
    templates = _setting("templates")
    max_time = _setting("max_time")
    early_stopping = _setting("early_stopping")
    reevaluate_every = _setting("reevaluate_every")

    def __init__(
        self,
        objective: Any = None,
        max_trials: int | None = 20,
        num_initial_points: int | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        *,
        search_space: SearchSpace | None = None,
        architecture_hp: str = "architecture",
        settings: SearchSettings | None = None,
        **setting_overrides: Any,
    ) -> None:
        if isinstance(num_initial_points, keras_tuner.HyperParameters):
            raise TypeError("the third positional argument is num_initial_points, as in KerasTuner's "
                            "BayesianOptimizationOracle: pass hyperparameters=... by keyword")
        check_counts(max_trials=max_trials, max_retries_per_trial=max_retries_per_trial,
                      max_consecutive_failed_trials=max_consecutive_failed_trials)
        if search_space is not None and not isinstance(search_space, SearchSpace):
            raise ValueError(f"search_space must be a kbnas.SearchSpace or None, got {type(search_space).__name__}")
        if num_initial_points is not None:
            setting_overrides["num_initial_points"] = num_initial_points
        take_keras_tuner_gp_settings(alpha, beta, setting_overrides, settings)
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
        # Without one, the objective is the saved search's on reload (`set_state`).
        self._objective_given = objective is not None
        #: The search strategy (`kbnas.SearchSettings`); its fields read as attributes.
        self.settings = SearchSettings.from_keywords(settings, setting_overrides)
        #: trial_id -> {"epochs", "best", "last_step", "execution"} of its reported curve.
        self.learning_curves: dict[str, dict] = {}
        #: rung epochs r_k (as str, for JSON) -> {trial_id: y_t(r_k)}.
        self.rung_values: dict[str, dict[str, float]] = {}
        #: trial_id -> {"epochs", "rung", "value", "peers"}: the trials the rule stopped,
        #: and those the time budget cut short (``"rung": None, "reason": "time budget"``).
        self.stopped_early: dict[str, dict] = {}
        #: E, the epochs of a full training as the recipe sets them (``fit(epochs=...)``,
        #: given by `kbnas.BayesianNAS`); None: the most an ended, unstopped trial trained.
        #: Which rungs are judged depends on it (`kbnas.EarlyStopping.judges`).
        self.training_epochs: int | None = None
        #: trial_id -> id of the stopped trial whose configuration it trains fully.
        self.promoted: dict[str, str] = {}
        self.initial_points = [_as_initial_point(point, architecture_hp) for point in self.settings.initial_points]
        #: Search seconds spent before this process (restored on reload).
        self._seconds_before = 0.0
        #: time.monotonic() of this process's first trial, None before it.
        self._clock_start: float | None = None
        #: Set by `finish_search`: `create_trial` then tells every worker to stop.
        self.finished = False
        #: trial_id -> time.monotonic() of its creation, for the trial's duration.
        self._trial_started: dict[str, float] = {}
        #: trial_id -> wall seconds from its creation to its end.
        self.trial_seconds: dict[str, float] = {}
        #: trial_id -> search seconds (`search_seconds`) when it ended.
        self.trial_ended_at: dict[str, float] = {}
        self._recommendation_cache: tuple[tuple, list[str]] | None = None
        #: (completed trials' ids and value counts, learned unread conditions).
        self._unread_cache: tuple[tuple, dict] | None = None
        #: The trial inside `end_trial` (its values are KerasTuner's refill until restored).
        self._ending_trial: str | None = None
        #: Guards the caches shared by proposals (under KerasTuner's lock) and the
        #: recommendation (`get_best_trials`, which KerasTuner calls without it).
        self._state_lock = threading.RLock()
        self.architecture_hp = architecture_hp
        self.search_space: SearchSpace | None = None
        self._theta: np.ndarray | None = None
        self._configuration_space_cache: tuple[tuple, ConfigurationSpace, Any] | None = None
        #: trial_id -> how it was proposed (method, acquisition value, seconds).
        self.proposal_log: dict[str, dict] = {}
        #: ``callback(oracle, trial)`` run after each `end_trial`, where the oracle
        #: lives (the chief of a parallel search): progress lines, reports. Not saved.
        self.trial_end_callbacks: list[Callable[[Any, Any], None]] = []
        self.set_search_space(search_space)

    # ------------------------------------------------------------------ set-up
    def set_search_space(self, search_space: SearchSpace | None) -> None:
        """Declare (or replace) the architecture space; resets distance caches.

        Raises:
            ValueError: it replaces another space and a trial of this search (a
                resumed one) lies outside it.
        """
        if search_space is not None and self.search_space is not None and search_space != self.search_space:
            self._check_trials_lie_in(search_space, self.search_space)
        self.search_space = search_space
        if search_space is not None:
            for number, point in enumerate(self.initial_points, start=1):
                if self.architecture_hp in point:
                    try:
                        search_space.from_hp_value(point[self.architecture_hp])
                    except ValueError as error:
                        raise ValueError(f"initial point {number}: {error}") from None
        #: The distance channels the GP sees, with the cache of tried architectures.
        self.featurizer = Featurizer(search_space, self.distance,
                                     lambda values: self._key(values) in kt_internals.tried_so_far(self))
        self._configuration_space_cache = None
        self._recommendation_cache = None

    def _configuration_space(self) -> tuple[ConfigurationSpace, list[dict] | None]:
        """The space as the core sees it, with the unread conditions learned from
        the ended trials (`kbnas.configurations.infer_unread_conditions`), and every
        configuration when the space is small."""
        space = list(self.hyperparameters.space)
        space_key = tuple((hp.name, repr(hp.get_config())) for hp in space)
        # Completed trials only: `kbnas.BayesianNAS` drops unread values of trials
        # that ran to the end, not of failed ones (a retry must find every value).
        # Not the trial inside `end_trial`: KerasTuner has refilled its unread values
        # (at random) until kbnas restores them, and its display ranks trials then.
        ended = [t for t in list(self.trials.values())
                 if t.status == COMPLETED and t.hyperparameters.values and t.trial_id != self._ending_trial]
        ended_key = (space_key, tuple((t.trial_id, len(t.hyperparameters.values)) for t in ended))
        if self._unread_cache is None or self._unread_cache[0] != ended_key:
            self._unread_cache = (ended_key, infer_unread_conditions(
                space, [dict(t.hyperparameters.values) for t in ended]))
        unread = self._unread_cache[1]
        key = (space_key, tuple(sorted(unread.items())))
        if self._configuration_space_cache is None or self._configuration_space_cache[0] != key:
            cspace = ConfigurationSpace(self.hyperparameters, self.search_space, self.architecture_hp)
            cspace.unread_conditions = unread
            everything = cspace.enumerate(self.exhaustive_limit)
            self._configuration_space_cache = (key, cspace, everything)
        return self._configuration_space_cache[1], self._configuration_space_cache[2]

    def _values_of(self, trial, cspace: ConfigurationSpace | None = None) -> dict:
        """A trial's values as the model sees them: only the active ones (learned
        unread hyperparameters left out; `ConfigurationSpace.project`)."""
        cspace = cspace or self._configuration_space()[0]
        return cspace.project(dict(trial.hyperparameters.values))

    # ------------------------------------------------------------------ proposals
    def start_clock(self) -> None:
        """Starts the search clock of `max_time` now (it starts at the first
        `create_trial` otherwise); a parallel search starts it before its workers."""
        if self._clock_start is None:
            self._clock_start = time.monotonic()

    def stop_clock(self) -> None:
        """Stops the search clock (`BayesianNAS.search` calls it on return), so
        that retraining, exporting or idling after a search does not count as
        search time; the next `create_trial` starts it again."""
        if self._clock_start is not None:
            self._seconds_before += time.monotonic() - self._clock_start
            self._clock_start = None

    @keras_tuner.synchronized
    def finish_search(self) -> None:
        """Ends the search, under the oracle's lock: `create_trial` answers STOPPED
        from now on (until ``finished`` is reset), and the clock is stopped and
        the oracle saved. `kbnas.ParallelSearch` calls it when its own workers are
        done or it failed: KerasTuner's server may still answer workers of other
        hosts, which must not start a trial during the export."""
        self.finished = True
        self.stop_clock()
        self.save()

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str):
        """KerasTuner's `create_trial`, after starting the search clock.

        A trial that comes back (KerasTuner's retry queue, a trial that was running
        when its search was killed, or the running trial of a worker that died and
        asks again under the same tuner id) trains again from its first epoch: the
        metrics and the learning curve of its unfinished run are forgotten. Unless no
        trial may start (`_no_retry_may_start`): then none comes, not even one of
        KerasTuner's retries, which it hands out before its own checks (a new trial
        is checked by `populate_space`).
        """
        retrying = bool(kt_internals.retry_queue(self))
        if tuner_id not in self.ongoing_trials and (self.finished or retrying and self._no_retry_may_start()):
            # (A restarted worker still gets back the trial it was running: the
            # chief waits for it.)
            self.tuner_ids.discard(tuner_id)  # as KerasTuner does when it stops a worker
            return keras_tuner.engine.trial.Trial(self.hyperparameters.copy(), trial_id=str(len(self.trials)),
                                                  status=STOPPED)
        self.start_clock()
        existing = set(self.trials)
        trial = super().create_trial(tuner_id)
        if trial.status == RUNNING:
            # From now: a trial that came back trains again from its first epoch.
            self._trial_started[trial.trial_id] = time.monotonic()
            # Which worker trains it (the last one, for a trial that came back).
            self.proposal_log.setdefault(trial.trial_id, {})["tuner_id"] = tuner_id
            if trial.trial_id in existing:
                # KerasTuner would average the new run's values with the old ones.
                trial.metrics = kt_internals.empty_metrics(trial)
                kt_internals.save_trial(self, trial)
            self._forget_curve(trial.trial_id)
        return trial

    def ended_trials(self) -> int:
        """Trials that ended for good: completed or failed (not one that awaits a retry)."""
        return sum(t.status in (COMPLETED, "FAILED") for t in self.trials.values())

    def _no_retry_may_start(self) -> bool:
        """``max_trials`` trials ended or run (a search resumed with a lower
        ``max_trials`` than it ran); or the time budget leaves no room for a trial;
        or too many trials failed in a row. Never raises (it runs under KerasTuner's
        lock, which an exception would never release): an error stops the search."""
        try:
            if self.out_of_time() or self.failure_limit is not None:
                return True
            return bool(self.max_trials) and self.ended_trials() + len(self.ongoing_trials) >= self.max_trials
        except Exception as error:  # noqa: BLE001
            warnings.warn(f"kbnas: deciding whether to retry a trial failed ({type(error).__name__}: {error}); "
                          "stopping the search", RuntimeWarning, stacklevel=2)
            return True

    def _forget_curve(self, trial_id: str) -> None:
        self.learning_curves.pop(trial_id, None)
        self.stopped_early.pop(trial_id, None)
        for record in self.rung_values.values():
            record.pop(trial_id, None)

    @keras_tuner.synchronized
    def end_trial(self, trial) -> None:
        started = self._trial_started.pop(trial.trial_id, None)
        if started is not None:
            self.trial_seconds[trial.trial_id] = time.monotonic() - started
        self.trial_ended_at[trial.trial_id] = self.search_seconds()
        if trial.status == STOPPED and trial.trial_id in self.stopped_early:
            # A trial the rule stopped ends COMPLETED with its metrics so far,
            # also when its driver hands the STOPPED status back.
            trial.status = COMPLETED
        self._mark_cut_by_time_budget(trial)
        stop = self.stopped_early.get(trial.trial_id)
        if stop is not None:
            full = self._full_epochs()
            if full is not None and stop["epochs"] >= full:
                # Stopped on the recipe's last epoch (or the user's own early
                # stopping's): it trained as long as the fully trained trials.
                del self.stopped_early[trial.trial_id]
                self.proposal_log.get(trial.trial_id, {}).pop("stopped_at_epoch", None)
        reported_completed = trial.status == COMPLETED
        reported_names = set(trial.hyperparameters.values)
        # kbnas's record of the ending trial (seconds, learning curve, early stop)
        # reaches oracle.json before KerasTuner writes trial.json: a kill between
        # KerasTuner's two writes then loses only its run count and end order,
        # which `reload` restores.
        self.save()
        self._ending_trial = trial.trial_id
        try:
            super().end_trial(trial)
        finally:
            self._ending_trial = None
        ended = self.trials[trial.trial_id]
        if ended.status == COMPLETED and not reported_names.issuperset(ended.hyperparameters.values):
            # KerasTuner's end_trial refills every missing unconditional value with a
            # random draw (HyperParameters.ensure_active_values): keep the trial as
            # reported, without the values its build never read (kbnas.reads).
            ended.hyperparameters.values = {
                name: value for name, value in ended.hyperparameters.values.items() if name in reported_names
            }
            kt_internals.save_trial(self, ended)
        if reported_completed and (ended.score is None or not np.isfinite(ended.score)):
            # (KerasTuner marks such a trial INVALID: retried while max_retries_per_trial
            # allows, then FAILED; it counts towards max_consecutive_failed_trials.)
            warnings.warn(
                f"kbnas: trial {trial.trial_id} completed with a non-finite or missing objective "
                f"({self.objective.name}={ended.score}); it is never recommended, and the GP "
                "counts it as a failure (the worst observed score)",
                RuntimeWarning,
                stacklevel=2,
            )
        for callback in list(self.trial_end_callbacks):
            try:
                callback(self, self.trials[trial.trial_id])
            except Exception as error:  # noqa: BLE001 - never raise under the lock
                warnings.warn(
                    f"kbnas: a trial-end callback failed ({type(error).__name__}: {error})",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def populate_space(self, trial_id: str) -> dict:
        """Proposes the values of a new trial (KerasTuner protocol).

        In order: the initial design (the user's `initial_points`, then the
        space's templates), space-filling random draws until the initial design
        has `_initial_points` completed trials, then the GP. Nothing once the time
        budget is spent.
        """
        # KerasTuner's lock is held here and is released only if this returns:
        # nothing below may raise. The state lock guards the caches that
        # `get_best_trials` (called without KerasTuner's lock) shares.
        with self._state_lock:
            try:
                return self._next_trial(trial_id)
            except Exception as error:  # noqa: BLE001 - never raise under the lock
                warnings.warn(
                    f"kbnas: proposing trial {trial_id} failed ({type(error).__name__}: {error}); "
                    "the search stops.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return {"status": STOPPED, "values": None}

    def _next_trial(self, trial_id: str) -> dict:
        start = time.perf_counter()
        if self.out_of_time() or self.failure_limit is not None:
            return {"status": STOPPED, "values": None}
        # One generator per trial index: the same seed gives the same proposals,
        # also after a search is reloaded from its directory.
        rng = np.random.default_rng([self.seed, len(self.trials)])
        avoid = set(kt_internals.tried_so_far(self))
        values, info = None, {"method": "random"}
        try:
            # KerasTuner's hashes of the values handed out and reported, and those
            # of what each trial's model depended on (a proposal differing from a
            # trial only in values that trial did not read is the same model).
            cspace, _ = self._configuration_space()
            declared = {hp.name for hp in cspace.space}
            for t in list(self.trials.values()):
                if t.hyperparameters.values:
                    seen = self._values_of(t, cspace)
                    avoid.add(self._key(seen))
                    # Without the names the space does not declare (entries a build added untuned,
                    # `tune_new_entries=False`: each trial gets their defaults), as proposals are made.
                    avoid.add(self._key({k: v for k, v in seen.items() if k in declared}))
            # The matrices are small (n <= a few hundred): multithreaded BLAS
            # only adds contention, badly so next to TensorFlow's threads.
            with threadpool_limits(limits=1, user_api="blas"):
                values, info = self._propose(avoid, rng)
        except Exception as error:  # noqa: BLE001 - never raise under the lock
            warnings.warn(
                f"kbnas: the proposal failed ({type(error).__name__}: {error}); "
                "falling back to a random configuration.",
                RuntimeWarning,
                stacklevel=2,
            )
            info = {"method": "random (GP failed)", "error": f"{type(error).__name__}: {error}"}
            try:
                values = self._random_new(*self._configuration_space(), avoid, rng)
            except Exception:  # noqa: BLE001 - nothing can be proposed: stop, lock released
                values = None
        info["seconds"] = time.perf_counter() - start
        # Trials in flight while this one was proposed (the other workers').
        info["running"] = len(self.ongoing_trials)
        if values is None:
            return {"status": STOPPED, "values": None}
        values = self._configuration_space()[0].fill_unread(values)
        if "promotes" in info:
            self.promoted[trial_id] = info["promotes"]
        self.proposal_log[trial_id] = info
        return {"status": RUNNING, "values": values}

    def _propose(self, avoid: set, rng: np.random.Generator) -> tuple[dict | None, dict]:
        cspace, everything = self._configuration_space()
        for method, values in self._initial_design(cspace):
            if self._key(values) not in avoid:
                return values, {"method": method}
        completed = self._completed_trials()
        if len(completed) >= self._initial_points(cspace) and cspace.n_dimensions > 0:
            scores = {float(t.score) for t in completed}
            if len(scores) == 1:
                # Nothing for the GP to model; keep exploring until the scores differ.
                warnings.warn(
                    f"kbnas: all completed trials have the same score ({scores.pop()}); "
                    "proposing space-filling random configurations until they differ",
                    RuntimeWarning,
                    stacklevel=2,
                )
                values = self._space_filling_random(cspace, everything, avoid, rng)
                return values, {"method": "random (constant scores)"}
            repeat = self._reevaluation(cspace, completed)
            if repeat is not None:
                return repeat
            promotable = self._promotable()
            values, info = self._bayesian_proposal(cspace, everything, completed, avoid, rng, promotable)
            if values is not None:
                if self._key(values) in promotable:
                    info["promotes"] = promotable[self._key(values)]
                return values, info
        if not self.templates:
            return self._random_new(cspace, everything, avoid, rng), {"method": "random"}
        return self._space_filling_random(cspace, everything, avoid, rng), {"method": "random"}

    # ------------------------------------------------------------------ time budget
    def search_seconds(self) -> float:
        """Wall seconds of search so far, including the time before a reload."""
        running = 0.0 if self._clock_start is None else time.monotonic() - self._clock_start
        return self._seconds_before + running

    def remaining_time(self) -> float | None:
        """Seconds left of `max_time` (never negative), or None without a budget."""
        if self.max_time is None:
            return None
        return max(0.0, self.max_time - self.search_seconds())

    def out_of_time(self) -> bool:
        """Whether `max_time` keeps any new trial from starting: none is left, or less than half
        the median duration of the trials so far (False without a budget)."""
        remaining = self.remaining_time()
        if remaining is None:
            return False
        durations = list(self.trial_seconds.values())
        return remaining <= 0.0 or (bool(durations) and remaining < 0.5 * float(np.median(durations)))

    def _completed_trials(self) -> list:
        # A snapshot: KerasTuner adds trials under its own lock, which a
        # recommendation (get_best_trials) does not hold.
        snapshot = dict(self.trials)
        trials = [snapshot[i] for i in sorted(snapshot)]
        return [
            t
            for t in trials
            if t.status == COMPLETED and t.score is not None and np.isfinite(t.score)
        ]

    def _failed_trials(self) -> list:
        """FAILED and INVALID trials that have values (model failures: a model that
        cannot be built, out of memory, a NaN loss or objective), in id order."""
        snapshot = dict(self.trials)
        trials = [snapshot[i] for i in sorted(snapshot)]
        return [t for t in trials if t.status in ("FAILED", "INVALID") and t.hyperparameters.values]

    def _key(self, values: dict) -> str:
        return kt_internals.values_hash(self, values)

    def _maximize_sign(self) -> float:
        return 1.0 if self.objective.direction == "max" else -1.0

    def _training_data(self, cspace, completed, failed=()):
        """Values, scores to maximise, warped scores z, distance channels and
        fidelities (`_fidelities`: None when no trial was stopped early) of
        ``completed``, then of the ``failed`` trials, each at the worst observed
        score.

        With fidelities, the channels end with the fidelity channel
        |log f − log f'|; pass them to `Featurizer.channels` for cross distances.
        """
        trials = [*completed, *failed]
        train = [self._values_of(t, cspace) for t in trials]
        scores = self._maximize_sign() * np.array([t.score for t in completed], dtype=float)
        if failed:
            # A model that cannot be built, runs out of memory or diverges is as bad
            # as the worst one trained: its neighbours lose their appeal.
            scores = np.concatenate([scores, np.full(len(failed), scores.min())])
        fidelity = self._fidelities(trials)
        dists = self.featurizer.channels(cspace, train, train, fidelity, fidelity)
        return train, scores, warp_scores(scores, self.score_warping), dists, fidelity

    def _bayesian_proposal(self, cspace, everything, completed, avoid, rng, promotable=None):
        train, _, z, dists, fidelity = self._training_data(cspace, completed, self._failed_trials())
        channels = self.featurizer.channels
        gp = fit_surrogate(dists, z, self._theta, RefitPolicy(self.n_restarts, self.refit_every), rng)
        self._theta = gp.theta_
        # The incumbent of EI/PI is the best posterior mean at the observed
        # configurations, not the best observation: with noisy scores max(z) is the
        # luckiest draw, above what any configuration is expected to score, and EI
        # then undervalues the region of the best configurations (noisy-EI plug-in).
        best = float(np.max(gp.training_mean()))

        pending = [
            self._values_of(t, cspace)
            for t in self.ongoing_trials.values()
            if t.hyperparameters.values
        ]
        if pending:
            # Kriging believer: a running trial is assumed to score its GP mean
            # (at full fidelity), which shrinks the variance around it so
            # parallel proposals differ.
            fantasy, _ = gp.predict(channels(cspace, pending, train, None, fidelity))
            train = train + pending
            z = np.concatenate([z, fantasy])
            if fidelity is not None:
                fidelity = np.concatenate([fidelity, np.ones(len(pending))])
            gp.fit_fixed(channels(cspace, train, train, fidelity, fidelity), z, gp.theta_)

        variances = {"scored": 0, "zero": 0}

        def posterior(candidates: list[dict]) -> tuple[np.ndarray, np.ndarray]:
            mean, var = gp.predict(channels(cspace, candidates, train, None, fidelity))
            variances["scored"] += len(var)
            variances["zero"] += int(np.sum(var <= 0.0))
            return mean, np.sqrt(np.maximum(var, 0.0))

        promotions: list[dict] = []
        if promotable:
            # A stopped configuration competes with untried ones only when the
            # model says it is better at full fidelity than every trained one:
            # its posterior mean there is at least the incumbent's.
            stopped_values = [self._values_of(self.trials[t], cspace) for t in promotable.values()]
            mean, _ = posterior(stopped_values)
            promotions = [v for v, m in zip(stopped_values, mean) if m >= best]
            avoid = avoid - {self._key(v) for v in promotions}

        order = np.argsort(-z[: len(completed)])
        starts = [train[i] for i in order[: self.evolution.population_size // 2]]
        if self.acquisition == "thompson":
            def joint(pool: list[dict]) -> tuple[np.ndarray, np.ndarray]:
                # Among the pool's own members, at full fidelity.
                full = None if fidelity is None else np.ones(len(pool))
                return gp.predict_joint(channels(cspace, pool, train, None, fidelity),
                                        channels(cspace, pool, pool, None, full))

            pool = thompson_pool(everything, cspace.sample, cspace.mutate, self._key, avoid, starts, rng,
                                 self.evolution, extra=promotions)
            result = maximize_thompson(pool, joint, rng)
        else:
            acquisition = acq.make_acquisition(self.acquisition, best, xi=self.xi, kappa=self.kappa)

            def score(candidates: list[dict]) -> np.ndarray:
                return acquisition(*posterior(candidates))

            if everything is not None:
                result = maximize_exhaustive(everything, score, self._key, avoid)
            else:
                result = maximize_evolutionary(score, cspace.sample, cspace.mutate, self._key, avoid, starts, rng,
                                               self.evolution)
                if promotions:
                    # Evolution samples and mutates, which seldom rebuilds a given
                    # configuration: the promotable ones are scored explicitly.
                    values_ = score(promotions)
                    i = int(np.argmax(values_))
                    if result.best is None or values_[i] > result.value:
                        result = AcquisitionResult(promotions[i], float(values_[i]),
                                                   result.n_scored + len(promotions))
        if result.best is None:
            return None, {"method": f"gp-{self.acquisition}", "note": "no new candidate"}
        mean, std = posterior([result.best])
        info = {
            "method": f"gp-{self.acquisition}",
            "acquisition": float(result.value),
            "predicted_mean": float(mean[0]),
            "predicted_std": float(std[0]),
            "n_scored": int(result.n_scored),
            "n_pending": len(pending),
            # Share of the candidates scored whose predictive variance was 0 (the
            # acquisition then saw a sure outcome); see `kbnas.core.gp`.
            "zero_variance_share": variances["zero"] / max(1, variances["scored"]),
        }
        return result.best, info

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        state = super().get_state()
        state["kbnas"] = {
            "search_space": None if self.search_space is None else self.search_space.to_config(),
            "architecture_hp": self.architecture_hp,
            "distance": self.distance if isinstance(self.distance, str) else "custom",
            "acquisition": self.acquisition,
            "kappa": self.kappa,
            "xi": self.xi,
            "num_initial_points": self.num_initial_points,
            "score_warping": self.score_warping,
            "recommendation": self.recommendation,
            "theta": None if self._theta is None else [float(t) for t in self._theta],
            "objective": {"name": self.objective.name, "direction": self.objective.direction},
            "proposal_log": self.proposal_log,
            "search_seconds": self.search_seconds(),
            "trial_seconds": self.trial_seconds,
            "trial_ended_at": self.trial_ended_at,
            "early_stopping": None if self.early_stopping is None else self.early_stopping.to_config(),
            "learning_curves": self.learning_curves,
            "rung_values": self.rung_values,
            "stopped_early": self.stopped_early,
            "promoted": self.promoted,
        }
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        saved = state.get("kbnas")
        if not saved:
            return
        saved_space = None if saved["search_space"] is None else SearchSpace.from_config(saved["search_space"])
        if self.search_space is None and saved_space is not None:
            self.set_search_space(saved_space)
        elif saved_space is not None and saved_space != self.search_space:
            self._check_trials_lie_in(self.search_space, saved_space)
        self._restore_objective(saved.get("objective"))
        self._warn_about_changed_settings(saved)
        self._theta = None if saved["theta"] is None else np.array(saved["theta"])
        self.proposal_log = dict(saved.get("proposal_log", {}))
        self._seconds_before = float(saved.get("search_seconds", 0.0))
        self._clock_start = None
        self.trial_seconds = {k: float(v) for k, v in saved.get("trial_seconds", {}).items()}
        self.trial_ended_at = {k: float(v) for k, v in saved.get("trial_ended_at", {}).items()}
        # The decisions made stay made; the rule itself is the constructor's.
        self.learning_curves = {k: dict(v) for k, v in saved.get("learning_curves", {}).items()}
        for curve in self.learning_curves.values():
            curve["best"] = float(curve["best"])
        self.rung_values = {k: dict(v) for k, v in saved.get("rung_values", {}).items()}
        self.stopped_early = {k: dict(v) for k, v in saved.get("stopped_early", {}).items()}
        self.promoted = dict(saved.get("promoted", {}))

    def _check_trials_lie_in(self, space: SearchSpace, saved: SearchSpace) -> None:
        """Where a search goes on in ``space`` after ``saved``: a warning when every
        trial's architecture lies in it, else a ValueError naming one that does not
        (its model could not be rebuilt, e.g. by ``get_best_models``)."""
        new, old = space.to_config(), saved.to_config()
        changes = "; ".join(f"{key} {old[key]!r} there, {new[key]!r} now" for key in new if new[key] != old.get(key))
        trials = sorted(self.trials.values(), key=lambda trial: _id_order(trial.trial_id))
        encoded = [(trial, trial.hyperparameters.values.get(self.architecture_hp)) for trial in trials]
        encoded = [(trial, value) for trial, value in encoded if value is not None]
        outside = []
        for trial, value in encoded:
            try:
                space.from_hp_value(value)
            except ValueError as error:
                outside.append((trial, error))
        saved_search = f"the saved search in {kt_internals.project_dir(self)} has another architecture space"
        if encoded and (new["input_shape"], new["num_outputs"]) != (old["input_shape"], old["num_outputs"]):
            raise ValueError(f"{saved_search} ({changes}): its {len(encoded)} trials' models take other inputs or "
                             f"give other outputs; resume it with the same data, or {START_ELSEWHERE}")
        if outside:
            trial, error = outside[0]
            raise ValueError(f"{saved_search} ({changes}), and {len(outside)} of its {len(encoded)} trials lie "
                             f"outside this one (trial {trial.trial_id}: {error}); resume it with the saved "
                             f"settings, or {START_ELSEWHERE}")
        if encoded:
            warnings.warn(
                f"kbnas: the saved search's architecture space was another ({changes}); its "
                f"{len(encoded)} trials all lie in this one, which applies from now on",
                RuntimeWarning,
                stacklevel=3,
            )

    #: Settings saved in the state and compared with the constructor's on reload.
    _COMPARED_SETTINGS = ("distance", "acquisition", "kappa", "xi", "num_initial_points", "score_warping",
                          "recommendation", "early_stopping")

    def _restore_objective(self, saved: dict | None) -> None:
        """The saved search's objective when none was given; a warning when the given one differs."""
        if not saved or not saved.get("name") or saved["name"] == "multi_objective":
            return  # (a MultiObjective's parts are not saved: the constructor's stands)
        if not isinstance(self.objective, keras_tuner.Objective):
            return
        restored = keras_tuner.Objective(saved["name"], saved["direction"])
        if not self._objective_given:
            self.objective = restored
        elif (self.objective.name, self.objective.direction) != (restored.name, restored.direction):
            warnings.warn(
                f"kbnas: the saved search's objective is {restored.name} ({restored.direction}), "
                f"this oracle's is {self.objective.name} ({self.objective.direction}); "
                "trials are ranked by this oracle's from now on",
                RuntimeWarning,
                stacklevel=3,
            )

    def _warn_about_changed_settings(self, saved: dict) -> None:
        current = self.get_state()["kbnas"]
        if isinstance(saved.get("early_stopping"), dict):  # fields added since it was saved
            saved = {**saved, "early_stopping": EarlyStopping.complete_config(saved["early_stopping"])}
        changed = [key for key in self._COMPARED_SETTINGS if key in saved and saved[key] != current[key]]
        if changed:
            detail = ", ".join(f"{key}={saved[key]!r} there, {current[key]!r} now" for key in changed)
            warnings.warn(
                f"kbnas: the saved search was made with other settings ({detail}); "
                "the constructor's settings apply from now on",
                RuntimeWarning,
                stacklevel=3,
            )
