"""The oracle's initial design and time budget, through KerasTuner's protocol (no training)."""

from __future__ import annotations

import time
import types

import keras_tuner
import numpy as np
import pytest

from kbnas.configurations import architecture_hyperparameters
from kbnas.offline import run_oracle
from kbnas.oracle import BayesianNASOracle
from kbnas.space import Architecture, SearchSpace
from kbnas.space.templates import templates

SPACE = SearchSpace(input_shape=(8, 8, 1), max_depth=12)
OBJECTIVE = keras_tuner.Objective("score", "max")


def depth_score(values: dict) -> float:
    """A closed-form stand-in: longer architectures score more, up to 1."""
    return len(Architecture.decode(values["architecture"])) / SPACE.max_depth


def make_oracle(**kwargs) -> BayesianNASOracle:
    return BayesianNASOracle(
        objective=OBJECTIVE,
        hyperparameters=architecture_hyperparameters(SPACE),
        search_space=SPACE,
        seed=kwargs.pop("seed", 0),
        **kwargs,
    )


def test_user_initial_points_are_evaluated_first_in_order(tmp_path):
    mine = ["conv5-16|maxpool|dense-32", "dense-64|relu"]
    oracle = make_oracle(max_trials=8, initial_points=[mine[0], {"architecture": mine[1]}])
    trials = run_oracle(oracle, depth_score, 8, directory=str(tmp_path))
    archs = [t.values["architecture"] for t in trials]
    assert archs[:2] == mine
    methods = [oracle.proposal_log[t.trial_id]["method"] for t in trials]
    assert methods[:2] == ["initial", "initial"]


def test_templates_follow_the_user_points_then_space_filling_random(tmp_path):
    oracle = make_oracle(max_trials=6, num_initial_points=6, initial_points=["dense-64|relu"])
    trials = run_oracle(oracle, depth_score, 6, directory=str(tmp_path))
    methods = [oracle.proposal_log[t.trial_id]["method"] for t in trials]
    # 6 initial points: the user's, 6 - 2 - 1 = 3 templates, 2 random draws.
    assert methods == ["initial", "template", "template", "template", "random", "random"]
    expected = [a.encode() for a in templates(SPACE)[:3]]
    assert [t.values["architecture"] for t in trials[1:4]] == expected


def test_templates_can_be_switched_off_for_uniform_random_draws(tmp_path):
    oracle = make_oracle(max_trials=4, num_initial_points=4, templates=False)
    trials = run_oracle(oracle, depth_score, 4, directory=str(tmp_path))
    assert {oracle.proposal_log[t.trial_id]["method"] for t in trials} == {"random"}
    # The same draws as the uniform sampler with the oracle's per-trial generators.
    cspace, _ = oracle._configuration_space()
    expected = []
    for index in range(4):
        rng = np.random.default_rng([0, index])
        expected.append(cspace.sample(rng)["architecture"])
    assert [t.values["architecture"] for t in trials] == expected


def test_space_filling_draw_is_the_farthest_of_its_pool(tmp_path):
    """The random initial draw maximizes its distance to the tried configurations."""
    oracle = make_oracle(max_trials=5, num_initial_points=5)
    trials = run_oracle(oracle, depth_score, 5, directory=str(tmp_path))
    tried = [t.values for t in trials]
    cspace, everything = oracle._configuration_space()
    rng = np.random.default_rng(1)
    chosen = oracle._space_filling_random(cspace, everything, set(oracle._tried_so_far), rng)
    pool = [cspace.sample(np.random.default_rng(seed)) for seed in range(64)]
    channels = oracle.featurizer.distance_channels(cspace, pool + [chosen], tried)
    nearest = channels.sum(axis=0).min(axis=1)
    # Far from everything tried: above the median of fresh uniform draws.
    assert nearest[-1] > np.median(nearest[:-1])


def test_random_draws_of_a_plain_space_are_uniform_not_pushed_to_the_boundary(tmp_path):
    # Six Floats on [0, 1]: a uniform coordinate lies in [0.1, 0.9] with probability
    # 0.8. The maximin rule of architecture spaces put 60 % of them there (seeds 0-2,
    # 8 initial draws each: 62, 67 and 50 %), the rest near the box's faces; uniform
    # draws, the same as templates=False's: 80 %.
    inside = []
    for seed in range(3):
        hp = keras_tuner.HyperParameters()
        for i in range(6):
            hp.Float(f"x{i}", 0.0, 1.0)
        oracle = BayesianNASOracle(objective=keras_tuner.Objective("loss", "min"), max_trials=8,
                                   hyperparameters=hp, seed=seed)
        trials = run_oracle(oracle, lambda v: sum((x - 0.5) ** 2 for x in v.values()), 8,
                            directory=str(tmp_path / str(seed)), metric_name="loss")
        assert {oracle.proposal_log[t.trial_id]["method"] for t in trials} == {"random"}
        cspace, everything = oracle._configuration_space()
        expected = [cspace.sample(np.random.default_rng([seed, index])) for index in range(8)]
        assert [t.values for t in trials] == expected
        inside += [0.1 < t.values[f"x{i}"] < 0.9 for t in trials for i in range(6)]
    assert np.mean(inside) > 0.7


