"""Numeric faults, through KerasTuner's protocol: a NaN objective, constant scores,
identical configurations with different scores, and a failing Cholesky
factorization each end in a fallback with a warning, never a crash or a hang."""

from __future__ import annotations

import math
import warnings

import keras_tuner
import numpy as np
import pytest

from kbnas import BayesianNASOracle

N_TRIALS = 12


def _oracle(tmp_path, **kwargs):
    hp = keras_tuner.HyperParameters()
    hp.Int("u", 0, 40)
    hp.Choice("c", ["a", "b", "c"])
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), hyperparameters=hp, seed=5,
                               max_trials=N_TRIALS, **kwargs)
    oracle._set_project_dir(str(tmp_path), "p")
    return oracle


def _smooth(values) -> float:
    return -((values["u"] - 27) / 10.0) ** 2 + (0.3 if values["c"] == "b" else 0.0)


def _run(oracle, objective, *, values_of=None):
    """KerasTuner's loop: create_trial, update_trial, end_trial, until the oracle stops."""
    ended = []
    for _ in range(N_TRIALS + 2):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        if values_of is not None:
            values_of(trial, ended)
        oracle.update_trial(trial.trial_id, {"score": objective(trial.hyperparameters.values, len(ended))}, step=0)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        ended.append(trial)
    return ended


def _gp_methods(oracle):
    return [info["method"] for info in oracle.proposal_log.values()]


def test_a_nan_objective_is_a_failure_with_a_warning_and_the_gp_still_proposes(tmp_path):
    oracle = _oracle(tmp_path)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        ended = _run(oracle, lambda values, i: math.nan if i % 3 == 1 else _smooth(values))
    assert len(ended) == N_TRIALS
    assert any(method.startswith("gp") for method in _gp_methods(oracle))
    best = oracle.get_best_trials(1)[0]
    assert np.isfinite(best.score)
    assert {t.status for t in ended if not np.isfinite(t.score)} == {"FAILED"}


def test_a_trial_that_never_reports_the_objective_fails_without_holding_the_lock(tmp_path):
    """KerasTuner raises for a missing metric inside end_trial, under its lock."""
    import threading

    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    with pytest.warns(RuntimeWarning, match="report of trial 00 ignored"):
        oracle.update_trial(trial.trial_id, {"other": 1.0}, step=0)
    trial.status = "COMPLETED"
    with pytest.warns(RuntimeWarning, match="missing objective"):
        oracle.end_trial(trial)
    assert oracle.trials[trial.trial_id].status == "FAILED"
    other = threading.Thread(target=lambda: oracle.create_trial("tuner1"))
    other.start()
    other.join(timeout=10)
    assert not other.is_alive()


def test_constant_scores_fall_back_to_space_filling_draws_with_a_warning(tmp_path):
    oracle = _oracle(tmp_path)
    with pytest.warns(RuntimeWarning, match="all completed trials have the same score"):
        ended = _run(oracle, lambda values, i: 0.5)
    assert len(ended) == N_TRIALS
    keys = {tuple(sorted(t.hyperparameters.values.items())) for t in ended}
    assert len(keys) == N_TRIALS  # still distinct configurations
    assert "random (constant scores)" in _gp_methods(oracle)
    assert oracle.get_best_trials(1)[0].score == 0.5


def test_identical_configurations_with_different_scores_are_averaged_by_the_noise(tmp_path):
    """The tuner trains one configuration twice (a retry, a user's duplicate start point)
    and gets two scores: the GP must fit both (noise), not fail on a singular kernel."""
    oracle = _oracle(tmp_path)

    def duplicate_the_first(trial, ended):
        if len(ended) in (6, 7):  # two repeats of trial 0's values
            trial.hyperparameters.values.update(ended[0].hyperparameters.values)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback needed: the GP copes
        ended = _run(oracle, lambda values, i: _smooth(values) + 0.05 * i, values_of=duplicate_the_first)
    assert len(ended) == N_TRIALS
    assert any(method.startswith("gp") for method in _gp_methods(oracle))


def test_a_failing_cholesky_falls_back_to_random_with_a_warning(tmp_path, monkeypatch):
    import kbnas.core.gp as gp_module

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("matrix is not positive definite")

    monkeypatch.setattr(gp_module, "robust_cholesky", broken)
    oracle = _oracle(tmp_path)
    with pytest.warns(RuntimeWarning, match="falling back to a random configuration"):
        ended = _run(oracle, lambda values, i: _smooth(values))
    assert len(ended) == N_TRIALS
    assert "random (GP failed)" in _gp_methods(oracle)
    # The recommendation falls back to the observed best score.
    with pytest.warns(RuntimeWarning, match="ranking them by score"):
        best = oracle.get_best_trials(1)[0]
    assert best.score == max(t.score for t in ended)


def test_thompson_sampling_keeps_only_tried_architectures_in_the_distance_cache(tmp_path):
    """Issue 12, defect 3: every Thompson pool member used to stay in the cache
    (4,685 architectures after 40 trials)."""
    from kbnas.configurations import architecture_hyperparameters
    from kbnas.space import SearchSpace

    space = SearchSpace(input_shape=(8, 8, 1), max_depth=5)
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), search_space=space,
                               hyperparameters=architecture_hyperparameters(space),
                               acquisition="thompson", seed=1, max_trials=14)
    oracle._set_project_dir(str(tmp_path), "p")
    for _ in range(14):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        depth = trial.hyperparameters.get("architecture").count("|") + 1
        oracle.update_trial(trial.trial_id, {"score": -abs(depth - 3)}, step=0)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert any(info["method"].startswith("gp") for info in oracle.proposal_log.values())
    assert len(oracle.featurizer) <= len(oracle.trials)


