"""Whether the time budget ended a search inside its initial design.

A search whose ``max_time`` runs out before the GP has proposed anything (every
trial came from the initial design: a user's starting points, templates, random
draws) has not searched: its best trial is a starting architecture. On data
larger than the bundled digits a few minutes on a CPU may hold one trial, cut
short. `kbnas search` and `kbnas.BayesianNAS.search` say so at their end, from
the facts `ended_in_initial_design` gathers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from kbnas.layout import cut_by_time_budget

#: Prefix of the proposal method of a GP proposal (`gp-ei`, `gp-ucb`, ...) in the oracle's ``proposal_log``.
GP_METHOD_PREFIX = "gp-"


@dataclasses.dataclass(frozen=True)
class InitialDesignEnd:
    """A search the time budget ended before any GP proposal.

    Attributes:
        max_time: the oracle's budget in seconds.
        completed: completed trials (all from the initial design).
        cut: ``(trial_id, epochs)`` of each trial the budget cut short.
        training_epochs: the recipe's epochs of a full training, None where unknown.
        median_seconds: median duration of the completed trials, None where unrecorded.
    """

    max_time: float
    completed: int
    cut: tuple[tuple[str, int], ...]
    training_epochs: int | None
    median_seconds: float | None


def ended_in_initial_design(oracle: Any) -> InitialDesignEnd | None:
    """The facts, when ``oracle`` (a `kbnas.BayesianNASOracle`) has a time budget that is
    spent (`BayesianNASOracle.out_of_time`), fewer ended trials than ``max_trials``, at
    least one completed trial and no GP proposal in its ``proposal_log``; None otherwise
    (also for another oracle)."""
    max_time = getattr(oracle, "max_time", None)
    log = getattr(oracle, "proposal_log", None)
    if max_time is None or not log or (oracle.max_trials is not None and oracle.ended_trials() >= oracle.max_trials):
        return None
    if not oracle.out_of_time():
        return None  # the search ended otherwise: the space ran out, trials failed in a row
    if any(str(info.get("method", "")).startswith(GP_METHOD_PREFIX) for info in log.values()):
        return None
    completed = [t for t in oracle.trials.values() if t.status == "COMPLETED"]
    if not completed:
        return None
    seconds = [oracle.trial_seconds[t.trial_id] for t in completed if t.trial_id in oracle.trial_seconds]
    return InitialDesignEnd(
        max_time=float(max_time),
        completed=len(completed),
        cut=tuple((trial_id, int(stop["epochs"])) for trial_id, stop in sorted(oracle.stopped_early.items())
                  if cut_by_time_budget(stop)),
        training_epochs=oracle.training_epochs,
        median_seconds=float(np.median(seconds)) if seconds else None,
    )


def describe(end: InitialDesignEnd, what: str, trial_name: Callable[[str], str],
             seconds: Callable[[float], str]) -> str:
    """``after 2 trials of the initial design, trial 1 cut at epoch 3 of 30, …``: the facts
    both notes share, ``what`` naming the model the search leaves, trials named by
    ``trial_name`` and durations by ``seconds``."""
    of = f" of {end.training_epochs}" if end.training_epochs else ""
    cuts = "".join(f", trial {trial_name(trial_id)} cut at epoch {epochs}{of}" for trial_id, epochs in end.cut)
    took = "" if end.median_seconds is None else (
        f" {'It' if end.completed == 1 else 'Trials'} took {seconds(end.median_seconds)}"
        f"{'' if end.completed == 1 else ' each (median)'} here.")
    return (f"after {end.completed} trial{'s' if end.completed != 1 else ''} of the initial design{cuts}, "
            f"before any GP proposal: {what} is a starting architecture, not one the search chose.{took}")


def search_note(end: InitialDesignEnd) -> str:
    """The line `kbnas.BayesianNAS.search` prints when the time budget ended it before any GP proposal."""
    facts = describe(end, "the best model", repr, lambda seconds: f"{seconds:.0f} s")
    return (f"kbnas: the time budget max_time={end.max_time:g} s ended the search {facts} Call search again with "
            "a larger max_time to resume it (or train fewer epochs).")
