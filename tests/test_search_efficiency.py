"""The search-efficiency harness (benchmarks.search_efficiency) on tiny synthetic tables."""

from __future__ import annotations

import json
import math

import keras_tuner
import numpy as np
import pytest
import scipy.special

from benchmarks import search_efficiency as se
from benchmarks.tabular.table import Record, TabularBenchmark
from kbnas.space import SearchSpace

# 11 architectures: conv3-16, maxpool, relu and their valid pairs.
SPACE = SearchSpace(
    input_shape=(8, 8, 1), vocabulary=("conv3", "maxpool", "relu"), filters=(16,), units=(32,),
    min_depth=1, max_depth=2,
)
ARCHITECTURES = [a.encode() for a in SPACE.enumerate()]
M = len(ARCHITECTURES)
# Distinct accuracies; validation and test agree on the order, so the best queried
# validation accuracy is the best mean test accuracy among the queried.
ACCURACY = {a: 0.50 + 0.04 * rank for a, rank in zip(ARCHITECTURES, np.random.default_rng(3).permutation(M))}
BEST = max(ACCURACY, key=ACCURACY.get)


def write_table(folder, seeds_of: dict[str, int], *, noise: float = 0.0):
    """A table of SPACE in ``folder``: ``seeds_of[a]`` seeds of architecture a."""
    rows = []
    rng = np.random.default_rng(0)
    for architecture, n_seeds in seeds_of.items():
        for seed in range(n_seeds):
            val = round(ACCURACY[architecture] + noise * rng.normal(), 6)
            rows.append(Record(
                architecture=architecture, seed=seed, epochs=1,
                params=SPACE.param_count(SPACE.from_hp_value(architecture)),
                val_accuracy=val, best_val_accuracy=val, best_epoch=1,
                test_accuracy=ACCURACY[architecture], train_accuracy=1.0, train_loss=0.0,
                val_accuracy_per_epoch=(val,), train_seconds=1.0,
            ).to_row())
    path = folder / "table.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "settings.json").write_text(json.dumps({"recipe": {"space": SPACE.to_config()}}))
    return path


@pytest.fixture
def exact_table(tmp_path):
    """Noise-free: one seed per architecture."""
    return TabularBenchmark.load(write_table(tmp_path, {a: 1 for a in ARCHITECTURES}))


@pytest.fixture
def noisy_table(tmp_path):
    return TabularBenchmark.load(write_table(tmp_path, {a: 3 for a in ARCHITECTURES}, noise=0.05))


class ScriptedOracle(keras_tuner.Oracle):
    """Proposes the given architecture strings in order (repeating the last one forever
    when ``repeat_last``), then STOPPED."""

    def __init__(self, script, repeat_last=False):
        hp = keras_tuner.HyperParameters()
        hp.Fixed("architecture", "conv3-16")
        super().__init__(objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=None,
                         hyperparameters=hp, seed=1, max_consecutive_failed_trials=10**9)
        self.script, self.repeat_last = list(script), repeat_last

    def populate_space(self, trial_id):
        index = len(self.trials)
        if index >= len(self.script) and not self.repeat_last:
            return {"status": "STOPPED", "values": None}
        return {"status": "RUNNING", "values": {"architecture": self.script[min(index, len(self.script) - 1)]}}


def decode_or_none(values):
    return None if values["architecture"] == "not-an-architecture" else values["architecture"]


# ---------------------------------------------------------------------- scoring


