"""What a reloaded oracle restores: the saved search's objective when none is given,
and a warning when the constructor's settings differ from the saved ones; a saved search in another
architecture space: an error naming a trial outside the new one, else a warning."""

from __future__ import annotations

import json
import warnings

import keras_tuner
import numpy as np
import pytest

from kbnas import BayesianNAS, BayesianNASOracle, ConvNetHyperModel
from kbnas.configurations import architecture_hyperparameters
from kbnas.offline import run_oracle
from kbnas.space import Architecture, SearchSpace


def _oracle(tmp_path, **kwargs):
    hp = keras_tuner.HyperParameters()
    hp.Int("u", 0, 20)
    oracle = BayesianNASOracle(hyperparameters=hp, seed=2, max_trials=kwargs.pop("max_trials", 5), **kwargs)
    oracle._set_project_dir(str(tmp_path), "p")
    return oracle


def _searched(tmp_path):
    """A search whose objective was set after construction, as BayesianNAS does once it knows the task."""
    oracle = _oracle(tmp_path)
    oracle.objective = keras_tuner.Objective("val_accuracy", "max")
    for _ in range(3):
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id, {"val_accuracy": trial.hyperparameters.get("u") / 20}, step=0)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return oracle


def test_the_saved_objective_is_restored_when_none_is_given(tmp_path):
    searched = _searched(tmp_path)
    best = max(searched.trials.values(), key=lambda t: t.score)
    reloaded = _oracle(tmp_path)
    assert reloaded.objective.name != "val_accuracy"  # KerasTuner's default before the reload
    reloaded.reload()
    assert (reloaded.objective.name, reloaded.objective.direction) == ("val_accuracy", "max")
    assert reloaded.get_best_trials(1)[0].trial_id == best.trial_id
    reloaded.save()
    saved = json.loads((tmp_path / "p" / "oracle.json").read_text())["kbnas"]["objective"]
    assert saved == {"name": "val_accuracy", "direction": "max"}


def test_a_search_resumed_with_fewer_trials_than_it_ran_trains_no_interrupted_trial(tmp_path):
    searched = _searched(tmp_path)  # 3 completed
    interrupted = searched.create_trial("tuner0")  # running when the search was killed
    # Resumed with max_trials 3: 3 trials ended already, the interrupted one does not train again
    # (KerasTuner's retry queue comes before its max_trials check: it printed "trial 4/3").
    for max_trials in (2, 3):
        reloaded = _oracle(tmp_path, max_trials=max_trials)
        reloaded.reload()
        assert reloaded.create_trial("tuner0").status == "STOPPED"
        assert interrupted.trial_id not in [t.trial_id for t in reloaded.ongoing_trials.values()]
    # With room for it, it trains again.
    reloaded = _oracle(tmp_path, max_trials=4)
    reloaded.reload()
    again = reloaded.create_trial("tuner0")
    assert (again.trial_id, again.status) == (interrupted.trial_id, "RUNNING")


def test_retries_count_the_running_trials_and_the_time_budget(tmp_path):
    searched = _searched(tmp_path)  # 3 completed
    searched.create_trial("tuner0")
    searched.create_trial("tuner1")  # two workers' trials running when the search was killed
    # Resumed with room for one more trial: one retry, whoever asks; 4 trials end, not 5.
    reloaded = _oracle(tmp_path, max_trials=4)
    reloaded.reload()
    assert reloaded.create_trial("tuner0").status == "RUNNING"
    assert reloaded.create_trial("tuner1").status == "STOPPED"
    # Resumed after its time budget was spent: no retry either.
    spent = _oracle(tmp_path, max_trials=10, max_time=1.0)
    spent.reload()
    spent.search_seconds = lambda: 5.0
    assert spent.create_trial("tuner0").status == "STOPPED"


def test_a_given_objective_that_differs_is_kept_with_a_warning(tmp_path):
    _searched(tmp_path)
    reloaded = _oracle(tmp_path, objective=keras_tuner.Objective("val_loss", "min"))
    with pytest.warns(RuntimeWarning, match=r"saved search's objective is val_accuracy \(max\)"):
        reloaded.reload()
    assert reloaded.objective.name == "val_loss"


