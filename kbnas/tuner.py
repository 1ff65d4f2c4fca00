"""`BayesianNAS`: a `keras_tuner.Tuner` driven by `BayesianNASOracle`.

It mirrors `keras_tuner.BayesianOptimization` (the oracle is built from the
tuner's arguments) and adds what a NAS search needs:

* with a `kbnas.ConvNetHyperModel` whose input shape or task is not given, the
  hypermodel and the architecture space are configured from the data passed to
  `search()` (input shape, task, number of classes, normalization statistics);
* the objective defaults to ``val_accuracy`` (classification) or ``val_loss``
  (regression); when no validation data is given, a fixed 20% of the training
  arrays is held out;
* each candidate is trained under a `tf.distribute` strategy, by default all
  visible GPUs (`kbnas.distribute.default_strategy`);
* each trial's training is seeded from the oracle's seed and the trial id
  (`trial_training_seed`), so a search with a fixed ``seed`` trains the same
  initial weights and data orders again (up to the nondeterminism of parallel
  floating-point reductions on the device);
* every epoch's logs go to the oracle, ``oracle.update_trial(trial_id, logs,
  step=epoch)``, and training stops when the trial it returns is ``"STOPPED"``
  (the early-stopping rule of `kbnas.EarlyStopping`; also on a KerasTuner worker,
  whose client returns the chief's trial). The trial then completes with its
  metrics so far;
* the trial is scored by what ``run_trial`` returns, as KerasTuner scores it:
  KerasTuner ignores the returned results once per-epoch reports hold the
  objective, so where they score differently (a value or dict returned by
  ``HyperModel.fit`` or a ``run_trial`` override, a second ``model.fit``,
  ``executions_per_trial > 1``: the mean of each execution's best epoch) the
  tuner reports them once more as the final report, which replaces the per-epoch
  values of the same metrics (`kbnas.oracle_early_stopping.FINAL_REPORT_METRIC`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import warnings
import zlib
from typing import Any

import keras
import keras_tuner
import numpy as np

from kbnas import keras_tuner_internals as kt_internals
from kbnas.atomic_files import check_json_files, is_local_path, write_json_atomic
from kbnas.budget_note import ended_in_initial_design, search_note
from kbnas.ensemble import EnsembleSettings
from kbnas.oracle import START_ELSEWHERE, BayesianNASOracle, check_counts, take_keras_tuner_gp_settings
from kbnas.oracle_early_stopping import FINAL_REPORT_METRIC
from kbnas.parallel import ENV_ORACLE_IP, ENV_ORACLE_PORT, is_worker_process, wait_for_chief
from kbnas.reads import ReadRecorder, drop_unread, droppable_names
from kbnas.settings import SearchSettings
from kbnas.space import SearchSpace
from kbnas.tf_workarounds import CustomGradientScope
from kbnas.trial_results import (
    close_names,
    holds_history,
    is_number,
    missing_objective_message,
    objective_names,
    reported_results,
)

#: Fraction of the training arrays held out for validation when none is given.
DEFAULT_VALIDATION_FRACTION = 0.2
#: A constant, so that every worker of a parallel search holds out the same examples.
VALIDATION_SPLIT_SEED = 0
#: KerasTuner (1.4) warns when the oracle already holds the objective after
#: `run_trial`, which per-epoch reports always cause, and then keeps those
#: metrics instead of reporting the History again: what kbnas wants. The test
#: `test_tuner.py::test_per_epoch_reports_are_the_trial_metrics_and_stopped_trials_really_stop`
#: fails if that changes.
_PER_EPOCH_REPORT_WARNING = r"The use case of calling `self\.oracle\.update_trial"


#: Keras's warning when a checkpoint's optimizer variables find no optimizer to go to
#: (a regular expression matched at the start of the message, as `warnings.filterwarnings` does).
OPTIMIZER_NOT_RESTORED = "Skipping variable loading for optimizer"


def trial_training_seed(oracle_seed: int, trial_id: str) -> int:
    """The random seed of one trial's training: CRC-32 of ``"{oracle_seed}:{trial_id}"``.

    Different trials get unrelated seeds, the same trial of a resumed or repeated
    search the same one, on any machine (no dependence on Python's hash salt).
    """
    return zlib.crc32(f"{oracle_seed}:{trial_id}".encode()) % (2**31 - 1)


class StopAtDeadline(keras.callbacks.Callback):
    """Stops training ``seconds`` after its creation (checked after each batch).

    The epoch in progress still runs its validation, so the trial ends with the
    metrics of its best epoch so far.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.deadline = time.monotonic() + seconds
        self.stopped = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if time.monotonic() >= self.deadline:
            self.model.stop_training = True
            self.stopped = True


class BayesianNAS(keras_tuner.Tuner):
    """Neural architecture search by Bayesian optimization.

    Args:
        hypermodel: a `kbnas.ConvNetHyperModel` (or any KerasTuner hypermodel or
            build function: the oracle then tunes its ordinary hyperparameters).
        objective: metric to optimize; default ``val_accuracy`` for
            classification, ``val_loss`` for regression.
        max_trials: number of trials.
        num_initial_points: trials of the initial design (see `kbnas.SearchSettings`).
        alpha, beta: `keras_tuner.BayesianOptimization`'s, accepted with a warning
            (see `BayesianNASOracle`): the GP's noise is fitted, ``beta`` becomes
            ``kappa``.
        seed: random seed (``0`` is a real seed).
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: as in
            `keras_tuner.BayesianOptimization`, in its positional order.
        search_space: architecture space; default the hypermodel's
            ``search_space`` when it has one.
        settings: the search strategy, a `kbnas.SearchSettings`, handed to the
            oracle. Each of its fields is also accepted as a keyword argument
            (it overrides the field); the ones users set most:
        acquisition, distance: see `kbnas.SearchSettings`.
        initial_points: configurations trained first, in order: architecture
            encodings or dicts of hyperparameter values (see `BayesianNASOracle`).
        early_stopping: a `kbnas.EarlyStopping` (default: rungs at epochs 3, 9,
            27, ..., judged against the three best fully trained curves, the top
            rung below a full training not judged)
            or None to train every candidate fully (see
            `BayesianNASOracle`).
        max_time: wall-clock budget of the search in seconds (None: only
            ``max_trials`` limits it). No trial starts once it is spent, and the
            running trial's training stops at the deadline (it keeps its best
            epoch so far and completes).
        recommendation: which trial ``get_best_models()`` returns (see
            `BayesianNASOracle`).
        log_hparams: write each trial's hyperparameters and final metrics, and the
            best score so far, for TensorBoard's HParams dashboard under
            ``<project directory>/tensorboard`` (default True; see
            `kbnas.tensorboard_log`).
        distribution_strategy: ``"auto"`` (default: all visible GPUs, see
            `kbnas.distribute.default_strategy`), None (KerasTuner's default) or a
            `tf.distribute.Strategy`.
        **kwargs: `keras_tuner.Tuner` arguments (``directory``,
            ``project_name``, ``overwrite``, ``executions_per_trial``, ...).
            ``overwrite`` is ignored in a worker process of a parallel search
            (`kbnas.parallel`): only the chief deletes the project.
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 20,
        num_initial_points: int | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        *,
        search_space: SearchSpace | None = None,
        settings: SearchSettings | None = None,
        log_hparams: bool = True,
        distribution_strategy: Any = "auto",
        **kwargs: Any,
    ) -> None:
        setting_overrides = {key: kwargs.pop(key) for key in SearchSettings.field_names() & set(kwargs)}
        take_keras_tuner_gp_settings(alpha, beta, setting_overrides, settings)  # warns at the caller's line
        check_counts(executions_per_trial=kwargs.get("executions_per_trial", 1))
        _limit_space_settings(hypermodel, kwargs.get("max_model_size"))
        if search_space is None:
            search_space = getattr(hypermodel, "search_space", None)
        search_space = _within_max_model_size(search_space, kwargs.get("max_model_size"))
        oracle = BayesianNASOracle(
            objective=objective,
            max_trials=max_trials,
            num_initial_points=num_initial_points,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            search_space=search_space,
            architecture_hp=getattr(hypermodel, "architecture_hp", "architecture"),
            settings=settings,
            **setting_overrides,
        )
        #: trial ids the oracle told to stop (their later executions stop at once).
        self._stopped_trials: set[str] = set()
        #: trial id -> objective values `on_epoch_end` reported (this attempt).
        self._epoch_reports: dict[str, int] = {}
        #: objective names `_warn_about_a_misspelled_objective` warned of.
        self._misspelling_warned: set[str] = set()
        self._user_objective = objective
        self._set_default_objective(oracle, hypermodel)
        if isinstance(distribution_strategy, str):
            if distribution_strategy != "auto":
                raise ValueError(
                    f"distribution_strategy={distribution_strategy!r}: pass 'auto', None "
                    "or a tf.distribute.Strategy"
                )
            from kbnas.distribute import default_strategy

            distribution_strategy = default_strategy()
        if kwargs.get("overwrite") and is_worker_process():
            # KerasTuner would delete the project, the chief's and the other
            # workers' trials with it: the chief alone starts a search afresh.
            kwargs["overwrite"] = False
        super().__init__(
            oracle=oracle,
            hypermodel=hypermodel,
            distribution_strategy=distribution_strategy,
            **kwargs,
        )
        restored_space = _within_max_model_size(getattr(self.hypermodel, "search_space", None),
                                                kwargs.get("max_model_size"))
        if restored_space is not None and oracle.search_space != restored_space:
            # A reopened search configured its hypermodel from the saved state
            # (`set_state`); the oracle names any trial outside the space it makes.
            oracle.set_search_space(restored_space)
            self._set_default_objective(oracle, self.hypermodel)
        if log_hparams and not kt_internals.is_worker(self):
            from kbnas.tensorboard_log import TENSORBOARD_SUBDIR, HParamsLogger

            # Where the oracle lives: a worker's trials end in the chief's oracle.
            oracle.trial_end_callbacks.append(HParamsLogger(os.path.join(self.project_dir, TENSORBOARD_SUBDIR)))

    def retrain_best(
        self,
        x: Any,
        y: Any = None,
        *,
        members: int = EnsembleSettings.members,
        epochs: int | None = None,
        batch_size: int | None = None,
        trial: Any = None,
        max_time: float | None = None,
    ) -> keras.Model:
        """The recommended architecture trained afresh on ``(x, y)``, as an ensemble.

        What ``kbnas search --selection validation`` exports (docs/cli.md,
        "Ensembles"; on small data the command may pick another trial and epoch
        count by cross-validation, `kbnas.selection`): pass train and validation
        data together. Member k is built from the trial's
        hyperparameters and trained for ``epochs`` from the seed
        `kbnas.ensemble.member_seed` ``(s, k)``, s the trial's own training seed
        (`trial_training_seed`: member 0 is the model one retraining gives); the
        returned model predicts the members' mean (`kbnas.ensemble.average_models`;
        one member: that model). Export it with `kbnas.export_model`.

        Args:
            x, y: training arrays, or a ``tf.data.Dataset`` of (features, labels)
                batches as ``x`` alone (as in ``keras.Model.fit``: its own
                batches and order; ``batch_size`` does not apply).
            members: K, the most members (1: one model).
            epochs: default the epoch at which the trial's validation score was
                best (``trial.best_step + 1``).
            batch_size: ``keras.Model.fit``'s, the global batch under a
                distribution strategy; default the ``batch_size`` given to this
                tuner's `search`, else Keras's 32.
            trial: a ``keras_tuner`` Trial or a trial id as KerasTuner writes it
                (``"02"``, as in ``results_summary``'s "Trial 02 summary"; not a
                number: KerasTuner's and kbnas's progress lines count from 1);
                default the oracle's recommendation (``get_best_trials(1)``).
            max_time: seconds for the members after the first (None: no limit);
                a member begins only while the mean duration so far still fits.

        Raises:
            ValueError: no completed trial, ``trial`` names no trial of the
                search, or did not complete.
        """
        import contextlib

        from kbnas.ensemble import average_models, retrain

        if trial is None:
            best = self.oracle.get_best_trials(1)
            trial = best[0] if best else None
        elif isinstance(trial, str):
            trial = self._trial_by_id(trial)
        elif not hasattr(trial, "hyperparameters"):
            raise ValueError(f"retrain_best: trial must be a keras_tuner Trial or a trial id such as '02', "
                             f"got {trial!r}")
        if (y is None and isinstance(x, np.ndarray)) or (y is not None and hasattr(x, "element_spec")):
            raise ValueError("retrain_best: give x and y, or a tf.data.Dataset of (features, labels) as x alone")
        if trial is None or trial.status != "COMPLETED":
            raise ValueError("retrain_best needs a completed trial: run a search first, or pass one")
        oracle = kt_internals.local_oracle(self.oracle)
        strategy = self.distribution_strategy

        def build() -> keras.Model:
            with strategy.scope() if strategy is not None else contextlib.nullcontext():
                return self.hypermodel.build(trial.hyperparameters)

        models, _ = retrain(
            build, x, y,
            seed=trial_training_seed(oracle.seed, trial.trial_id),
            epochs=epochs or int(trial.best_step or 0) + 1,
            members=members,
            batch_size=batch_size or self._search_global_batch_size(),
            deadline=None if max_time is None else time.monotonic() + max_time,
        )
        return average_models(models, task=getattr(self.hypermodel, "task", None))

    def results_summary(self, num_trials: int = 10) -> None:
        """KerasTuner's summary; first a line saying the order is the GP's posterior mean
        (the default ``recommendation``), so that a trial listed above a higher Score
        does not look like a mistake."""
        if isinstance(self.oracle, BayesianNASOracle) and self.oracle.recommendation == "posterior_mean":
            print("kbnas: trials in the order of the GP's posterior mean at their configurations "
                  "(recommendation='posterior_mean'), not of the Score printed: a lucky score ranks lower; "
                  "see docs/oracle.md")
        super().results_summary(num_trials)

    def _trial_by_id(self, trial_id: str):
        """The trial of id ``trial_id``, as KerasTuner writes it (``"02"``).

        Raises:
            ValueError: no trial has it.
        """
        trials = self.oracle.trials
        if trial_id in trials:
            return trials[trial_id]
        raise ValueError(f"retrain_best: no trial {trial_id!r} in this search (its ids: "
                         f"{', '.join(sorted(trials)) or 'none yet'})")

    def _search_global_batch_size(self) -> int | None:
        """The global batch of `search`'s trainings (None: Keras's default).

        `kbnas.ConvNetHyperModel.fit` takes ``batch_size`` per replica (default
        `kbnas.training.DEFAULT_BATCH_SIZE`), Keras's ``fit`` as the global batch.
        """
        given = getattr(self, "_search_batch_size", None)
        if not hasattr(self.hypermodel, "configure"):
            return given
        from kbnas.training import DEFAULT_BATCH_SIZE

        return (given or DEFAULT_BATCH_SIZE) * self._devices_per_trial()

    def _strategy_replicas(self) -> int:
        """The replicas of this tuner's distribution strategy (1 without one)."""
        strategy = self.distribution_strategy
        return int(strategy.num_replicas_in_sync) if strategy is not None else 1

    def _devices_per_trial(self) -> int:
        """The devices each trial of the search trained on (`_record_trial_devices`;
        before a search, this tuner's strategy's replicas)."""
        devices = getattr(self, "_trial_devices", None)
        return int(devices) if devices is not None else self._strategy_replicas()

    def _record_trial_devices(self, devices: int) -> None:
        """Record that the search's trials train on ``devices`` devices each:
        `search` records its strategy's replicas, `kbnas.ParallelSearch` its
        workers' GPUs. Kept in the tuner's state; a resumed search keeps the
        count its first run recorded and warns when its trials now train on
        another (at another global batch: ``batch_size`` is per device)."""
        recorded = getattr(self, "_trial_devices", None)
        if recorded is not None and recorded != devices:
            warnings.warn(
                f"kbnas: the trials of this search trained on {recorded} device(s) each, these train on "
                f"{devices}: with a batch_size per device, at another global batch; retrain_best keeps the "
                f"first run's ({recorded} x batch_size)",
                RuntimeWarning, stacklevel=3)
            return
        self._trial_devices = int(devices)

    def get_state(self) -> dict:
        """KerasTuner's state, with a configured hypermodel's configuration
        (`kbnas.ConvNetHyperModel.configuration`: input shape, task, input statistics)."""
        state = super().get_state()
        configuration = getattr(self.hypermodel, "configuration", None)
        saved = configuration() if callable(configuration) else None
        if saved is not None:
            state[HYPERMODEL_STATE] = saved
        if getattr(self, "_search_batch_size", None) is not None:
            state[BATCH_SIZE_STATE] = self._search_batch_size  # retrain_best's default after a reopen
        if getattr(self, "_trial_devices", None) is not None:
            state[TRIAL_DEVICES_STATE] = self._trial_devices  # … times the devices a trial trained on
        return state

    def set_state(self, state: dict) -> None:
        """KerasTuner's state; a reopened search's hypermodel takes the saved configuration,
        so that its trials' models are rebuilt as they were trained.

        Raises:
            ValueError: the hypermodel is configured for other data than the saved search.
        """
        super().set_state(state)
        if state.get(BATCH_SIZE_STATE) is not None:
            self._search_batch_size = int(state[BATCH_SIZE_STATE])
        if state.get(TRIAL_DEVICES_STATE) is not None:
            self._trial_devices = int(state[TRIAL_DEVICES_STATE])
        saved = state.get(HYPERMODEL_STATE)
        if saved is not None and hasattr(self.hypermodel, "restore_configuration"):
            try:
                self.hypermodel.restore_configuration(saved)
            except ValueError as error:
                raise ValueError(f"{self.project_dir}: {error}; resume it with the same data, "
                                 f"or {START_ELSEWHERE}") from None

    def _needs_data_to_configure(self) -> bool:
        return hasattr(self.hypermodel, "configure") and not getattr(
            self.hypermodel, "is_configured", True
        )

    def reload(self) -> None:
        """KerasTuner's reload; a damaged ``<tuner_id>.json`` is named in the error."""
        check_json_files([kt_internals.tuner_file(self)])
        super().reload()

    def load_model(self, trial: Any) -> keras.Model:
        """KerasTuner's: the trial's model, rebuilt, with its checkpoint's weights.

        Used by ``get_best_models``. The checkpoint also holds the trained optimizer's
        variables, which a freshly compiled model has not created yet, so Keras warns
        that it skips them; evaluation, prediction, export and retraining need only
        the weights, so that warning (and only it) is silenced here.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=OPTIMIZER_NOT_RESTORED)
            return super().load_model(trial)

    def save(self) -> None:
        """KerasTuner's save (the oracle's state, then ``<tuner_id>.json``), written atomically."""
        # KerasTuner 1.4: BaseTuner.save() is oracle.save() on the chief, then
        # Stateful.save(self._get_tuner_fname()), which writes in place.
        path = kt_internals.tuner_file(self)
        if not is_local_path(path):
            return super().save()
        if not kt_internals.is_worker(self):
            self.oracle.save()
        write_json_atomic(path, self.get_state(), indent=None)

    def on_search_begin(self) -> None:
        """Writes ``<tuner_id>.json`` (and the oracle's state) before the first trial.

        KerasTuner reloads a search only where that file exists, and writes it first
        after the first trial ended (`on_trial_end`: the oracle's `end_trial`, then
        the tuner's save): a kill in between made the next run start over, training
        trial 0 again over its finished record.
        """
        super().on_search_begin()
        self.save()

    def _populate_initial_space(self) -> None:
        # A ConvNetHyperModel that has not seen data cannot be built yet: its
        # space is populated in `search()`, as AutoKeras does.
        if self._needs_data_to_configure():
            return
        super()._populate_initial_space()

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """Runs the search. Arguments are those of ``keras.Model.fit``.

        With numpy inputs and no ``validation_data``, the last
        `DEFAULT_VALIDATION_FRACTION` of a permutation seeded with
        `VALIDATION_SPLIT_SEED` of the training arrays (and of ``sample_weight``)
        is held out for validation, when the objective is a validation metric
        (``val_…``) or the hypermodel a `kbnas.ConvNetHyperModel`; a training-metric
        objective of another hypermodel trains on all of them, as KerasTuner does.

        Raises:
            RuntimeError: ``max_consecutive_failed_trials`` trials failed in a row
                (KerasTuner's message).
        """
        if is_worker_process():
            # KerasTuner's client would wait an hour for an unreachable chief.
            wait_for_chief(os.environ[ENV_ORACLE_IP], int(os.environ[ENV_ORACLE_PORT]))
        fit_args, fit_kwargs = self.prepare_search(*fit_args, **fit_kwargs)
        self._record_trial_devices(self._strategy_replicas())
        owns_clock = hasattr(self.oracle, "stop_clock")  # not on a worker's client
        trials_before = len(self.oracle.trials) if owns_clock else None
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_PER_EPOCH_REPORT_WARNING, category=DeprecationWarning)
                super().search(*fit_args, **fit_kwargs)
        finally:
            if owns_clock:
                self.oracle.stop_clock()
        if owns_clock:
            self.oracle.save()  # with the search time of this call, not what follows it
            if fit_kwargs.get("verbose", 1) and len(self.oracle.trials) == trials_before \
                    and self.oracle.remaining_time() is not None and self.oracle.out_of_time():
                # KerasTuner's loop ends silently; a resumed search whose budget is spent would look broken.
                print(f"kbnas: the time budget max_time={self.oracle.max_time:g} s is spent "
                      f"({self.oracle.search_seconds():.1f} s searched): no trial ran; "
                      "give a larger max_time to search on", flush=True)
            elif fit_kwargs.get("verbose", 1) and (end := ended_in_initial_design(self.oracle)) is not None:
                print(search_note(end), flush=True)
        failure_limit = getattr(self.oracle, "failure_limit", None)  # None on a worker's client
        if failure_limit is not None:
            # KerasTuner raises it from end_trial; kbnas's oracle stops proposing instead.
            raise RuntimeError(failure_limit)

    def serve_as_chief(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """KerasTuner's chief alone: serves the oracle to the workers until each
        was told to stop (KerasTuner's `search` where ``KERASTUNER_TUNER_ID``
        names the chief), and nothing after.

        Unlike `search`, it neither prepares the search nor stops the oracle's
        clock and saves it at the end: `kbnas.ParallelSearch` does both in its
        own thread, because KerasTuner's server can return up to 20 s after the
        last worker stopped (it sleeps 20 s when the first worker is told to
        stop while another still trains), when the chief is exporting.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PER_EPOCH_REPORT_WARNING, category=DeprecationWarning)
            super().search(*fit_args, **fit_kwargs)

    def prepare_search(self, *fit_args: Any, **fit_kwargs: Any) -> tuple[tuple, dict]:
        """What `search` does before KerasTuner's loop; returns the arguments it trains with.

        Holds out the validation split (see `search`), configures an unconfigured
        `kbnas.ConvNetHyperModel` from the data, gives the oracle its architecture
        space, the default objective and the recipe's ``epochs`` (E of the
        early-stopping rule). Calling it again is harmless.
        `kbnas.ParallelSearch` calls it before the chief starts serving.
        """
        fit_args, fit_kwargs = self._with_validation_split(list(fit_args), dict(fit_kwargs))
        self._search_batch_size = fit_kwargs.get("batch_size")  # retrain_best's default
        if isinstance(self.oracle, BayesianNASOracle):
            self.oracle.finished = False  # a parallel search before it ended the search
        if isinstance(self.oracle, BayesianNASOracle) and isinstance(fit_kwargs.get("epochs"), int):
            # E of the early-stopping rule: the recipe's own early stopping (patience)
            # ends most trainings before it, so the longest one seen can be shorter.
            self.oracle.training_epochs = fit_kwargs["epochs"]
        if hasattr(self.hypermodel, "configure"):
            first_time = self._needs_data_to_configure()
            x, y = _fit_xy(fit_args, fit_kwargs)
            if first_time:
                self.hypermodel.configure(x, y)
            elif x is not None and hasattr(self.hypermodel, "check_data"):
                self.hypermodel.check_data(x, y)  # e.g. a reopened search's configuration
            validation_data = fit_kwargs.get("validation_data")
            if validation_data is not None and hasattr(self.hypermodel, "check_validation_data"):
                self.hypermodel.check_validation_data(validation_data)  # once, not in every trial
            # On a KerasTuner worker the oracle is a client of the chief's oracle,
            # which was configured by the chief's own search() call.
            if isinstance(self.oracle, BayesianNASOracle):
                self.oracle.set_search_space(_within_max_model_size(self.hypermodel.search_space,
                                                                     self.max_model_size))
            # A worker's client checks trial results against this objective too.
            self._set_default_objective(self.oracle, self.hypermodel)
            if first_time and not self.oracle.get_space().space:
                super()._populate_initial_space()
        self._check_validation_given(fit_args, fit_kwargs)
        if isinstance(self.oracle, BayesianNASOracle):  # a search's or a parallel chief's own oracle
            self.oracle.check_initial_points()
        return tuple(fit_args), fit_kwargs

    def _check_validation_given(self, fit_args: list, fit_kwargs: dict) -> None:
        """A ``val_`` objective needs validation data, which `search` holds out of numpy
        arrays only: with a `tf.data.Dataset` and none given, every trial would train
        fully and then fail on the missing metric.

        Raises:
            ValueError: a `tf.data.Dataset` with ``validation_split``, or inputs
                other than numpy arrays (a dataset, a generator) with a ``val_``
                objective and no ``validation_data``; checked for this class's
                ``run_trial`` and a hypermodel whose ``fit`` is Keras's (KerasTuner's
                default) or `kbnas.ConvNetHyperModel`'s (a ``run_trial`` or ``fit`` of
                the user's own may make its validation data itself).
        """
        x, _ = _fit_xy(fit_args, fit_kwargs)
        if x is None or isinstance(x, np.ndarray):
            return  # arrays too few to split, or with weights of another length: Keras names the problem
        from kbnas.hypermodel import ConvNetHyperModel

        if (type(self).run_trial is not BayesianNAS.run_trial
                or type(self.hypermodel).fit not in (keras_tuner.HyperModel.fit, ConvNetHyperModel.fit)):
            return
        from kbnas.data_inference import is_dataset

        if fit_kwargs.get("validation_split") and is_dataset(x):  # Keras's fit and kbnas's fail every trial
            raise ValueError("validation_split needs arrays; with a tf.data.Dataset, pass validation_data")
        validation_names = [name for name in objective_names(self.oracle.objective) if name.startswith("val_")]
        given = fit_kwargs.get("validation_data") is not None or fit_kwargs.get("validation_split")
        if given or not validation_names:
            return
        raise ValueError(
            f"the objective {validation_names[0]} is a validation metric and search() got no validation "
            "data: pass validation_data=(x_val, y_val) or a tf.data.Dataset (a validation split is "
            "held out automatically from numpy arrays only)"
        )

    def on_trial_begin(self, trial: Any) -> None:
        # A retried trial trains again from scratch, judged afresh.
        self._stopped_trials.discard(trial.trial_id)
        self._epoch_reports.pop(trial.trial_id, None)
        super().on_trial_begin(trial)
        # From here to `on_trial_end` (a `run_trial` override included), the trial's
        # values record what reads them (kbnas.reads). On a worker the trial reaches
        # the chief as a protobuf, which refills every value: nothing is recorded.
        if not is_worker_process():
            trial.hyperparameters.values = ReadRecorder(trial.hyperparameters.values)

    def _configure_tensorboard_dir(self, callbacks: list, trial: Any, execution: int = 0) -> None:
        """KerasTuner's, without counting its reads: for a `keras.callbacks.TensorBoard`
        callback it reads every value of the trial (TensorBoard's HParams), which would
        keep them all (kbnas.reads). A private method (`kt_internals.OVERRIDDEN_METHODS`)."""
        values = trial.hyperparameters.values
        with values.unrecorded() if isinstance(values, ReadRecorder) else contextlib.nullcontext():
            super()._configure_tensorboard_dir(callbacks, trial, execution)

    def on_trial_end(self, trial: Any) -> None:
        """A completed trial reaches the oracle without the values it never read
        (kbnas.reads); any other keeps all of them (a retry must find every value)."""
        values = trial.hyperparameters.values
        if isinstance(values, ReadRecorder):
            trial.hyperparameters.values = (
                drop_unread(values.plain(), values.read, droppable_names(trial.hyperparameters))
                if trial.status == "COMPLETED" else values.plain()
            )
        super().on_trial_end(trial)

    def on_epoch_end(self, trial: Any, model: Any, epoch: int, logs: dict | None = None) -> None:
        """Reports the epoch's logs to the oracle; stops training when it says so.

        Logs without the objective are not reported (the oracle could not judge
        them). A trial stopped in an earlier execution stops again at the end of
        each later execution's first epoch, without reporting it.
        """
        if trial.trial_id in self._stopped_trials:
            model.stop_training = True
            return
        logs = {name: float(value) for name, value in (logs or {}).items() if is_number(value)}
        # (MultiObjective.get_value sums whatever is there: has_value checks all.)
        if not self.oracle.objective.has_value(logs):
            self._warn_about_a_misspelled_objective(logs)
            return
        reported = self.oracle.update_trial(trial.trial_id, logs, step=epoch)
        self._epoch_reports[trial.trial_id] = self._epoch_reports.get(trial.trial_id, 0) + 1
        if getattr(reported, "status", None) == "STOPPED":
            self._stopped_trials.add(trial.trial_id)
            model.stop_training = True

    def _warn_about_a_misspelled_objective(self, logs: dict) -> None:
        """Once a search, where an objective is missing from an epoch's logs and a logged
        name begins with it or it with a logged name (``val_acc``, ``val_accuracy``). Unless
        ``run_trial`` returns it, the search stops after the trial's training
        (`missing_objective_message`); KerasTuner would fail that trial and the next ones.
        An objective that ``run_trial`` returns (no such name logged) is left alone."""
        for name in objective_names(self.oracle.objective):
            if name in logs or name in self._misspelling_warned:
                continue
            close = close_names(name, logs)
            if close:
                self._misspelling_warned.add(name)
                warnings.warn(f"kbnas: the objective {name!r} is not among the metrics Keras logs "
                              f"({', '.join(sorted(logs))}): did you mean {close[0]!r}? Unless run_trial returns it, "
                              "the search stops after this trial's training", RuntimeWarning, stacklevel=2)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        """KerasTuner's `run_trial` after seeding Python, numpy, TensorFlow and Keras.

        The seed is `trial_training_seed` of the oracle's seed and the trial id; with
        ``executions_per_trial > 1`` the executions continue from that random state.
        Python's and numpy's global random states are restored afterwards, so code
        that runs after a search does not inherit the last trial's seed.
        """
        import random

        import keras

        # On a KerasTuner worker the oracle is an OracleClient around a local copy
        # built from the same arguments (and seed) as the chief's.
        oracle = kt_internals.local_oracle(self.oracle)
        remaining = self.oracle.remaining_time() if hasattr(self.oracle, "remaining_time") else None
        if remaining is not None:
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), StopAtDeadline(remaining)]
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            keras.utils.set_random_seed(trial_training_seed(oracle.seed, trial.trial_id))
            # TensorFlow keeps every traced model alive through its gradient registry
            # (kbnas.tf_workarounds): without this a search grows ~20 MiB per trial.
            with CustomGradientScope():
                return super().run_trial(trial, *args, **kwargs)
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

    def _run_and_update_trial(self, trial: Any, *fit_args: Any, **fit_kwargs: Any) -> None:
        """KerasTuner's, then the final report of what ``run_trial`` returned (module
        docstring). A private method of KerasTuner (`kt_internals.OVERRIDDEN_METHODS`):
        the one place that sees the results of a subclass's ``run_trial`` override."""
        returned: list = []
        own = self.__dict__.get("run_trial")
        run_trial = self.run_trial

        def recording_run_trial(*args: Any, **kwargs: Any) -> Any:
            returned.append(run_trial(*args, **kwargs))
            return returned[-1]

        self.run_trial = recording_run_trial
        try:
            super()._run_and_update_trial(trial, *fit_args, **fit_kwargs)
        except KeyError as error:
            # KerasTuner would count a trial without its objective as failed and train the next ones,
            # which all fail the same way: the search stops here, naming what the trial had.
            if not (error.args and error.args[0] in objective_names(self.oracle.objective) and returned):
                raise
            raise keras_tuner.errors.FatalValueError(
                missing_objective_message(error.args[0], trial.trial_id, returned[-1])) from None
        finally:
            if own is None:
                del self.run_trial
            else:
                self.run_trial = own
        if returned:
            self._report_returned_results(trial, returned[-1])

    def _report_returned_results(self, trial: Any, results: Any) -> None:
        """Reports ``results`` as the final report when KerasTuner would score them
        differently from the per-epoch reports (module docstring).

        Nothing is sent when they agree (a single `model.fit`'s History, the usual
        case), when no per-epoch report holds the objective (KerasTuner then reports
        ``results`` itself), for a multi-objective (KerasTuner reports those itself
        too), when ``results`` do not hold the objective (KerasTuner keeps the
        per-epoch reports, as it would), or for a trial the oracle stopped early
        (its later executions stop after one epoch: it stays scored by its curve,
        at its lower fidelity).
        """
        objective = self.oracle.objective
        if (results is None or getattr(objective, "name_to_direction", None) is not None
                or trial.trial_id in self._stopped_trials):
            return
        reported = self.oracle.get_trial(trial.trial_id).metrics
        if not reported.exists(objective.name):
            return
        observed = sum(len(observation.value) for observation in reported.get_history(objective.name))
        if observed != self._epoch_reports.get(trial.trial_id, 0):
            return  # a run_trial override reported too: KerasTuner keeps what it reported
        try:
            metrics, step = reported_results(results, objective)
            metrics = {name: float(value) for name, value in metrics.items() if is_number(value)}
            value = metrics[objective.name]
        except Exception:  # noqa: BLE001 - results KerasTuner could not read either
            return
        if not holds_history(results):
            # A value or dict has no epoch: the trial keeps its best epoch (retraining reads it).
            step = int(reported.get_best_step(objective.name))
        if not math.isclose(value, float(reported.get_best_value(objective.name)), rel_tol=1e-9, abs_tol=1e-12):
            report = metrics
        else:
            # The same score: only metrics the epochs never reported (KerasTuner records them).
            report = {name: v for name, v in metrics.items() if not reported.exists(name)}
        if report:
            self.oracle.update_trial(trial.trial_id, {**report, FINAL_REPORT_METRIC: 1.0}, step=step)

    def _set_default_objective(self, oracle: Any, hypermodel: Any) -> None:
        """``val_accuracy`` (max) for classification, ``val_loss`` (min) for regression."""
        task = getattr(hypermodel, "task", None)
        if self._user_objective is not None or task is None:
            return
        oracle.objective = (
            keras_tuner.Objective("val_loss", "min")
            if task == "regression"
            else keras_tuner.Objective("val_accuracy", "max")
        )

    def _reads_validation(self) -> bool:
        """Whether the search needs validation data: a ``val_`` objective, or a
        `kbnas.ConvNetHyperModel` (its recipe's early stopping watches ``val_loss``)."""
        names = objective_names(self.oracle.objective)
        return hasattr(self.hypermodel, "configure") or any(name.startswith("val_") for name in names)

    def _with_validation_split(self, args: list, kwargs: dict) -> tuple[list, dict]:
        if kwargs.get("validation_data") is not None or "validation_split" in kwargs or not self._reads_validation():
            return args, kwargs
        x, y = _fit_xy(args, kwargs)
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            return args, kwargs
        n = len(x)
        n_val = int(round(n * DEFAULT_VALIDATION_FRACTION))
        if n_val < 1 or n - n_val < 1:
            return args, kwargs
        weights = kwargs.get("sample_weight")
        if weights is not None:
            weights = np.asarray(weights)
            if weights.ndim == 0 or len(weights) != n:
                return args, kwargs  # Keras names the mismatch itself
        order = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(n)
        train, val = order[: n - n_val], order[n - n_val :]
        args = args[2:]
        kwargs = {k: v for k, v in kwargs.items() if k not in ("x", "y", "validation_data")}
        if weights is None:
            kwargs["validation_data"] = (x[val], y[val])
        else:
            # As Keras's own validation_split: the weights are split with the examples.
            kwargs["sample_weight"] = weights[train]
            kwargs["validation_data"] = (x[val], y[val], weights[val])
        return [x[train], y[train], *args], kwargs