def test_invalid_user_architecture_is_a_clear_value_error():
    with pytest.raises(ValueError, match="initial point 1: .*not in vocabulary|initial point 1"):
        make_oracle(max_trials=3, initial_points=["conv3-32|lstm-4"])
    with pytest.raises(ValueError, match="initial point 1"):
        make_oracle(max_trials=3, initial_points=["dense-64|conv3-32"])


@pytest.mark.parametrize("bad", [0, -5, "3m"])
def test_max_time_must_be_positive_seconds(bad):
    with pytest.raises(ValueError, match="max_time"):
        make_oracle(max_trials=3, max_time=bad)


class VirtualClock:
    """`time.monotonic` for the oracle that moves only when a trial "trains".

    The budget tests then check the oracle's arithmetic, not how busy the machine
    is: on a loaded CI runner a GP proposal can take longer than a whole trial.
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def train(self, seconds: float, values: dict) -> float:
        self.now += seconds
        return depth_score(values)


@pytest.fixture
def clock(monkeypatch) -> VirtualClock:
    import kbnas.oracle

    virtual = VirtualClock()
    # Only the budget's clock is virtual; the oracle's other timings (perf_counter) stay real.
    fake_time = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    fake_time.monotonic = virtual
    monkeypatch.setattr(kbnas.oracle, "time", fake_time)
    return virtual


def test_wall_clock_budget_stops_the_search(tmp_path, clock):
    """0.3 s trials, a 1.0 s budget: after 3 trials 0.1 s is left, less than half a
    trial, so the search ends there, 97 trials before max_trials."""
    oracle = make_oracle(max_trials=100, max_time=1.0)
    trials = run_oracle(oracle, lambda v: clock.train(0.3, v), 100, directory=str(tmp_path))
    assert len(trials) == 3
    assert oracle.search_seconds() == pytest.approx(0.9)
    assert oracle.remaining_time() == pytest.approx(0.1)
    assert sorted(oracle.trial_seconds.values()) == pytest.approx([0.3] * 3)


def test_the_budget_is_spent_to_zero_when_trials_are_short(tmp_path, clock):
    """0.25 s trials, a 1.0 s budget: four trials spend it exactly; none starts on 0 s."""
    oracle = make_oracle(max_trials=100, max_time=1.0)
    trials = run_oracle(oracle, lambda v: clock.train(0.25, v), 100, directory=str(tmp_path))
    assert len(trials) == 4
    assert oracle.remaining_time() == 0.0


def test_search_seconds_survive_reload(tmp_path, clock):
    oracle = make_oracle(max_trials=3, max_time=1000.0)
    run_oracle(oracle, lambda v: clock.train(0.1, v), 3, directory=str(tmp_path))
    spent = oracle.search_seconds()
    assert spent == pytest.approx(0.3)
    reloaded = make_oracle(max_trials=5, max_time=1000.0)
    reloaded._set_project_dir(str(tmp_path), "offline")
    reloaded.reload()
    assert reloaded.search_seconds() == pytest.approx(spent)
    assert set(reloaded.trial_seconds) == set(oracle.trial_seconds)
    assert reloaded.remaining_time() == pytest.approx(1000.0 - spent)


def test_no_trial_starts_when_less_than_half_a_trial_is_left(tmp_path, clock):
    """With 0.45 s trials and a 1.0 s budget, a third trial (0.1 s left) is not begun."""
    oracle = make_oracle(max_trials=100, max_time=1.0, templates=False)
    trials = run_oracle(oracle, lambda v: clock.train(0.45, v), 100, directory=str(tmp_path))
    assert len(trials) == 2


def test_a_real_clock_budget_ends_the_search(tmp_path):
    """The same on the real clock, with no timing bound: only that it ends, well before max_trials."""

    def slow_score(values):
        time.sleep(0.2)
        return depth_score(values)

    oracle = make_oracle(max_trials=100, max_time=1.0)
    trials = run_oracle(oracle, slow_score, 100, directory=str(tmp_path))
    assert 1 <= len(trials) <= 5
    # Stopped only with less than half a (median) trial left of the budget.
    assert oracle.search_seconds() >= 1.0 - 0.5 * max(oracle.trial_seconds.values())


def test_a_proposal_that_cannot_be_made_stops_the_search_without_raising(tmp_path, monkeypatch):
    """KerasTuner's lock is released only on a normal return: populate_space must not raise."""
    oracle = make_oracle(max_trials=3)
    oracle._set_project_dir(str(tmp_path), "broken")

    def broken():
        raise RuntimeError("the configuration space cannot be built")

    monkeypatch.setattr(oracle, "_configuration_space", broken)
    with pytest.warns(RuntimeWarning, match="the proposal failed"):
        trial = oracle.create_trial("tuner0")
    assert trial.status == "STOPPED"
    # The lock was released: another call goes through instead of hanging.
    with pytest.warns(RuntimeWarning):
        assert oracle.create_trial("tuner1").status == "STOPPED"


