"""How ``--time-budget`` is shared between the search, the cross-validated
selection of the exported trial and the ensemble's members.
"""

from __future__ import annotations

import dataclasses
import time

from kbnas.budget_note import describe, ended_in_initial_design
from kbnas.ensemble import EnsembleSettings
from kbnas.selection import SelectionSettings
from kbnas.cli import common
from kbnas.cli.common import UsageError, _format_seconds


def _selection_settings(seed: int | None = None) -> SelectionSettings:
    """`SELECTION`, with ``seed`` when given."""
    return common.SELECTION if seed is None else dataclasses.replace(common.SELECTION, seed=seed)


def _selects_by_cross_validation(args, arrays) -> bool:
    """--selection, with auto resolved by the size of train + validation.

    Raises:
        UsageError: --selection cross-validation with fewer train + validation
            examples than folds.
    """
    choice = getattr(args, "selection", "validation")
    examples = len(arrays["train"][0]) + len(arrays["val"][0])
    if choice == "auto":
        return _selection_settings().applies(examples)
    folds = _selection_settings().folds
    if choice == "cross-validation" and examples < folds:
        raise UsageError(f"--selection cross-validation needs at least {folds} train + validation examples "
                         f"({folds} folds), the data give {examples}; search with --selection validation "
                         "or add examples")
    return choice == "cross-validation"


def _ensemble_settings(args) -> EnsembleSettings:
    """`ENSEMBLE` with --ensemble's members (one member without retraining: the searched model)."""
    members = getattr(args, "ensemble", None) or common.ENSEMBLE.members
    return dataclasses.replace(common.ENSEMBLE, members=members if getattr(args, "retrain", False) else 1)


def _search_budget(args, arrays) -> float | None:
    """The oracle's time budget: the whole --time-budget, less the shares kept for
    cross-validation when the exported trial is chosen by it, and for the
    ensemble's members (`kbnas.ensemble`)."""
    if args.time_budget is None:
        return None
    kept = _ensemble_settings(args).reserved_share
    if _selects_by_cross_validation(args, arrays):
        kept += _selection_settings().time_share
    if kept >= 1.0:
        raise ValueError(f"the selection's and the ensemble's time shares leave no time to search ({kept:g} of it)")
    return args.time_budget * (1.0 - kept)


def _members_deadline(args) -> float | None:
    """When the ensemble's members must have ended (a `time.monotonic` value): its
    share of --time-budget from now, or None without a budget."""
    budget = getattr(args, "time_budget", None)
    return time.monotonic() + budget * _ensemble_settings(args).time_share if budget else None


def _ensemble_note(args) -> str:
    settings = _ensemble_settings(args)
    if settings.members == 1:
        return ""
    note = f"; then up to {settings.members} retrainings of the best architecture, exported as their mean"
    if args.time_budget:
        note += f" ({_format_seconds(args.time_budget * settings.time_share)} of the budget)"
    return note


def _selection_note(args, arrays) -> str:
    if not _selects_by_cross_validation(args, arrays):
        return ""
    settings = _selection_settings()
    note = f"; then {settings.folds}-fold cross-validation of up to {settings.candidates} candidates"
    if args.time_budget:
        note += f" ({_format_seconds(args.time_budget * settings.time_share)} of the budget)"
    return note


def _short_budget_note(oracle) -> str | None:
    """The last line of a search the time budget ended inside its initial design
    (`kbnas.budget_note`), None otherwise."""
    end = ended_in_initial_design(oracle)
    if end is None:
        return None
    facts = describe(end, "the export", common._trial_number, _format_seconds)
    return (f"kbnas: note: the {_format_seconds(end.max_time)} search budget ended {facts} Run the same command "
            "with a larger --time-budget to resume the search (or lower --epochs).")
