"""What a trial's ``run_trial`` returned, as KerasTuner (1.4) reads it.

`kbnas.BayesianNAS` reports every epoch's logs to the oracle and, where what
``run_trial`` returned scores the trial differently, a final report
(`kbnas.tuner`'s module docstring). This module reads those results: the metrics
and step KerasTuner takes from a History, number, dict or list of them
(`reported_results`), their metric names, and the line for an objective that
none of them holds.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def reported_results(results: Any, objective: Any) -> tuple[dict, int]:
    """The metrics and step KerasTuner (1.4) reports for what ``run_trial`` returned.

    A History: the logs of its best epoch for ``objective`` (the first of equals),
    at that epoch; a list (one entry per execution): the mean of each entry's metrics,
    at the mean of their steps rounded down; a number: ``{objective.name: value}``;
    a dict: as it is; both at step 0. (KerasTuner's ``convert_to_metrics_dict`` and
    ``get_best_step``, which have no public name; a test compares them.)
    """
    if isinstance(results, list):
        converted = [reported_results(result, objective) for result in results]
        names = {name for metrics, _ in converted for name in metrics}
        mean = {name: float(np.mean([metrics[name] for metrics, _ in converted if name in metrics]))
                for name in names}
        return mean, int(np.mean([step for _, step in converted]))
    if isinstance(results, (int, float, np.floating)):
        return {objective.name: float(results)}, 0
    if isinstance(results, dict):
        return dict(results), 0
    if isinstance(results, keras.callbacks.History):
        epochs = [dict(zip(results.history, values)) for values in zip(*results.history.values())]
        best = 0
        for epoch, logs in enumerate(epochs):
            logs.setdefault(objective.name, objective.get_value(logs))
            if objective.better_than(logs[objective.name], epochs[best][objective.name]):
                best = epoch
        return epochs[best], best
    raise TypeError(f"run_trial returned {type(results).__name__}: not a History, number, dict or list")


def missing_objective_message(name: str, trial_id: str, results: Any) -> str:
    """One line for an objective that neither the epochs' logs nor ``run_trial``'s results hold."""
    names = sorted(result_names(results))
    close = close_names(name, names)
    return (f"kbnas: the objective {name!r} is not among the metrics trial {trial_id} reported "
            f"({', '.join(names) or 'none'})" + (f": did you mean {close[0]!r}?" if close else "")
            + " Pass a logged metric as objective=, or return it from run_trial; the search stopped after this "
            "trial's training (KerasTuner would fail every trial the same way)")


def result_names(results: Any) -> set[str]:
    """The metric names in what ``run_trial`` returned (a History, dict, number or a list of them)."""
    if isinstance(results, list):
        return set().union(*(result_names(result) for result in results))
    if isinstance(results, keras.callbacks.History):
        return set(results.history)
    if isinstance(results, dict):
        return {str(name) for name in results}
    return set()


def holds_history(results: Any) -> bool:
    """Whether ``run_trial``'s results carry epochs (a History, or a list with one)."""
    if isinstance(results, list):
        return any(holds_history(result) for result in results)
    return isinstance(results, keras.callbacks.History)


def close_names(name: str, logged: Any) -> list[str]:
    """The logged names that begin with ``name`` or that ``name`` begins with (``val_acc``,
    ``val_accuracy``): what a misspelled objective probably meant."""
    return [other for other in logged if other.startswith(name) or name.startswith(other)]


def is_number(value: Any) -> bool:
    """Whether ``float(value)`` works (a metric Keras logged as a number or a scalar tensor)."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def objective_names(objective: Any) -> list[str]:
    """The metric names of a `keras_tuner.Objective` or of each part of a multi-objective."""
    return list(getattr(objective, "name_to_direction", None) or [objective.name])
