"""The oracle when workers die and trials fail, through KerasTuner's protocol:
a trial handed back to a restarted worker, and the consecutive-failure limit."""

from __future__ import annotations

import threading

import keras_tuner
import pytest

from kbnas import BayesianNASOracle, EarlyStopping


def _oracle(tmp_path, **kwargs):
    hp = keras_tuner.HyperParameters()
    hp.Choice("c", list(range(20)))
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), hyperparameters=hp, seed=1,
                               max_trials=kwargs.pop("max_trials", 20), **kwargs)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.verbose = 0
    return oracle


def _finish(oracle, trial, curve):
    for step, value in enumerate(curve):
        oracle.update_trial(trial.trial_id, {"score": value}, step=step)
    trial.status = "COMPLETED"
    oracle.end_trial(trial)


@pytest.mark.parametrize("rule", [{"rule": "asha"}, {"rule": "best_curves", "top_trials": 1}])
def test_a_dead_workers_stopped_trial_comes_back_running_and_trains_afresh(tmp_path, rule):
    oracle = _oracle(tmp_path, early_stopping=EarlyStopping(min_epochs=2, reduction_factor=2, min_peers=1, **rule))
    _finish(oracle, oracle.create_trial("w1"), [0.8, 0.9, 0.9, 0.9])
    trial = oracle.create_trial("w2")
    statuses = [oracle.update_trial(trial.trial_id, {"score": v}, step=s).status for s, v in enumerate([0.1, 0.1])]
    assert statuses == ["RUNNING", "STOPPED"]
    # Worker w2 dies before it ends the trial; restarted under the same id, it asks again.
    again = oracle.create_trial("w2")
    assert again.trial_id == trial.trial_id
    assert again.status == "RUNNING"  # KerasTuner would hand back "STOPPED": the worker would exit
    assert not again.metrics.exists("score")  # the killed run's reports are gone
    assert trial.trial_id not in oracle.learning_curves and trial.trial_id not in oracle.stopped_early
    _finish(oracle, again, [0.5, 0.7, 0.95, 0.97])
    finished = oracle.trials[trial.trial_id]
    assert finished.status == "COMPLETED" and finished.score == pytest.approx(0.97)
    assert len(finished.metrics.get_history("score")) == 4
    assert not oracle.ongoing_trials


def test_a_retried_trial_does_not_average_its_old_reports(tmp_path):
    oracle = _oracle(tmp_path, early_stopping=None)
    trial = oracle.create_trial("w1")
    oracle.update_trial(trial.trial_id, {"score": 0.2}, step=0)
    oracle.save()
    # The search is killed; the reloaded oracle retries the running trial.
    reloaded = _oracle(tmp_path, early_stopping=None)
    reloaded.reload()
    again = reloaded.create_trial("w1")
    assert again.trial_id == trial.trial_id
    _finish(reloaded, again, [0.6])
    assert reloaded.trials[trial.trial_id].score == pytest.approx(0.6)  # not mean(0.2, 0.6)


def test_the_consecutive_failure_limit_stops_proposals_without_holding_the_lock(tmp_path):
    oracle = _oracle(tmp_path, max_consecutive_failed_trials=2)
    for tuner_id in ("w1", "w2"):
        trial = oracle.create_trial(tuner_id)
        trial.status = "FAILED"
        trial.message = "out of memory"
        oracle.end_trial(trial)  # KerasTuner raises here, under its lock
    assert oracle.failure_limit.startswith("Number of consecutive failures exceeded the limit of 2")
    assert not oracle.ongoing_trials
    assert all(t.status == "FAILED" for t in oracle.trials.values())
    # Another thread (another worker's request) gets an answer: the lock was released.
    answers = []
    other = threading.Thread(target=lambda: answers.append(oracle.create_trial("w3").status))
    other.start()
    other.join(10)
    assert answers == ["STOPPED"]


def _fail(oracle, tuner_id):
    trial = oracle.create_trial(tuner_id)
    trial.status = "FAILED"
    trial.message = "bad data"
    oracle.end_trial(trial)
    return trial


