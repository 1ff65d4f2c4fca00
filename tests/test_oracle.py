"""BayesianNASOracle through KerasTuner's own protocol, with closed-form objectives."""

from __future__ import annotations

import warnings

import keras_tuner
import numpy as np
import pytest

from kbnas.configurations import architecture_from_tokens, architecture_hyperparameters, token_hyperparameters
from kbnas.core import gp as gp_module
from kbnas.core.warping import warp_scores
from kbnas.offline import run_oracle
from kbnas.oracle import BayesianNASOracle
from kbnas.space import Architecture, SearchSpace

N_SEEDS = 10
#: Seeds of the comparisons with KerasTuner's BayesianOptimizationOracle, whose
#: scikit-learn GP fits take about 1 s per trial (most of these tests' time). On
#: seeds 0-9, kbnas finds the maximum on every one; KerasTuner's BO misses it on
#: seeds 2 and 3 of the categorical space and on all of the architecture one, and
#: random search on seeds 2 and 3 (categorical) and 1 and 2 (architectures).
BASELINE_SEEDS = 4

# ---------------------------------------------------------------- objectives
# A pure categorical space with an additive, non-monotone value table plus one
# interaction: value order carries no information, which is where KerasTuner's
# BayesianOptimization (it treats Choice values as ordered) is weakest.
CATEGORICAL_TABLE = np.array(
    [
        [0.1, 0.9, 0.0, 0.4, 0.2],
        [0.3, 0.0, 0.2, 1.0, 0.1],
        [0.7, 0.2, 0.0, 0.1, 0.3],
        [0.0, 0.3, 0.8, 0.2, 0.1],
    ]
)
LETTERS = ["a", "b", "c", "d", "e"]


def categorical_space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    for i in range(CATEGORICAL_TABLE.shape[0]):
        hp.Choice(f"c{i}", LETTERS)
    return hp


def categorical_score(values: dict) -> float:
    idx = [LETTERS.index(values[f"c{i}"]) for i in range(CATEGORICAL_TABLE.shape[0])]
    score = sum(CATEGORICAL_TABLE[i, j] for i, j in enumerate(idx))
    return float(score + 0.5 * (idx[0] == idx[1]))


ARCH_SPACE = SearchSpace(
    input_shape=(8, 8, 1),
    vocabulary=("conv3", "conv5", "maxpool", "avgpool", "relu", "dense"),
    filters=(8, 16, 32),
    units=(16, 32),
    min_depth=1,
    max_depth=6,
)


def architecture_score(arch: Architecture) -> float:
    """A structured stand-in for validation accuracy of a small image classifier.

    Rewards conv->relu blocks (two at most), one pooling after a conv, wide first
    convolutions and a dense->relu block before the head; penalizes a dense layer
    straight on the raw input and depth beyond five layers.
    """
    kinds = [layer.kind for layer in arch.layers]
    score = 0.0
    blocks = sum(
        1
        for a, b in zip(kinds, kinds[1:])
        if a in ("conv3", "conv5") and b == "relu"
    )
    score += 0.3 * min(blocks, 2)
    first_conv = next((i for i, k in enumerate(kinds) if k in ("conv3", "conv5")), None)
    if first_conv is not None:
        width = arch.layers[first_conv].width
        score += 0.1 * np.log2(width / 8)
        if any(k in ("maxpool", "avgpool") for k in kinds[first_conv:]):
            score += 0.2
    if any(a == "dense" and b == "relu" for a, b in zip(kinds, kinds[1:])):
        score += 0.15
    if kinds and kinds[0] == "dense":
        score -= 0.3
    score -= 0.1 * max(0, len(kinds) - 5)
    return float(score)


def arch_values_score(values: dict) -> float:
    return architecture_score(Architecture.decode(values["architecture"]))


def architecture_hp() -> keras_tuner.HyperParameters:
    return architecture_hyperparameters(ARCH_SPACE)


