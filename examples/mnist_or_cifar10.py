"""Architecture search on MNIST or CIFAR-10 under a parameter budget.

NEEDS NETWORK ACCESS: ``keras.datasets.mnist.load_data()`` and
``keras.datasets.cifar10.load_data()`` download the data (11 MB / 163 MB) into
``~/.keras/datasets`` on first use. This example is therefore not run by the
test suite. A GPU helps: every trial trains a network on 50,000 images.

What it shows:

* raw ``uint8`` inputs go straight into the search: MNIST's (28, 28) grayscale
  images (the model adds the channel axis) and CIFAR-10's (32, 32, 3) colour
  images. The model starts with a Normalization layer holding the training set's
  per-channel mean and variance, so neither the search nor the exported model
  needs rescaled inputs;
* ``max_params``: architectures whose parameter count (layers plus the output
  head) exceeds the budget are never proposed or trained;
* the last 10,000 training images are the validation set and the official test
  set is only used once, for the best model.

Run from the repository root:

    python examples/mnist_or_cifar10.py                               # MNIST, 20 trials
    python examples/mnist_or_cifar10.py --dataset cifar10 --max-params 250000 --epochs 20
    python examples/mnist_or_cifar10.py --max-trials 2 --epochs 1 --train-examples 2000   # a quick look
"""

from __future__ import annotations

import argparse
import pathlib
import warnings
from typing import Sequence

import keras
import numpy as np

import kbnas

DATASETS = {"mnist": keras.datasets.mnist, "cifar10": keras.datasets.cifar10}
VALIDATION_EXAMPLES = 10_000


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist", help="default mnist")
    parser.add_argument("--max-trials", type=int, default=20, help="architectures to train (default 20)")
    parser.add_argument("--epochs", type=int, default=10, help="maximum epochs per trial (default 10)")
    parser.add_argument("--max-depth", type=int, default=8, help="maximum number of layers (default 8)")
    parser.add_argument(
        "--max-params", type=int, default=100_000, help="parameter budget per architecture (default 100000)"
    )
    parser.add_argument(
        "--train-examples",
        type=int,
        default=None,
        help="use only the first N training images (default: all but the validation images)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--output", default=None, help="directory for the search and the export "
                        "(default kbnas_<dataset>)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = pathlib.Path(args.output or f"kbnas_{args.dataset}")

    # uint8 pixels 0..255: MNIST x is (n, 28, 28), CIFAR-10 x is (n, 32, 32, 3) and its
    # labels are (n, 1); both are accepted as they are.
    (x_train, y_train), (x_test, y_test) = DATASETS[args.dataset].load_data()
    x_val, y_val = x_train[-VALIDATION_EXAMPLES:], y_train[-VALIDATION_EXAMPLES:]
    x_train, y_train = x_train[:-VALIDATION_EXAMPLES], y_train[:-VALIDATION_EXAMPLES]
    if args.train_examples is not None:
        x_train, y_train = x_train[: args.train_examples], y_train[: args.train_examples]
    print(f"{args.dataset}: {len(x_train)} train / {len(x_val)} validation / {len(x_test)} test images "
          f"of shape {x_train.shape[1:]}, dtype {x_train.dtype}")

    hypermodel = kbnas.ConvNetHyperModel(
        max_depth=args.max_depth,
        filters=(16, 32, 64),
        units=(64, 128, 256),
        max_params=args.max_params,
        seed=args.seed,
    )
    tuner = kbnas.BayesianNAS(
        hypermodel,
        max_trials=args.max_trials,
        seed=args.seed,
        directory=str(output),
        project_name="search",
        overwrite=True,
    )
    tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=args.epochs, batch_size=128)

    space = hypermodel.search_space
    print(f"\nsearch space: input {space.input_shape}, {space.num_outputs} classes, "
          f"at most {space.max_params:,} parameters per architecture")
    tuner.results_summary(num_trials=5)

    best_trial = tuner.oracle.get_best_trials(1)[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        best_model = tuner.load_model(best_trial)
    architecture = space.from_hp_value(best_trial.hyperparameters.get(hypermodel.architecture_hp))
    print(space.summary(architecture))
    test_loss, test_accuracy = best_model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"test accuracy of the best model: {test_accuracy:.4f} (test loss {test_loss:.4f})")

    paths = kbnas.export_model(
        best_model,
        output / "export",
        architecture=architecture,
        search_space=space,
        score=best_trial.score,
        objective=tuner.oracle.objective,
        trial_id=best_trial.trial_id,
        search_settings={"dataset": args.dataset, "max_trials": args.max_trials, "epochs": args.epochs,
                         "max_params": args.max_params, "train_examples": len(x_train)},
    )
    # The SavedModel takes float32 raw pixels: cast uint8 images, do not rescale them.
    sample = np.asarray(x_test[:3], dtype=np.float32)
    print(f"exported to {paths.directory}; predictions for 3 test images: "
          f"{np.argmax(best_model.predict(sample, verbose=0), axis=-1).tolist()} "
          f"(labels {np.ravel(y_test[:3]).tolist()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
