"""Aging evolution, local search and the reference GP (benchmarks.baseline_oracles) through KerasTuner's protocol."""

from __future__ import annotations

import keras_tuner
import numpy as np
import pytest

from benchmarks.baseline_oracles import AgingEvolutionOracle, LocalSearchOracle, ReferenceGPOracle
from kbnas.offline import run_oracle
from kbnas.space import Architecture, SearchSpace

# 11 architectures: conv3-16, maxpool, relu and their valid pairs.
TINY_SPACE = SearchSpace(
    input_shape=(8, 8, 1), vocabulary=("conv3", "maxpool", "relu"), filters=(16,), units=(32,),
    min_depth=1, max_depth=2,
)
TINY = [a.encode() for a in TINY_SPACE.enumerate()]
# 55 architectures: enough room for the search dynamics to show.
SMALL_SPACE = SearchSpace(
    input_shape=(4, 4, 1), vocabulary=("conv3", "maxpool", "relu", "dense"), filters=(16,), units=(32,),
    min_depth=1, max_depth=3,
)
SMALL = [a.encode() for a in SMALL_SPACE.enumerate()]
# Distinct scores in an order unrelated to the enumeration.
SCORES = {encoding: float(value) for encoding, value in zip(SMALL, np.random.default_rng(5).permutation(len(SMALL)))}
SCORES.update({encoding: float(value) for encoding, value in zip(TINY, np.random.default_rng(6).permutation(len(TINY)))})


def hyperparameters(space: SearchSpace) -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Fixed("architecture", space.to_hp_value(space.default_architecture()))
    return hp


def make(kind: str, space: SearchSpace, *, seed: int = 0, max_trials: int = 100, **kwargs):
    cls = {"evolution": AgingEvolutionOracle, "local": LocalSearchOracle, "reference": ReferenceGPOracle}[kind]
    return cls(objective=keras_tuner.Objective("score", "max"), max_trials=max_trials,
               hyperparameters=hyperparameters(space), search_space=space, seed=seed, **kwargs)


def score(values: dict) -> float:
    return SCORES[values["architecture"]]


@pytest.mark.parametrize("kind", ["evolution", "local", "reference"])
def test_valid_distinct_architectures_then_stopped_when_exhausted(tmp_path, kind):
    extra = {"population_size": 4, "sample_size": 2} if kind == "evolution" else {}
    oracle = make(kind, TINY_SPACE, max_trials=50, **extra)
    trials = run_oracle(oracle, score, 50, directory=str(tmp_path))
    encodings = [t.values["architecture"] for t in trials]
    assert sorted(encodings) == sorted(TINY)  # every architecture once, then nothing new
    assert all(TINY_SPACE.is_valid(Architecture.decode(e)) for e in encodings)
    assert oracle.create_trial("late").status == "STOPPED"


@pytest.mark.parametrize("kind", ["evolution", "local", "reference"])
def test_same_seed_same_proposals_and_seed_zero_is_real(tmp_path, kind):
    def proposals(seed, folder):
        oracle = make(kind, SMALL_SPACE, seed=seed)
        return oracle, [t.values["architecture"] for t in run_oracle(oracle, score, 25, directory=str(tmp_path / folder))]

    oracle, first = proposals(0, "a")
    assert oracle.seed == 0
    assert proposals(0, "b")[1] == first
    assert proposals(1, "c")[1] != first


def test_failed_trials_never_join_and_are_not_proposed_again(tmp_path):
    def evaluate(values):
        return None if values["architecture"].startswith("relu") else score(values)

    oracle = make("evolution", SMALL_SPACE, population_size=5, sample_size=2, max_consecutive_failed_trials=100)
    trials = run_oracle(oracle, evaluate, 40, directory=str(tmp_path))
    encodings = [t.values["architecture"] for t in trials]
    assert len(encodings) == len(set(encodings)) == 40
    failed = {t.values["architecture"] for t in trials if t.status == "FAILED"}
    assert failed
    parents = {log.removeprefix("mutation of ") for log in oracle.proposal_log.values() if log != "random"}
    assert parents and not parents & failed


def test_evolution_starts_random_then_mutates_winners_of_the_aging_population(tmp_path):
    population, sample = 6, 3
    oracle = make("evolution", SMALL_SPACE, population_size=population, sample_size=sample, seed=3)
    trials = run_oracle(oracle, score, 30, directory=str(tmp_path))
    logs = [oracle.proposal_log[t.trial_id] for t in trials]
    assert logs[:population] == ["random"] * population
    assert all(log.startswith("mutation of ") for log in logs[population:])
    for index in range(population, len(trials)):
        parent = logs[index].removeprefix("mutation of ")
        members = [t.values["architecture"] for t in trials[index - population : index]]
        # The parent is a member of the P most recent trials (the oldest died)...
        assert parent in members
        # ...that wins a tournament of S: at most S - 1 members score higher.
        assert sum(SCORES[m] > SCORES[parent] for m in members) <= population - sample
        child = Architecture.decode(trials[index].values["architecture"])
        assert child in SMALL_SPACE.mutations(Architecture.decode(parent))


