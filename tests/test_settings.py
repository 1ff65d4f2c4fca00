"""`kbnas.SearchSettings`: one frozen dataclass that the oracle and the tuner take."""

from __future__ import annotations

import dataclasses

import keras_tuner
import pytest

import kbnas

from kbnas import BayesianNAS, BayesianNASOracle, EarlyStopping, EvolutionSettings, SearchSettings

OBJECTIVE = keras_tuner.Objective("score", "max")


def _hps() -> keras_tuner.HyperParameters:
    hps = keras_tuner.HyperParameters()
    hps.Choice("units", [8, 16, 32])
    return hps


def test_settings_and_keywords_make_the_same_oracle_and_keywords_override_fields():
    settings = SearchSettings(acquisition="ucb", kappa=3.0, max_time=60, templates=False)
    by_settings = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_hps(), settings=settings)
    by_keywords = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_hps(), acquisition="ucb", kappa=3,
                                    max_time=60.0, templates=False)
    assert by_settings.settings == by_keywords.settings == settings
    assert (by_keywords.acquisition, by_keywords.kappa, by_keywords.max_time) == ("ucb", 3.0, 60.0)
    overridden = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_hps(), settings=settings, acquisition="ei")
    assert overridden.acquisition == "ei" and overridden.kappa == 3.0 and not overridden.templates
    assert settings.acquisition == "ucb"  # the caller's settings are not changed


def test_the_settings_are_frozen_and_read_only_on_the_oracle():
    oracle = BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_hps())
    assert oracle.settings == SearchSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        oracle.settings.acquisition = "pi"
    with pytest.raises(AttributeError):
        oracle.acquisition = "pi"


def test_every_field_reads_as_an_oracle_attribute():
    settings = SearchSettings(
        distance="otmann", acquisition="pi", kappa=1.5, xi=0.1, num_initial_points=5, score_warping="standardize",
        n_restarts=2, refit_every=7, exhaustive_limit=10, evolution=EvolutionSettings(n_generations=3),
        recommendation="observed", initial_points=("dense-32|relu",), templates=False, max_time=30.0,
        early_stopping=EarlyStopping(min_epochs=2), reevaluate_every=3,
    )
    oracle = BayesianNASOracle(objective=OBJECTIVE, search_space=kbnas.SearchSpace(input_shape=(8, 8, 1)),
                               settings=settings)
    for field in dataclasses.fields(SearchSettings):
        if field.name == "initial_points":
            assert oracle.initial_points == [{"architecture": "dense-32|relu"}]
        else:
            assert getattr(oracle, field.name) == getattr(settings, field.name), field.name


@pytest.mark.parametrize(
    "overrides, named",
    [
        ({"acquisition": "best"}, "acquisition='best'"),
        ({"distance": "hamming"}, "distance='hamming'"),
        ({"distance": 3}, "distance must be"),
        ({"num_initial_points": 0}, "num_initial_points"),
        ({"score_warping": "log"}, "log"),
        ({"recommendation": "latest"}, "recommendation='latest'"),
        ({"max_time": -1}, "max_time"),
        ({"max_time": True}, "max_time"),
        ({"reevaluate_every": -1}, "reevaluate_every"),
        ({"reevaluate_every": 1.5}, "reevaluate_every"),
        ({"early_stopping": 3}, "early_stopping"),
        ({"evolution": {"n_generations": 3}}, "evolution"),
        # Each was accepted, or a TypeError that named nothing, before kbnas.core.checks:
        ({"kappa": None}, "kappa must be a finite number >= 0, got None"),
        ({"kappa": "abc"}, "kappa must be"),
        ({"kappa": float("inf")}, "kappa must be"),
        ({"xi": float("nan")}, "xi must be a finite number"),
        ({"initial_points": 5}, "initial_points must be a list"),
        ({"n_restarts": -3}, "n_restarts must be a whole number >= 0"),
        ({"refit_every": 0}, "refit_every must be a whole number >= 1"),
        ({"exhaustive_limit": -1}, "exhaustive_limit must be a whole number >= 0"),
        ({"num_initial_points": 2.5}, "num_initial_points must be a whole number >= 1"),
        ({"templates": "no"}, "templates must be True or False"),
    ],
)
def test_a_bad_field_is_one_value_error_naming_it(overrides, named):
    with pytest.raises(ValueError, match=named):
        SearchSettings(**overrides)
    with pytest.raises(ValueError, match=named):
        BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_hps(), **overrides)


def test_reevaluate_every_takes_numpy_integers_as_ints():
    import numpy as np

    settings = SearchSettings(reevaluate_every=np.int64(2))
    assert settings.reevaluate_every == 2 and type(settings.reevaluate_every) is int
    # A whole number read back from JSON as a float is the integer it is.
    assert SearchSettings(num_initial_points=4.0).num_initial_points == 4
    assert type(SearchSettings(num_initial_points=4.0).num_initial_points) is int
    # numpy's bools and numbers, an iterable of configurations, and an infinite budget (no limit) pass.
    assert SearchSettings(templates=np.bool_(False)).templates is False
    assert SearchSettings(initial_points=(f"dense-{u}|relu" for u in (16, 32))).initial_points == (
        "dense-16|relu", "dense-32|relu")
    assert SearchSettings(initial_points=None).initial_points == ()
    assert SearchSettings(max_time=np.int64(600)).max_time == 600.0
    assert SearchSettings(max_time=float("inf")).max_time == float("inf")
    with pytest.raises(ValueError, match="kappa must be a finite number"):
        SearchSettings(kappa=10**400)  # (beyond float: was an OverflowError)
    with pytest.raises(ValueError, match="initial_points must be a list"):
        SearchSettings(initial_points="dense-16|relu")  # one encoding, not a list of them


def test_benchmark_contender_options_read_python_numbers():
    from benchmarks.search_efficiency import parse_options

    assert parse_options("xi=.5,kappa=2.,n_restarts=+2,rule=asha,templates=false") == {
        "xi": 0.5, "kappa": 2.0, "n_restarts": 2, "rule": "asha", "templates": False}


def test_unknown_keywords_are_type_errors():
    with pytest.raises(TypeError, match="acqusition"):
        BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_hps(), acqusition="ei")
    with pytest.raises(ValueError, match="SearchSettings"):
        BayesianNASOracle(objective=OBJECTIVE, hyperparameters=_hps(), settings={"acquisition": "ei"})


def test_the_tuner_hands_its_settings_and_keywords_to_the_oracle(tmp_path):
    def build(hp):
        import keras

        return keras.Sequential([keras.layers.Dense(hp.Choice("units", [8, 16]))])

    settings = SearchSettings(acquisition="ucb", recommendation="observed")
    tuner = BayesianNAS(build, objective="val_loss", max_trials=2, settings=settings, kappa=4.0, max_time=90,
                        directory=str(tmp_path), project_name="p", distribution_strategy=None,
                        log_hparams=False)
    assert tuner.oracle.settings == dataclasses.replace(settings, kappa=4.0, max_time=90.0)
    assert tuner.oracle.acquisition == "ucb" and tuner.oracle.max_time == 90.0
    # The other keywords still reach keras_tuner.Tuner.
    assert tuner.project_dir.endswith("p")


def test_the_tuner_names_an_unknown_keyword(tmp_path):
    import keras

    with pytest.raises(ValueError, match="acqusition"):
        BayesianNAS(lambda hp: keras.Sequential(), objective="val_loss", acqusition="ei",
                    directory=str(tmp_path), distribution_strategy=None)
