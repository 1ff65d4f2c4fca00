"""Quickstart: neural architecture search on the bundled 8x8 digits, from Python.

Searches convolutional/dense architectures for the UCI 8x8 handwritten digits that
ship with kbnas (no download), prints KerasTuner's summary of the best trials,
evaluates the best model on the held-out test split and exports it (SavedModel,
``model.keras`` and ``architecture.json``, see docs/exporting.md).

Run from the repository root:

    python examples/quickstart_digits.py                        # 10 trials, 10 epochs
    python examples/quickstart_digits.py --max-trials 2 --epochs 1 --output /tmp/kbnas-quickstart

The first trials are random architectures; the Gaussian process takes over once
``num_initial_points`` trials have finished (6 with this hypermodel: see
docs/api.md), so use at least 10 trials to see it at work. The search directory
is ``OUTPUT/search`` (overwritten on every run) and the export ``OUTPUT/export``.
"""

from __future__ import annotations

import argparse
import pathlib
import warnings
from typing import Sequence

import kbnas


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-trials", type=int, default=10, help="architectures to train (default 10)")
    parser.add_argument("--epochs", type=int, default=10, help="maximum epochs per trial (default 10)")
    parser.add_argument("--max-depth", type=int, default=4, help="maximum number of layers (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--output", default="kbnas_quickstart", help="directory for the search and the export"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = pathlib.Path(args.output)

    # The fixed stratified 60/20/20 split: raw pixel values 0..16, shape (n, 8, 8, 1).
    x_train, y_train = kbnas.load_digits("train")
    x_val, y_val = kbnas.load_digits("val")
    x_test, y_test = kbnas.load_digits("test")

    # Input shape, task (10 classes) and the normalisation statistics are read from
    # the data passed to `search`; only the size of the space is set here.
    hypermodel = kbnas.ConvNetHyperModel(max_depth=args.max_depth, seed=args.seed)
    tuner = kbnas.BayesianNAS(
        hypermodel,
        max_trials=args.max_trials,
        seed=args.seed,
        directory=str(output),
        project_name="search",
        overwrite=True,
    )
    tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=args.epochs, verbose=0)
    tuner.results_summary(num_trials=3)

    best_trial = tuner.oracle.get_best_trials(1)[0]
    with warnings.catch_warnings():
        # Trial checkpoints hold the weights only; the optimizer state is not needed here.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        best_model = tuner.load_model(best_trial)
    space = hypermodel.search_space
    architecture = space.from_hp_value(best_trial.hyperparameters.get(hypermodel.architecture_hp))
    print(f"\nbest architecture (trial {best_trial.trial_id}, "
          f"{tuner.oracle.objective.name}={best_trial.score:.4f}):")
    print(space.summary(architecture))

    test_loss, test_accuracy = best_model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy of the best model: {test_accuracy:.4f} (test loss {test_loss:.4f})")

    paths = kbnas.export_model(
        best_model,
        output / "export",
        architecture=architecture,
        search_space=space,
        score=best_trial.score,
        objective=tuner.oracle.objective,
        trial_id=best_trial.trial_id,
        search_settings={"max_trials": args.max_trials, "epochs": args.epochs, "seed": args.seed},
    )
    print(f"exported to {paths.directory}: {paths.saved_model.name}/, "
          f"{paths.keras_model.name}, {paths.architecture_json.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