def test_local_search_moves_on_first_improvement_and_restarts_only_at_local_optima(tmp_path):
    oracle = make("local", SMALL_SPACE, seed=2)
    trials = run_oracle(oracle, score, len(SMALL), directory=str(tmp_path))
    logs = [oracle.proposal_log[t.trial_id] for t in trials]
    encodings = [t.values["architecture"] for t in trials]
    assert logs[0] == "start"
    for index, log in enumerate(logs):
        tried = set(encodings[:index])
        if log.startswith("neighbour of "):
            current = log.removeprefix("neighbour of ")
            assert current in tried
            assert Architecture.decode(encodings[index]) in SMALL_SPACE.mutations(Architecture.decode(current))
            # No evaluated neighbour of the current architecture beats it (else it would have moved).
            neighbours = [n.encode() for n in SMALL_SPACE.mutations(Architecture.decode(current))]
            assert all(SCORES[n] <= SCORES[current] for n in neighbours if n in tried)
            if SCORES[encodings[index]] > SCORES[current] and index + 1 < len(logs):
                following = logs[index + 1].split(" ")[-1]
                assert SCORES[following] >= SCORES[encodings[index]]  # it moved on
        elif log.startswith("start after local optimum "):
            optimum = log.removeprefix("start after local optimum ")
            neighbours = [n.encode() for n in SMALL_SPACE.mutations(Architecture.decode(optimum))]
            assert set(neighbours) <= tried
            assert all(SCORES[n] < SCORES[optimum] for n in neighbours)
    assert oracle.restarts == sum(log.startswith("start after") for log in logs) >= 1
    # With a restart-driven sweep of the whole space, the global optimum is found.
    assert max(SCORES[e] for e in encodings) == max(SCORES[e] for e in SMALL)


@pytest.mark.parametrize("kind", ["evolution", "local", "reference"])
def test_reload_resumes_with_the_same_proposals(tmp_path, kind):
    straight = make(kind, SMALL_SPACE, seed=7, population_size=5) if kind == "evolution" else make(kind, SMALL_SPACE, seed=7)
    expected = [t.values["architecture"] for t in run_oracle(straight, score, 20, directory=str(tmp_path / "s"))][12:]
    first = make(kind, SMALL_SPACE, seed=7, population_size=5) if kind == "evolution" else make(kind, SMALL_SPACE, seed=7)
    run_oracle(first, score, 12, directory=str(tmp_path / "r"))
    again = make(kind, SMALL_SPACE, seed=7, population_size=5) if kind == "evolution" else make(kind, SMALL_SPACE, seed=7)
    again._set_project_dir(str(tmp_path / "r"), "offline")
    again.reload()
    assert len(again.trials) == 12
    assert [t.values["architecture"] for t in run_oracle(again, score, 8, directory=str(tmp_path / "r"))] == expected


def test_bad_settings_name_the_problem():
    with pytest.raises(ValueError, match="sample_size"):
        make("evolution", TINY_SPACE, population_size=3, sample_size=4)
    with pytest.raises(ValueError, match="population_size"):
        make("evolution", TINY_SPACE, population_size=0)
    with pytest.raises(TypeError, match="SearchSpace"):
        AgingEvolutionOracle(objective=keras_tuner.Objective("score", "max"), search_space="conv3")


# ---------------------------------------------------------------------- the reference GP
def test_reference_gp_rank_warp_and_fit_match_closed_forms():
    z = ReferenceGPOracle.rank_warp(np.array([3.0, 1.0, 2.0, 2.0]))
    from scipy.stats import norm

    assert z == pytest.approx(norm.ppf(np.array([3.5, 0.5, 2.0, 2.0]) / 4))
    # Two identical points and one far away: the profiled likelihood by hand.
    hamming = np.array([[0.0, 0.0, 4.0], [0.0, 0.0, 4.0], [4.0, 4.0, 0.0]])
    z = np.array([1.0, 0.9, -1.0])
    lengthscale, noise, signal, factor = ReferenceGPOracle.fit(hamming, z)

    def profiled(l, eta):
        k = np.exp(-hamming / l) + eta * np.eye(3)
        s2 = z @ np.linalg.solve(k, z) / 3
        return -1.5 * np.log(s2) - 0.5 * np.linalg.slogdet(k)[1], s2

    grid = {(l, eta): profiled(l, eta) for l in ReferenceGPOracle.LENGTHSCALES for eta in ReferenceGPOracle.NOISE_RATIOS}
    best = max(grid, key=lambda key: grid[key][0])
    assert (lengthscale, noise) == best
    assert signal == pytest.approx(grid[best][1])
    assert factor @ factor.T == pytest.approx(np.exp(-hamming / lengthscale) + noise * np.eye(3))


def test_reference_gp_finds_the_optimum_of_a_smooth_objective_faster_than_random(tmp_path):
    # Smooth in the Hamming geometry the reference GP assumes: minus the distance to a target.
    target = Architecture.decode(SMALL[17])
    slots = SMALL_SPACE.max_depth

    def tokens(architecture):
        return [layer.encode() for layer in architecture.layers] + [""] * (slots - len(architecture.layers))

    def smooth(values):
        return -float(sum(a != b for a, b in zip(tokens(Architecture.decode(values["architecture"])), tokens(target))))

    found = []
    for seed in range(5):
        oracle = make("reference", SMALL_SPACE, seed=seed)
        encodings = [t.values["architecture"] for t in run_oracle(oracle, smooth, 30, directory=str(tmp_path / str(seed)))]
        found.append(encodings.index(target.encode()) + 1 if target.encode() in encodings else 31)
        assert any(isinstance(log, dict) for log in oracle.proposal_log.values())  # the GP proposed
    # Random search without replacement needs (55 + 1) / 2 = 28 trials on average.
    assert np.mean(found) < 15, found
