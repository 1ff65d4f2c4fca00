"""kbnas.budget_note: a search the time budget ended before any GP proposal, through KerasTuner's protocol."""

from __future__ import annotations

import keras_tuner
import numpy as np
import pytest

from kbnas.budget_note import InitialDesignEnd, ended_in_initial_design
from kbnas.offline import run_oracle
from kbnas.oracle import BayesianNASOracle


def _oracle_after(tmp_path, n_trials: int, max_time: float | None = 1000.0, max_trials: int | None = None,
                  spent: bool = True, hp: keras_tuner.HyperParameters | None = None):
    """A search of ``n_trials`` (fewer where it stops); ``spent``: its budget is then spent."""
    if hp is None:
        hp = keras_tuner.HyperParameters()
        hp.Float("x", 0.0, 1.0)
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), hyperparameters=hp,
                               num_initial_points=3, max_time=max_time, max_trials=max_trials, seed=0)
    run_oracle(oracle, lambda v: -(v["x"] - 0.3) ** 2, n_trials, directory=str(tmp_path),
               project_name=f"p{n_trials}-{max_time}-{max_trials}-{spent}-{hp is None}")
    if spent and max_time is not None:
        oracle.remaining_time = lambda: 0.0
    return oracle


def test_a_budget_that_ended_inside_the_initial_design_is_told_with_its_facts(tmp_path):
    oracle = _oracle_after(tmp_path, 2)
    end = ended_in_initial_design(oracle)
    assert isinstance(end, InitialDesignEnd)
    assert (end.max_time, end.completed, end.cut, end.training_epochs) == (1000.0, 2, (), None)
    assert end.median_seconds == pytest.approx(np.median(list(oracle.trial_seconds.values())))
    # A trial the budget cut, as the oracle records it.
    oracle.stopped_early["1"] = {"epochs": 4, "rung": None, "value": 0.0, "reason": "time budget"}
    oracle.stopped_early["0"] = {"epochs": 3, "rung": 3, "value": 0.0, "peers": 3}  # the rule's: not the budget's
    assert ended_in_initial_design(oracle).cut == (("1", 4),)


def test_nothing_is_told_after_a_gp_proposal_without_a_budget_or_at_max_trials(tmp_path):
    oracle = _oracle_after(tmp_path, 5)
    assert [info["method"] for info in oracle.proposal_log.values()][3:] == ["gp-ei", "gp-ei"]
    assert ended_in_initial_design(oracle) is None
    assert ended_in_initial_design(_oracle_after(tmp_path, 2, max_time=None)) is None
    assert ended_in_initial_design(_oracle_after(tmp_path, 2, max_trials=2)) is None
    assert ended_in_initial_design(keras_tuner.oracles.RandomSearchOracle()) is None  # not a kbnas oracle


def test_nothing_is_told_when_something_else_than_the_budget_ended_the_search(tmp_path):
    assert ended_in_initial_design(_oracle_after(tmp_path, 2, spent=False)) is None  # budget left
    # Two configurations in all: the space ran out before the third initial point, the budget not.
    hp = keras_tuner.HyperParameters()
    hp.Choice("x", [0.1, 0.2])
    exhausted = _oracle_after(tmp_path, 5, spent=False, hp=hp)
    assert len(exhausted.trials) == 2 and ended_in_initial_design(exhausted) is None
