"""Early stopping through KerasTuner's protocol, with synthetic learning curves.

A driver plays a tuner: create_trial → update_trial(metrics, step=epoch) for each
epoch until the returned trial is "STOPPED" → end_trial.
"""

from __future__ import annotations

import math

import keras_tuner
import numpy as np
import pytest

from kbnas import BayesianNASOracle, EarlyStopping

EPOCHS = 30


def _oracle(tmp_path, hp, *, name="p", seed=1, **kwargs):
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), hyperparameters=hp,
                               seed=seed, max_trials=kwargs.pop("max_trials", 60), **kwargs)
    oracle._set_project_dir(str(tmp_path), name)
    oracle.verbose = 0
    return oracle


def _drive(oracle, curve_of, n_trials, *, executions=1, hand_back_stopped=False, later_curve=None):
    """Runs trials; returns {trial_id: epochs reported in the first execution}.

    ``later_curve``: the curve of executions after the first (default: the same).
    """
    epochs = {}
    for _ in range(n_trials):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        curve = curve_of(trial.hyperparameters.values)
        stopped = False
        for execution in range(executions):
            run = curve if execution == 0 or later_curve is None else later_curve
            for step, value in enumerate(run):
                if stopped and step > 0:
                    break
                reported = oracle.update_trial(trial.trial_id, {"score": value}, step=step)
                if execution == 0:
                    epochs[trial.trial_id] = step + 1
                if reported.status == "STOPPED":
                    stopped = True
                    break
        trial.status = "STOPPED" if (stopped and hand_back_stopped) else "COMPLETED"
        oracle.end_trial(trial)
    return epochs


#: The two rules, in the forms the scenarios below share: ASHA, and the best
#: curves with b = 1 (the single best finished curve), which stop the same trials there.
RULES = {"asha": {"rule": "asha"}, "best_curves": {"rule": "best_curves", "top_trials": 1}}


