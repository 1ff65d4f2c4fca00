"""Choosing the exported trial by cross-validation (`kbnas.selection`).

The fold arithmetic and the choice are checked with a stand-in hypermodel whose
"training" returns a known score per candidate and fold (no TensorFlow
training); one test trains real tiny models through the command line.
"""

from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import keras_tuner
import numpy as np
import pytest

from kbnas.selection import (
    CandidateScore,
    SelectionSettings,
    candidate_pool,
    candidate_trials,
    choose,
    cross_validate,
    indistinguishable_margin,
    select_by_cross_validation,
    stratified_folds,
)


# ---------------------------------------------------------------------- folds
@pytest.mark.parametrize("n, classes, k", [(10, 2, 3), (101, 3, 5), (37, 1, 4), (8, 8, 2)])
def test_stratified_folds_partition_the_examples_and_spread_every_class(n, classes, k):
    strata = np.random.default_rng(1).integers(classes, size=n)
    folds = stratified_folds(strata, k, seed=0)
    assert len(folds) == k
    joined = np.concatenate(folds)
    assert np.array_equal(np.sort(joined), np.arange(n))  # disjoint and covering
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for value in np.unique(strata):
        counts = [int(np.sum(strata[f] == value)) for f in folds]
        assert max(counts) - min(counts) <= 1, (value, counts)
    assert all(np.array_equal(a, b) for a, b in zip(folds, stratified_folds(strata, k, seed=0)))


def test_stratified_folds_depend_on_the_seed():
    strata = np.random.default_rng(1).integers(3, size=101)
    first, second = stratified_folds(strata, 5, seed=0), stratified_folds(strata, 5, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))


def test_stratified_folds_refuse_fewer_examples_than_folds():
    with pytest.raises(ValueError, match="cannot make 3 folds"):
        stratified_folds(np.zeros(2), 3, seed=0)


def test_settings_are_checked_and_apply_to_small_data_only():
    assert SelectionSettings().applies(1000) and not SelectionSettings().applies(1001)
    assert not SelectionSettings(candidates=1).applies(10)
    # At least one example per fold: 2 train + validation examples cannot make 3 folds.
    assert not SelectionSettings().applies(2) and SelectionSettings().applies(3)
    assert not SelectionSettings(folds=5).applies(4)
    for bad in (dict(candidates=0), dict(folds=1), dict(time_share=1.0), dict(time_share=-0.1),
                dict(parsimony=-1.0), dict(parsimony=float("nan")), dict(parsimony=float("inf")),
                # accepted, or a TypeError, before kbnas.core.checks:
                dict(candidates=2.5), dict(folds=2.5), dict(max_examples=-5), dict(max_examples="x"),
                dict(seed=-1), dict(parsimony=True), dict(candidates="4"), dict(parsimony="1"),
                dict(time_share=None), dict(baseline="no")):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=rf"^{name} must be "):
            SelectionSettings(**bad)


# ---------------------------------------------------------------------- the choice
def _trial(trial_id, value, score, status="COMPLETED"):
    hp = keras_tuner.HyperParameters()
    hp.Fixed("candidate", value)
    return SimpleNamespace(trial_id=trial_id, hyperparameters=hp, score=score, status=status)


class _Oracle:
    """Ranks its trials in the given order, as `get_best_trials` does."""

    def __init__(self, trials, direction="max"):
        self.trials = {t.trial_id: t for t in trials}
        self._order = list(trials)
        self.objective = keras_tuner.Objective("val_accuracy" if direction == "max" else "val_loss", direction)

    def get_best_trials(self, n):
        return self._order[:n]


