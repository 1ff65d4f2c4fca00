"""The kbnas oracle as a drop-in for an ordinary hyperparameter search (no architecture).

A plain Keras build function declares its hyperparameters with ``hp.Int``,
``hp.Choice`` and ``hp.Float(sampling="log")``, as for any KerasTuner tuner. The
Gaussian process of `kbnas.BayesianNASOracle` then models them with one distance
channel each (categories for Choice, KerasTuner's [0, 1] scale for Int/Float, log
sampling honoured). Two ways to use it:

* ``kbnas.BayesianNAS(build_model, objective="val_accuracy", ...)`` — the tuner;
* ``keras_tuner.Tuner(oracle=kbnas.BayesianNASOracle(...), hypermodel=build_model, ...)``
  — the oracle alone, inside KerasTuner's generic tuner (or your own subclass).

Both are compared with ``keras_tuner.BayesianOptimization`` under the same budget
(trials and epochs). Each tuner is reseeded identically before its search; with a
handful of trials on 8x8 digits the differences are mostly noise, so read the
scores as a demonstration, not a benchmark.

Run from the repository root:

    python examples/hyperparameter_search.py                    # 15 trials, 5 epochs
    python examples/hyperparameter_search.py --max-trials 2 --epochs 1 --output /tmp/kbnas-hp
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Sequence

import keras
import keras_tuner

import kbnas


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-trials", type=int, default=15, help="trials per tuner (default 15)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per trial (default 5)")
    parser.add_argument(
        "--num-initial-points",
        type=int,
        default=None,
        help="random trials before the GP is used (default: the oracle's, 10 for this space)",
    )
    # KerasTuner's own oracles read seed=0 as "no seed" (`seed or random.randint(...)`),
    # so the default is 1 to seed all three tuners alike.
    parser.add_argument("--seed", type=int, default=1, help="random seed of every tuner (default 1)")
    parser.add_argument("--output", default="kbnas_hyperparameters", help="directory for the searches")
    return parser.parse_args(argv)


def build_model(hp: keras_tuner.HyperParameters) -> keras.Model:
    """A multilayer perceptron for the 8x8 digits; every training choice is a hyperparameter."""
    activation = hp.Choice("activation", ["relu", "tanh", "gelu"])
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 16), keras.layers.Flatten()])
    for layer in range(hp.Int("hidden_layers", 1, 3)):
        model.add(keras.layers.Dense(hp.Int(f"units_{layer}", 16, 256, step=16), activation=activation))
    model.add(keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5, step=0.1)))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def run_search(tuner: keras_tuner.Tuner, data: dict, epochs: int, seed: int) -> float:
    """Search, then return the best validation accuracy."""
    # Same weight initialisations and shuffling for every tuner's search.
    keras.utils.set_random_seed(seed)
    tuner.search(*data["train"], validation_data=data["val"], epochs=epochs, verbose=0)
    return tuner.oracle.get_best_trials(1)[0].score


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = pathlib.Path(args.output)
    data = {"train": kbnas.load_digits("train"), "val": kbnas.load_digits("val")}
    budget = {"max_trials": args.max_trials, "seed": args.seed}
    common = {"directory": str(output), "overwrite": True}

    # 1. The kbnas tuner on a build function: it tunes the function's hyperparameters.
    #    The objective must be named: there is no ConvNetHyperModel to infer it from.
    kbnas_tuner = kbnas.BayesianNAS(
        build_model,
        objective="val_accuracy",
        num_initial_points=args.num_initial_points,
        project_name="kbnas_tuner",
        **budget,
        **common,
    )

    # 2. The oracle alone, in KerasTuner's generic Tuner.
    oracle = kbnas.BayesianNASOracle(
        objective=keras_tuner.Objective("val_accuracy", direction="max"),
        num_initial_points=args.num_initial_points,
        **budget,
    )
    oracle_in_keras_tuner = keras_tuner.Tuner(
        oracle=oracle, hypermodel=build_model, project_name="kbnas_oracle", **common
    )

    # 3. KerasTuner's own Bayesian optimization (a GP with a Matern kernel on the
    #    [0, 1]-scaled hyperparameters), same budget.
    baseline = keras_tuner.BayesianOptimization(
        build_model, objective="val_accuracy", project_name="keras_tuner_bayesian", **budget, **common
    )

    scores = {}
    for name, tuner in (
        ("kbnas.BayesianNAS", kbnas_tuner),
        ("keras_tuner.Tuner + BayesianNASOracle", oracle_in_keras_tuner),
        ("keras_tuner.BayesianOptimization", baseline),
    ):
        scores[name] = run_search(tuner, data, args.epochs, args.seed)

    kbnas_tuner.results_summary(num_trials=1)
    print(f"\nbest val_accuracy after {args.max_trials} trials of {args.epochs} epochs:")
    for name, score in scores.items():
        print(f"  {name:<40} {score:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
