"""The plain-space benchmark: its objectives against their closed-form minima, its
regrets and paired summary, and one tiny run of each contender (no training)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import plain_spaces


@pytest.mark.parametrize("x1, x2", [(-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)])
def test_branin_has_its_three_minima(x1, x2):
    values = {"x1": (x1 + 5) / 15, "x2": x2 / 15}
    assert plain_spaces.branin(values) == pytest.approx(plain_spaces.BRANIN_MIN, abs=1e-5)


def test_hartmann6_minimum_and_a_point_above_it():
    argmin = {f"x{i + 1}": v for i, v in enumerate(plain_spaces.HARTMANN6_ARGMIN)}
    assert plain_spaces.hartmann6(argmin) == pytest.approx(plain_spaces.HARTMANN6_MIN, abs=1e-5)
    assert plain_spaces.hartmann6({f"x{i}": 0.5 for i in range(1, 7)}) > plain_spaces.HARTMANN6_MIN + 0.1


def test_mixed_minimum_is_zero_and_every_choice_and_value_costs():
    best = {"learning_rate": 10 ** -2.5, "units": 128, "layers": 2, "activation": "relu", "optimizer": "adam",
            "dropout": 0.16}
    assert plain_spaces.mixed(best) == pytest.approx(0.0, abs=1e-12)
    for change in ({"units": 256}, {"layers": 3}, {"activation": "tanh"}, {"dropout": 0.3},
                   {"learning_rate": 1e-2}):
        assert plain_spaces.mixed({**best, **change}) > 0.01
    # sgd moves the best learning rate a decade up, and costs 0.1 there.
    assert plain_spaces.mixed({**best, "optimizer": "sgd", "learning_rate": 10 ** -1.5}) == pytest.approx(0.1)
    # The optimum lies inside the declared space (units on its step of 16).
    hp = plain_spaces.hyperparameters("mixed")
    assert 128 % hp.get_config()["space"][1]["config"]["step"] == 0


def test_log_regret_is_the_running_minimum_above_the_optimum():
    record = {"objective": "mixed", "f": [2.0, 0.5, None, 0.01, 3.0]}
    assert plain_spaces.log_regret(record, 1) == pytest.approx(math.log10(2.0))
    assert plain_spaces.log_regret(record, 3) == pytest.approx(math.log10(0.5))
    assert plain_spaces.log_regret(record, 5) == pytest.approx(-2.0)
    assert plain_spaces.log_regret(record, 6) is None  # the run was shorter
    assert plain_spaces.log_regret({"objective": "mixed", "f": [0.0]}, 1) == pytest.approx(-6.0)  # the floor


def _record(contender, seed, f, seconds=0.01):
    return {"contender": contender, "objective": "mixed", "seed": seed, "budget": len(f), "f": f,
            "oracle_seconds": [seconds] * len(f)}


def test_summary_pairs_each_contender_with_kbnas_on_common_seeds():
    records = [_record("kbnas", s, [1.0, 0.01]) for s in range(3)]
    records += [_record("keras-tuner-bo", s, [1.0, 0.1], seconds=0.1) for s in range(4)]
    summary = plain_spaces.summarize(records, budgets=(1, 2))
    table = summary["mixed"]["contenders"]
    assert table["keras-tuner-bo"]["seeds"] == 4
    difference = table["keras-tuner-bo"]["budgets"]["2"]["reference_minus_this"]
    assert difference["seeds"] == [0, 1, 2] and difference["mean"] == pytest.approx(-1.0)
    assert table["keras-tuner-bo"]["budgets"]["1"]["reference_minus_this"]["mean"] == pytest.approx(0.0)
    assert "reference_minus_this" not in table["kbnas"]["budgets"]["2"]
    assert table["keras-tuner-bo"]["seconds_ratio_to_reference"] == pytest.approx(10.0)
    text = plain_spaces.format_markdown(summary, budgets=(1, 2))
    assert "| keras-tuner-bo | 4 |" in text and "10× ref" in text
    # Another reference: the pairs turn around.
    other = plain_spaces.summarize(records, budgets=(2,), reference="keras-tuner-bo")["mixed"]["contenders"]
    assert other["kbnas"]["budgets"]["2"]["reference_minus_this"]["mean"] == pytest.approx(1.0)


@pytest.mark.parametrize("contender", plain_spaces.CONTENDERS)
def test_each_contender_runs_through_keras_tuners_protocol(contender):
    record = plain_spaces.run(contender, "mixed", seed=0, budget=6)
    assert len(record["f"]) == 6 and all(np.isfinite(record["f"]))
    assert len({tuple(sorted(v.items())) for v in record["values"]}) == 6  # distinct proposals
    assert record["f"] == [plain_spaces.mixed(v) for v in record["values"]]


def test_kbnas_takes_settings_and_the_others_take_none():
    oracle = plain_spaces.make_oracle("kbnas:num_initial_points=18,acquisition=ucb", "branin", seed=0, budget=5)
    assert (oracle.num_initial_points, oracle.acquisition) == (18, "ucb")
    with pytest.raises(ValueError, match="only kbnas takes options"):
        plain_spaces.make_oracle("keras-tuner-bo:num_initial_points=3", "branin", seed=0, budget=5)
    with pytest.raises(ValueError, match="unknown contender"):
        plain_spaces.make_oracle("smac", "branin", seed=0, budget=5)


def test_a_kernel_variant_runs_through_the_oracle_and_changes_its_proposals():
    from kbnas.core import gp

    original = gp.exponential_kernel
    plain = plain_spaces.run("kbnas", "branin", seed=0, budget=8)
    matern = plain_spaces.run("kbnas-matern52:num_initial_points=4", "branin", seed=0, budget=8)
    assert gp.exponential_kernel is original  # restored after the run
    assert matern["contender"] == "kbnas-matern52:num_initial_points=4"
    assert matern["values"][:4] == plain["values"][:4]  # the same initial draws
    assert matern["values"][4:] != plain["values"][4:]  # the GP's proposals differ
    with pytest.raises(ValueError, match="unknown kernel variant"):
        plain_spaces.make_oracle("kbnas-rbf", "branin", seed=0, budget=5)


def test_digits_mlp_trains_deterministically_and_reports_test_accuracy():
    values = {"learning_rate": 1e-2, "units": 16, "layers": 1, "activation": "relu", "optimizer": "adam",
              "dropout": 0.0}
    first, again = plain_spaces.digits_mlp(values), plain_spaces.digits_mlp(values)
    assert first == again  # Keras seed 0 for every trial
    assert 0.0 < first["loss"] < 1.0 and 0.8 < first["test_accuracy"] <= 1.0
    hopeless = plain_spaces.digits_mlp({**values, "optimizer": "sgd", "learning_rate": 1e-4})
    assert hopeless["loss"] > first["loss"]


def test_digits_mlp_summary_reports_the_test_accuracy_of_the_best_validation_trial():
    def record(contender, seed, f, accuracy):
        return {**_record(contender, seed, f), "objective": "digits-mlp", "test_accuracy": accuracy}

    records = [record("kbnas", s, [0.5, 0.2, 0.3], [0.90, 0.96, 0.99]) for s in range(3)]
    records += [record("keras-tuner-bo", s, [0.4, 0.6, 0.25], [0.93, 0.80, 0.95]) for s in range(3)]
    assert plain_spaces.test_accuracy_of_best(records[0], 1) == 0.90
    assert plain_spaces.test_accuracy_of_best(records[0], 3) == 0.96  # lowest f, not highest accuracy
    assert plain_spaces.test_accuracy_of_best(records[0], 4) is None
    summary = plain_spaces.summarize(records, budgets=(1, 3))["digits-mlp"]["contenders"]
    entry = summary["keras-tuner-bo"]["budgets"]["3"]["test_accuracy"]
    assert entry["mean"]["mean"] == pytest.approx(95.0)
    assert entry["reference_minus_this"]["mean"] == pytest.approx(1.0)
    assert summary["keras-tuner-bo"]["budgets"]["3"]["reference_minus_this"]["mean"] == pytest.approx(
        math.log10(0.2) - math.log10(0.25))
    text = plain_spaces.format_markdown(plain_spaces.summarize(records, budgets=(1, 3)), budgets=(1, 3))
    assert "after 1 and 3 trials" in text and "test accuracy (%)" in text and "| keras-tuner-bo | 93.00" in text


def test_observation_noise_is_reproducible_standard_normal_and_new_at_each_trial():
    draws = [plain_spaces.observation_noise(seed, i) for seed in range(20) for i in range(100)]
    assert draws == [plain_spaces.observation_noise(seed, i) for seed in range(20) for i in range(100)]
    assert len(set(draws)) == len(draws)
    assert abs(np.mean(draws)) < 0.1 and np.std(draws) == pytest.approx(1.0, abs=0.05)  # 2,000 draws


def test_noise_sigma_is_a_tenth_of_the_spread_of_f_over_random_configurations():
    rng = np.random.default_rng(7)
    for name, spread in plain_spaces.SPREAD.items():
        assert plain_spaces.NOISE_SIGMA[f"noisy-{name}"] == pytest.approx(0.1 * spread)
        function, _ = plain_spaces.OBJECTIVES[name]
        space = plain_spaces.hyperparameters(f"noisy-{name}").space
        assert [hp.name for hp in space] == [hp.name for hp in plain_spaces.hyperparameters(name).space]
        n = 20_000 if name != "mixed" else 5_000
        if name == "mixed":  # KerasTuner's own sampling: the learning rate log-uniform
            values = [{hp.name: hp.random_sample(int(rng.integers(2 ** 31))) for hp in space} for _ in range(n)]
        else:
            values = [{hp.name: x for hp, x in zip(space, row)} for row in rng.uniform(size=(n, len(space)))]
        assert np.std([function(v) for v in values]) == pytest.approx(spread, rel=0.05), name


@pytest.mark.parametrize("contender", ["kbnas", "keras-tuner-random"])
def test_a_noisy_run_reports_f_plus_sigma_epsilon_and_keeps_the_true_f(contender):
    record = plain_spaces.run(contender, "noisy-branin", seed=3, budget=8)
    sigma = plain_spaces.NOISE_SIGMA["noisy-branin"]
    assert record["noise_sigma"] == sigma
    assert record["f_true"] == [plain_spaces.branin(v) for v in record["values"]]
    assert record["f"] == pytest.approx([f + sigma * plain_spaces.observation_noise(3, i)
                                         for i, f in enumerate(record["f_true"])])
    # One recommendation after each k = 1 … 8 trials, one of the first k, with its true f.
    assert len(record["recommended"]) == 8
    assert all(0 <= index < k for k, index in enumerate(record["recommended"], start=1))
    assert record["f_recommended"] == [record["f_true"][i] for i in record["recommended"]]


def test_every_contender_sees_the_same_noise_sequence():
    runs = [plain_spaces.run(c, "noisy-mixed", seed=5, budget=6) for c in ("kbnas", "keras-tuner-random")]
    noise = [np.subtract(r["f"], r["f_true"]) for r in runs]
    assert runs[0]["values"] != runs[1]["values"]
    np.testing.assert_allclose(noise[0], noise[1], atol=1e-12)
    other_seed = plain_spaces.run("keras-tuner-random", "noisy-mixed", seed=6, budget=6)
    assert not np.allclose(np.subtract(other_seed["f"], other_seed["f_true"]), noise[0])


def test_keras_tuner_recommends_the_best_observed_trial():
    record = plain_spaces.run("keras-tuner-random", "noisy-hartmann6", seed=0, budget=12)
    assert record["recommended"] == [int(np.argmin(record["f"][:k])) for k in range(1, 13)]


def test_asking_kbnas_for_its_recommendation_leaves_its_proposals_as_they_were():
    import tempfile

    from kbnas.offline import run_oracle

    record = plain_spaces.run("kbnas", "noisy-branin", seed=1, budget=10)
    oracle = plain_spaces.make_oracle("kbnas", "noisy-branin", seed=1, budget=10)
    observed = iter(record["f"])
    with tempfile.TemporaryDirectory() as directory:
        trials = run_oracle(oracle, lambda values: next(observed), 10, directory=directory, metric_name="loss")
    assert [t.values for t in trials] == record["values"]
    # After its initial design kbnas recommends by the GP's posterior mean, not always the lowest score.
    assert record["recommended"][-1] == next(
        i for i, t in enumerate(trials) if t.trial_id == oracle.get_best_trials(1)[0].trial_id)


def test_deterministic_runs_keep_their_record():
    record = plain_spaces.run("keras-tuner-random", "branin", seed=0, budget=3)
    assert not {"f_true", "recommended", "f_recommended", "noise_sigma"} & set(record)


def _noisy_record(contender, seed, f, f_true, recommended):
    return {**_record(contender, seed, f), "objective": "noisy-mixed", "f_true": f_true,
            "recommended": recommended, "f_recommended": [f_true[i] for i in recommended]}


def test_regrets_of_a_noisy_run_are_of_the_true_f():
    # The second trial looked best (a lucky draw), the third is truly best, kbnas picked the first.
    record = _noisy_record("kbnas", 0, [0.5, 0.05, 0.3], [0.4, 1.0, 0.01], [0, 1, 0])
    assert plain_spaces.regret_after(record, 3, "best_observed") == pytest.approx(1.0)
    assert plain_spaces.regret_after(record, 3, "recommended") == pytest.approx(0.4)
    assert plain_spaces.regret_after(record, 3, "best_tried") == pytest.approx(0.01)
    assert plain_spaces.log_regret(record, 3) == pytest.approx(0.0)  # best observed
    assert plain_spaces.log_regret(record, 2, "best_tried") == pytest.approx(math.log10(0.4))
    assert plain_spaces.regret_after(record, 4, "recommended") is None
    # Deterministic records: the best observed is the best tried; no recommendation was recorded.
    plain = _record("kbnas", 0, [2.0, 0.5])
    assert plain_spaces.regret_after(plain, 2, "best_tried") == plain_spaces.regret_after(plain, 2) == 0.5
    assert plain_spaces.regret_after(plain, 2, "recommended") is None
    with pytest.raises(ValueError, match="unknown regret measure"):
        plain_spaces.regret_after(plain, 2, "median")


def test_noisy_summary_pairs_each_measure_and_reports_three_tables():
    records = [_noisy_record("kbnas", s, [0.5, 0.05], [0.1, 1.0], [0, 0]) for s in range(3)]
    records += [_noisy_record("keras-tuner-bo", s, [0.5, 0.05], [0.1, 1.0], [0, 1]) for s in range(3)]
    summary = plain_spaces.summarize(records, budgets=(2,))["noisy-mixed"]["contenders"]
    entry = summary["keras-tuner-bo"]["budgets"]["2"]
    assert entry["log10_regret"]["mean"] == pytest.approx(0.0)
    assert entry["log10_regret_recommended"]["mean"]["mean"] == pytest.approx(0.0)
    assert entry["log10_regret_recommended"]["reference_minus_this"]["mean"] == pytest.approx(-1.0)
    assert entry["log10_regret_best_tried"]["reference_minus_this"]["mean"] == pytest.approx(0.0)
    text = plain_spaces.format_markdown(plain_spaces.summarize(records, budgets=(2,)), budgets=(2,))
    assert text.count("**noisy-mixed** (σ = 0.159)") == 3
    assert "regret of the recommended trial" in text and "regret of the best-observed trial" in text
    assert "| keras-tuner-bo | 3 | +0.00 [+0.00, +0.00]; ref − it -1.00 [-1.00, -1.00] |" in text
