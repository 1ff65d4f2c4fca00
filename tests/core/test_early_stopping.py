"""The successive-halving rule of `kbnas.core.early_stopping`, against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kbnas.core.early_stopping import EarlyStopping, best_so_far, keeps, keeps_against_best, mean_epochs_per_trial


def test_rungs_are_geometric():
    rule = EarlyStopping(min_epochs=3, reduction_factor=3)
    assert [rule.rung(k) for k in range(4)] == [3, 9, 27, 81]
    assert rule.rungs_reached(2) == []
    assert rule.rungs_reached(9) == [0, 1]
    assert rule.rungs_reached(30) == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_epochs": 1}, "min_epochs"),
        ({"min_epochs": 2.5}, "min_epochs"),
        ({"reduction_factor": 1}, "reduction_factor"),
        ({"min_peers": 0}, "min_peers"),
        ({"rule": "median"}, "rule"),
        ({"top_trials": 0}, "top_trials"),
        ({"top_trials": True}, "top_trials"),
    ],
)
def test_bad_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)


def test_config_round_trip():
    rule = EarlyStopping(min_epochs=2, reduction_factor=2, min_peers=4, rule="best_curves", top_trials=3)
    assert EarlyStopping.from_config(rule.to_config()) == rule
    assert EarlyStopping.from_config(None) is None


def test_keeps_the_top_ceil_n_over_eta_ties_continue():
    # n = 6, η = 3: the top ⌈6/3⌉ = 2 continue.
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    kept = [v for v in values if keeps(v, values, 3, min_peers=1)]
    assert kept == [0.5, 0.6]
    # n = 7: ⌈7/3⌉ = 3.
    values7 = values + [0.05]
    assert [v for v in values7 if keeps(v, values7, 3, 1)] == [0.4, 0.5, 0.6]
    # A tie with the second best continues: only strictly better values count.
    tied = [0.9, 0.8, 0.8, 0.1, 0.1, 0.1]
    assert keeps(0.8, tied, 3, 1)
    assert not keeps(0.1, tied, 3, 1)


def test_keeps_against_best_compares_with_the_rung_values_of_the_best_finals():
    # (final, rung value): the best three finals are 0.9, 0.8, 0.7, whose rung
    # values are 0.3, 0.6, 0.5; the trial with the best rung value (0.95) ended worst.
    finished = [(0.9, 0.3), (0.5, 0.95), (0.8, 0.6), (0.7, 0.5), (0.6, 0.2)]
    assert not keeps_against_best(0.29, finished, top_trials=3)  # below all three
    assert keeps_against_best(0.3, finished, top_trials=3)  # a tie with the lowest continues
    assert keeps_against_best(0.31, finished, top_trials=3)
    # b = 1: the best final's curve alone; b = 5: the lowest of all (0.2).
    assert not keeps_against_best(0.29, finished, top_trials=1)
    assert keeps_against_best(0.21, finished, top_trials=5)
    assert not keeps_against_best(0.19, finished, top_trials=5)
    # Fewer finished trials than b: nothing is stopped.
    assert keeps_against_best(-1.0, finished, top_trials=6)
    assert keeps_against_best(-1.0, [], top_trials=1)


@pytest.mark.parametrize("b", [1, 3, 5])
def test_keeps_against_best_stops_an_exchangeable_trial_with_probability_one_over_b_plus_one(b):
    # When a new trial's rung value is exchangeable with those of the b best
    # finished trials (here: every rung value i.i.d., finals independent of them),
    # it is below all b with probability 1/(b + 1).
    rng = np.random.default_rng(b)
    reps, n = 20000, 12
    stops = 0
    for _ in range(reps):
        finished = list(zip(rng.random(n), rng.normal(size=n)))
        stops += not keeps_against_best(float(rng.normal()), finished, b)
    p = 1 / (b + 1)
    assert abs(stops / reps - p) < 4 * math.sqrt(p * (1 - p) / reps)


def test_nothing_is_stopped_until_min_peers_others_reached_the_rung():
    assert keeps(0.0, [1.0, 1.0, 0.0], 3, min_peers=3)  # 2 others < 3
    assert not keeps(0.0, [1.0, 1.0, 1.0, 0.0], 3, min_peers=3)  # 3 others


def test_best_so_far_ignores_nan_and_starts_at_minus_infinity():
    assert best_so_far(float("nan"), -math.inf) == -math.inf
    assert best_so_far(0.3, -math.inf) == 0.3
    assert best_so_far(float("nan"), 0.3) == 0.3
    assert best_so_far(0.2, 0.3) == 0.3
    assert best_so_far(float("inf"), 0.3) == 0.3


def test_the_top_rung_is_judged_only_when_asked_or_while_the_full_training_is_unknown():
    rule = EarlyStopping()
    # E = 30: rungs 3 (next 9 ≤ 30) and 9 (next 27 ≤ 30) judged, 27 (next 81 > 30) is the top.
    assert [rule.judges(k, 30) for k in range(3)] == [True, True, False]
    assert [rule.judges(k, 100) for k in range(4)] == [True, True, True, False]
    assert [rule.judges(k, 27) for k in range(3)] == [True, True, False]
    assert all(rule.judges(k, None) for k in range(4))
    assert all(EarlyStopping(judge_top_rung=True).judges(k, 30) for k in range(4))
    with pytest.raises(ValueError, match="judge_top_rung"):
        EarlyStopping(judge_top_rung=1)


def test_mean_epochs_formula_closed_form_and_simulation():
    rule = EarlyStopping(min_epochs=3, reduction_factor=3, rule="asha")
    # Rungs 3 and 9 judged, 27 the top: 3 + 6/3 + 21/9.
    assert mean_epochs_per_trial(rule, 30) == pytest.approx(3 + 2 + 21 / 9)
    # The top rung judged too: 3 + 6/3 + 18/9 + 3/27.
    assert mean_epochs_per_trial(EarlyStopping(judge_top_rung=True, rule="asha"), 30) == pytest.approx(3 + 2 + 2 + 1 / 9)
    # E = 81 = r_3: 27 is judged (81 ≤ 81), 81 is E itself.
    assert mean_epochs_per_trial(rule, 81) == pytest.approx(3 + 2 + 2 + 54 / 27)
    assert mean_epochs_per_trial(rule, 3) == pytest.approx(3.0)
    assert mean_epochs_per_trial(EarlyStopping(min_epochs=2, reduction_factor=2, rule="asha"), 8) == pytest.approx(2 + 1 + 1)
    # Simulated ASHA on i.i.d. scores (the same score at every rung): the rule's
    # fraction kept per rung tends to 1/η, so the mean epochs tend to the formula.
    rng = np.random.default_rng(0)
    records: dict[int, list[float]] = {}
    spent = []
    for _ in range(6000):
        score, epochs = rng.random(), 30
        for k in rule.rungs_reached(30):
            if not rule.judges(k, 30):
                continue
            record = records.setdefault(k, [])
            record.append(score)
            if not keeps(score, record, 3, 1):
                epochs = rule.rung(k)
                break
        spent.append(epochs)
    assert np.mean(spent) == pytest.approx(mean_epochs_per_trial(rule, 30), rel=0.05)
    with pytest.raises(ValueError, match="rule='asha'"):
        mean_epochs_per_trial(EarlyStopping(rule="best_curves"), 30)