class _KnownScores:
    """A hypermodel whose trained model scores ``table[candidate][fold]`` on fold k.

    The fold is recognised by the held-out indices it is given (x holds the
    example index), so the test checks that every candidate sees the same folds.
    """

    def __init__(self, table, folds, name="val_accuracy", delay=0.0):
        self.table, self.folds, self.name, self.delay = table, folds, name, delay
        self.calls = []

    def build(self, hp):
        return hp.get("candidate")

    def fit(self, hp, model, x, y, validation_data, **kwargs):
        held_out = validation_data[0].ravel().astype(int)
        fold = next(k for k, f in enumerate(self.folds) if np.array_equal(np.sort(held_out), f))
        assert not set(x.ravel().astype(int)) & set(held_out)  # trained without its fold
        self.calls.append((model, fold))
        time.sleep(self.delay)
        score = self.table[model][fold]
        # Three epochs; the best one is the second, the lowest val_loss the third.
        history = {self.name: [score - 0.1, score, score - 0.05], "val_loss": [1.0, 0.8, 0.5]}
        if self.name == "val_loss":
            history = {"val_loss": [score + 0.1, score, score + 0.05]}
        return SimpleNamespace(history=history)


def _setup(table, order, direction="max", **hypermodel_kwargs):
    n = 30
    x = np.arange(n, dtype=float).reshape(n, 1)
    y = np.arange(n) % 2
    settings = SelectionSettings(candidates=len(order), folds=3, seed=4)
    folds = stratified_folds(y if direction == "max" else np.zeros(n), settings.folds, settings.seed)
    hypermodel = _KnownScores(table, folds, **hypermodel_kwargs)
    trials = [_trial(f"{i:02d}", name, 0.5) for i, name in enumerate(order)]
    tuner = SimpleNamespace(oracle=_Oracle(trials, direction), hypermodel=hypermodel)
    return tuner, x, y, settings


def test_the_candidate_with_the_best_mean_over_folds_is_chosen():
    # "b" wins one fold by a lot but loses on the mean; "c" has the best mean.
    table = {"a": [0.90, 0.91, 0.92], "b": [0.99, 0.80, 0.85], "c": [0.93, 0.92, 0.94]}
    tuner, x, y, settings = _setup(table, ["a", "b", "c"])
    selection = select_by_cross_validation(tuner, x, y, settings)
    assert selection.trial_id == "02"
    means = {s.trial_id: s.mean for s in selection.scores}
    assert means == pytest.approx({"00": 0.91, "01": 0.88, "02": 0.93})
    assert [s.fold_scores for s in selection.scores][2] == pytest.approx((0.93, 0.92, 0.94))
    # Every candidate was trained once per fold, on the same folds.
    assert sorted(tuner.hypermodel.calls) == sorted((c, k) for c in "abc" for k in range(3))
    # Epochs of the final training: the lowest val_loss is at the third epoch (index 2).
    assert selection.epochs == 3
    record = json.loads(json.dumps(selection.as_dict()))
    assert record["trial_id"] == "02" and record["method"] == "3 candidates by cross-validation"


def test_a_tie_goes_to_the_oracle_first_and_min_objectives_choose_the_lowest():
    table = {"a": [0.9, 0.9, 0.9], "b": [0.9, 0.9, 0.9]}
    tuner, x, y, settings = _setup(table, ["a", "b"])
    assert select_by_cross_validation(tuner, x, y, settings).trial_id == "00"
    table = {"a": [0.3, 0.3, 0.3], "b": [0.2, 0.4, 0.1]}
    tuner, x, y, settings = _setup(table, ["a", "b"], direction="min", name="val_loss")
    assert select_by_cross_validation(tuner, x, y, settings).trial_id == "01"


def test_a_passed_deadline_keeps_the_oracle_first():
    table = {"a": [0.5, 0.5, 0.5], "b": [0.9, 0.9, 0.9]}
    tuner, x, y, settings = _setup(table, ["a", "b"])
    selection = select_by_cross_validation(tuner, x, y, settings, deadline=time.monotonic() - 1)
    assert selection.trial_id == "00" and selection.epochs is None
    assert selection.scores == () and selection.skipped == ("00", "01")
    assert tuner.hypermodel.calls == []


