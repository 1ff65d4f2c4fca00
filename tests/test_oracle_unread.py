"""The oracle on KerasTuner's depth-loop idiom: trials that report only the values
their build read (kbnas.reads) teach it which values do not matter."""

from __future__ import annotations

import keras_tuner

from kbnas import keras_tuner_internals as kt_internals
from kbnas.offline import run_oracle
from kbnas.oracle import BayesianNASOracle

TOKENS = ["a", "b", "c"]
MAX_DEPTH = 3


def _space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Int("depth", 1, MAX_DEPTH)
    for slot in range(MAX_DEPTH):
        hp.Choice(f"layer_{slot}", TOKENS)
    return hp


def _model(values) -> tuple:
    """What a depth-loop build reads: depth, then the first ``depth`` slots."""
    return tuple(values[f"layer_{i}"] for i in range(values["depth"]))


def _score(values) -> float:
    layers = _model(values)
    return sum(token == "a" for token in layers) + 0.3 * len(layers) - 0.1 * sum(token == "c" for token in layers)


def _oracle(seed: int = 1) -> BayesianNASOracle:
    return BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), hyperparameters=_space(),
                             max_trials=None, seed=seed)


def test_reported_reads_make_every_trial_a_different_model_and_survive_the_end_of_the_trial(tmp_path):
    n = 30  # of 3 + 9 + 27 = 39 different models
    oracle = _oracle()
    finished = run_oracle(oracle, _score, n, directory=str(tmp_path), project_name="reads", report_reads=True)
    models = [_model(t.values) for t in finished]
    assert len(finished) == n and len(set(models)) == n
    # Stored as reported (KerasTuner's end_trial refills unread values at random).
    for trial in oracle.trials.values():
        assert set(trial.hyperparameters.values) == {"depth", *(f"layer_{i}" for i in range(
            trial.hyperparameters.values["depth"]))}
    cspace, _ = oracle._configuration_space()
    assert cspace.unread_conditions == {"layer_1": ("depth", frozenset({1})),
                                        "layer_2": ("depth", frozenset({1, 2}))}
    # ... also in trial.json: a reloaded oracle learns the same rule and goes on.
    reloaded = _oracle()
    kt_internals.set_project_dir(reloaded, str(tmp_path), "reads")
    reloaded.reload()
    assert reloaded._configuration_space()[0].unread_conditions == cspace.unread_conditions
    more = run_oracle(reloaded, _score, 5, directory=str(tmp_path), project_name="reads", report_reads=True)
    assert len(set(models + [_model(t.values) for t in more])) == n + 5


def test_without_reported_reads_the_same_search_repeats_models():
    """The case above is not met by chance: reporting every value (KerasTuner's own
    Tuner), the same oracle trains models it already trained."""
    finished = run_oracle(_oracle(), _score, 30)
    assert len({_model(t.values) for t in finished}) < 30


def test_a_trial_is_handed_every_value_so_a_build_that_reads_more_than_the_rule_says_still_builds(tmp_path):
    oracle = _oracle()
    run_oracle(oracle, _score, 12, directory=str(tmp_path), project_name="p", report_reads=True)
    assert oracle._configuration_space()[0].unread_conditions  # a rule was learned
    for k in range(5):
        trial = oracle.create_trial(f"tuner{k}")
        # The values a learned rule leaves out come with their defaults (a wrong
        # rule then meets a read, and `infer_unread_conditions` drops it).
        assert set(trial.hyperparameters.values) == {"depth", "layer_0", "layer_1", "layer_2"}


def test_keras_tuners_display_inside_end_trial_changes_nothing(tmp_path, capsys):
    """With verbose=1 KerasTuner ranks trials inside end_trial, while the ending
    trial still holds KerasTuner's random refill of its unread values."""
    runs = []
    for k in range(2):
        oracle = _oracle()
        finished = run_oracle(oracle, _score, 25, directory=str(tmp_path / str(k)), report_reads=True, verbose=1)
        runs.append([_model(t.values) for t in finished])
        assert len(set(runs[-1])) == 25
        assert oracle._configuration_space()[0].unread_conditions == {
            "layer_1": ("depth", frozenset({1})), "layer_2": ("depth", frozenset({1, 2}))}
    assert runs[0] == runs[1]