def _plain_space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 8, 32, step=8)
    hp.Choice("act", ["relu", "tanh"])
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Boolean("bn")
    hp.Choice("heads", [1, 2, 4])
    hp.Int("filters", 16, 256, sampling="log")
    hp.Fixed("seed", 3)
    return hp


@pytest.mark.parametrize(("point", "message"), [
    # Each of these trained as given (1000 units, a sigmoid) before: silently another search.
    ({"units": 1000}, r"^initial point 1: units=1000 lies outside \[8, 32\]"),
    ({"units": 12}, r"^initial point 1: units=12 is not on the grid 8, 16, … \(step 8\)"),
    ({"units": 16.5}, r"^initial point 1: units=16.5 is not a whole number"),
    ({"act": "sigmoid"}, r"^initial point 1: act='sigmoid' is not one of the Choice's values \['relu', 'tanh'\]"),
    ({"lr": 0.5}, r"^initial point 1: lr=0.5 lies outside \[0.0001, 0.1\]"),
    ({"lr": "fast"}, r"^initial point 1: lr='fast' is not a number"),
    ({"bn": 1}, r"^initial point 1: bn=1 is not True or False"),
    ({"heads": True}, r"^initial point 1: heads=True is not one of the Choice's values \[1, 2, 4\]"),  # True == 1
    ({"lr": float("inf")}, r"^initial point 1: lr=inf is not a finite number"),
    ({"units": 2**70}, r"^initial point 1: units=1180591620717411303424 lies outside \[8, 32\]"),
    ({"seed": 4}, r"^initial point 1: seed=4 differs from the Fixed value 3"),
])
def test_initial_point_values_the_space_cannot_take_are_a_value_error(point, message):
    oracle = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_plain_space(),
                               initial_points=[{"units": 16}, point][1:])
    with pytest.raises(ValueError, match=message):
        oracle.check_initial_points()


def test_values_the_space_takes_are_held_as_keras_tuner_holds_its_own():
    point = {"units": np.int64(16), "lr": np.float32(0.01), "bn": np.bool_(True), "heads": 2.0, "filters": 100,
             "seed": 3}
    oracle = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_plain_space(), initial_points=[point])
    oracle.check_initial_points()  # a log-sampled Int has no grid: 100 is fine
    held = oracle.initial_points[0]
    assert held == {"units": 16, "lr": pytest.approx(0.01), "bn": True, "heads": 2, "filters": 100, "seed": 3}
    assert [type(held[k]) for k in ("units", "lr", "bn", "heads")] == [int, float, bool, int]  # JSON-writable
    oracle = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_plain_space(), initial_points=[{"units": 16.0}])
    oracle.check_initial_points()
    assert type(oracle.initial_points[0]["units"]) is int  # Keras refuses Dense(units=16.0)


def test_a_name_declared_under_two_conditions_takes_either_range():
    hp = keras_tuner.HyperParameters()
    hp.Choice("model", ["a", "b"])
    with hp.conditional_scope("model", "a"):
        hp.Int("units", 8, 32)
    with hp.conditional_scope("model", "b"):
        hp.Int("units", 64, 256)
    oracle = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=hp,
                               initial_points=[{"model": "a", "units": 16}, {"model": "b", "units": 128}])
    oracle.check_initial_points()
    oracle = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=hp, initial_points=[{"model": "a", "units": 40}])
    with pytest.raises(ValueError, match=r"^initial point 1: units=40 lies outside"):
        oracle.check_initial_points()


def test_an_initial_point_name_the_space_does_not_declare_warns(recwarn):
    oracle = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_plain_space(),
                               initial_points=[{"units": 16, "act": "tanh", "lr": 0.01, "bn": True}, {"unitz": 24}])
    with pytest.warns(RuntimeWarning, match=r"^kbnas: initial point 2: no hyperparameter 'unitz' in the search "
                      r"space \(its names: units, act, lr, bn, heads, filters, seed\); ignored unless the model "
                      r"declares it"):
        oracle.check_initial_points()
    assert not [w for w in recwarn if "initial point 1" in str(w.message)]


def test_the_tuner_checks_initial_points_before_any_training(tmp_path):
    from kbnas import BayesianNAS

    import keras

    def build(hp):  # KerasTuner builds it once to learn the space; no trial trains it
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(hp.Int("units", 8, 32, step=8)),
                                  keras.layers.Dense(1)])
        model.compile("adam", "mse")
        return model

    tuner = BayesianNAS(build, objective="val_loss", max_trials=2, directory=str(tmp_path),
                        initial_points=[{"units": 1000}])
    with pytest.raises(ValueError, match=r"^initial point 1: units=1000 lies outside \[8, 32\]"):
        tuner.search(np.zeros((8, 2)), np.zeros(8), validation_data=(np.zeros((4, 2)), np.zeros(4)), epochs=1)
    assert tuner.oracle.trials == {}