def test_a_candidate_cut_by_the_deadline_is_not_scored_and_later_ones_are_not_begun():
    table = {c: [0.9, 0.9, 0.9] for c in "abc"}
    table["c"] = [1.0, 1.0, 1.0]
    tuner, x, y, settings = _setup(table, ["a", "b", "c"], delay=0.2)
    # Room for "a" (3 × 0.2 s) but not for "b": "b" is expected to take as long as "a".
    selection = select_by_cross_validation(tuner, x, y, settings, deadline=time.monotonic() + 0.9)
    assert [s.trial_id for s in selection.scores] == ["00"]
    assert selection.skipped == ("01", "02")
    assert selection.trial_id == "00"  # fewer than two scored: the oracle's first,
    assert selection.epochs == 3  # with its cross-validated epochs
    assert {c for c, _ in tuner.hypermodel.calls} == {"a"}


def test_cross_validate_returns_none_when_the_deadline_passes_during_a_fold():
    table = {"a": [0.9, 0.9, 0.9]}
    tuner, x, y, settings = _setup(table, ["a"], delay=0.3)
    folds = stratified_folds(y, 3, settings.seed)
    trial = tuner.oracle.trials["00"]
    score = cross_validate(tuner.hypermodel, trial.hyperparameters, x, y, folds,
                           objective=tuner.oracle.objective, seed=0, fit_kwargs={},
                           deadline=time.monotonic() + 0.4)
    assert score is None


def test_candidates_are_completed_finite_and_distinct_in_the_oracle_order():
    trials = [_trial("0", "a", 0.9), _trial("1", "a", 0.9), _trial("2", "b", float("nan")),
              _trial("3", "c", None, status="FAILED"), _trial("4", "d", 0.8), _trial("5", "e", 0.7)]
    chosen = candidate_trials(_Oracle(trials), 2)
    assert [t.trial_id for t in chosen] == ["0", "4"]
    with pytest.raises(ValueError, match="no completed trial"):
        select_by_cross_validation(SimpleNamespace(oracle=_Oracle(trials[3:4]), hypermodel=None),
                                   np.zeros((6, 1)), np.zeros(6))


def test_the_margin_is_z_agresti_coull_standard_errors():
    # p~ = (0.98·100 + 2) / 104, SE = sqrt(p~(1 − p~) / 104).
    p = 100.0 / 104.0
    assert indistinguishable_margin(0.98, 100, 1.0) == pytest.approx(math.sqrt(p * (1 - p) / 104))
    assert indistinguishable_margin(0.98, 100, 2.0) == pytest.approx(2 * math.sqrt(p * (1 - p) / 104))
    assert indistinguishable_margin(1.0, 91, 1.0) > 0  # a perfect score is a draw too
    assert indistinguishable_margin(0.9, 91, 0.0) == 0.0


