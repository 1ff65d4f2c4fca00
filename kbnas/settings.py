"""`SearchSettings`: how `BayesianNASOracle` searches, in one frozen dataclass.

`kbnas.BayesianNASOracle` and `kbnas.BayesianNAS` both take it as ``settings=``,
and both accept each of its fields as a keyword argument too, which overrides
the field:

    settings = kbnas.SearchSettings(acquisition="ucb", kappa=3.0, max_time=600)
    tuner = kbnas.BayesianNAS(hypermodel, settings=settings, directory="runs")
    # the same search:
    tuner = kbnas.BayesianNAS(hypermodel, acquisition="ucb", kappa=3.0, max_time=600,
                              directory="runs")

so the tuner hands its oracle one object instead of copying each setting. What
KerasTuner's own `Oracle` takes (objective, max_trials, seed, hyperparameters,
retries) stays a plain constructor argument of both, as in KerasTuner.

Every field is checked when the dataclass is made: a bad value raises one
`ValueError` that names it. This module imports numpy through the core only.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, Callable

import numpy as np

from kbnas.core.acquisition import ACQUISITIONS
from kbnas.core.acquisition_optimizer import EvolutionSettings
from kbnas.core.checks import boolean, finite_number, whole_number
from kbnas.core.early_stopping import EarlyStopping
from kbnas.core.warping import warp_scores

#: How `BayesianNASOracle.get_best_trials` ranks completed trials.
RECOMMENDATIONS = ("posterior_mean", "observed")
#: Architecture distances known by name (a callable is accepted too).
DISTANCES = ("edit", "otmann")


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """The search strategy of `kbnas.BayesianNASOracle`.

    Attributes:
        distance: ``"edit"`` (layer-aware edit distance, default), ``"otmann"``
            (NASBOT's optimal-transport distance) or a callable
            ``(archs_a, archs_b) -> (n, m) array``.
        acquisition: ``"ei"`` (expected improvement, default), ``"pi"``,
            ``"ucb"`` or ``"thompson"``.
        kappa: UCB multiplier of the posterior standard deviation, μ + κσ.
        xi: EI/PI improvement margin, in units of the warped scores.
        num_initial_points: trials of the initial design (initial points,
            templates, space-filling random draws) before the GP is used. None:
            ``(tunable dimensions) + 2`` clipped to [4, 8], where the architecture
            counts as four dimensions (6 for an architecture-only search).
        score_warping: ``"rank"`` (default), ``"standardize"``, ``"power"`` or ``"none"``
            (`kbnas.core.warping`).
        n_restarts: random restarts of the marginal-likelihood optimizer (one
            restart once a previous fit provides a warm start).
        refit_every: above `kbnas.oracle.FULL_REFIT_LIMIT` observations, the
            kernel hyperparameters are re-optimized only every ``refit_every``
            proposals (in between, the last θ is reused with a fresh
            factorization).
        exhaustive_limit: when the whole space has at most this many
            configurations, the acquisition is maximized exactly over all of them.
        evolution: budget of the evolutionary acquisition optimizer.
        recommendation: how `get_best_trials` ranks completed trials:
            ``"posterior_mean"`` (default) or ``"observed"`` (see
            `BayesianNASOracle`).
        initial_points: configurations evaluated first, in order: dicts of
            hyperparameter values or architecture encodings.
        templates: start an architecture search from the known-good templates
            of `kbnas.space.templates` and space-filling random templates
            (default True); False: uniform random draws only. A space without
            an architecture has uniform random draws either way.
        max_time: wall-clock budget of the search in seconds (None: no limit).
        early_stopping: the multi-fidelity rule, a `kbnas.EarlyStopping`
            (default: rungs at epochs 3, 9, 27, ..., judged against the three best
            fully trained curves, the top rung below a full training not judged), or None to
            train every trial fully.
        reevaluate_every: after every this many fully trained GP proposals, train again the
            fully trained configuration with the best posterior mean that has
            fewer than `MAX_EVALUATIONS` full trainings (another seed: a second
            draw of its noise); 0 (default): never.
    """

    distance: str | Callable = "edit"
    acquisition: str = "ei"
    kappa: float = 2.0
    xi: float = 0.0
    num_initial_points: int | None = None
    score_warping: str = "rank"
    n_restarts: int = 3
    refit_every: int = 5
    exhaustive_limit: int = 2000
    evolution: EvolutionSettings = EvolutionSettings()
    recommendation: str = "posterior_mean"
    initial_points: tuple = ()
    templates: bool = True
    max_time: float | None = None
    early_stopping: EarlyStopping | None = EarlyStopping()
    reevaluate_every: int = 0

    def __post_init__(self) -> None:
        def set_field(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition={self.acquisition!r} is not one of {', '.join(ACQUISITIONS)}")
        if isinstance(self.distance, str):
            if self.distance not in DISTANCES:
                raise ValueError(f"distance={self.distance!r} is not 'edit', 'otmann' or a callable")
        elif not callable(self.distance):
            raise ValueError(f"distance must be 'edit', 'otmann' or a callable, got {type(self.distance).__name__}")
        if self.num_initial_points is not None:
            set_field("num_initial_points", whole_number("num_initial_points", self.num_initial_points, 1))
        warp_scores(np.zeros(2), self.score_warping)  # validates the name
        if self.recommendation not in RECOMMENDATIONS:
            raise ValueError(
                f"recommendation={self.recommendation!r} is not one of {', '.join(RECOMMENDATIONS)}"
            )
        if self.max_time is not None:
            number = not isinstance(self.max_time, bool) and isinstance(self.max_time, numbers.Real)
            seconds = float(self.max_time) if number else math.nan
            if not seconds > 0:  # (inf: no limit, as None)
                raise ValueError(f"max_time must be a positive number of seconds, got {self.max_time!r}")
            set_field("max_time", seconds)
        if self.early_stopping is not None and not isinstance(self.early_stopping, EarlyStopping):
            raise ValueError(
                "early_stopping must be a kbnas.EarlyStopping or None, "
                f"got {type(self.early_stopping).__name__}"
            )
        if not isinstance(self.evolution, EvolutionSettings):
            raise ValueError(f"evolution must be a kbnas.EvolutionSettings, got {type(self.evolution).__name__}")
        set_field("reevaluate_every", whole_number("reevaluate_every", self.reevaluate_every, 0))
        set_field("kappa", finite_number("kappa", self.kappa, lowest=0.0))
        set_field("xi", finite_number("xi", self.xi))
        set_field("n_restarts", whole_number("n_restarts", self.n_restarts, 0))
        set_field("refit_every", whole_number("refit_every", self.refit_every, 1))
        set_field("exhaustive_limit", whole_number("exhaustive_limit", self.exhaustive_limit, 0))
        set_field("templates", boolean("templates", self.templates))
        points = self.initial_points
        if points is not None and (isinstance(points, (str, bytes, Mapping)) or not isinstance(points, Iterable)):
            raise ValueError("initial_points must be a list of configurations (dicts of hyperparameter values "
                             f"or architecture encodings), got {type(points).__name__}")
        set_field("initial_points", () if points is None else tuple(points))

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The names of the fields, which the oracle and the tuner accept as keywords."""
        return frozenset(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_keywords(cls, settings: SearchSettings | None, overrides: dict[str, Any]) -> SearchSettings:
        """``settings`` (default: all defaults) with the fields in ``overrides`` replaced.

        Raises:
            TypeError: an override is not a field (as for an unknown keyword argument).
        """
        if settings is not None and not isinstance(settings, cls):
            raise ValueError(f"settings must be a kbnas.SearchSettings, got {type(settings).__name__}")
        unknown = sorted(set(overrides) - cls.field_names())
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        return dataclasses.replace(settings if settings is not None else cls(), **overrides)
