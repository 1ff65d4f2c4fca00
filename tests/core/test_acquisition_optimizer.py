"""The acquisition optimizers: exact argmax, evolutionary search, their budgets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

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


@pytest.mark.parametrize(("field", "value", "message"), [
    ("n_random", 0, r"^EvolutionSettings.n_random must be an integer >= 1, got 0"),
    ("population_size", -3, r"^EvolutionSettings.population_size must be an integer >= 1, got -3"),
    ("n_generations", 1.5, r"^EvolutionSettings.n_generations must be an integer >= 0, got 1.5"),
    ("offspring_per_generation", 0, r"^EvolutionSettings.offspring_per_generation must be an integer >= 1"),
    ("time_budget", -1, r"^EvolutionSettings.time_budget must be a positive number of seconds or None, got -1"),
    ("time_budget", float("nan"), r"^EvolutionSettings.time_budget must be a positive number"),
])
def test_bad_settings_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        EvolutionSettings(**{field: value})
    assert EvolutionSettings(n_generations=0).n_generations == 0  # the first batch alone


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


# ---------------------------------------------------------------------- Thompson sampling
def test_thompson_pool_from_a_finite_space_leaves_out_the_avoided_and_is_capped():
    settings = EvolutionSettings(n_random=3, offspring_per_generation=2)  # P = 5
    candidates = list(range(100))
    pool = ao.thompson_pool(candidates, None, None, lambda c: c, {0, 1, 2}, [], np.random.default_rng(0), settings)
    assert len(pool) == 4 * 5 and len(set(pool)) == 20 and not {0, 1, 2} & set(pool)
    small = ao.thompson_pool(candidates[:8], None, None, lambda c: c, {0}, [], np.random.default_rng(0), settings,
                             extra=[5, 200])
    assert small == [1, 2, 3, 4, 5, 6, 7, 200]  # every untried one, then the extra ones not already in


def test_thompson_pool_of_an_open_space_mutates_the_starts_and_samples_new_ones_only():
    settings = EvolutionSettings(n_random=50, offspring_per_generation=1)
    pool = ao.thompson_pool(None, lambda rng: int(rng.integers(20)), lambda c, rng: c + 1, lambda c: c, {3, 4},
                            [10], np.random.default_rng(1), settings)
    assert pool[0] == 11  # the start's mutation first
    assert len(pool) == len(set(pool)) and not {3, 4} & set(pool)
    assert set(pool) <= set(range(20)) | {11}


def test_maximize_thompson_draws_from_the_joint_posterior():
    pool = ["a", "b", "c"]
    # No posterior spread: the draw is the mean, and its argmax is returned.
    result = ao.maximize_thompson(pool, lambda p: (np.array([0.1, 0.9, 0.5]), np.zeros((3, 3))),
                                  np.random.default_rng(0))
    assert (result.best, result.n_scored) == ("b", 3) and result.value == pytest.approx(0.9, abs=1e-4)
    # Equal means, one point far more uncertain: over many draws each point wins
    # about a third of the time (by symmetry), and the draws depend on the generator only.
    wins = [ao.maximize_thompson(pool, lambda p: (np.zeros(3), np.eye(3)), np.random.default_rng(s)).best
            for s in range(300)]
    assert all(60 < wins.count(c) < 140 for c in pool), [wins.count(c) for c in pool]
    assert ao.maximize_thompson([], None, np.random.default_rng(0)).best is None