def test_the_pool_is_the_oracle_first_then_the_smallest_of_the_indistinguishable():
    # Oracle order a..f; n_v = 100, best 0.98, one SE ≈ 0.0188: f (0.95) is out.
    scores = {"a": 0.97, "b": 0.98, "c": 0.965, "d": 0.97, "e": 0.97, "f": 0.95}
    sizes = {"a": 900, "b": 800, "c": 50, "d": 10, "e": 50, "f": 1}
    trials = [_trial(str(i), name, scores[name]) for i, name in enumerate("abcdef")]
    oracle = _Oracle(trials)
    size = lambda t: sizes[t.hyperparameters.get("candidate")]
    pool = candidate_pool(oracle, SelectionSettings(candidates=4, baseline=False), size=size, validation_examples=100)
    # a first (the oracle's pick), then d (10), c and e (50, c first in the oracle's order).
    assert [t.hyperparameters.get("candidate") for t in pool] == ["a", "d", "c", "e"]
    # With the baseline (the default): f, the smallest (1), second whatever its score.
    pool = candidate_pool(oracle, SelectionSettings(candidates=4), size=size, validation_examples=100)
    assert [t.hyperparameters.get("candidate") for t in pool] == ["a", "f", "d", "c"]
    # Equally small trials: the baseline is the best of them on validation (g, earlier
    # in the oracle's order and as small as f, scores less).
    tied = trials + [_trial("6", "g", 0.90)]
    tied.insert(1, tied.pop())  # g second in the oracle's order
    sizes["g"] = 1
    pool = candidate_pool(_Oracle(tied), SelectionSettings(candidates=4), size=size, validation_examples=100)
    assert [t.hyperparameters.get("candidate") for t in pool] == ["a", "f", "d", "c"]
    tied[1].score = 0.95  # equal scores: the oracle's order
    pool = candidate_pool(_Oracle(tied), SelectionSettings(candidates=4), size=size, validation_examples=100)
    assert [t.hyperparameters.get("candidate") for t in pool] == ["a", "g", "d", "c"]
    # z = 0: only the trials as good as the best join the oracle's pick (and the baseline).
    pool = candidate_pool(oracle, SelectionSettings(candidates=4, parsimony=0.0, baseline=False), size=size,
                          validation_examples=100)
    assert [t.hyperparameters.get("candidate") for t in pool] == ["a", "b"]
    pool = candidate_pool(oracle, SelectionSettings(candidates=4, parsimony=0.0), size=size, validation_examples=100)
    assert [t.hyperparameters.get("candidate") for t in pool] == ["a", "f", "b"]
    # The oracle's pick is itself the smallest: no duplicate.
    sizes["a"] = 0
    pool = candidate_pool(oracle, SelectionSettings(candidates=4, parsimony=0.0), size=size, validation_examples=100)
    assert [t.hyperparameters.get("candidate") for t in pool] == ["a", "b"]
    sizes["a"] = 900
    # Without sizes, the rule, or a proportion-valued max objective: the oracle's first four.
    first_four = ["a", "b", "c", "d"]
    for kwargs in ({"size": None, "validation_examples": 100}, {"size": size, "validation_examples": None}):
        pool = candidate_pool(oracle, SelectionSettings(candidates=4), **kwargs)
        assert [t.hyperparameters.get("candidate") for t in pool] == first_four
    pool = candidate_pool(oracle, SelectionSettings(candidates=4, parsimony=None), size=size, validation_examples=100)
    assert [t.hyperparameters.get("candidate") for t in pool] == first_four
    assert [t.hyperparameters.get("candidate") for t in candidate_pool(
        _Oracle(trials, direction="min"), SelectionSettings(candidates=4), size=size,
        validation_examples=100)] == first_four


def test_the_parsimonious_pool_is_what_gets_cross_validated_and_ties_go_to_the_smaller():
    table = {"big": [0.9, 0.9, 0.9], "mid": [0.8, 0.8, 0.8], "small": [0.9, 0.9, 0.9], "tiny": [0.7, 0.7, 0.7]}
    tuner, x, y, settings = _setup(table, ["big", "mid", "small", "tiny"])
    settings = SelectionSettings(candidates=2, folds=3, seed=4, baseline=False)
    sizes = {"big": 1000, "mid": 500, "small": 20, "tiny": 5}
    scores = {"big": 0.97, "mid": 0.97, "small": 0.96, "tiny": 0.80}  # tiny is far below the best
    for trial in tuner.oracle.trials.values():
        trial.score = scores[trial.hyperparameters.get("candidate")]
    size = lambda t: sizes[t.hyperparameters.get("candidate")]
    selection = select_by_cross_validation(tuner, x, y, settings, size=size, validation_examples=91)
    assert {c for c, _ in tuner.hypermodel.calls} == {"big", "small"}
    assert [s.trial_id for s in selection.scores] == ["00", "02"]
    assert selection.trial_id == "02"  # equal means: the smaller
    # Without sizes the pool is the oracle's first two, and the tie goes to the first.
    tuner.hypermodel.calls.clear()
    assert select_by_cross_validation(tuner, x, y, settings).trial_id == "00"
    assert {c for c, _ in tuner.hypermodel.calls} == {"big", "mid"}
    # With the baseline, "tiny" (far below the best on validation) is cross-validated
    # second; it scores 0.7 against 0.9 over the folds, so "big" stays the choice.
    tuner.hypermodel.calls.clear()
    settings = SelectionSettings(candidates=2, folds=3, seed=4)
    selection = select_by_cross_validation(tuner, x, y, settings, size=size, validation_examples=91)
    assert {c for c, _ in tuner.hypermodel.calls} == {"big", "tiny"} and selection.trial_id == "00"