def _lock_released(oracle) -> bool:
    """Whether another thread can call create_trial (KerasTuner's lock is free)."""
    import threading

    other = threading.Thread(target=lambda: oracle.create_trial("tuner1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        other.start()
        other.join(timeout=10)
    return not other.is_alive()


def test_an_error_anywhere_in_a_proposal_stops_the_search_and_releases_the_lock(tmp_path, monkeypatch):
    """Issue 12, defect 6: KerasTuner's lock is released only when populate_space returns."""
    oracle = _oracle(tmp_path)
    monkeypatch.setattr(oracle, "out_of_time", lambda: 1 / 0)  # before the old try block
    with pytest.warns(RuntimeWarning, match="proposing trial .* failed .*ZeroDivisionError"):
        assert oracle.create_trial("tuner0").status == "STOPPED"
    assert _lock_released(oracle)


def test_an_error_while_deciding_a_retry_stops_the_search_and_releases_the_lock(tmp_path, monkeypatch):
    """KerasTuner hands out its retries before populate_space: kbnas's check of them runs
    under the lock too."""
    from kbnas import keras_tuner_internals as kt_internals

    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    trial.status = "INVALID"  # a run that crashed: KerasTuner would retry it
    oracle.ongoing_trials.pop("tuner0")
    kt_internals.set_retry_queue(oracle, [trial.trial_id])
    monkeypatch.setattr(oracle, "out_of_time", lambda: 1 / 0)
    with pytest.warns(RuntimeWarning, match="deciding whether to retry a trial failed .*ZeroDivisionError"):
        assert oracle.create_trial("tuner0").status == "STOPPED"
    assert _lock_released(oracle)


def test_the_recommendation_waits_for_a_proposal_in_progress(tmp_path, monkeypatch):
    """get_best_trials (called without KerasTuner's lock) shares caches with proposals."""
    import threading
    import time

    oracle = _oracle(tmp_path)
    _run(oracle, lambda values, i: _smooth(values))  # N_TRIALS done; the next proposal is GP-made
    oracle.max_trials = N_TRIALS + 1
    proposing, release = threading.Event(), threading.Event()
    real = oracle._propose

    def slow(*args, **kwargs):
        proposing.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(oracle, "_propose", slow)
    creator = threading.Thread(target=lambda: oracle.create_trial("tuner0"))
    creator.start()
    assert proposing.wait(10)
    done = []
    reader = threading.Thread(target=lambda: done.append(oracle.get_best_trials(1)))
    reader.start()
    time.sleep(0.3)
    assert not done  # blocked behind the proposal
    release.set()
    creator.join(10)
    reader.join(10)
    assert done and done[0][0].status == "COMPLETED"


def test_failed_trials_steer_proposals_away_from_failing_architectures(tmp_path):
    """Issue 12, defect 9: FAILED trials used to be left out of the GP, so it kept
    proposing neighbours of failing models (here: every architecture with a conv3).
    Measured over seeds 0-2 (30 trials each): 22 of 58 GP proposals failed before,
    4 of 58 with failures at the worst observed score."""
    from kbnas.configurations import architecture_hyperparameters
    from kbnas.space import SearchSpace

    space = SearchSpace(input_shape=(8, 8, 1), max_depth=4)
    failed = proposed = 0
    for seed in range(3):
        oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), search_space=space,
                                   hyperparameters=architecture_hyperparameters(space), seed=seed,
                                   max_trials=30, max_consecutive_failed_trials=100)
        oracle._set_project_dir(str(tmp_path / str(seed)), "p")
        oracle.verbose = 0
        for _ in range(30):
            trial = oracle.create_trial("tuner0")
            architecture = trial.hyperparameters.get("architecture")
            by_gp = oracle.proposal_log[trial.trial_id]["method"].startswith("gp")
            proposed += by_gp
            if "conv3" in architecture:
                failed += by_gp
                trial.status = "FAILED"
            else:
                depth = architecture.count("|") + 1
                score = -abs(depth - 3) + 0.5 * ("relu" in architecture) + 0.3 * ("dense" in architecture)
                oracle.update_trial(trial.trial_id, {"score": score}, step=0)
                trial.status = "COMPLETED"
            oracle.end_trial(trial)
    assert proposed >= 40
    assert failed / proposed < 0.2, (failed, proposed)


def test_max_model_size_becomes_the_spaces_max_params(tmp_path):
    from kbnas import BayesianNAS, ConvNetHyperModel
    from kbnas.space import SearchSpace

    hypermodel = ConvNetHyperModel(max_depth=3)
    BayesianNAS(hypermodel, max_model_size=5000, max_trials=2, directory=str(tmp_path), project_name="a")
    assert hypermodel.space_settings["max_params"] == 5000
    space = SearchSpace(input_shape=(8, 8, 1), num_outputs=3, max_depth=3, max_params=100_000)
    tuner = BayesianNAS(ConvNetHyperModel(space, task="multiclass", num_classes=3), max_model_size=5000,
                        max_trials=2, directory=str(tmp_path), project_name="b")
    rng = np.random.default_rng(0)
    tuner.prepare_search(rng.normal(size=(30, 8, 8, 1)), rng.integers(0, 3, 30), epochs=1)  # what search() does first
    limited = tuner.oracle.search_space
    assert limited.max_params == 5000
    assert all(limited.param_count(a) <= 5000 for a in limited.sample_many(50, rng=0))