def _choice(n):
    """n unrelated configurations (ids, not an ordered quantity: ordered=False)."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("c", list(range(n)), ordered=False)
    return hp


def crossing_curves(n=12, slow=7):
    """Config ``slow`` starts slower than three fast starters, which plateau at 0.85,
    and ends best (0.95); the other eight rise like it but end at 0.55-0.75.

    At the first rung (epoch 3) the slow starter is fourth, far behind the fast
    ones (0.50 against 0.81): a rule that stops every trial behind the best curve
    at the same epoch cuts it; successive halving keeps it in most arrival orders.
    """
    finals = np.linspace(0.55, 0.75, n)
    taus = np.full(n, 3.0)
    for fast in (0, 1, 2):
        finals[fast], taus[fast] = 0.85, 1.0
    finals[slow], taus[slow] = 0.95, 4.0
    e = np.arange(1, EPOCHS + 1)
    return {c: list(finals[c] * (1 - np.exp(-e / taus[c]))) for c in range(n)}


def test_hopeless_trials_stop_at_a_rung_and_end_completed(tmp_path):
    curves = crossing_curves()
    oracle = _oracle(tmp_path, _choice(12), early_stopping=EarlyStopping(min_epochs=3, reduction_factor=3, min_peers=3))
    epochs = _drive(oracle, lambda v: curves[v["c"]], 12)
    assert len(epochs) == 12
    stopped = oracle.stopped_early
    assert stopped, "some trial must be stopped"
    for trial_id, info in stopped.items():
        assert epochs[trial_id] == info["epochs"] == info["rung"]  # training stopped at the rung
        trial = oracle.trials[trial_id]
        assert trial.status == "COMPLETED"
        assert trial.score == pytest.approx(max(curves[trial.hyperparameters.values["c"]][: info["epochs"]]))
        assert info["peers"] >= 3
    # The first three reached every rung untouched (min_peers).
    first = sorted(oracle.trials)[:3]
    assert not set(first) & set(stopped)
    assert all(epochs[t] == EPOCHS for t in epochs if t not in stopped)
    assert sum(epochs.values()) < 12 * EPOCHS


def test_best_curves_stops_a_trial_below_every_best_curve_and_keeps_one_above(tmp_path):
    # Five trials train fully (min_peers=5 protects them); the best three finals
    # are 0.9, 0.85, 0.8 with epoch-3 values 0.6, 0.5, 0.4. The quantile of the
    # rung would cut config 6 (0.45 at epoch 3: fifth of seven, outside the top
    # ⌈7/3⌉ = 3); against the best curves it continues (0.45 ≥ 0.4), while
    # config 5 (0.35, below all three) stops at epoch 3.
    finals = {0: 0.9, 1: 0.85, 2: 0.8, 3: 0.7, 4: 0.6, 5: 0.95, 6: 0.95}
    at3 = {0: 0.6, 1: 0.5, 2: 0.4, 3: 0.7, 4: 0.65, 5: 0.35, 6: 0.45}

    def curve_of(values):
        c = values["c"]
        return [at3[c] * e / 3 if e <= 3 else at3[c] + (finals[c] - at3[c]) * (e - 3) / (EPOCHS - 3)
                for e in range(1, EPOCHS + 1)]

    oracle = _oracle(tmp_path, _choice(7), num_initial_points=7, templates=False,
                     initial_points=[{"c": c} for c in range(7)],
                     early_stopping=EarlyStopping(rule="best_curves", top_trials=3, min_peers=5))
    epochs = _drive(oracle, curve_of, 7)
    by_config = {oracle.trials[t].hyperparameters.values["c"]: n for t, n in epochs.items()}
    assert by_config == {0: EPOCHS, 1: EPOCHS, 2: EPOCHS, 3: EPOCHS, 4: EPOCHS, 5: 3, 6: EPOCHS}
    (stopped,) = oracle.stopped_early.values()
    assert stopped["rung"] == 3 and stopped["value"] == pytest.approx(0.35)
    # The same trials under "asha" (the rung's top third): config 6 is cut too.
    asha = _oracle(tmp_path, _choice(7), name="asha", num_initial_points=7, templates=False,
                   initial_points=[{"c": c} for c in range(7)],
                   early_stopping=EarlyStopping(rule="asha", min_peers=5))
    epochs = _drive(asha, curve_of, 7)
    assert {asha.trials[t].hyperparameters.values["c"]: n for t, n in epochs.items()}[6] == 3


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("judge_top_rung", [False, True])
def test_the_top_rung_is_judged_only_with_judge_top_rung(tmp_path, judge_top_rung, rule):
    # Trials c = 0, 1, ... in order: each is better than every earlier one over its
    # first 26 epochs and worse from epoch 27 on, where only the top rung (27 of 30)
    # can catch it.
    n = 6
    hp = _choice(n)

    def curve(values):
        c = values["c"]
        return [0.5 + 0.01 * c if e < 26 else 0.9 - 0.01 * c for e in range(EPOCHS)]

    oracle = _oracle(tmp_path, hp, name=f"top{judge_top_rung}", initial_points=[{"c": c} for c in range(n)],
                     num_initial_points=n,
                     early_stopping=EarlyStopping(min_peers=2, judge_top_rung=judge_top_rung, **RULES[rule]))
    epochs = _drive(oracle, curve, n)
    stops = {info["rung"] for info in oracle.stopped_early.values()}
    if judge_top_rung:
        assert stops == {27}  # c = 2..5 are outside the top third at epoch 27 (min_peers 2)
        assert sorted(epochs.values()) == [27, 27, 27, 27, 30, 30]
    else:
        assert not oracle.stopped_early  # better than the rest at 3 and 9; 27 is the top rung
        assert all(e == EPOCHS for e in epochs.values())
        assert set(oracle.rung_values) == {"3", "9", "27"}  # the top rung is still recorded


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_recipes_epochs_not_the_longest_training_seen_decide_the_top_rung(tmp_path, rule):
    # Every training ends at epoch 20 (as the recipe's patience might), of a recipe of
    # 30 epochs. Seen alone, E = 20 makes 9 the top rung (27 > 20): only rung 3 is
    # judged. Told E = 30, rung 9 is judged too. Curves: c = 0, 1, ... in order, each
    # better than every earlier one over its first 8 epochs and worse from epoch 9 on.
    n = 6

    def curve(values):
        c = values["c"]
        return [0.5 + 0.01 * c if e < 8 else 0.9 - 0.01 * c for e in range(20)]

    stops = {}
    for told in (None, 30):
        oracle = _oracle(tmp_path, _choice(n), name=f"told{told}", initial_points=[{"c": c} for c in range(n)],
                         num_initial_points=n, early_stopping=EarlyStopping(min_peers=2, **RULES[rule]))
        oracle.training_epochs = told
        _drive(oracle, curve, n)
        stops[told] = sorted(info["rung"] for info in oracle.stopped_early.values())
    assert stops == {None: [], 30: [9, 9, 9, 9]}


def test_the_tuner_tells_the_oracle_the_recipes_epochs(tmp_path):
    import numpy as np

    from kbnas import BayesianNAS, ConvNetHyperModel

    tuner = BayesianNAS(ConvNetHyperModel(max_depth=2), max_trials=1, directory=str(tmp_path), project_name="e")
    x, y = np.zeros((20, 8, 8, 1), "float32"), np.arange(20) % 2
    tuner.prepare_search(x, y, validation_data=(x, y), epochs=7)
    assert tuner.oracle.training_epochs == 7
    tuner.prepare_search(x, y, validation_data=(x, y))  # Keras's default: nothing said
    assert tuner.oracle.training_epochs == 7


@pytest.mark.parametrize("rule", ["asha", "best_curves"])
def test_crossing_curves_a_slow_starter_that_ends_best_is_found_in_most_seeds(tmp_path, rule):
    curves = crossing_curves()
    found = 0
    for seed in range(10):
        oracle = _oracle(tmp_path, _choice(12), name=f"s{seed}", seed=seed + 1,
                         early_stopping=EarlyStopping(rule=rule))
        _drive(oracle, lambda v: curves[v["c"]], 12)
        best = oracle.get_best_trials(1)[0]
        found += best.hyperparameters.values["c"] == 7 and not oracle.is_stopped_early(best.trial_id)
    assert found >= 7, found


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_stopped_trial_ranks_after_every_fully_trained_one(tmp_path, rule):
    hp = _choice(3)
    flat = {0: [0.5] * EPOCHS, 1: [0.9] * EPOCHS, 2: [0.8] * EPOCHS}
    oracle = _oracle(tmp_path, hp, recommendation="observed",
                     early_stopping=EarlyStopping(min_epochs=3, reduction_factor=3, min_peers=2, **RULES[rule]),
                     initial_points=[{"c": 0}, {"c": 1}, {"c": 2}], num_initial_points=3)
    _drive(oracle, lambda v: flat[v["c"]], 3)
    by_c = {t.hyperparameters.values["c"]: t for t in oracle.trials.values()}
    assert oracle.is_stopped_early(by_c[2].trial_id)  # 0.8 < 0.9: outside the top ⌈3/3⌉
    assert by_c[2].score == pytest.approx(0.8)
    assert by_c[2].score > by_c[0].score
    ranked = [t.hyperparameters.values["c"] for t in oracle.get_best_trials(3)]
    assert ranked == [1, 0, 2]


def test_the_gp_sees_stopped_trials_at_their_fidelity(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)

    def curve(values):
        final = 1 - (values["x"] - 0.7) ** 2
        return [final * (1 - math.exp(-(e + 1) / 5)) for e in range(EPOCHS)]

    oracle = _oracle(tmp_path, hp, num_initial_points=4)
    epochs = _drive(oracle, curve, 30)
    assert oracle.stopped_early
    completed = oracle._completed_trials()
    fidelity = oracle._fidelities(completed)
    for trial, f in zip(completed, fidelity):
        expected = epochs[trial.trial_id] / EPOCHS if oracle.is_stopped_early(trial.trial_id) else 1.0
        assert f == pytest.approx(expected)
    cspace, _ = oracle._configuration_space()
    _, _, _, dists, _ = oracle._training_data(cspace, completed)
    assert dists.shape[0] == 2  # x, then the fidelity channel
    np.testing.assert_allclose(dists[1], np.abs(np.log(fidelity)[:, None] - np.log(fidelity)[None, :]))
    assert oracle.proposal_log[max(oracle.proposal_log)]["method"] == "gp-ei"
    best = oracle.get_best_trials(1)[0]
    assert not oracle.is_stopped_early(best.trial_id)
    assert abs(best.hyperparameters.values["x"] - 0.7) < 0.15


def test_early_stopping_none_trains_everything_fully(tmp_path):
    curves = crossing_curves()
    oracle = _oracle(tmp_path, _choice(12), early_stopping=None)
    epochs = _drive(oracle, lambda v: curves[v["c"]], 12)
    assert set(epochs.values()) == {EPOCHS}
    assert not oracle.stopped_early


def test_a_lone_final_report_is_never_judged(tmp_path):
    # A driver that reports once per trial (KerasTuner's own Tuner does, at the
    # best epoch's step) must never see a trial stopped.
    oracle = _oracle(tmp_path, _choice(12), early_stopping=EarlyStopping(min_epochs=2, reduction_factor=2, min_peers=1))
    for i in range(10):
        trial = oracle.create_trial("t")
        reported = oracle.update_trial(trial.trial_id, {"score": float(i % 3)}, step=20)
        assert reported.status == "RUNNING"
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert not oracle.stopped_early and not oracle.rung_values


def test_a_handed_back_stopped_status_still_completes(tmp_path):
    curves = crossing_curves()
    oracle = _oracle(tmp_path, _choice(12), early_stopping=EarlyStopping(min_peers=3))
    _drive(oracle, lambda v: curves[v["c"]], 12, hand_back_stopped=True)
    assert oracle.stopped_early
    assert all(oracle.trials[t].status == "COMPLETED" for t in oracle.stopped_early)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_nan_epochs_are_ignored_and_an_all_nan_curve_is_stopped(tmp_path, rule):
    nan = float("nan")
    curves = {0: [0.5] * EPOCHS, 1: [0.6] * EPOCHS, 2: [nan, 0.7] + [0.7] * (EPOCHS - 2), 3: [nan] * EPOCHS}
    oracle = _oracle(tmp_path, _choice(4), num_initial_points=4, initial_points=[{"c": c} for c in range(4)],
                     early_stopping=EarlyStopping(min_epochs=3, reduction_factor=2, min_peers=2, **RULES[rule]))
    epochs = _drive(oracle, lambda v: curves[v["c"]], 4)
    by_c = {t.hyperparameters.values["c"]: t.trial_id for t in oracle.trials.values()}
    assert not oracle.is_stopped_early(by_c[2])  # the NaN first epoch did not count
    assert oracle.learning_curves[by_c[2]]["best"] == pytest.approx(0.7)
    assert oracle.is_stopped_early(by_c[3]) and epochs[by_c[3]] == 3
    assert oracle.rung_values["3"][by_c[3]] == -math.inf


def test_only_the_first_execution_is_judged(tmp_path):
    curves = crossing_curves()
    oracle = _oracle(tmp_path, _choice(12), early_stopping=EarlyStopping(min_peers=3))
    # The second execution would be cut at its first rung if it were judged.
    epochs = _drive(oracle, lambda v: curves[v["c"]], 12, executions=2, later_curve=[0.0] * EPOCHS)
    assert oracle.stopped_early
    assert all(info["epochs"] == epochs[t] for t, info in oracle.stopped_early.items())
    for trial_id, curve in oracle.learning_curves.items():
        # A stopped trial's later reports are not judged (nor counted); a full
        # trial's second execution is seen as one and not judged.
        assert curve["execution"] == (0 if oracle.is_stopped_early(trial_id) else 1)
        assert curve["epochs"] == epochs[trial_id]
    # KerasTuner averages the executions per step: a full trial has two values per epoch.
    full = next(t for t in oracle.trials.values() if not oracle.is_stopped_early(t.trial_id))
    assert len(full.metrics.get_history("score")[5].value) == 2


def test_reload_keeps_the_decisions(tmp_path):
    curves = crossing_curves()
    settings = dict(early_stopping=EarlyStopping(min_peers=3), seed=3)
    oracle = _oracle(tmp_path, _choice(12), **settings)
    _drive(oracle, lambda v: curves[v["c"]], 8)
    assert oracle.stopped_early
    reloaded = _oracle(tmp_path, _choice(12), **settings)
    reloaded.reload()
    assert reloaded.stopped_early == oracle.stopped_early
    assert reloaded.rung_values == oracle.rung_values
    assert reloaded.learning_curves == oracle.learning_curves
    assert [t.trial_id for t in reloaded.get_best_trials(8)] == [t.trial_id for t in oracle.get_best_trials(8)]
    # The next trial is judged against the rungs recorded before the reload.
    _drive(reloaded, lambda v: [0.0] * EPOCHS, 1)
    last = max(reloaded.trials)
    assert reloaded.is_stopped_early(last)
    assert reloaded.stopped_early[last]["peers"] == len(oracle.rung_values["3"])


def test_a_bad_early_stopping_argument_is_refused():
    with pytest.raises(ValueError, match="early_stopping"):
        BayesianNASOracle(objective="val_loss", early_stopping={"min_epochs": 3})


def _smooth_curve(values):
    final = 1 - (values["x"] - 0.7) ** 2
    return [final * (1 - math.exp(-(e + 1) / 5)) for e in range(EPOCHS)]


def test_promotions_train_a_stopped_configuration_fully_once(tmp_path):
    # Promotions need the GP to rank a stopped configuration above every trained
    # one at full fidelity; the replay test of benchmarks/multi_fidelity.py sees
    # them on the real table. Here: whatever is promoted obeys the rules.
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    for seed in range(3):
        oracle = _oracle(tmp_path, hp, name=f"promote{seed}", seed=seed + 1, num_initial_points=4)
        epochs = _drive(oracle, _smooth_curve, 40)
        values = {t: oracle.trials[t].hyperparameters.values["x"] for t in oracle.trials}
        for new, old in oracle.promoted.items():
            assert old in oracle.stopped_early and values[new] == values[old]
            assert not oracle.is_stopped_early(new) and epochs[new] == EPOCHS
            assert oracle.proposal_log[new]["promotes"] == old
        # A configuration is promoted at most once, and only a stopped one repeats.
        assert len(set(oracle.promoted.values())) == len(oracle.promoted)
        repeats = len(values) - len(set(values.values()))
        assert repeats == len(oracle.promoted)


def test_a_promoted_trial_is_never_judged(tmp_path):
    # The guard itself: a trial marked as the promotion of a stopped one trains its
    # (same) curve to the end, where the rule stopped the original at a rung.
    curves = crossing_curves(n=13)  # one configuration left untried for the new trial
    oracle = _oracle(tmp_path, _choice(13), early_stopping=EarlyStopping(min_peers=3))
    _drive(oracle, lambda v: curves[v["c"]], 12)
    stopped_id, stop = next(iter(oracle.stopped_early.items()))
    curve = curves[oracle.trials[stopped_id].hyperparameters.values["c"]]
    trial = oracle.create_trial("tuner0")
    oracle.promoted[trial.trial_id] = stopped_id  # as populate_space records a promotion
    for step, value in enumerate(curve):
        assert oracle.update_trial(trial.trial_id, {"score": value}, step=step).status == "RUNNING"
    assert oracle.learning_curves[trial.trial_id]["epochs"] == EPOCHS > stop["epochs"]
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    assert not oracle.is_stopped_early(trial.trial_id)


def test_promote_false_never_trains_a_stopped_configuration_again(tmp_path):
    curves = crossing_curves()
    oracle = _oracle(tmp_path, _choice(12), early_stopping=EarlyStopping(promote=False, min_peers=3))
    _drive(oracle, lambda v: curves[v["c"]], 30)
    assert oracle.stopped_early
    configs = [t.hyperparameters.values["c"] for t in oracle.trials.values()]
    assert len(configs) == len(set(configs)) == 12
    assert not oracle.promoted


def test_a_trial_stopped_on_the_recipes_last_epoch_counts_as_fully_trained(tmp_path):
    # A recipe of 3 epochs ends on the first rung: nothing is gained by "stopping" there.
    short = {c: curve[:3] for c, curve in crossing_curves().items()}
    oracle = _oracle(tmp_path, _choice(12), early_stopping=EarlyStopping(min_peers=3))
    _drive(oracle, lambda v: short[v["c"]], 12)
    assert not oracle.stopped_early
    assert all(c["epochs"] == 3 for c in oracle.learning_curves.values())


def test_a_retried_trial_is_judged_afresh(tmp_path):
    curves = crossing_curves()
    oracle = _oracle(tmp_path, _choice(12), early_stopping=EarlyStopping(min_peers=3), max_retries_per_trial=1)
    _drive(oracle, lambda v: curves[v["c"]], 8)
    stopped_id = next(iter(oracle.stopped_early))
    assert stopped_id in oracle.rung_values["3"]
    # The trial crashes (INVALID) after its stop: KerasTuner retries it, from scratch.
    oracle.trials[stopped_id].status = "INVALID"
    oracle._retry_queue.append(stopped_id)
    retried = oracle.create_trial("tuner0")
    assert retried.trial_id == stopped_id
    assert stopped_id not in oracle.stopped_early and stopped_id not in oracle.learning_curves
    assert stopped_id not in oracle.rung_values["3"]


def _run_short_last_trial(tmp_path, budget_left, **kwargs):
    """Three flat trials train 30 epochs; a fourth reports 0.95 for 4 epochs and
    ends with ``budget_left`` seconds of `max_time` left."""
    hp = _choice(4)
    flat = {0: [0.5] * EPOCHS, 1: [0.9] * EPOCHS, 2: [0.8] * EPOCHS}
    oracle = _oracle(tmp_path, hp, max_time=1000.0, initial_points=[{"c": c} for c in range(4)],
                     num_initial_points=4, **kwargs)
    _drive(oracle, lambda v: flat[v["c"]], 3)
    trial = oracle.create_trial("tuner0")
    assert trial.hyperparameters.values == {"c": 3}
    for step in range(4):
        assert oracle.update_trial(trial.trial_id, {"score": 0.95}, step=step).status == "RUNNING"
    oracle.remaining_time = lambda: budget_left  # the budget as StopAtDeadline saw it
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    return oracle, trial.trial_id


@pytest.mark.parametrize("early_stopping", [None, EarlyStopping()])
@pytest.mark.parametrize("recommendation", ["observed", "posterior_mean"])
def test_a_trial_cut_by_the_time_budget_is_a_lower_fidelity(tmp_path, early_stopping, recommendation):
    oracle, cut = _run_short_last_trial(tmp_path, 0.0, early_stopping=early_stopping,
                                        recommendation=recommendation)
    assert oracle.trials[cut].status == "COMPLETED" and oracle.trials[cut].score == pytest.approx(0.95)
    assert oracle.is_stopped_early(cut)
    assert oracle.stopped_early[cut]["epochs"] == 4 and oracle.stopped_early[cut]["reason"] == "time budget"
    fidelity = oracle._fidelities(oracle._completed_trials())
    assert sorted(fidelity) == pytest.approx([4 / EPOCHS, 1, 1, 1])
    # Its 0.95 after 4 epochs is not a full training's: the 0.9 one is recommended.
    assert [t.hyperparameters.values["c"] for t in oracle.get_best_trials(4)][:1] == [1]
    assert oracle.get_best_trials(4)[-1].trial_id == cut
    reloaded = _oracle(tmp_path, _choice(4), max_time=1000.0, early_stopping=early_stopping,
                       recommendation=recommendation)
    reloaded.reload()
    assert reloaded.is_stopped_early(cut)


@pytest.mark.parametrize("training_epochs", [None, EPOCHS, 4])
def test_a_first_trial_cut_by_the_time_budget_is_cut_against_the_recipes_epochs(tmp_path, training_epochs):
    """No other trial tells how long a full training is: the recipe's epochs do (None: not known, not cut)."""
    oracle = _oracle(tmp_path, _choice(4), max_time=1000.0)
    oracle.training_epochs = training_epochs
    trial = oracle.create_trial("tuner0")
    for step in range(4):
        oracle.update_trial(trial.trial_id, {"score": 0.7}, step=step)
    oracle.remaining_time = lambda: 0.0
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    cut = training_epochs == EPOCHS
    assert oracle.is_stopped_early(trial.trial_id) == cut
    if cut:
        assert oracle.stopped_early[trial.trial_id]["reason"] == "time budget"
        assert oracle.get_best_trials(1)[0].trial_id == trial.trial_id  # the only one
        assert oracle._fidelities(oracle._completed_trials()) == pytest.approx([4 / EPOCHS])