def test_float32_fold_means_of_equal_counts_tie_and_parsimony_none_ignores_sizes():
    # 445 of 456 right both ways, on different folds: float32 fold scores make the
    # means differ by ~1e-8 (kbnas search, breast cancer, seed 3 of the pool run).
    f = lambda k: float(np.float32(k / 152))
    table = {"big": [f(151), f(147), f(147)], "small": [f(149), f(150), f(146)]}
    assert np.mean(table["big"]) != np.mean(table["small"])
    tuner, x, y, _ = _setup(table, ["big", "small"])
    for trial in tuner.oracle.trials.values():
        trial.score = 0.97
    sizes = {"big": 1000, "small": 10}
    size = lambda t: sizes[t.hyperparameters.get("candidate")]
    settings = SelectionSettings(candidates=2, folds=3, seed=4)
    assert select_by_cross_validation(tuner, x, y, settings, size=size, validation_examples=113).trial_id == "01"
    # Both rules off: the oracle's first two, and the tie goes to the first whatever the sizes.
    settings = SelectionSettings(candidates=2, folds=3, seed=4, parsimony=None, choice_parsimony=None)
    assert select_by_cross_validation(tuner, x, y, settings, size=size, validation_examples=113).trial_id == "00"


def test_the_choice_is_the_smallest_candidate_within_z_standard_errors_of_the_best_mean():
    # n = 30 examples; best mean 0.90: p~ = (0.9·30 + 2) / 34, one SE = sqrt(p~(1 − p~) / 34) ≈ 0.061.
    p = 29.0 / 34.0
    se = math.sqrt(p * (1 - p) / 34)
    table = {"big": [0.9, 0.9, 0.9], "mid": [0.86, 0.86, 0.86], "small": [0.9 - se - 0.01] * 3,
             "tiny": [0.9 - se - 0.01] * 3}
    sizes = {"big": 1000, "mid": 500, "small": 20, "tiny": 5}
    size = lambda t: sizes[t.hyperparameters.get("candidate")]
    tuner, x, y, _ = _setup(table, ["big", "mid", "small", "tiny"])
    for trial in tuner.oracle.trials.values():
        trial.score = 0.97
    settings = SelectionSettings(candidates=4, folds=3, seed=4)
    # "small" and "tiny" are just outside one SE; "mid" (0.04 below) is inside and smaller than "big".
    selection = select_by_cross_validation(tuner, x, y, settings, size=size, validation_examples=113)
    assert len(selection.scores) == 4 and selection.trial_id == "01"
    # Two SEs take in "tiny", the smallest.
    settings = SelectionSettings(candidates=4, folds=3, seed=4, choice_parsimony=2.0)
    assert select_by_cross_validation(tuner, x, y, settings, size=size, validation_examples=113).trial_id == "03"
    # z_c = 0 and None: the best mean.
    for z in (0.0, None):
        settings = SelectionSettings(candidates=4, folds=3, seed=4, choice_parsimony=z)
        assert select_by_cross_validation(tuner, x, y, settings, size=size, validation_examples=113).trial_id == "00"
    # Without sizes the rule cannot apply: the best mean.
    assert select_by_cross_validation(tuner, x, y, SelectionSettings(candidates=4, folds=3, seed=4)).trial_id == "00"


