"""kbnas.trial_results: what run_trial returned, read as KerasTuner reads it."""

from __future__ import annotations

import keras
import keras_tuner
import pytest

from kbnas.trial_results import missing_objective_message, objective_names, reported_results, result_names


def _history(values, losses):
    made = keras.callbacks.History()
    made.history = {"val_accuracy": values, "val_loss": losses}
    return made


def test_reported_results_are_what_keras_tuner_reports_for_each_kind_of_result():
    objective = keras_tuner.Objective("val_accuracy", "max")

    first, second = _history([0.5, 0.8, 0.7], [1.0, 0.6, 0.7]), _history([0.6, 0.7, 0.9], [0.9, 0.8, 0.5])
    # A History: the metrics of its best epoch.
    assert reported_results(first, objective) == ({"val_accuracy": 0.8, "val_loss": 0.6}, 1)
    # Executions: the mean of each one's best epoch, at the mean best step (rounded down).
    metrics, step = reported_results([first, second], objective)
    assert metrics == pytest.approx({"val_accuracy": 0.85, "val_loss": 0.55}) and step == 1
    assert reported_results(0.25, objective) == ({"val_accuracy": 0.25}, 0)
    assert reported_results({"val_accuracy": 3.0}, objective) == ({"val_accuracy": 3.0}, 0)

    # The same as KerasTuner's own conversion (no public name: the reference).
    from keras_tuner.src.engine import tuner_utils

    multi = keras_tuner.oracles.RandomSearchOracle(
        objective=[keras_tuner.Objective("val_accuracy", "max"), keras_tuner.Objective("val_loss", "min")]).objective
    loss = keras_tuner.Objective("val_loss", "min")
    cases = [(r, goal) for r in (first, second, [first, second]) for goal in (objective, loss, multi)]
    cases += [([first, 0.5], objective), (0.25, loss), ({"val_accuracy": 3.0, "x": 1.0}, objective)]
    for results, goal in cases:
        metrics, step = reported_results(results, goal)
        expected = tuner_utils.convert_to_metrics_dict(results, goal)
        assert metrics == pytest.approx({k: float(v) for k, v in expected.items()})
        assert step == tuner_utils.get_best_step(results, goal)


def test_result_names_and_the_line_for_a_missing_objective():
    first = _history([0.5], [1.0])
    assert result_names([first, {"f1": 0.2}, 0.5]) == {"val_accuracy", "val_loss", "f1"}
    assert result_names(0.5) == set()
    assert missing_objective_message("val_acc", "3", [first]).startswith(
        "kbnas: the objective 'val_acc' is not among the metrics trial 3 reported (val_accuracy, val_loss): "
        "did you mean 'val_accuracy'? Pass a logged metric as objective=")
    assert "(none) Pass" in missing_objective_message("score", "0", 0.5)  # nothing named, nothing close
    multi = keras_tuner.oracles.RandomSearchOracle(
        objective=[keras_tuner.Objective("val_accuracy", "max"), keras_tuner.Objective("val_loss", "min")]).objective
    assert objective_names(multi) == ["val_accuracy", "val_loss"]
    assert objective_names(keras_tuner.Objective("loss", "min")) == ["loss"]