def test_first_trials_cut_side_by_side_are_cut_against_the_recipes_epochs(tmp_path):
    """Two workers' first trials, both running at the deadline: neither's partial curve is a full training."""
    oracle = _oracle(tmp_path, _choice(4), max_time=1000.0)
    oracle.training_epochs = EPOCHS
    first, second = oracle.create_trial("tuner0"), oracle.create_trial("tuner1")
    for trial, epochs in ((first, 3), (second, 4)):
        for step in range(epochs):
            oracle.update_trial(trial.trial_id, {"score": 0.7}, step=step)
    oracle.remaining_time = lambda: 0.0
    for trial in (first, second):
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert oracle.stopped_early[first.trial_id]["epochs"] == 3 and oracle.stopped_early[second.trial_id]["epochs"] == 4


def test_a_short_trial_that_ends_with_budget_left_is_fully_trained(tmp_path):
    """Its own early stopping ended it: a full training by the recipe's standard."""
    oracle, short = _run_short_last_trial(tmp_path, 200.0, early_stopping=None, recommendation="observed")
    assert not oracle.is_stopped_early(short)
    assert oracle.get_best_trials(1)[0].trial_id == short


def test_reevaluations_train_the_best_configuration_again_unjudged(tmp_path):
    """reevaluate_every=2: after every 2 fully trained GP proposals the recommended configuration
    trains again (at most MAX_EVALUATIONS times in all), never stopped by the rule."""
    from kbnas.oracle import MAX_EVALUATIONS

    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)

    def curve(values):
        final = 1 - (values["x"] - 0.7) ** 2
        return [final * (1 - math.exp(-(e + 1) / 5)) for e in range(EPOCHS)]

    noise = np.random.default_rng(0)

    def noisy_curve(values):  # another seed each training: a repeat may start behind
        return list(np.array(curve(values)) + noise.normal(0.0, 0.02, EPOCHS))

    # Only the best curve at a rung survives (η = 10: rungs 3 and 30, so rung 3 is
    # judged): without the guard a repeat that starts behind its original would be
    # stopped at epoch 3.
    oracle = _oracle(tmp_path, hp, num_initial_points=4, reevaluate_every=2,
                     early_stopping=EarlyStopping(min_epochs=3, reduction_factor=10, min_peers=2))
    epochs = _drive(oracle, noisy_curve, 24)
    order = sorted(oracle.proposal_log)
    repeats = [t for t in order if oracle.proposal_log[t]["method"] == "reevaluate"]
    assert repeats
    gp_since_last = 0
    for trial_id in order:
        method = oracle.proposal_log[trial_id]["method"]
        if method == "reevaluate":
            assert gp_since_last >= 2
            gp_since_last = 0
        gp_since_last += method.startswith("gp") and not oracle.is_stopped_early(trial_id)
    for trial_id in repeats:
        original = oracle.trials[oracle.proposal_log[trial_id]["reevaluates"]]
        assert oracle.trials[trial_id].hyperparameters.values == original.hyperparameters.values
        assert epochs[trial_id] == EPOCHS and not oracle.is_stopped_early(trial_id)
        # Unjudged, but its curve is recorded (a cut by the time budget reads it).
        assert oracle.learning_curves[trial_id]["epochs"] == EPOCHS
    values = [round(t.hyperparameters.values["x"], 12) for t in oracle.trials.values()
              if not oracle.is_stopped_early(t.trial_id)]
    assert max(values.count(v) for v in values) <= MAX_EVALUATIONS