def test_an_oracle_that_always_proposes_the_best_architecture_has_zero_regret(noisy_table, tmp_path):
    result = se.replay(noisy_table, ScriptedOracle([BEST], repeat_last=True), decode=decode_or_none,
                       seed=0, budget=6, directory=str(tmp_path / "o"))
    regrets, incumbents = se.regret_trajectory(noisy_table, result["queries"])
    assert regrets == [0.0] * 6 and set(incumbents) == {BEST}
    assert se.validation_regret_trajectory(noisy_table, result["queries"]) == pytest.approx(
        [max(noisy_table.mean_val(a) for a in ARCHITECTURES) - noisy_table.mean_val(BEST)] * 6)
    # A worse first query is reported until the best one comes.
    worse = min(ACCURACY, key=ACCURACY.get)
    regrets, _ = se.regret_trajectory(noisy_table, [(worse, 0.9), (None, None), (BEST, 0.95)])
    assert regrets == pytest.approx([ACCURACY[BEST] - ACCURACY[worse]] * 2 + [0.0])


def test_invalid_proposals_consume_queries_and_absent_ones_do_not(tmp_path):
    present = [a for a in ARCHITECTURES if a != "relu"]
    table = TabularBenchmark.load(write_table(tmp_path, {a: 2 for a in present}, noise=0.05))
    script = ["conv3-16", "not-an-architecture", "relu", "maxpool", "conv3-16|relu"]
    result = se.replay(table, ScriptedOracle(script), decode=decode_or_none, seed=4, budget=3,
                       directory=str(tmp_path / "o"))
    assert [q[0] for q in result["queries"]] == ["conv3-16", None, "maxpool"]
    assert result["absent_proposals"] == 1 and result["stopped"] is None
    # Query k draws its seed with default_rng([run seed, k]), whatever was skipped.
    for k in (0, 2):
        encoding, value = result["queries"][k]
        assert value == table.query(encoding, np.random.default_rng([4, k]))
    # The script runs out before the budget: the run says so.
    result = se.replay(table, ScriptedOracle(script), decode=decode_or_none, seed=4, budget=10,
                       directory=str(tmp_path / "p"))
    assert len(result["queries"]) == 4 and "stopped" in result["stopped"]


def test_token_encoding_reads_the_first_depth_slots_and_rejects_invalid_stacks():
    values = {"depth": 2, "layer_0": "conv3-16", "layer_1": "relu"}
    assert se.architecture_from_values(values, SPACE, "tokens") == "conv3-16|relu"
    assert se.architecture_from_values({"depth": 1, "layer_0": "relu", "layer_1": "relu"}, SPACE, "tokens") == "relu"
    assert se.architecture_from_values({"depth": 2, "layer_0": "relu", "layer_1": "relu"}, SPACE, "tokens") is None
    assert se.architecture_from_values({"architecture": "maxpool|relu"}, SPACE, "architecture") == "maxpool|relu"
    hp = se.token_hyperparameters(SPACE)
    assert [h.name for h in hp.space] == ["depth", "layer_0", "layer_1"]


# ---------------------------------------------------------------------- random search, closed form


def expected_best_of_n_regret(n: int) -> tuple[float, float]:
    """Mean and variance of the regret of the best of n distinct uniform draws.

    With architectures ranked 1..M by accuracy, P(max rank ≤ r) = C(r, n) / C(M, n).
    """
    accuracies = np.sort(np.array(list(ACCURACY.values())))
    regret_of_rank = accuracies[-1] - accuracies
    cdf = np.array([scipy.special.comb(r, n) / scipy.special.comb(M, n) for r in range(1, M + 1)])
    pmf = np.diff(np.concatenate([[0.0], cdf]))
    mean = float(pmf @ regret_of_rank)
    return mean, float(pmf @ regret_of_rank**2 - mean**2)


def test_random_search_matches_the_order_statistics_of_draws_without_replacement(exact_table):
    budget, n_runs = 5, 120
    regrets = np.array([
        se.run_contender(exact_table, "random", seed=seed, budget=budget)["regret"] for seed in range(n_runs)
    ])
    for n in range(1, budget + 1):
        mean, variance = expected_best_of_n_regret(n)
        assert abs(regrets[:, n - 1].mean() - mean) < 4 * math.sqrt(variance / n_runs) + 1e-12, n
    # Mean regret strictly falls with the number of draws, as the closed form does.
    assert np.all(np.diff(regrets.mean(axis=0)) < 0)
    # The whole space: zero regret, every architecture once, then the oracle stops.
    record = se.run_contender(exact_table, "random", seed=0, budget=M + 2)
    assert record["regret"][M - 1] == 0.0 and record["n_distinct"] == M == record["n_queries"]
    assert record["stopped"] and len(record["regret"]) == M + 2