def test_changed_settings_are_named_in_a_warning(tmp_path):
    _searched(tmp_path)
    reloaded = _oracle(tmp_path, acquisition="ucb", kappa=3.0)
    with pytest.warns(RuntimeWarning, match=r"acquisition='ei' there, 'ucb' now, kappa=2.0 there, 3.0 now"):
        reloaded.reload()
    same = _oracle(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        same.reload()


@pytest.mark.parametrize(
    "missing, as_saved",
    [
        # Saved before judge_top_rung (2026-12-06): the top rung was judged, by ASHA.
        (("judge_top_rung", "rule", "top_trials"), {"judge_top_rung": True, "rule": "asha"}),
        # Saved before rule (2026-12-06, later): ASHA.
        (("rule", "top_trials"), {"rule": "asha"}),
    ],
)
def test_an_early_stopping_rule_saved_before_a_field_existed_reads_as_the_rule_it_was(tmp_path, missing, as_saved):
    from kbnas import EarlyStopping

    searched = _searched(tmp_path)
    assert searched.early_stopping == EarlyStopping()
    path = tmp_path / "p" / "oracle.json"
    state = json.loads(path.read_text())
    rule = state["kbnas"]["early_stopping"]
    for name in missing:
        del rule[name]
    path.write_text(json.dumps(state))
    saved = EarlyStopping(**{**EarlyStopping().to_config(), **as_saved})
    assert EarlyStopping.from_config(rule) == saved
    if saved != EarlyStopping():
        with pytest.warns(RuntimeWarning, match=r"the saved search was made with other settings \(early_stopping="):
            _oracle(tmp_path).reload()
    with warnings.catch_warnings():  # the same rule given: no warning
        warnings.simplefilter("error", RuntimeWarning)
        _oracle(tmp_path, early_stopping=saved).reload()


@pytest.mark.integration
def test_a_reloaded_tuner_ranks_by_the_saved_objective_before_search(tmp_path):
    """An unconfigured ConvNetHyperModel does not know its task until search();
    the reloaded tuner must still rank trials by val_accuracy (max)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=3, seed=0, directory=str(tmp_path),
                        project_name="p", max_time=None)
    tuner.search(x, y, validation_split=0.25, epochs=2, verbose=0)
    best_score = max(t.score for t in tuner.oracle.trials.values() if t.status == "COMPLETED")

    reloaded = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=3, seed=0, directory=str(tmp_path),
                           project_name="p", max_time=None)
    assert (reloaded.oracle.objective.name, reloaded.oracle.objective.direction) == ("val_accuracy", "max")
    top = reloaded.oracle.get_best_trials(len(reloaded.oracle.trials))
    assert max(t.score for t in top[:1]) == pytest.approx(best_score, abs=0.15)  # GP mean may rank a close one first
    assert top[-1].score == min(t.score for t in top)


def test_end_times_survive_a_reload_and_grow_with_the_search(tmp_path):
    searched = _searched(tmp_path)
    ended = [searched.trial_ended_at[t] for t in sorted(searched.trials)]
    assert len(ended) == 3 and ended == sorted(ended)
    assert 0.0 <= ended[-1] <= searched.search_seconds()
    reloaded = _oracle(tmp_path)
    reloaded.reload()
    assert reloaded.trial_ended_at == pytest.approx(searched.trial_ended_at)


def test_the_surrogate_leave_one_out_covers_every_completed_trial(tmp_path):
    oracle = _oracle(tmp_path, objective=keras_tuner.Objective("score", "max"))
    for _ in range(5):  # max_trials
        trial = oracle.create_trial("tuner0")
        u = trial.hyperparameters.get("u")
        oracle.update_trial(trial.trial_id, {"score": -((u - 12) ** 2)}, step=0)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    loo = oracle.surrogate_leave_one_out()
    assert set(loo) == set(oracle.trials)
    assert all(np.isfinite(r["mean"]) and r["std"] >= 0 for r in loo.values())
    scores = np.array([r["score"] for r in loo.values()])
    means = np.array([r["mean"] for r in loo.values()])
    # A smooth one-dimensional objective: the left-out predictions rank the trials.
    from scipy.stats import spearmanr

    assert spearmanr(scores, means).statistic > 0.5
    assert _oracle(tmp_path / "empty").surrogate_leave_one_out() == {}


def test_a_kill_between_the_trial_file_and_the_oracle_file_loses_nothing(tmp_path, monkeypatch):
    """KerasTuner's end_trial writes trial.json, then oracle.json: a kill between the two
    leaves a COMPLETED trial that oracle.json lists as running. The reload neither
    trains it again nor forgets that it ended (one run, in end_order), and kbnas's
    record of it (seconds, learning curve) is there."""
    oracle = _searched(tmp_path)
    last = oracle.create_trial("tuner0")
    oracle.save()  # oracle.json: `last` is running
    oracle.update_trial(last.trial_id, {"val_accuracy": 0.5}, step=0)
    last.status = "COMPLETED"
    real_save, real_save_trial = oracle.save, oracle._save_trial
    written = []

    def save_trial(trial):  # trial.json of the ended trial: the kill comes right after
        real_save_trial(trial)
        if trial.trial_id == last.trial_id and trial.status == "COMPLETED":
            written.append(trial.trial_id)

    monkeypatch.setattr(oracle, "_save_trial", save_trial)
    monkeypatch.setattr(oracle, "save", lambda: None if written else real_save())
    oracle.end_trial(last)
    assert written
    saved = json.loads((tmp_path / "p" / "oracle.json").read_text())
    assert last.trial_id in saved["ongoing_trials"].values()

    reloaded = _oracle(tmp_path)
    reloaded.reload()
    assert reloaded.trials[last.trial_id].status == "COMPLETED"
    assert reloaded.trials[last.trial_id].score == 0.5
    assert reloaded._run_times[last.trial_id] == 1
    assert reloaded.end_order[-1] == last.trial_id and len(reloaded.end_order) == 4
    # kbnas's own record of the trial was saved before trial.json.
    assert last.trial_id in reloaded.trial_seconds
    assert reloaded.learning_curves[last.trial_id] == oracle.learning_curves[last.trial_id]
    following = reloaded.create_trial("tuner0")
    assert following.trial_id not in reloaded.end_order  # a new trial, not `last` again


def test_a_kill_between_a_new_trial_file_and_the_oracle_file_retries_the_trial(tmp_path, monkeypatch):
    """KerasTuner's create_trial writes trial.json (RUNNING), then oracle.json: a kill
    between the two leaves a running trial oracle.json does not know. The reload
    retries it, so the search still ends with max_trials completed trials (before,
    the orphan counted towards max_trials and never ran: 4 of 5 completed)."""
    oracle = _searched(tmp_path)  # 3 completed of max_trials=5
    real_save, real_save_trial = oracle.save, oracle._save_trial
    written = []

    def save_trial(trial):
        real_save_trial(trial)
        if trial.status == "RUNNING":
            written.append(trial.trial_id)

    monkeypatch.setattr(oracle, "_save_trial", save_trial)
    monkeypatch.setattr(oracle, "save", lambda: None if written else real_save())
    orphan = oracle.create_trial("tuner0")
    assert written == [orphan.trial_id]
    saved = json.loads((tmp_path / "p" / "oracle.json").read_text())
    assert orphan.trial_id not in saved["ongoing_trials"].values()

    reloaded = _oracle(tmp_path)
    reloaded.reload()
    while True:
        trial = reloaded.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        reloaded.update_trial(trial.trial_id, {"val_accuracy": 0.1}, step=0)
        trial.status = "COMPLETED"
        reloaded.end_trial(trial)
    statuses = {trial_id: t.status for trial_id, t in reloaded.trials.items()}
    assert statuses[orphan.trial_id] == "COMPLETED"
    assert sorted(statuses.values()) == ["COMPLETED"] * 5, statuses


# ---------------------------------------------------------------- another architecture space
def _architecture_search(tmp_path, space, trials=3):
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), max_trials=trials, seed=0,
                               hyperparameters=architecture_hyperparameters(space), search_space=space)
    run_oracle(oracle, lambda values: len(values["architecture"]), trials, directory=str(tmp_path))
    return oracle


def _space(**settings):
    return SearchSpace(input_shape=(8, 8, 1), vocabulary=("conv3", "relu", "maxpool", "dense"),
                       **{"filters": (8, 16), "units": (16,), "max_depth": 4, **settings})


def _reopened(tmp_path, space):
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), max_trials=6, seed=0,
                               hyperparameters=architecture_hyperparameters(space), search_space=space)
    oracle._set_project_dir(str(tmp_path), "offline")
    return oracle


def test_a_saved_search_in_another_space_names_a_trial_outside_this_one(tmp_path):
    searched = _architecture_search(tmp_path, _space())
    smaller = _space(max_depth=1, filters=(8,))
    outside = [t for t in searched.trials.values()
               if not smaller.is_valid(Architecture.decode(t.hyperparameters.values["architecture"]))]
    assert outside  # the saved trials hold deeper or wider architectures
    # Reopened with the constructor's space (oracle.set_state) …
    with pytest.raises(ValueError, match=r"has another architecture space \(filters \[8, 16\] there, \[8\] now; "
                                         r"max_depth 4 there, 1 now\), and \d of its 3 trials lie outside this one "
                                         r"\(trial \d+: invalid architecture"):
        _reopened(tmp_path, _space(max_depth=1, filters=(8,))).reload()
    # … or given the space after the reload (BayesianNAS.prepare_search's set_search_space).
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), max_trials=6, seed=0)
    oracle._set_project_dir(str(tmp_path), "offline")
    oracle.reload()
    assert oracle.search_space == _space()  # the saved one
    with pytest.raises(ValueError, match="overwrite=True or another project_name"):
        oracle.set_search_space(_space(max_depth=1, filters=(8,)))
    assert oracle.search_space == _space()


def test_a_saved_search_resumed_in_a_larger_space_warns_and_goes_on(tmp_path):
    _architecture_search(tmp_path, _space())
    larger = _space(max_depth=6, filters=(8, 16, 32))
    with pytest.warns(RuntimeWarning, match=r"another \(filters \[8, 16\] there, \[8, 16, 32\] now; max_depth 4 "
                                            r"there, 6 now\); its 3 trials all lie in this one"):
        oracle = _reopened(tmp_path, larger)
        oracle.reload()
    assert oracle.search_space == larger
    trial = oracle.create_trial("tuner0")
    assert larger.is_valid(Architecture.decode(trial.hyperparameters.values["architecture"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _reopened(tmp_path, larger).set_search_space(larger)  # no trials: nothing to say
