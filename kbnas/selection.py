"""Choosing the exported trial on small data: k-fold cross-validation of the top candidates.

A search ranks its trials on one validation set. On small data that set is
small, and its noise decides the pick: with 113 validation rows one row is 0.88
points of accuracy, and the binomial standard error of a 95 % accuracy is
√(0.95 · 0.05 / 113) = 2.0 points, larger than the differences between the good
candidates (docs/benchmarks.md, breast cancer). Re-scoring the few best
candidates on every example of train ∪ validation removes most of that noise.

Let D = train ∪ validation, n = |D|, partitioned into K stratified folds
F_1 … F_K (each class spread evenly; a regression target is one stratum). For a
candidate c with hyperparameters h_c and fold k, train h_c on D ∖ F_k with the
search recipe (early stopping on F_k) and let s_ck be the best value of the
objective on F_k over the epochs, as KerasTuner scores a trial, and e_ck the
(0-based) epoch of the lowest validation loss, whose weights early stopping
keeps. The candidate's score is

    CV(c) = (1/K) Σ_k s_ck,

and the choice is c* = argmax_c CV(c) (argmin for a "min" objective); means
within `TIE_TOLERANCE` are a tie, which goes to the smaller candidate under the
parsimony rule (sizes known, ``parsimony`` not None), else to the one first in
the candidates' order. With sizes known and an accuracy-like "max" objective,
the one-standard-error rule applies to the choice as well
(``SelectionSettings.choice_parsimony`` = z_c, not None): CV* = max_c CV(c) is
an accuracy over the n examples of D, each scored once, with the Agresti–Coull
standard error SE_n of the pool rule below, and the choice is the smallest
candidate with

    CV(c) ≥ CV* − z_c·SE_n

(ties in size to the better mean, equal means to the candidates' order). At
n = 456 and CV* = 98 % one SE is 0.65 points, about three examples. On the
breast-cancer data (10 runs, benchmarks/results/equal_time_choice.jsonl) the
linear template was cross-validated in 7 runs and its mean was within one SE of
the best in all 7; exported, it reached the logistic regression's 99.12 % test
accuracy in 6 of them (docs/benchmarks.md). Every candidate sees the same folds
and the same per-fold seeds (common random numbers), so the comparison is
paired. The final model is then trained on all of D for
median_k(e_c*k) + 1 epochs (`kbnas.cli`'s retraining).

The candidates (`candidate_pool`). Let T be the completed trials with a finite
score and distinct hyperparameters, in the oracle's order (`get_best_trials`:
the GP posterior mean for `kbnas.BayesianNASOracle`), and C =
`SelectionSettings.candidates`. Without sizes or without the parsimony rule the
candidates are T's first C. With them (an accuracy-like "max" objective
measured on n_v validation examples, and a size |t|, the parameter count), the
best validation score s* = max_t s_t is itself a draw whose binomial standard
error is estimated with the Agresti–Coull adjustment

    p̃ = (s*·n_v + 2) / (n_v + 4),   SE = √(p̃ (1 − p̃) / (n_v + 4)),

and the trials the validation set cannot tell from the best are

    I = { t ∈ T : s_t ≥ s* − z·SE },   z = `SelectionSettings.parsimony`.

The candidates are then T's first trial (the oracle's pick), the smallest
trial of T, b = argmin_t |t| (the baseline, whatever its validation score;
``SelectionSettings.baseline``; among equally small trials the best validation
score, then the oracle's order: on flat data ``relu``, ``dropout|relu`` … have
the linear model's 31 parameters, and ``relu`` once took its place and was
exported at 92.9 %), and the members of I from the smallest up
(ties in the oracle's order), at most C in all (only the oracle's pick when it
is also b and I holds no other trial: then nothing is cross-validated); among
equal cross-validation means the smaller candidate is chosen. The baseline is
cross-validated because n_v is what cannot rank the candidates: on the
breast-cancer data the linear template (31 parameters) was outside I, and so
never cross-validated, in 3 of the 10 runs above, while in the 7 where it was
scored its 3-fold mean on the 456 train + validation rows was within one SE of
the best (docs/benchmarks.md). This is the
one-standard-error rule of Breiman et al. (1984) and Hastie, Tibshirani and
Friedman (2009, §7.10) applied to the pool: on small data a large network's
lucky validation score ranks it first, and the GP's top is mostly large
networks, while smaller ones generalize at least as well (breast cancer, 5
seeds, `python -m benchmarks.flat_architectures`: ``dense-64`` and
``dense-64|relu`` 98.41 and 98.58 % test accuracy after retraining, a 10-layer
stack that an earlier search exported 97.52 %; at equal time the pool gained
+2.39 [+0.81, +3.97] points, docs/benchmarks.md).

Candidates are scored in their order until the deadline; one whose folds are
not all done by then is left out, and with fewer than two scored candidates the
oracle's first stands.

Cost: candidates × K trainings on (K−1)/K of D; this is why it applies only to
small data (`SelectionSettings.max_examples`), where a training takes seconds.
K = 3 by default: every example of D is still scored once, and, measured on the
breast-cancer data (456 rows, 2 CPU cores), one training takes 1.3–3.9 s, so a
third of a 3-minute budget scores about 4 candidates with K = 3 and 2–3 with
K = 5 (a quarter scored 1–3 candidates with K = 3 on a loaded machine).
`kbnas search` reserves `SelectionSettings.time_share` of its time budget for it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from kbnas.core.checks import boolean, finite_number, whole_number


#: Cross-validation means closer than this are equal: fold accuracies are float32, so
#: the same count of examples right on different folds gives means ~1e-8 apart.
TIE_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class SelectionSettings:
    """How the exported trial is chosen on small data.

    Attributes:
        candidates: how many of the oracle's best trials are cross-validated.
        folds: K, the number of folds.
        max_examples: cross-validation applies when train + validation hold at
            most this many examples, and at least ``folds`` (`applies`).
        time_share: the share of a search's time budget kept for it.
        seed: seed of the fold assignment and of the fold trainings.
        parsimony: z of the candidate pool (module docstring): trials within z
            binomial standard errors of the best validation score count as
            indistinguishable from it, and the smallest of them are
            cross-validated beside the oracle's pick; None keeps the oracle's
            first ``candidates`` trials.
        choice_parsimony: z_c of the choice (module docstring): the smallest
            candidate whose cross-validation mean is within z_c binomial
            standard errors (on all of train + validation) of the best mean is
            chosen; None chooses the best mean (equal means: the smaller under
            ``parsimony``, else the first candidate).
        baseline: cross-validate the smallest trial too, whatever its
            validation score (second, after the oracle's pick), under the
            parsimony rule.
    """

    candidates: int = 4
    folds: int = 3
    max_examples: int = 1000
    time_share: float = 1.0 / 3.0
    seed: int = 0
    parsimony: float | None = 1.0
    choice_parsimony: float | None = 1.0
    baseline: bool = True

    def __post_init__(self) -> None:
        def set_field(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        set_field("candidates", whole_number("candidates", self.candidates, 1))
        set_field("folds", whole_number("folds", self.folds, 2))
        set_field("max_examples", whole_number("max_examples", self.max_examples, 0))
        set_field("seed", whole_number("seed", self.seed, 0))
        try:
            share = finite_number("time_share", self.time_share, lowest=0.0)
        except ValueError:
            share = math.nan
        if not 0.0 <= share < 1.0:
            raise ValueError(f"time_share must be a number in [0, 1), got {self.time_share!r}")
        set_field("time_share", share)
        boolean("baseline", self.baseline)
        for name in ("parsimony", "choice_parsimony"):
            z = getattr(self, name)
            if z is not None:
                try:
                    set_field(name, finite_number(name, z, lowest=0.0))
                except ValueError:
                    raise ValueError(f"{name} must be a finite number >= 0 or None, got {z!r}") from None

    def applies(self, examples: int) -> bool:
        """Whether a search on ``examples`` train + validation examples cross-validates:
        small data, but at least one example per fold."""
        return self.candidates > 1 and self.folds <= examples <= self.max_examples


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    """One candidate's cross-validation: per fold, the objective's best value and the
    epoch of the lowest validation loss (the weights early stopping keeps)."""

    trial_id: str
    fold_scores: tuple[float, ...]
    best_epochs: tuple[int, ...]
    seconds: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def epochs(self) -> int:
        """Epochs of the final training: median best epoch over the folds, plus one."""
        return int(np.floor(np.median(self.best_epochs))) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "mean": self.mean, "fold_scores": list(self.fold_scores),
                "best_epochs": list(self.best_epochs), "seconds": self.seconds}


@dataclasses.dataclass(frozen=True)
class Selection:
    """The chosen trial and the scores it was chosen by.

    Attributes:
        trial_id: the chosen trial.
        epochs: epochs for training it on all of train + validation (None when
            it was not cross-validated: the trial's own best epoch applies; the
            oracle's pick keeps its cross-validated epochs when it was the only
            candidate scored).
        scores: the candidates fully scored, in the candidates' order.
        skipped: candidates not scored before the deadline.
        objective: the objective's name and direction.
    """

    trial_id: str
    epochs: int | None
    scores: tuple[CandidateScore, ...]
    skipped: tuple[str, ...]
    objective: str
    direction: str

    def as_dict(self) -> dict[str, Any]:
        return {"method": f"{len(self.scores)} candidates by cross-validation" if len(self.scores) > 1 else "oracle",
                "trial_id": self.trial_id, "epochs": self.epochs, "objective": self.objective,
                "direction": self.direction, "scores": [s.as_dict() for s in self.scores],
                "skipped": list(self.skipped)}


def stratified_folds(strata: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """K disjoint, sorted index arrays covering ``range(len(strata))``.

    Each stratum's members are permuted by one ``default_rng(seed)`` and dealt
    to the folds in turn, starting after the fold the previous stratum ended on,
    so fold sizes differ by at most one and each stratum's counts by at most one.

    Raises:
        ValueError: fewer examples than folds.
    """
    strata = np.asarray(strata)
    if len(strata) < folds:
        raise ValueError(f"{len(strata)} examples cannot make {folds} folds")
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(strata), dtype=np.int64)
    offset = 0
    for value in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == value))
        assignment[members] = (offset + np.arange(len(members))) % folds
        offset = (offset + len(members)) % folds
    return [np.flatnonzero(assignment == k) for k in range(folds)]


def candidate_trials(oracle: Any, count: int) -> list[Any]:
    """The oracle's best ``count`` completed trials with finite scores and distinct
    hyperparameters, in the oracle's order."""
    seen: set[tuple] = set()
    chosen = []
    for trial in oracle.get_best_trials(len(oracle.trials)):
        if trial.status != "COMPLETED" or trial.score is None or not math.isfinite(trial.score):
            continue
        key = tuple(sorted((k, repr(v)) for k, v in trial.hyperparameters.values.items()))
        if key in seen:
            continue
        seen.add(key)
        chosen.append(trial)
        if len(chosen) == count:
            break
    return chosen


def _is_proportion(direction: str, best: float) -> bool:
    """Whether a best score is an accuracy-like proportion, with a binomial error."""
    return direction == "max" and 0.0 <= best <= 1.0


def indistinguishable_margin(best: float, validation_examples: int, z: float) -> float:
    """z·SE of a best validation accuracy ``best`` on ``validation_examples``
    examples, with the Agresti–Coull adjusted proportion (module docstring)."""
    p = (best * validation_examples + 2.0) / (validation_examples + 4.0)  # in (0, 1) for best in [0, 1]
    return z * math.sqrt(p * (1.0 - p) / (validation_examples + 4.0))


def candidate_pool(
    oracle: Any,
    settings: SelectionSettings,
    *,
    size: Callable[[Any], float] | None = None,
    validation_examples: int | None = None,
) -> list[Any]:
    """The trials to cross-validate (module docstring): the oracle's first, the
    smallest trial (with ``baseline``), then the smallest of those the validation
    set cannot tell from the best.

    Args:
        oracle: the search's oracle (``get_best_trials``, ``trials``, ``objective``).
        settings: ``candidates``, ``parsimony`` and ``baseline``.
        size: a trial's size (its parameter count); None keeps the oracle's order.
        validation_examples: n_v, the examples the trials were scored on.
    """
    ranked = candidate_trials(oracle, len(oracle.trials))
    count = settings.candidates
    if settings.parsimony is None or size is None or not validation_examples or not ranked:
        return ranked[:count]
    best = max(t.score for t in ranked)
    if not _is_proportion(oracle.objective.direction, best):  # no binomial error to speak of
        return ranked[:count]
    margin = indistinguishable_margin(best, validation_examples, settings.parsimony)
    close = [t for t in ranked[1:] if t.score >= best - margin - 1e-12]
    close.sort(key=size)  # stable: equal sizes keep the oracle's order
    # The baseline: the smallest trial; among equally small ones (on flat data every
    # stack of relu and dropout layers has the linear model's size) the best
    # validation score, ties in the oracle's order.
    smallest = min(size(t) for t in ranked)
    baseline = max((t for t in ranked if size(t) == smallest), key=lambda t: t.score)  # max: the first of equals
    pool = [ranked[0]]
    for trial in ([baseline] if settings.baseline else []) + close:
        if all(trial.trial_id != chosen.trial_id for chosen in pool):
            pool.append(trial)
    return pool[:count]


def cross_validate(
    hypermodel: Any,
    hyperparameters: Any,
    x: np.ndarray,
    y: np.ndarray,
    folds: Sequence[np.ndarray],
    *,
    objective: Any,
    seed: int,
    fit_kwargs: dict[str, Any],
    deadline: float | None = None,
    trial_id: str = "",
) -> CandidateScore | None:
    """One candidate's K trainings (module docstring); None when ``deadline``
    (a `time.monotonic` value) passes before the last fold is done.

    Args:
        hypermodel: a configured `kbnas.ConvNetHyperModel` (or any HyperModel
            whose ``fit`` returns a History).
        hyperparameters: the candidate's `keras_tuner.HyperParameters`.
        x, y: train + validation.
        folds: validation indices of each fold (`stratified_folds`).
        objective: a `keras_tuner.Objective` (name, direction).
        seed: fold k is trained from seed ``seed + k``.
        fit_kwargs: passed to ``hypermodel.fit`` (epochs, batch_size, verbose, …).
    """
    import keras

    from kbnas.tf_workarounds import CustomGradientScope
    from kbnas.tuner import StopAtDeadline

    start = time.monotonic()
    scores, epochs = [], []
    everything = np.arange(len(x))
    for k, held_out in enumerate(folds):
        if deadline is not None and time.monotonic() >= deadline:
            return None
        fit = np.setdiff1d(everything, held_out, assume_unique=True)
        keras.utils.set_random_seed(seed + k)
        hp = hyperparameters.copy()
        model = hypermodel.build(hp)
        arguments = dict(fit_kwargs)
        if deadline is not None:
            arguments["callbacks"] = [*arguments.get("callbacks", []), StopAtDeadline(deadline - time.monotonic())]
        with CustomGradientScope():  # kbnas.tf_workarounds: the fold's graphs are freed after it
            history = hypermodel.fit(hp, model, x[fit], y[fit], validation_data=(x[held_out], y[held_out]),
                                     **arguments)
        values = np.asarray(history.history[objective.name], dtype=float)
        values = np.where(np.isfinite(values), values, -np.inf if objective.direction == "max" else np.inf)
        scores.append(float(np.max(values) if objective.direction == "max" else np.min(values)))
        # The epoch whose weights early stopping keeps (the lowest val_loss): the
        # objective's best epoch is often the first of a plateau of equal accuracies.
        monitored = np.asarray(history.history.get("val_loss", values), dtype=float)
        monitored = np.where(np.isfinite(monitored), monitored, np.inf)
        epochs.append(int(np.argmin(monitored)) if "val_loss" in history.history else
                      int(np.argmax(values) if objective.direction == "max" else np.argmin(values)))
        del model
    if deadline is not None and time.monotonic() > deadline:
        return None
    return CandidateScore(trial_id, tuple(scores), tuple(epochs), time.monotonic() - start)


def select_by_cross_validation(
    tuner: Any,
    x: np.ndarray,
    y: np.ndarray,
    settings: SelectionSettings = SelectionSettings(),
    *,
    fit_kwargs: dict[str, Any] | None = None,
    deadline: float | None = None,
    strata: np.ndarray | None = None,
    size: Callable[[Any], float] | None = None,
    validation_examples: int | None = None,
) -> Selection:
    """Cross-validate the oracle's best candidates on train + validation (module docstring).

    Args:
        tuner: a tuner after its search (its ``oracle`` and ``hypermodel``).
        x, y: train and validation together.
        settings: candidates, folds and seed.
        fit_kwargs: what each training's ``fit`` gets besides the data (the
            search's epochs and its global batch: a `kbnas.ConvNetHyperModel`'s
            ``batch_size`` is per replica, and these trainings run on one device,
            so a search whose trials trained on k devices passes ``batch_size``
            × k); ``verbose=0`` by default.
        deadline: a `time.monotonic` value after which no candidate is scored.
        strata: the fold strata (default: ``y`` for classification, one
            stratum for a "min" objective such as regression's val_loss).
        size: a trial's size (its parameter count), for the parsimonious
            pool and the tie-break (`candidate_pool`); None: the oracle's order.
        validation_examples: the examples the search scored its trials on.

    Returns:
        The `Selection`; with fewer than two candidates scored, the oracle's first.

    Raises:
        ValueError: no completed trial.
    """
    oracle = tuner.oracle
    objective = oracle.objective
    trials = candidate_pool(oracle, settings, size=size, validation_examples=validation_examples)
    if not trials:
        raise ValueError("no completed trial to select from")
    if strata is None:
        strata = np.asarray(y).reshape(len(y), -1)[:, 0] if objective.direction == "max" else np.zeros(len(y))
    folds = stratified_folds(strata, settings.folds, settings.seed)
    fit_kwargs = {"verbose": 0, **(fit_kwargs or {})}
    scores, skipped = [], []
    for trial in trials if len(trials) > 1 else ():
        score = None
        # A candidate is not begun when the ones before it say it cannot finish in time;
        # once one is cut by the deadline, so is every later one.
        expected = float(np.mean([s.seconds for s in scores])) if scores else 0.0
        if not skipped and (deadline is None or time.monotonic() + expected <= deadline):
            score = cross_validate(tuner.hypermodel, trial.hyperparameters, x, y, folds, objective=objective,
                                   seed=settings.seed, fit_kwargs=fit_kwargs, deadline=deadline,
                                   trial_id=trial.trial_id)
        if score is None:
            skipped.append(trial.trial_id)
        else:
            scores.append(score)
    direction = objective.direction
    if len(scores) < 2:
        # The oracle's pick stands; its epochs are known when it was scored.
        epochs = scores[0].epochs if scores and scores[0].trial_id == trials[0].trial_id else None
        return Selection(trials[0].trial_id, epochs, tuple(scores), tuple(skipped), objective.name, direction)
    best = choose(scores, settings, direction=direction, examples=len(x),
                  sizes=None if size is None else {t.trial_id: size(t) for t in trials})
    return Selection(best.trial_id, best.epochs, tuple(scores), tuple(skipped), objective.name, direction)


def choose(
    scores: Sequence[CandidateScore],
    settings: SelectionSettings,
    *,
    direction: str,
    examples: int,
    sizes: dict[str, float] | None = None,
) -> CandidateScore:
    """The chosen candidate among two or more scored ones (module docstring).

    Args:
        scores: the scored candidates, in the candidates' order.
        settings: ``parsimony`` (ties to the smaller) and ``choice_parsimony``.
        direction: the objective's, "max" or "min".
        examples: n, the examples of train + validation (each scored once).
        sizes: trial id -> size (the parameter count); None: the rules that need
            sizes do not apply.
    """
    optimum = max(s.mean for s in scores) if direction == "max" else min(s.mean for s in scores)
    # Equal means: the same number of examples right, up to float32 rounding of the folds.
    near = [s for s in scores if abs(s.mean - optimum) <= TIE_TOLERANCE]
    if sizes is None:
        return near[0]
    if settings.choice_parsimony is not None and _is_proportion(direction, optimum):
        margin = indistinguishable_margin(optimum, examples, settings.choice_parsimony)
        near = [s for s in scores if s.mean >= optimum - margin - TIE_TOLERANCE]
        smallest = min(sizes[s.trial_id] for s in near)
        near = [s for s in near if sizes[s.trial_id] == smallest]
        # Equal sizes: the better mean; equal means (TIE_TOLERANCE): the candidates' order.
        top = max(s.mean for s in near)
        return next(s for s in near if s.mean >= top - TIE_TOLERANCE)
    if settings.parsimony is not None:
        return min(near, key=lambda s: sizes[s.trial_id])  # equal sizes keep the candidates' order
    return near[0]