#: Key of a hypermodel's configuration in the tuner's state (``<tuner_id>.json``).
HYPERMODEL_STATE = "kbnas_hypermodel"
#: Key of `search`'s ``batch_size`` in the tuner's state.
BATCH_SIZE_STATE = "kbnas_search_batch_size"
#: Key of the devices each trial trained on (`BayesianNAS._record_trial_devices`).
TRIAL_DEVICES_STATE = "kbnas_trial_devices"


def _fit_xy(args: list, kwargs: dict) -> tuple[Any, Any]:
    x = args[0] if len(args) > 0 else kwargs.get("x")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    return x, y


def _limit_space_settings(hypermodel: Any, max_model_size: Any) -> None:
    """KerasTuner's ``max_model_size`` as the ``max_params`` of the space an
    unconfigured `kbnas.ConvNetHyperModel` will make."""
    settings = getattr(hypermodel, "space_settings", None)
    if not max_model_size or not isinstance(settings, dict) or getattr(hypermodel, "search_space", None) is not None:
        return
    current = settings.get("max_params")
    settings["max_params"] = int(max_model_size) if current is None else min(int(current), int(max_model_size))


def _within_max_model_size(space: Any, max_model_size: Any) -> Any:
    """``space`` with ``max_params`` at most KerasTuner's ``max_model_size``, so that
    oversized architectures are never proposed (KerasTuner fails them after
    building them); any other value unchanged."""
    if not max_model_size or not isinstance(space, SearchSpace):
        return space
    if space.max_params is None or space.max_params > int(max_model_size):
        return dataclasses.replace(space, max_params=int(max_model_size))
    return space