def test_failures_of_an_earlier_run_do_not_stop_the_resumed_search(tmp_path):
    oracle = _oracle(tmp_path, max_consecutive_failed_trials=2)
    _finish(oracle, oracle.create_trial("w1"), [0.5])
    _fail(oracle, "w1")
    _fail(oracle, "w1")
    assert oracle.failure_limit is not None  # the first run stopped there
    # The mistake is fixed and the search resumed: the run of two failures is history.
    resumed = _oracle(tmp_path, max_consecutive_failed_trials=2)
    resumed.reload()
    assert resumed.failure_limit is None
    for _ in range(3):
        _finish(resumed, resumed.create_trial("w1"), [0.6])
        assert resumed.failure_limit is None  # KerasTuner 1.4's count stopped it here
    _fail(resumed, "w1")
    assert resumed.failure_limit is None  # one failure in a row
    _finish(resumed, resumed.create_trial("w1"), [0.7])
    _fail(resumed, "w1")
    assert resumed.failure_limit is None  # the completed trial ended the run
    last = _fail(resumed, "w1")
    assert resumed.failure_limit == "Number of consecutive failures exceeded the limit of 2.\nbad data"
    assert resumed.trials[last.trial_id].status == "FAILED"
    assert resumed.create_trial("w1").status == "STOPPED"


def test_no_failure_limit_as_in_keras_tuner(tmp_path):
    oracle = _oracle(tmp_path, max_consecutive_failed_trials=None)
    for _ in range(4):
        _fail(oracle, "w1")
    assert oracle.failure_limit is None and not oracle.ongoing_trials
    assert oracle.create_trial("w1").status == "RUNNING"


@pytest.mark.integration
def test_a_search_whose_trials_all_fail_still_raises_keras_tuners_error(tmp_path):
    import keras

    from kbnas import BayesianNAS

    class FailingFit(keras_tuner.HyperModel):
        def build(self, hp):
            hp.Choice("c", [1, 2, 3])
            return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

        def fit(self, hp, model, *args, **kwargs):
            raise ValueError("cannot train")

    tuner = BayesianNAS(FailingFit(), objective="val_loss", max_trials=5, max_consecutive_failed_trials=2,
                        directory=str(tmp_path), seed=0)
    with pytest.raises(RuntimeError, match="Number of consecutive failures exceeded the limit of 2"):
        tuner.search([[0.0]], [[0.0]], epochs=1, verbose=0)
    assert len(tuner.oracle.trials) == 2


def test_a_trial_handed_back_to_a_restarted_worker_is_timed_from_its_new_start(tmp_path, monkeypatch):
    """The time budget's median trial length must not count the dead run."""
    import time
    import types

    import kbnas.oracle

    now = [1000.0]
    fake_time = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    fake_time.monotonic = lambda: now[0]
    monkeypatch.setattr(kbnas.oracle, "time", fake_time)
    oracle = _oracle(tmp_path, early_stopping=None)
    trial = oracle.create_trial("w1")
    now[0] += 50.0  # the worker trains, is killed, and is started again
    again = oracle.create_trial("w1")
    assert again.trial_id == trial.trial_id
    now[0] += 3.0
    _finish(oracle, again, [0.5])
    assert oracle.trial_seconds[trial.trial_id] == pytest.approx(3.0)


def test_a_finished_search_tells_late_workers_to_stop(tmp_path):
    """Workers of other hosts may ask after the chief's own are done: during the
    export no trial starts, and the search clock stays stopped."""
    oracle = _oracle(tmp_path, early_stopping=None)
    oracle.tuner_ids.update({"a-w1", "b-w1", "c-w1"})
    _finish(oracle, oracle.create_trial("a-w1"), [0.5])
    running = oracle.create_trial("c-w1")  # on another host, still training
    oracle.finished = True
    # Its worker dies and is restarted: it gets its trial back (the chief waits for it).
    assert oracle.create_trial("c-w1").trial_id == running.trial_id
    _finish(oracle, running, [0.6])
    oracle.finish_search()
    seconds = oracle.search_seconds()
    late = oracle.create_trial("b-w1")
    assert late.status == "STOPPED" and len(oracle.trials) == 2 and not oracle.ongoing_trials
    assert "b-w1" not in oracle.tuner_ids
    assert oracle.search_seconds() == seconds  # the clock did not start again
    oracle.finished = False  # the same tuner searches again
    assert oracle.create_trial("b-w1").status == "RUNNING" and len(oracle.trials) == 3