def test_trial_ids_are_ordered_by_number_whatever_their_padding():
    # A resumed search with a larger max_trials pads its ids to more digits.
    from kbnas.oracle import _id_order

    assert sorted(["100", "059", "9", "x", "58", "060"], key=_id_order) == ["9", "58", "059", "060", "100", "x"]


def test_no_reevaluation_by_default(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = _oracle(tmp_path, hp, num_initial_points=4, early_stopping=None)
    _drive(oracle, lambda v: [1 - (v["x"] - 0.7) ** 2] * 3, 12)
    assert all(info["method"] != "reevaluate" for info in oracle.proposal_log.values())


@pytest.mark.parametrize("direction", ["max", "min"])
@pytest.mark.parametrize("other, d_stops", [("running", True), ("cut", True), ("finished", False),
                                            ("promoted", False)])
def test_best_curves_count_the_trials_that_ended_fully_trained(tmp_path, direction, other, d_stops):
    # b = 1, min_peers = 2. A trains fully: y(3) = 0.5, final 0.9. C has y(3) = 0.3
    # and 0.95 from epoch 4. A new trial D with y(3) = 0.4 is below A's curve: it
    # stops when C does not count (C still running, or cut short and recorded as
    # stopped early, as the time budget records it), and goes on when C counts
    # (C trained fully, also as a promotion, which is never judged but is a best
    # curve like any other): C has the best final score and 0.3 < 0.4 at epoch 3.
    def score(x):
        return x if direction == "max" else 1.0 - x

    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", direction), hyperparameters=_choice(3),
                               seed=1, max_trials=10, num_initial_points=3,
                               initial_points=[{"c": c} for c in range(3)],
                               early_stopping=EarlyStopping(rule="best_curves", top_trials=1, min_peers=2))
    oracle._set_project_dir(str(tmp_path), f"{direction}-{other}")
    oracle.verbose = 0

    def report(trial, values):
        return [oracle.update_trial(trial.trial_id, {"score": score(v)}, step=s).status
                for s, v in enumerate(values)]

    a = oracle.create_trial("t0")
    report(a, [0.5] * 3 + [0.9] * (EPOCHS - 3))
    a.status = "COMPLETED"
    oracle.end_trial(a)
    c = oracle.create_trial("t1")
    if other == "promoted":
        oracle.promoted[c.trial_id] = a.trial_id
    c_epochs = 4 if other in ("running", "cut") else EPOCHS
    assert "STOPPED" not in report(c, [0.3] * 3 + [0.95] * (c_epochs - 3))
    if other == "cut":
        oracle.stopped_early[c.trial_id] = {"epochs": 4, "rung": None, "value": 0.95, "peers": 0,
                                            "reason": "time budget"}
    if other != "running":
        c.status = "COMPLETED"
        oracle.end_trial(c)
    assert oracle.rung_values["3"][c.trial_id] == pytest.approx(0.3 if direction == "max" else -0.7)
    d = oracle.create_trial("t2")
    statuses = report(d, [0.4] * 3)
    assert (statuses[-1] == "STOPPED") == d_stops, statuses


def test_a_final_report_replaces_the_reported_metric_without_touching_the_curve(tmp_path):
    from kbnas.oracle_early_stopping import FINAL_REPORT_METRIC

    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = _oracle(tmp_path, hp)
    trial = oracle.create_trial("tuner0")
    for epoch, (score, loss) in enumerate([(0.5, 1.0), (0.7, 0.8), (0.6, 0.9)]):
        oracle.update_trial(trial.trial_id, {"score": score, "loss": loss}, step=epoch)
    curve = dict(oracle.learning_curves[trial.trial_id])
    reply = oracle.update_trial(trial.trial_id, {"score": 0.65, FINAL_REPORT_METRIC: 1.0}, step=1)
    assert reply.status == "RUNNING"
    metrics = oracle.trials[trial.trial_id].metrics
    assert [(o.step, o.value) for o in metrics.get_history("score")] == [(1, [0.65])]
    assert len(metrics.get_history("loss")) == 3 and not metrics.exists(FINAL_REPORT_METRIC)
    assert oracle.learning_curves[trial.trial_id] == curve
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    assert oracle.trials[trial.trial_id].score == pytest.approx(0.65)
