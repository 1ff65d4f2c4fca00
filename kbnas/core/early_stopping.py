"""When to stop a trial early: rungs on learning curves, judged against the best curves.

Pure numpy; no TensorFlow, no KerasTuner. `kbnas.BayesianNASOracle` feeds it the
per-epoch objective values KerasTuner's ``update_trial(trial_id, metrics, step)``
reports and sets the trial's status to ``"STOPPED"`` when it says so.

Notation (scores are "higher is better": the oracle flips ``min`` objectives):
    e            epochs trained so far (a report at KerasTuner step s means e = s + 1)
    y_t(e)       best score of trial t over its first e epochs (NaN epochs ignored;
                 −∞ while every epoch was NaN: a diverged network)
    r_k          the rungs, r_k = r_0 · η^k (k = 0, 1, ...), r_0 = ``min_epochs``,
                 η = ``reduction_factor``
    Y_k          the values y_u(r_k) recorded at rung k by every trial u that reached
                 it, stopped or not (the rung's record, kept across the search)

A trial is judged when it reaches a rung, and only once at least ``min_peers`` =
m other trials have reached that rung (n = |Y_k| > m, t included). Every trial
that is never stopped trains to the end of the user's own recipe (its epochs and
its own callbacks); a trial that reaches no further rung is never stopped. Two
rules decide (``rule``):

ASHA (``rule="asha"``, the rule before 2026-12-06, later; Li et al., "A System
for Massively Parallel Hyperparameter Tuning", MLSys 2020, applied to the trials
the GP proposes instead of random ones). When trial t reaches rung k, y_t(r_k)
is added to Y_k and

    t continues  ⇔  n ≤ m   or   #{y ∈ Y_k : y > y_t(r_k)} < ⌈n / η⌉,

i.e. t is stopped when it is outside the top ⌈n/η⌉ of the rung (ties continue).

The rule against the best curves (``rule="best_curves"``, the default). Among the
architectures a GP proposes, nearly all are good, and one run's scores do not
rank them: on the digits table, among the best 10 % of architectures the
Spearman correlation of one run's y(e) with the mean final validation accuracy
of the architecture's other seeds is −0.13 at e = 3, +0.01 at 9 and −0.02 at 30
(0.90 to 0.99 over all architectures; docs/benchmarks.md). A quantile of the rung
then cuts good trials at random. This rule compares t instead with the curves of the
trials that ended best. With F_k the trials trained fully (ended, not stopped)
that have a value at rung k, y_u(E) their final score and B_k the
``top_trials`` = b of them with the highest y_u(E),

    t continues  ⇔  n ≤ m   or   |F_k| < b   or   y_t(r_k) ≥ min_{u ∈ B_k} y_u(r_k),

i.e. t is stopped when it is below every one of the b best trials at the same
epoch: "none of the best looked this bad here". Its error rate has a closed
form: when the rung value of a trial that will end among the best is
exchangeable with those of the b best so far, it is below all b with
probability 1/(b + 1) (the default b = 3: 1/4) at each judged rung, whatever the spread of
early scores among good trials; ASHA's cut is 1 − 1/η (2/3) of every rung,
good trials included.

The top rung. With E epochs in a full training, the rungs judged are those with
a next rung within the training, r_{k+1} ≤ E: in ASHA's terms the maximum
resource is R = E, a trial promoted to the top rung r_K (r_{K+1} > E) has
reached the last promotion and trains to the end, and rungs are judged only
below it. For E = 30 and the defaults that is rungs 3 and 9; 27 is the top.
Judging the top rung too (``judge_top_rung=True``, the rule before 2026-12-06)
saves little, E − r_K epochs of the η^−K of the trials that reach it, and turns
two thirds of those nearly complete trainings into low-fidelity results, which
the recommendation ranks after every fully trained trial.

Expected cost of ``"asha"``. When every judged rung keeps its top 1/η, the fraction of trials
trained past r_k is η^−k and the mean epochs per trial with E epochs in the
recipe and judged rungs r_0 < … < r_J < E is

    Σ_{k=0..J} η^−k (r_k − r_{k−1}) + η^−(J+1) (E − r_J),     r_{−1} = 0,

for E = 30, r_0 = 3, η = 3 (rungs 3 and 9 judged, 27 the top): 3 + 6/3 + 21/9
≈ 7.3 epochs, a quarter of full training (7.1 when 27 is judged too: 3 + 6/3 +
18/9 + 3/27); trials proposed by the GP are better than random ones, so in a
search fewer of them fall below a rung's quantile than in ASHA's random search,
but the rule's quantile is relative, so the fraction cut is the same. Under
``"best_curves"`` the fraction cut is that of the proposals below the best
curves, which depends on the search: measured, not predicted (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

#: The rules a rung applies (`EarlyStopping.rule`).
RULES = ("asha", "best_curves")


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Settings of the early-stopping rule: rungs, and how a rung judges (see the module docstring).

    Args:
        min_epochs: the first rung r_0, in epochs (>= 2: a trial is judged only
            on a report that follows an earlier one, so that a lone final report
            of a driver that does not report per epoch is never mistaken for a
            learning curve and cut).
        reduction_factor: η (>= 2): the rungs' ratio; under ``"asha"`` a rung
            keeps its top 1/η.
        min_peers: trials that must have reached a rung before the rule stops
            anything there. None: the oracle's initial-design size, so the
            initial design always trains fully ("never stop before anything
            is known").
        promote: let the GP propose a stopped configuration again, to be
            trained fully and never stopped (a promotion): the acquisition
            ranks stopped configurations by their posterior at full fidelity
            beside untried ones. False: a stopped configuration is never
            trained again.
        judge_top_rung: judge the top rung r_K (the last one below a full
            training, r_{K+1} > E) too. False (the default): a trial that
            reaches it trains to the end (module docstring).
        rule: ``"best_curves"`` (the default): a trial continues unless it is
            below every one of the ``top_trials`` best fully trained trials at
            the rung; ``"asha"``: when it is in the top ⌈n/η⌉ of its rung
            (module docstring).
        top_trials: b of ``"best_curves"``: the fully trained trials with the
            best final scores whose rung values a trial is compared with; a
            trial that will end among the best, with a rung value exchangeable
            with theirs, is stopped at a rung with probability 1/(b + 1).
    """

    min_epochs: int = 3
    reduction_factor: int = 3
    min_peers: int | None = None
    promote: bool = True
    judge_top_rung: bool = False
    rule: str = "best_curves"
    top_trials: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.min_epochs, int) or self.min_epochs < 2:
            raise ValueError(f"EarlyStopping.min_epochs must be an integer >= 2, got {self.min_epochs!r}")
        if not isinstance(self.reduction_factor, int) or self.reduction_factor < 2:
            raise ValueError(
                f"EarlyStopping.reduction_factor must be an integer >= 2, got {self.reduction_factor!r}"
            )
        if self.min_peers is not None and (not isinstance(self.min_peers, int) or self.min_peers < 1):
            raise ValueError(f"EarlyStopping.min_peers must be None or an integer >= 1, got {self.min_peers!r}")
        if self.rule not in RULES:
            raise ValueError(f"EarlyStopping.rule must be one of {', '.join(map(repr, RULES))}, got {self.rule!r}")
        if isinstance(self.top_trials, bool) or not isinstance(self.top_trials, int) or self.top_trials < 1:
            raise ValueError(f"EarlyStopping.top_trials must be an integer >= 1, got {self.top_trials!r}")
        for name in ("promote", "judge_top_rung"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"EarlyStopping.{name} must be True or False, got {getattr(self, name)!r}")

    def rung(self, k: int) -> int:
        """r_k = r_0 · η^k, in epochs."""
        return self.min_epochs * self.reduction_factor**k

    def rungs_reached(self, epochs: int) -> list[int]:
        """The rung indices k with r_k <= ``epochs``."""
        out, k = [], 0
        while self.rung(k) <= epochs:
            out.append(k)
            k += 1
        return out

    def judges(self, k: int, full_epochs: int | None) -> bool:
        """Whether rung k is judged when a full training is ``full_epochs`` = E
        epochs (None: not known yet, every rung is judged): r_{k+1} ≤ E, or any
        rung with ``judge_top_rung``."""
        return self.judge_top_rung or full_epochs is None or self.rung(k + 1) <= full_epochs

    def to_config(self) -> dict:
        return dataclasses.asdict(self)

    #: Fields added later, with the value that describes a rule saved before them.
    LEGACY_FIELDS = {"judge_top_rung": True, "rule": "asha", "top_trials": 3}

    @classmethod
    def complete_config(cls, config: dict) -> dict:
        """A saved config with the fields added since it was saved, at the values
        that describe the rule it was saved with (`LEGACY_FIELDS`)."""
        return {**config, **{name: value for name, value in cls.LEGACY_FIELDS.items() if name not in config}}

    @classmethod
    def from_config(cls, config: dict | None) -> "EarlyStopping | None":
        return None if config is None else cls(**cls.complete_config(config))