def test_the_choice_rule_leaves_min_objectives_and_equal_sizes_to_the_best_mean():
    scores = [CandidateScore("a", (0.30,), (1,), 0.0), CandidateScore("b", (0.31,), (1,), 0.0),
              CandidateScore("c", (0.32,), (1,), 0.0)]
    sizes = {"a": 100, "b": 100, "c": 1}
    # "min" objective (a loss): no binomial error, the lowest mean wins.
    assert choose(scores, SelectionSettings(), direction="min", examples=100, sizes=sizes).trial_id == "a"
    # "max": all three within one SE (≈ 0.046 at 0.32 on 100): the smallest, "c".
    assert choose(scores, SelectionSettings(), direction="max", examples=100, sizes=sizes).trial_id == "c"
    # Equal sizes inside the margin: the better mean.
    sizes = {"a": 1, "b": 1, "c": 100}
    assert choose(scores, SelectionSettings(), direction="max", examples=100, sizes=sizes).trial_id == "b"
    # Equal sizes and means equal up to float32 noise: the candidates' order, not the noise.
    scores = [CandidateScore("a", (0.9,), (1,), 0.0), CandidateScore("b", (0.9 + 1e-8,), (1,), 0.0)]
    assert choose(scores, SelectionSettings(), direction="max", examples=100, sizes={"a": 5, "b": 5}).trial_id == "a"
    with pytest.raises(ValueError, match="choice_parsimony"):
        SelectionSettings(choice_parsimony=-0.5)
    with pytest.raises(ValueError, match="baseline"):
        SelectionSettings(baseline=1)


def test_the_cli_epochs_default_by_input_kind_and_a_resumed_search_keeps_its_own():
    from kbnas.cli.inputs import _default_epochs
    from kbnas.training import DEFAULT_MAX_EPOCHS

    assert DEFAULT_MAX_EPOCHS == {"flat": 100, "spatial": 30}
    assert _default_epochs(None, (30,)) == 100
    assert _default_epochs(None, (8, 8, 1)) == 30 and _default_epochs(None, (50, 3)) == 30
    assert _default_epochs({"epochs": 30}, (30,)) == 30  # begun before flat inputs got 100


# ---------------------------------------------------------------------- real training
@pytest.mark.integration
def test_search_on_small_data_exports_the_cross_validated_choice(tmp_path, capsys, monkeypatch):
    from kbnas.cli import common, main

    # Every trial indistinguishable from the best (z = 100): all three are cross-validated.
    monkeypatch.setattr(common, "SELECTION", SelectionSettings(parsimony=100.0))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "run"
    assert main(["search", "--max-trials", "3", "--epochs", "2", "--max-depth", "3", "--time-budget", "none",
                 "--ensemble", "1", "--data", str(tmp_path / "d.npz"), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cross-validating up to 4 candidates on 72 train + validation examples (3 folds)" in printed
    saved = json.loads((out / "selection.json").read_text())
    assert len(saved["scores"]) == 3 and saved["completed_trials"] == 3
    assert (saved["candidates"], saved["folds"], saved["parsimony"]) == (4, 3, 100.0)
    assert all(len(s["fold_scores"]) == 3 for s in saved["scores"])
    means = {s["trial_id"]: s["mean"] for s in saved["scores"]}
    assert means[saved["trial_id"]] == max(means.values())
    info = json.loads((out / "export" / "architecture.json").read_text())
    assert str(int(info["trial_id"])) == str(int(saved["trial_id"]))
    assert info["search_settings"]["selection"]["trial_id"] == saved["trial_id"]
    assert info["search_settings"]["retrained"]["epochs"] == saved["epochs"]
    assert info["search_settings"]["batch_size"] == 16  # auto: 54 rows, never below 16
    # `kbnas export` reuses the choice instead of cross-validating again.
    assert main(["export", "--output", str(out)]) == 0
    assert "cross-validating" not in capsys.readouterr().out
    assert json.loads((out / "export" / "architecture.json").read_text())["trial_id"] == info["trial_id"]
    # --selection validation keeps the oracle's pick.
    assert main(["search", "--max-trials", "3", "--epochs", "2", "--max-depth", "3", "--selection", "validation",
                 "--ensemble", "1", "--data", str(tmp_path / "d.npz"), "--output", str(tmp_path / "plain")]) == 0
    assert "cross-validating" not in capsys.readouterr().out
    assert not (tmp_path / "plain" / "selection.json").exists()