def token_space() -> keras_tuner.HyperParameters:
    """The same architectures as ordinary hyperparameters, for KerasTuner's oracles."""
    return token_hyperparameters(ARCH_SPACE)


INVALID_SCORE = -1.0  # below every valid architecture's score


def token_score(values: dict) -> float:
    arch = architecture_from_tokens(values)
    if not ARCH_SPACE.is_valid(arch):
        return INVALID_SCORE
    return architecture_score(arch)


def best_found(trials) -> float:
    return max(t.metrics["score"] for t in trials if t.status == "COMPLETED")


def objective() -> keras_tuner.Objective:
    return keras_tuner.Objective("score", "max")


# ---------------------------------------------------------------- search quality
def test_beats_random_and_keras_tuner_bo_on_categorical_space(tmp_path):
    budget = 20
    ours, rand, kt_bo = [], [], []
    for seed in range(BASELINE_SEEDS):
        oracle = BayesianNASOracle(objective=objective(), max_trials=budget,
                                   hyperparameters=categorical_space(), seed=seed)
        ours.append(best_found(run_oracle(oracle, categorical_score, budget, directory=str(tmp_path / f"o{seed}"))))
        oracle = keras_tuner.oracles.RandomSearchOracle(objective=objective(), max_trials=budget,
                                                        hyperparameters=categorical_space(), seed=seed + 1)
        rand.append(best_found(run_oracle(oracle, categorical_score, budget, directory=str(tmp_path / f"r{seed}"))))
        oracle = keras_tuner.oracles.BayesianOptimizationOracle(objective=objective(), max_trials=budget,
                                                                hyperparameters=categorical_space(), seed=seed + 1)
        kt_bo.append(best_found(run_oracle(oracle, categorical_score, budget, directory=str(tmp_path / f"b{seed}"))))
    assert np.mean(ours) > np.mean(rand), (np.mean(ours), np.mean(rand))
    assert np.mean(ours) > np.mean(kt_bo), (np.mean(ours), np.mean(kt_bo))


def test_beats_random_and_keras_tuner_bo_on_architecture_objective(tmp_path):
    budget = 25
    ours, rand, kt_bo = [], [], []
    for seed in range(BASELINE_SEEDS):
        oracle = BayesianNASOracle(objective=objective(), max_trials=budget,
                                   hyperparameters=architecture_hp(), search_space=ARCH_SPACE, seed=seed)
        ours.append(best_found(run_oracle(oracle, arch_values_score, budget, directory=str(tmp_path / f"o{seed}"))))
        # Random search over valid architectures (a stronger baseline than
        # random token strings): the same oracle that never leaves its initial design.
        oracle = BayesianNASOracle(objective=objective(), max_trials=budget, num_initial_points=budget + 1,
                                   hyperparameters=architecture_hp(), search_space=ARCH_SPACE, seed=seed + 100)
        rand.append(best_found(run_oracle(oracle, arch_values_score, budget, directory=str(tmp_path / f"r{seed}"))))
        oracle = keras_tuner.oracles.BayesianOptimizationOracle(objective=objective(), max_trials=budget,
                                                                hyperparameters=token_space(), seed=seed + 1)
        kt_bo.append(best_found(run_oracle(oracle, token_score, budget, directory=str(tmp_path / f"b{seed}"))))
    assert np.mean(ours) > np.mean(rand), (np.mean(ours), np.mean(rand))
    assert np.mean(ours) > np.mean(kt_bo), (np.mean(ours), np.mean(kt_bo))


def test_minimize_objective_finds_low_values(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Float("x", -2.0, 2.0)
    hp.Float("y", -2.0, 2.0)
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("loss", "min"), max_trials=25,
                               hyperparameters=hp, seed=0)
    trials = run_oracle(oracle, lambda v: (v["x"] - 0.5) ** 2 + (v["y"] + 1.0) ** 2, 25,
                        directory=str(tmp_path))
    losses = [t.metrics["loss"] for t in trials]
    assert min(losses) < 0.05
    # The GP phase does better than its own random initial design.
    n_init = 6
    assert min(losses[n_init:]) < min(losses[:n_init])


