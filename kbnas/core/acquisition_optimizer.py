"""Maximizing an acquisition function over a discrete, structured space.

Notation:
    c          a configuration (opaque to this module: an architecture, a dict of
               hyperparameter values, ...).
    a(c)       the acquisition value of c (higher is better), evaluated in batches
               by ``score(candidates) -> (m,) array``.
    key(c)     a hashable identity of c; configurations whose key is in ``avoid``
               (already evaluated, failed or running) are never returned.

Two strategies, chosen by the caller:

* ``exhaustive``: score every candidate of a finite list (exact argmax). Used
  when the whole space is small enough to enumerate.
* ``evolutionary``: a (mu + lambda) local search. The population starts from the
  best observed configurations (``starts``) plus fresh random samples; each
  generation mutates the current best ``population_size`` configurations into
  ``offspring_per_generation`` children, scores them in one batch and keeps the
  best. It stops after ``n_generations``: a budget in candidates scored, so the
  same random generator gives the same result on any machine, however busy.
  ``time_budget`` (off by default) adds a wall-clock limit as a safety net.
  This is the acquisition optimizer of NASBOT (evolutionary search from the
  evaluated networks), scored in batches so the GP posterior is computed once
  per generation.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Generic, Hashable, Iterable, Sequence, TypeVar

import numpy as np

C = TypeVar("C")


@dataclasses.dataclass(frozen=True)
class EvolutionSettings:
    """Budget of the evolutionary acquisition optimizer.

    Attributes:
        n_random: fresh random samples scored in the first batch.
        n_generations: mutation rounds after the first batch.
        population_size: parents kept between generations.
        offspring_per_generation: children scored per generation.
        time_budget: optional wall-clock seconds after which the search returns its
            best (None, the default: no limit). A time limit makes the result depend
            on the machine's speed and load, so the same seed could propose
            differently on a busy machine or after a resume.
    """

    n_random: int = 256
    n_generations: int = 8
    population_size: int = 16
    offspring_per_generation: int = 96
    time_budget: float | None = None

    def __post_init__(self) -> None:
        for name, lowest in (("n_random", 1), ("n_generations", 0), ("population_size", 1),
                             ("offspring_per_generation", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
                raise ValueError(f"EvolutionSettings.{name} must be an integer >= {lowest}, got {value!r}")
        budget = self.time_budget
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float, np.number))
                                   or not np.isfinite(budget) or budget <= 0):
            raise ValueError(f"EvolutionSettings.time_budget must be a positive number of seconds or None, "
                             f"got {budget!r}")


@dataclasses.dataclass
class AcquisitionResult(Generic[C]):
    """Best configuration found, its acquisition value and how many were scored."""

    best: C | None
    value: float
    n_scored: int


def _unique_new(
    candidates: Iterable[C], key: Callable[[C], Hashable], seen: set
) -> list[C]:
    out = []
    for c in candidates:
        k = key(c)
        if k in seen:
            continue
        seen.add(k)
        out.append(c)
    return out


#: Acquisition values this close (relative) to the best count as ties.
TIE_TOLERANCE = 1e-9


def _argmax_breaking_ties(
    values: np.ndarray, candidates: Sequence[C], key: Callable[[C], Hashable]
) -> int:
    """Index of the best value; near-ties go to the smallest key.

    Configurations at the same distances from every observation get the same
    acquisition value up to floating-point noise, which depends on batch sizes.
    Breaking such ties by key makes proposals reproducible (e.g. after a resume).
    """
    best = float(np.max(values))
    tied = np.flatnonzero(values >= best - TIE_TOLERANCE * max(1.0, abs(best)))
    if len(tied) == 1:
        return int(tied[0])
    return int(min(tied, key=lambda i: str(key(candidates[i]))))


def maximize_exhaustive(
    candidates: Sequence[C],
    score: Callable[[list[C]], np.ndarray],
    key: Callable[[C], Hashable],
    avoid: set,
    batch_size: int = 4096,
) -> AcquisitionResult[C]:
    """Exact argmax of the acquisition over a finite candidate list.

    Args:
        candidates: every configuration of the space.
        score: batch acquisition function, ``list[C] -> (m,) array``.
        key: identity of a configuration.
        avoid: keys that must not be returned.
        batch_size: candidates scored per call of ``score``.

    Returns:
        The best configuration not in ``avoid`` (``best=None`` when all are).
    """
    pool = _unique_new(candidates, key, set(avoid))
    if not pool:
        return AcquisitionResult(None, -np.inf, 0)
    values = np.concatenate(
        [
            np.asarray(score(pool[start : start + batch_size]), dtype=float)
            for start in range(0, len(pool), batch_size)
        ]
    )
    i = _argmax_breaking_ties(values, pool, key)
    return AcquisitionResult(pool[i], float(values[i]), len(pool))


def maximize_evolutionary(
    score: Callable[[list[C]], np.ndarray],
    sample: Callable[[np.random.Generator], C],
    mutate: Callable[[C, np.random.Generator], C],
    key: Callable[[C], Hashable],
    avoid: set,
    starts: Sequence[C],
    rng: np.random.Generator,
    settings: EvolutionSettings = EvolutionSettings(),
) -> AcquisitionResult[C]:
    """Evolutionary maximization of the acquisition from the best observed points.

    Configurations in ``avoid`` are never scored nor returned, but ``starts`` may
    be in ``avoid``: they seed mutations (the neighbourhood of the best observed
    configurations is where improvement is most likely).

    Args:
        score: batch acquisition function, ``list[C] -> (m,) array``.
        sample: draws one random configuration.
        mutate: returns a random neighbour of a configuration.
        key: identity of a configuration.
        avoid: keys that must not be returned.
        starts: configurations to mutate first (best observed first).
        rng: random generator (the only source of randomness).
        settings: budget.

    Returns:
        The best new configuration found (``best=None`` if none was found).
    """
    deadline = None if settings.time_budget is None else time.perf_counter() + settings.time_budget
    seen = set(avoid)
    first = [mutate(c, rng) for c in starts for _ in range(4)]
    first += [sample(rng) for _ in range(settings.n_random)]
    pool = _unique_new(first, key, seen)

    scored: list[C] = []
    values = np.empty(0)
    n_scored = 0
    generation = 0
    while True:
        if pool:
            new_values = np.asarray(score(pool), dtype=float)
            n_scored += len(pool)
            scored.extend(pool)
            values = np.concatenate([values, new_values])
        generation += 1
        if generation > settings.n_generations or (deadline is not None and time.perf_counter() > deadline):
            break
        parents = list(starts) if len(scored) == 0 else []
        if len(scored):
            order = np.argsort(-values)[: settings.population_size]
            parents += [scored[i] for i in order]
        if not parents:
            break
        picks = rng.integers(len(parents), size=settings.offspring_per_generation)
        # Exploit the best parents more: half of the children come from the top 3.
        top = min(3, len(parents))
        picks[: settings.offspring_per_generation // 2] = rng.integers(
            top, size=settings.offspring_per_generation // 2
        )
        pool = _unique_new((mutate(parents[i], rng) for i in picks), key, seen)
    if not scored:
        return AcquisitionResult(None, -np.inf, 0)
    i = _argmax_breaking_ties(values, scored, key)
    return AcquisitionResult(scored[i], float(values[i]), n_scored)


def thompson_pool(
    candidates: Sequence[C] | None,
    sample: Callable[[np.random.Generator], C],
    mutate: Callable[[C, np.random.Generator], C],
    key: Callable[[C], Hashable],
    avoid: set,
    starts: Sequence[C],
    rng: np.random.Generator,
    settings: EvolutionSettings = EvolutionSettings(),
    extra: Sequence[C] = (),
) -> list[C]:
    """The candidate pool of one Thompson draw, of size about
    P = ``n_random + offspring_per_generation``.

    From a finite space (``candidates``): every configuration not in ``avoid``,
    or 4P of them drawn without replacement when there are more. Otherwise 8
    mutations of each of ``starts`` plus ``n_random`` random samples, new ones
    only. ``extra`` configurations (e.g. stopped ones the model may promote) are
    added when not already in.
    """
    pool_size = settings.n_random + settings.offspring_per_generation
    if candidates is not None:
        pool = [c for c in candidates if key(c) not in avoid]
        if len(pool) > pool_size * 4:
            keep = rng.choice(len(pool), size=pool_size * 4, replace=False)
            pool = [pool[i] for i in keep]
    else:
        raw = [mutate(s, rng) for s in starts for _ in range(8)]
        raw += [sample(rng) for _ in range(settings.n_random)]
        pool = _unique_new(raw, key, set(avoid))
    keys = {key(c) for c in pool}
    return pool + [c for c in extra if key(c) not in keys]


def maximize_thompson(
    pool: Sequence[C],
    joint_posterior: Callable[[list[C]], tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
) -> AcquisitionResult[C]:
    """Thompson sampling over a finite pool: one draw f ~ N(μ, Σ) of the joint
    posterior ``joint_posterior(pool) -> (μ, Σ)``, and its argmax.

    Returns:
        The pool member with the largest sampled value, that value and the pool
        size (``best=None`` for an empty pool).
    """
    from kbnas.core.acquisition import thompson_sample

    pool = list(pool)
    if not pool:
        return AcquisitionResult(None, -np.inf, 0)
    mean, cov = joint_posterior(pool)
    draw = thompson_sample(mean, cov, rng, n_samples=1)[0]
    i = int(np.argmax(draw))
    return AcquisitionResult(pool[i], float(draw[i]), len(pool))