def best_so_far(value: float, previous: float) -> float:
    """max(previous, value), NaN values ignored (a NaN epoch never raises y_t)."""
    if value is None or not math.isfinite(float(value)):
        return previous
    return max(previous, float(value))


def keeps(value: float, rung_values: Sequence[float], reduction_factor: int, min_peers: int) -> bool:
    """Whether a trial with ``value`` at a rung continues (the module's rule).

    Args:
        value: y_t(r_k).
        rung_values: Y_k, the values recorded at the rung, y_t(r_k) included.
        reduction_factor: η.
        min_peers: m: with n <= m values nothing is stopped.
    """
    n = len(rung_values)
    if n <= min_peers:
        return True
    better = int(np.sum(np.asarray(rung_values, dtype=float) > value))
    return better < math.ceil(n / reduction_factor)


def keeps_against_best(value: float, finished: Sequence[tuple[float, float]], top_trials: int) -> bool:
    """Whether a trial with ``value`` at a rung continues under ``"best_curves"``.

    Args:
        value: y_t(r_k).
        finished: (y_u(E), y_u(r_k)) of the fully trained trials u with a value
            at the rung, F_k.
        top_trials: b; with fewer than b finished trials nothing is stopped.

    Returns:
        |F_k| < b, or y_t(r_k) ≥ the lowest rung value of the b finished trials
        with the highest final scores (ties in final score: the earlier in
        ``finished`` first).
    """
    if len(finished) < top_trials:
        return True
    finals = np.array([f for f, _ in finished], dtype=float)
    rung = np.array([r for _, r in finished], dtype=float)
    best = np.argsort(-finals, kind="stable")[:top_trials]
    return bool(value >= rung[best].min())


def mean_epochs_per_trial(settings: EarlyStopping, epochs: int) -> float:
    """The expected epochs per trial of ``"asha"`` when every rung keeps exactly its top 1/η
    (the module docstring's formula); ``epochs`` is E.

    Raises:
        ValueError: ``settings.rule`` is not ``"asha"`` (what ``"best_curves"``
            cuts depends on the search, not on the settings).
    """
    if settings.rule != "asha":
        raise ValueError(f"mean_epochs_per_trial is the formula of rule='asha', got rule={settings.rule!r}")
    total, previous, k = 0.0, 0, 0
    while settings.rung(k) < epochs and settings.judges(k, epochs):
        r = settings.rung(k)
        total += settings.reduction_factor ** (-k) * (r - previous)
        previous, k = r, k + 1
    return total + settings.reduction_factor ** (-k) * (epochs - previous)
