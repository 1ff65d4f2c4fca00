"""One architecture retrained from many seeds: single models against ensembles of K.

The question behind `kbnas.ensemble`: the exported model is the chosen
architecture trained afresh on train + validation; how much does the seed of
that one training move its test accuracy, and does the mean of K trainings
(an ensemble) do better than one? Every run trains the architecture with the
``kbnas search`` recipe (`kbnas.ConvNetHyperModel`, its default learning rate,
the batch size of the search, a fixed number of epochs, no validation set) from
seed S on train + validation of the case's split, and appends one JSON line:
case, architecture, epochs, seed, test accuracy and the test-set predictions.

Report (``--report``): per (case, architecture, epochs), the single models'
mean test accuracy with its 95 % t-interval over seeds; for K = 3 and 5 the mean
accuracy of ensembles over all ``--subsets`` random K-subsets of the seeds (the
estimate of an ensemble's expected accuracy) and over the disjoint groups of K
consecutive seeds (independent ensembles, with a t-interval).

Cases: ``breast-cancer`` (the split ``kbnas search --data bc.csv`` makes, as in
`benchmarks.equal_time`) and ``digits`` (the bundled split).

Commands (docs/benchmarks.md, "The exported model as an ensemble"):
    python -m benchmarks.ensemble_draws --case breast-cancer --architecture dropout --epochs 58 --seeds 30
    python -m benchmarks.ensemble_draws --case breast-cancer --architecture "dense-32|relu" --epochs 17 --seeds 30
    python -m benchmarks.ensemble_draws --case digits --epochs 12 --seeds 15 \\
        --architecture "conv3-64|batchnorm|relu|avgpool|conv3-64|relu|avgpool|dropout|dense-128|dense-32|batchnorm|dropout"
    python -m benchmarks.ensemble_draws --report
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
from typing import Any

import numpy as np

from benchmarks import stats

DEFAULT_OUTPUT = pathlib.Path(__file__).resolve().parent / "results" / "ensemble_draws.jsonl"
SIZES = (3, 5)


def load_case(case: str) -> tuple[tuple, tuple, tuple, int]:
    """(x_train, y_train), (x_train + x_val, y_train + y_val), (x_test, y_test), and the
    search's batch size."""
    from kbnas.training import auto_batch_size

    if case == "digits":
        from kbnas.datasets import load_digits_split

        split = load_digits_split()
        train, val, test = (split.x_train, split.y_train), (split.x_val, split.y_val), (split.x_test, split.y_test)
    elif case == "breast-cancer":
        from benchmarks.equal_time import breast_cancer_csv, user_split
        from kbnas.data_files import load_data

        with tempfile.TemporaryDirectory() as directory:
            x, y = load_data(str(breast_cancer_csv(directory)), label_column="label")
        train, val, test = user_split(x, y)
    else:
        raise ValueError(f"unknown case {case!r}")
    both = (np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]]))
    return train, both, test, auto_batch_size(len(train[0]))


def run(case: str, architecture: str, epochs: int, seed: int) -> dict[str, Any]:
    import keras

    from kbnas.hypermodel import ConvNetHyperModel

    train, (x, y), (x_test, y_test), batch_size = load_case(case)
    hypermodel = ConvNetHyperModel(max_depth=12)
    hypermodel.configure(*train)  # as `kbnas search`: the input normalization from the training part
    keras.utils.set_random_seed(seed)
    model = hypermodel.build_architecture(architecture)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    probabilities = model.predict(x_test, verbose=0).reshape(len(x_test), -1)
    return {"case": case, "architecture": architecture, "epochs": epochs, "seed": seed,
            "batch_size": batch_size, "test_accuracy": accuracy(probabilities, y_test),
            "probabilities": np.round(probabilities, 6).tolist(), "labels": np.asarray(y_test).reshape(-1).tolist()}


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of class probabilities (one sigmoid column: threshold 0.5)."""
    probabilities = np.asarray(probabilities)
    predicted = (probabilities[:, 0] > 0.5).astype(int) if probabilities.shape[1] == 1 else probabilities.argmax(1)
    return float(np.mean(predicted == np.asarray(labels).reshape(-1)))


def ensemble_accuracies(records: list[dict[str, Any]], size: int, subsets: int, seed: int = 0) -> dict[str, Any]:
    """Ensembles of ``size`` members: over random subsets, and over disjoint groups of seeds."""
    records = sorted(records, key=lambda r: r["seed"])
    probabilities = np.array([r["probabilities"] for r in records])
    labels = np.array(records[0]["labels"])
    rng = np.random.default_rng(seed)
    drawn = [accuracy(probabilities[rng.choice(len(records), size, replace=False)].mean(0), labels)
             for _ in range(subsets)]
    groups = [accuracy(probabilities[start:start + size].mean(0), labels)
              for start in range(0, len(records) - size + 1, size)]
    return {"size": size, "subsets_mean": float(np.mean(drawn)), "groups": stats.mean_and_interval(groups)}


def report(path: pathlib.Path, subsets: int) -> dict[str, Any]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keys = sorted({(r["case"], r["architecture"], r["epochs"]) for r in records})
    out = {}
    for case, architecture, epochs in keys:
        mine = [r for r in records if (r["case"], r["architecture"], r["epochs"]) == (case, architecture, epochs)]
        out[f"{case} {architecture} {epochs} epochs"] = {
            "single": stats.mean_and_interval([r["test_accuracy"] for r in mine]),
            "ensembles": [ensemble_accuracies(mine, k, subsets) for k in SIZES if k <= len(mine)],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("breast-cancer", "digits"))
    parser.add_argument("--architecture")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--subsets", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.report:
        print(json.dumps(report(args.output, args.subsets), indent=1))
        return 0
    if not (args.case and args.architecture and args.epochs):
        parser.error("--case, --architecture and --epochs are needed (or --report)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    done = set()
    if args.output.exists():
        done = {(r["case"], r["architecture"], r["epochs"], r["seed"])
                for r in map(json.loads, filter(str.strip, args.output.read_text().splitlines()))}
    for seed in range(args.seeds):
        if (args.case, args.architecture, args.epochs, seed) in done:
            continue
        record = run(args.case, args.architecture, args.epochs, seed)
        with args.output.open("a") as file:
            file.write(json.dumps(record) + "\n")
        print(f"{args.case} {args.architecture} seed {seed}: {100 * record['test_accuracy']:.2f} %", file=sys.stderr,
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