# ---------------------------------------------------------------------- determinism, resuming, report


@pytest.mark.parametrize("contender", ["kbnas", "evolution", "keras-tuner-random"])
def test_a_run_is_deterministic_for_its_seed(noisy_table, contender):
    def run(seed):
        record = se.run_contender(noisy_table, contender, seed=seed, budget=8)
        return record["queries"], record["regret"]

    first = run(2)
    assert run(2) == first
    assert run(3)[0] != first[0]


def test_runs_are_resumable_and_the_report_summarises_them(tmp_path):
    table_path = write_table(tmp_path, {a: 2 for a in ARCHITECTURES}, noise=0.05)
    output = tmp_path / "runs.jsonl"
    kwargs = dict(contenders=["random", "kbnas"], seeds=range(3), budget=4, log=lambda line: None)
    made = se.run_search_efficiency(table_path, output, **kwargs)
    assert len(made) == 6 and len(se.read_records(output)) == 6
    text = output.read_text()
    assert se.run_search_efficiency(table_path, output, **kwargs) == []
    assert output.read_text() == text
    # A bigger budget is another experiment; an unfinished last line is ignored.
    with open(output, "a") as handle:
        handle.write('{"contender": "random", "se')
    more = se.run_search_efficiency(table_path, output, contenders=["random"], seeds=range(2), budget=5,
                                    log=lambda line: None)
    assert len(more) == 2
    assert len(se.read_records(output)) == 8  # the fragment was cut, not glued to a new line

    records, budget, _ = se.select_records(se.read_records(output), budget=4)
    assert budget == 4 and len(records) == 6
    summary = se.summarize(records, budgets=(1, 2, 4, 10))
    assert summary["budgets"] == [1, 2, 4]
    regrets = np.array([r["regret"] for r in records if r["contender"] == "random"])
    cell = summary["contenders"]["random"]["regret"]["4"]
    assert cell["mean"] == pytest.approx(regrets[:, 3].mean()) and cell["n"] == 3
    markdown = se.format_report_markdown(summary)
    assert "| random |" in markdown and "Target" in markdown
    pytest.importorskip("matplotlib")
    se.plot_regret(summary, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_t_interval_and_the_target_check_against_hand_computed_numbers():
    mean, half_width = se.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(se.t_interval([1.0])[1])

    def record(contender, seed, regret):
        return {"contender": contender, "seed": seed, "budget": 30, "table": {"fingerprint": "f", "n_rows": 1},
                "regret": regret, "val_regret": regret, "oracle_seconds": [0.1] * 30, "n_queries": 30, "n_invalid": 0,
                "n_distinct": 30, "absent_proposals": 0, "stopped": None}

    ours = [0.03] * 10 + [0.01] * 20
    theirs = [0.02] * 10 + [0.02] * 20
    records = [record("kbnas", s, ours) for s in range(3)] + [record("random", s, theirs) for s in range(3)]
    summary = se.summarize(records, budgets=(10, 25, 30))
    # Above random at 10 queries, below it from 25 on.
    assert summary["target"] == {"met": False, "lowest_from": {"25": [], "30": []}, "worse_than_random": [10]}
    paired = summary["paired_vs_kbnas"]["random"]
    assert paired["10"]["mean"] == pytest.approx(0.01) and paired["30"]["mean"] == pytest.approx(-0.01)
    records += [record("evolution", s, [0.005] * 30) for s in range(3)]
    assert se.summarize(records, budgets=(25,))["target"]["lowest_from"] == {"25": ["evolution"]}


def test_contender_names_and_options_are_checked():
    assert se.parse_contender("kbnas:num_initial_points=20,score_warping=standardize") == (
        "kbnas", {"num_initial_points": 20, "score_warping": "standardize"})
    with pytest.raises(ValueError, match="unknown contender"):
        se.parse_contender("hyperband")
    with pytest.raises(ValueError, match="only kbnas"):
        se.parse_contender("random:seed=3")


def test_surrogate_quality_reports_rank_correlations(noisy_table):
    settings = se.SurrogateSettings(sizes=(5,), repeats=2, distances=("edit",), warpings=("rank",), neighbours=2)
    result = se.surrogate_quality(noisy_table, settings)
    row = result["rows"]["gp edit rank"]["5"]
    assert -1.0 <= row["spearman"]["mean"] <= 1.0
    assert 0.0 <= row["noise_fraction"]["mean"] <= 1.0
    assert row["regret_of_argmax"]["mean"] >= 0.0
    assert "knn2 edit" in result["rows"]
    assert row["exploded"]["mean"] in (0.0, 0.5, 1.0)
    assert 0.0 <= row["zero_variance"]["mean"] <= 1.0
    assert "gp edit rank without spectrum flip" in result["rows"]
    markdown = se.format_surrogate_markdown(result)
    assert "| gp edit rank |" in markdown and " of 2 |" in markdown


def test_the_table_state_of_a_run_is_rebuilt_and_its_validation_ceiling_computed(tmp_path):
    path = write_table(tmp_path, {a: 1 for a in ARCHITECTURES})
    info = se.table_description(TabularBenchmark.load(path))
    # The generator appends a row for seed 1: the run's table is the prefix it saw.
    (tmp_path / "grown").mkdir()
    grown = write_table(tmp_path / "grown", {a: 1 for a in ARCHITECTURES} | {BEST: 2}, noise=0.05)
    assert se.load_table_state(grown, info) is None  # another first row: not the same table
    with open(path, "a") as handle:
        handle.write(grown.read_text().splitlines()[-1] + "\n")
    state = se.load_table_state(path, info)
    assert state is not None and se.table_fingerprint(state) == info["fingerprint"]
    ceiling = se.validation_ceiling(state, ks=(1, M))
    # Noise-free and val = test: the top architecture by validation has zero regret.
    assert ceiling["top_k"]["1"] == 0.0
    assert ceiling["top_k"][str(M)] == pytest.approx(np.mean([ACCURACY[BEST] - v for v in ACCURACY.values()]))
    assert ceiling["spearman_top_decile"] == pytest.approx(1.0)


def test_recommendations_are_recorded_for_model_ranked_oracles_only(noisy_table):
    ours = se.run_contender(noisy_table, "kbnas", seed=0, budget=25)
    theirs = se.run_contender(noisy_table, "random", seed=0, budget=25)

    assert set(ours["recommended"]) == {"10", "25"}
    assert all(a in noisy_table for a in ours["recommended"].values())
    assert ours["recommended_regret"]["25"] == noisy_table.regret(ours["recommended"]["25"])
    assert ours["ranking"] == "posterior_mean" and theirs["ranking"] == "observed"
    # Ranking by score recommends the incumbent; so do records without a recommendation.
    assert se.recommended_regret(theirs, 25) == theirs["regret"][24]
    assert theirs["recommended"]["25"] == se.incumbent_trajectory([tuple(q) for q in theirs["queries"]])[-1]
    del theirs["recommended_regret"]
    assert se.recommended_regret(theirs, 10) == theirs["regret"][9]
    summary = se.summarize([ours, theirs])
    assert summary["contenders"]["kbnas"]["recommends_by_model"]
    assert not summary["contenders"]["random"]["recommends_by_model"]
    assert summary["contenders"]["kbnas"]["recommended_regret"]["25"]["mean"] == pytest.approx(
        ours["recommended_regret"]["25"]
    )
    assert "oracle.get_best_trials(1)" in se.format_report_markdown(summary)
