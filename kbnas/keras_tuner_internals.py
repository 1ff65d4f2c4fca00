"""Every use of KerasTuner beyond its public API, in one place.

KerasTuner 1.4 gives no public way to do a few things kbnas needs: read which
configurations were tried, hash a configuration the way KerasTuner does, filter
the retry queue after a reload, count a trial's runs, find its state files, reach the local oracle of
a worker's ``OracleClient``, name the hyperparameter classes for
``isinstance``, and forget a metric's observations. The rest of kbnas calls the functions below instead of those
names; kbnas also overrides the private methods in `OVERRIDDEN_METHODS` (to write
state files atomically, to count failures in a row from the last trial, to populate a hypermodel's space only once it has
seen data, to see what a tuner's ``run_trial`` returned, and to keep the reads of TensorBoard's HParams out of a
trial's recorded reads). Every other private name kbnas's Oracle and Tuner subclasses define
is absent from KerasTuner's classes (the test checks: KerasTuner 1.4's
deprecated ``Oracle._populate_space`` was once shadowed by accident).

``tests/test_keras_tuner_internals.py`` checks each of them against the
installed KerasTuner (names, signatures and the behaviour kbnas relies on), so
a KerasTuner release that changes one fails there, not in a search. The tested
range is `TESTED_VERSIONS`, also the ``keras-tuner`` requirement in setup.cfg.
"""

from __future__ import annotations

import keras_tuner

#: KerasTuner versions kbnas is tested with (setup.cfg's requirement).
TESTED_VERSIONS = (">=1.4", "<1.5")

#: Hyperparameter classes (``keras_tuner.engine.hyperparameters``: KerasTuner's
#: legacy public path; 1.4 documents only ``keras_tuner.HyperParameters``).
hyperparameter_types = keras_tuner.engine.hyperparameters

#: (class, private method) pairs kbnas overrides.
OVERRIDDEN_METHODS = (
    (keras_tuner.Oracle, "_save_trial"),
    (keras_tuner.Oracle, "_check_consecutive_failures"),
    (keras_tuner.engine.base_tuner.BaseTuner, "_populate_initial_space"),
    (keras_tuner.engine.base_tuner.BaseTuner, "_run_and_update_trial"),
    (keras_tuner.Tuner, "_configure_tensorboard_dir"),
)



def tried_so_far(oracle) -> set[str]:
    """Hashes of every configuration the oracle has proposed (`values_hash`)."""
    return oracle._tried_so_far


def values_hash(oracle, values: dict) -> str:
    """KerasTuner's hash of a configuration (the key of `tried_so_far`)."""
    return oracle._compute_values_hash(values)


def retry_queue(oracle) -> list[str]:
    """Trial ids waiting to be trained again (KerasTuner pops from the end)."""
    return oracle._retry_queue


def set_retry_queue(oracle, trial_ids: list[str]) -> None:
    oracle._retry_queue = list(trial_ids)


def run_times(oracle) -> dict[str, int]:
    """Trial id -> how many times the trial ended (a defaultdict of 0; `Oracle.end_trial` adds 1)."""
    return oracle._run_times


def save_trial(oracle, trial) -> None:
    """Writes ``trial_<id>/trial.json`` (through any override, kbnas's atomic one)."""
    oracle._save_trial(trial)


def oracle_file(oracle) -> str:
    """Path of ``oracle.json``."""
    return oracle._get_oracle_fname()


def trial_dir(oracle, trial_id: str) -> str:
    """Directory ``trial_<id>`` of a trial (created if missing)."""
    return oracle._get_trial_dir(trial_id)


def project_dir(oracle) -> str:
    return oracle._project_dir


def set_project_dir(oracle, directory: str, project_name: str) -> None:
    """Where a tuner-less oracle writes its files (a Tuner does this itself)."""
    oracle._set_project_dir(directory, project_name)


def set_seed_state(oracle, seed: int) -> None:
    """KerasTuner's own random-draw counter, started at ``seed``."""
    oracle._seed_state = seed


def tuner_file(tuner) -> str:
    """Path of ``<tuner_id>.json``."""
    return tuner._get_tuner_fname()


def checkpoint_file(tuner, trial_id: str) -> str:
    """Path of a trial's weights (``checkpoint.weights.h5`` under Keras 3)."""
    return tuner._get_checkpoint_fname(trial_id)


def is_worker(tuner) -> bool:
    """Whether this tuner is a worker of KerasTuner's chief/worker tuning."""
    return tuner._is_worker()


def local_oracle(oracle):
    """The oracle itself, or on a worker the local copy inside its ``OracleClient``."""
    return getattr(oracle, "_oracle", oracle)


def register_tuner_ids(oracle, tuner_ids) -> None:
    """Tell the chief's oracle of workers before they first ask for a trial."""
    oracle.tuner_ids.update(tuner_ids)


def empty_metrics(trial):
    """A new, empty ``MetricsTracker`` of the trial's kind (no public name)."""
    return type(trial.metrics)()


def forget_metric(metrics_tracker, name: str) -> None:
    """Drops every observation of ``name`` from a trial's ``MetricsTracker``
    (its ``set_history`` only adds; the histories live in its ``metrics`` dict)."""
    metrics_tracker.metrics.pop(name, None)