def test_multi_objective_sum(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    objectives = [keras_tuner.Objective("acc", "max"), keras_tuner.Objective("cost", "min")]
    oracle = BayesianNASOracle(objective=objectives, max_trials=15, hyperparameters=hp, seed=3)
    trials = run_oracle(oracle, lambda v: {"acc": v["x"], "cost": 2 * (v["x"] - 0.3) ** 2}, 15,
                        directory=str(tmp_path))
    best = oracle.get_best_trials(1)[0]
    # score = cost - acc is minimized at x = 0.55.
    assert abs(best.hyperparameters.values["x"] - 0.55) < 0.15
    assert len(trials) == 15


# ---------------------------------------------------------------- protocol properties
def test_no_duplicates_and_stops_when_space_is_exhausted(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("a", [1, 2, 3])
    hp.Choice("b", ["x", "y", "z"])
    hp.Boolean("c")
    oracle = BayesianNASOracle(objective=objective(), max_trials=50, hyperparameters=hp, seed=1)
    trials = run_oracle(oracle, lambda v: v["a"] * (1 + v["c"]) + (v["b"] == "y"), 50, directory=str(tmp_path))
    seen = [tuple(sorted(t.values.items())) for t in trials]
    assert len(seen) == 18 == len(set(seen))
    assert oracle.create_trial("late").status == "STOPPED"


def test_no_duplicate_architectures(tmp_path):
    oracle = BayesianNASOracle(objective=objective(), max_trials=30, hyperparameters=architecture_hp(),
                               search_space=ARCH_SPACE, seed=2)
    trials = run_oracle(oracle, arch_values_score, 30, directory=str(tmp_path))
    encodings = [t.values["architecture"] for t in trials]
    assert len(encodings) == len(set(encodings)) == 30
    for text in encodings:
        assert ARCH_SPACE.is_valid(Architecture.decode(text))
    assert any(log["method"] == "gp-ei" for log in oracle.proposal_log.values())


def test_failed_trials_are_excluded_and_never_proposed_again(tmp_path):
    def evaluate(values):
        arch = Architecture.decode(values["architecture"])
        if arch.layers[0].kind == "dense":
            raise RuntimeError("cannot train")  # a failed trial
        return architecture_score(arch)

    # The initial point fails for sure: the templates start with convolutions, and
    # whether a later proposal starts with a dense layer depends on the numerics
    # (with numpy 2.4.6 / scipy 1.17.1 none of 25 did).
    oracle = BayesianNASOracle(objective=objective(), max_trials=25, hyperparameters=architecture_hp(),
                               search_space=ARCH_SPACE, seed=4, max_consecutive_failed_trials=100,
                               initial_points=["dense-16|relu"])
    trials = run_oracle(oracle, evaluate, 25, directory=str(tmp_path))
    failed = {t.values["architecture"] for t in trials if t.status == "FAILED"}
    assert failed, "the test needs at least one failed trial"
    encodings = [t.values["architecture"] for t in trials]
    assert len(encodings) == len(set(encodings))


def test_same_seed_same_proposals_and_seed_zero_is_real(tmp_path):
    def proposals(seed, folder):
        oracle = BayesianNASOracle(objective=objective(), max_trials=12, hyperparameters=architecture_hp(),
                                   search_space=ARCH_SPACE, seed=seed, num_initial_points=4)
        return oracle, [t.values["architecture"] for t in
                        run_oracle(oracle, arch_values_score, 12, directory=str(tmp_path / folder))]

    oracle, first = proposals(0, "a")
    assert oracle.seed == 0
    _, second = proposals(0, "b")
    _, other = proposals(1, "c")
    assert first == second
    assert first != other


def test_resume_after_reload_gives_same_next_proposals(tmp_path):
    def make():
        return BayesianNASOracle(objective=objective(), max_trials=20, hyperparameters=architecture_hp(),
                                 search_space=ARCH_SPACE, seed=7, num_initial_points=4)

    straight = make()
    trials = run_oracle(straight, arch_values_score, 14, directory=str(tmp_path / "straight"))
    expected = [t.values["architecture"] for t in trials[10:]]

    first = make()
    run_oracle(first, arch_values_score, 10, directory=str(tmp_path / "resumed"))
    reloaded = BayesianNASOracle(objective=objective(), max_trials=20, hyperparameters=architecture_hp(), seed=7,
                                 num_initial_points=4)  # no search_space: it comes from the saved state
    reloaded._set_project_dir(str(tmp_path / "resumed"), "offline")
    reloaded.reload()
    assert reloaded.search_space == ARCH_SPACE
    assert len(reloaded.trials) == 10
    more = run_oracle(reloaded, arch_values_score, 4, directory=str(tmp_path / "resumed"))
    assert [t.values["architecture"] for t in more] == expected


def test_gp_crash_falls_back_to_random_with_a_warning(tmp_path, monkeypatch):
    def broken_fit(self, *args, **kwargs):
        raise np.linalg.LinAlgError("injected failure")

    monkeypatch.setattr(gp_module.DistanceGP, "fit", broken_fit)
    oracle = BayesianNASOracle(objective=objective(), max_trials=8, hyperparameters=architecture_hp(),
                               search_space=ARCH_SPACE, seed=0, num_initial_points=3)
    with pytest.warns(RuntimeWarning, match="injected failure"):
        trials = run_oracle(oracle, arch_values_score, 8, directory=str(tmp_path))
    assert len(trials) == 8
    assert all(t.status == "COMPLETED" for t in trials)
    assert sum(log["method"] == "random (GP failed)" for log in oracle.proposal_log.values()) == 5


def test_running_trials_get_fantasies_and_parallel_proposals_differ(tmp_path):
    oracle = BayesianNASOracle(objective=objective(), max_trials=24, hyperparameters=architecture_hp(),
                               search_space=ARCH_SPACE, seed=5, num_initial_points=6)
    trials = run_oracle(oracle, arch_values_score, 24, directory=str(tmp_path), concurrency=4)
    encodings = [t.values["architecture"] for t in trials]
    assert len(set(encodings)) == 24
    pending = [log.get("n_pending", 0) for log in oracle.proposal_log.values() if log["method"] == "gp-ei"]
    assert pending and max(pending) >= 1


def test_no_gp_proposal_sees_a_zero_predictive_variance_on_an_architecture_space(tmp_path):
    """Edit and OTMANN distances make the kernel indefinite; the GP's consistent
    PSD model (kbnas.core.gp) gives every candidate a positive variance, so EI
    never scores a sure improvement log(μ − best). (The textbook formulas clipped
    10 % of the candidates' variances to 0 on this search, and 4 of its 34 GP
    proposals were made with a zero predicted std.)"""
    oracle = BayesianNASOracle(objective=objective(), max_trials=40, hyperparameters=architecture_hp(),
                               search_space=ARCH_SPACE, seed=2)
    run_oracle(oracle, arch_values_score, 40, directory=str(tmp_path))
    logs = [log for log in oracle.proposal_log.values() if log["method"] == "gp-ei"]
    assert len(logs) >= 30
    assert all(log["zero_variance_share"] == 0.0 for log in logs), [log["zero_variance_share"] for log in logs]
    assert all(log["predicted_std"] > 0 for log in logs)


@pytest.mark.parametrize("acquisition", ["ei", "pi", "ucb", "thompson"])
@pytest.mark.parametrize("distance", ["edit", "otmann"])
def test_every_acquisition_and_distance_makes_distinct_gp_proposals_without_fallback(tmp_path, acquisition, distance):
    """Every (acquisition, distance) pair proposes through the GP, distinct configurations, no
    random fallback. (Not an improvement test: from the templates' start, 0.9 of a
    best 1.0, 9 GP trials rarely improve; the comparisons with random search and
    KerasTuner's BO above test search quality.)"""
    oracle = BayesianNASOracle(objective=objective(), max_trials=14, hyperparameters=architecture_hp(),
                               search_space=ARCH_SPACE, seed=11, acquisition=acquisition, distance=distance,
                               num_initial_points=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no silent fallback to random
        trials = run_oracle(oracle, arch_values_score, 14, directory=str(tmp_path))
    assert len({t.values["architecture"] for t in trials}) == 14
    assert all(log["method"] == f"gp-{acquisition}" for tid, log in oracle.proposal_log.items() if int(tid) >= 5)


def test_mixed_conditional_space(tmp_path):
    hp = keras_tuner.HyperParameters()
    optimizer = hp.Choice("optimizer", ["adam", "sgd"])
    with hp.conditional_scope("optimizer", ["sgd"]):
        hp.Float("momentum", 0.0, 0.99)
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Int("units", 8, 128, step=8)

    def evaluate(v):
        base = -abs(np.log10(v["lr"]) + 2.5) - abs(v["units"] - 64) / 64
        if v["optimizer"] == "sgd":
            base += 0.5 * v["momentum"]
        return base

    oracle = BayesianNASOracle(objective=objective(), max_trials=20, hyperparameters=hp, seed=0)
    trials = run_oracle(oracle, evaluate, 20, directory=str(tmp_path))
    for t in trials:
        assert ("momentum" in t.values) == (t.values["optimizer"] == "sgd")
    assert optimizer in ("adam", "sgd")


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="acquisition"):
        BayesianNASOracle(objective=objective(), acquisition="foo")
    with pytest.raises(ValueError, match="distance"):
        BayesianNASOracle(objective=objective(), distance="euclid")
    with pytest.raises(ValueError, match="num_initial_points"):
        BayesianNASOracle(objective=objective(), num_initial_points=0)
    with pytest.raises(ValueError):
        BayesianNASOracle(objective=objective(), score_warping="log")
    with pytest.raises(ValueError, match="recommendation"):
        BayesianNASOracle(objective=objective(), recommendation="best")


@pytest.mark.parametrize(("arguments", "message"), [
    # KerasTuner takes these and fails later or not at all: "3" inside the search, -1 ran
    # no trial, 2.5 ran three; a string for the space only warned at each proposal.
    ({"max_trials": "3"}, r"^max_trials must be a whole number >= 1 or None \(no limit\), got '3'"),
    ({"max_trials": -1}, r"^max_trials must be a whole number >= 1 or None \(no limit\), got -1"),
    ({"max_trials": 2.5}, r"^max_trials must be a whole number >= 1 or None \(no limit\), got 2.5"),
    ({"max_trials": 0}, r"^max_trials must be a whole number >= 1"),
    ({"max_consecutive_failed_trials": 0},
     r"^max_consecutive_failed_trials must be a whole number >= 1 or None \(no limit\), got 0"),
    ({"max_retries_per_trial": -1}, r"^max_retries_per_trial must be a whole number >= 0, got -1"),
    ({"search_space": "x"}, r"^search_space must be a kbnas.SearchSpace or None, got str"),
])
def test_keras_tuner_counts_and_the_space_are_checked_by_the_constructor(arguments, message):
    with pytest.raises(ValueError, match=message):
        BayesianNASOracle(objective=objective(), **arguments)
    BayesianNASOracle(objective=objective(), max_trials=None)  # no limit, as in KerasTuner


def test_executions_per_trial_is_checked_by_the_tuner(tmp_path):
    from kbnas import BayesianNAS

    with pytest.raises(ValueError, match=r"^executions_per_trial must be a whole number >= 1, got 0"):
        BayesianNAS(lambda hp: None, objective="val_loss", executions_per_trial=0, directory=str(tmp_path))


# ---------------------------------------------------------------- recommendation
def bump(x: int) -> float:
    """A smooth 1-D objective on 0..60: main peak at 20, a lower one at 45."""
    return float(np.exp(-((x - 20) / 8.0) ** 2) + 0.5 * np.exp(-((x - 45) / 4.0) ** 2))


def noisy_bump_search(tmp_path, seed: int, **oracle_kwargs) -> BayesianNASOracle:
    hp = keras_tuner.HyperParameters()
    hp.Int("x", 0, 60)
    noise = np.random.default_rng(seed)
    oracle = BayesianNASOracle(objective=objective(), max_trials=30, hyperparameters=hp, seed=seed, **oracle_kwargs)
    run_oracle(oracle, lambda values: bump(values["x"]) + 0.3 * noise.normal(), 30,
               directory=str(tmp_path / f"bump{seed}"))
    return oracle


def test_recommendation_is_the_order_of_the_posterior_mean(tmp_path):
    oracle = noisy_bump_search(tmp_path, seed=2)
    completed = [t for t in oracle.trials.values() if t.status == "COMPLETED"]
    cspace, _ = oracle._configuration_space()
    train = [dict(t.hyperparameters.values) for t in completed]
    reference = gp_module.DistanceGP().fit_fixed(
        oracle.featurizer.distance_channels(cspace, train, train),
        warp_scores(np.array([t.score for t in completed]), "rank"),
        oracle._theta,
    )
    expected = [completed[i].trial_id for i in np.argsort(-reference.training_mean(), kind="stable")]

    ranked = [t.trial_id for t in oracle.get_best_trials(len(completed))]

    assert ranked == expected
    # Seed 2 is a case of the winner's curse: the luckiest draw is not the best x.
    observed_best = keras_tuner.Oracle.get_best_trials(oracle, 1)[0]
    recommended = oracle.get_best_trials(1)[0]
    assert bump(recommended.hyperparameters.values["x"]) > bump(observed_best.hyperparameters.values["x"])


def test_recommendation_under_noise_is_at_least_as_good_as_the_best_score(tmp_path):
    recommended, observed = [], []
    for seed in range(N_SEEDS):
        oracle = noisy_bump_search(tmp_path, seed)
        recommended.append(bump(oracle.get_best_trials(1)[0].hyperparameters.values["x"]))
        observed.append(bump(keras_tuner.Oracle.get_best_trials(oracle, 1)[0].hyperparameters.values["x"]))
    assert np.mean(recommended) >= np.mean(observed), (np.mean(recommended), np.mean(observed))


def test_observed_recommendation_and_the_initial_design_rank_like_keras_tuner(tmp_path):
    oracle = noisy_bump_search(tmp_path, seed=1, recommendation="observed")
    assert oracle.get_best_trials(30) == keras_tuner.Oracle.get_best_trials(oracle, 30)

    early = BayesianNASOracle(objective=objective(), max_trials=3, hyperparameters=architecture_hp(),
                              search_space=ARCH_SPACE, seed=0)
    run_oracle(early, arch_values_score, 3, directory=str(tmp_path / "early"))
    assert early.get_best_trials(3) == keras_tuner.Oracle.get_best_trials(early, 3)


def test_recommendation_falls_back_to_scores_when_the_gp_fails(tmp_path, monkeypatch):
    oracle = noisy_bump_search(tmp_path, seed=3)

    def broken(self, *args, **kwargs):
        raise np.linalg.LinAlgError("injected failure")

    monkeypatch.setattr(gp_module.DistanceGP, "fit_fixed", broken)
    oracle._recommendation_cache = None
    with pytest.warns(RuntimeWarning, match="injected failure"):
        ranked = oracle.get_best_trials(5)
    assert ranked == keras_tuner.Oracle.get_best_trials(oracle, 5)
