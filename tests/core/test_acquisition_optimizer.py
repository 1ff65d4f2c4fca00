"""The acquisition optimizers: exact argmax, evolutionary search, their budgets."""

from __future__ import annotations

import itertools

import numpy as np

from kbnas.core import acquisition_optimizer as ao
from kbnas.core.acquisition_optimizer import EvolutionSettings, maximize_evolutionary, maximize_exhaustive

#: Configurations are the integers 0..999; the acquisition peaks at 700.
PEAK = 700


def score(candidates):
    return -np.abs(np.asarray(candidates, dtype=float) - PEAK)


def sample(rng):
    return int(rng.integers(1000))


def mutate(c, rng):
    return int(np.clip(c + rng.integers(-20, 21), 0, 999))


def key(c):
    return c


def test_exhaustive_is_the_exact_argmax_outside_avoid():
    result = maximize_exhaustive(list(range(1000)), score, key, avoid={PEAK}, batch_size=64)
    assert result.best in (PEAK - 1, PEAK + 1)
    assert result.best == PEAK - 1  # the tie goes to the smaller key ("699" < "701")
    assert result.n_scored == 999
    assert result.value == -1.0


def test_exhaustive_with_everything_avoided_returns_nothing():
    result = maximize_exhaustive([1, 2], score, key, avoid={1, 2})
    assert result.best is None and result.n_scored == 0


def _evolve(settings=EvolutionSettings(), seed=0, avoid=frozenset({PEAK})):
    return maximize_evolutionary(score, sample, mutate, key, set(avoid), starts=[100, 650],
                                 rng=np.random.default_rng(seed), settings=settings)


def test_evolution_climbs_to_the_peak_from_its_starts_and_never_returns_avoided():
    result = _evolve()
    assert result.best != PEAK
    assert abs(result.best - PEAK) == 1
    settings = EvolutionSettings()
    assert result.n_scored <= 2 * 4 + settings.n_random + settings.n_generations * settings.offspring_per_generation


def test_evolution_is_a_function_of_its_generator():
    assert _evolve(seed=3) == _evolve(seed=3)


def test_a_slow_or_busy_machine_gets_the_same_proposal(monkeypatch):
    """Issue 12: the budget is in candidates scored, not in seconds."""
    settings = EvolutionSettings(n_random=32, n_generations=6, offspring_per_generation=16)
    normal = _evolve(settings)
    clock = itertools.count(step=1000.0)  # every clock reading 1000 s later
    monkeypatch.setattr(ao.time, "perf_counter", lambda: next(clock))
    slow = _evolve(settings)
    assert (slow.best, slow.n_scored, slow.value) == (normal.best, normal.n_scored, normal.value)


def test_the_time_limit_is_an_opt_in_safety_net(monkeypatch):
    settings = EvolutionSettings(n_random=32, n_generations=6, offspring_per_generation=16, time_budget=1.0)
    clock = itertools.count(step=1000.0)
    monkeypatch.setattr(ao.time, "perf_counter", lambda: next(clock))
    result = _evolve(settings)
    # Only the first batch (mutations of the starts, random samples) was scored.
    assert result.n_scored <= 2 * 4 + 32
    assert result.best is not None


def test_the_default_budget_has_no_time_limit():
    assert EvolutionSettings().time_budget is None
