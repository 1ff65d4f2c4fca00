"""Which learning rate the search recipe should use on flat features: a measurement.

For each flat-feature case, architecture and learning rate, stratified 5-fold
cross-validation (shuffled, seed 0) with the search recipe: Adam, the automatic
batch size (`kbnas.training.auto_batch_size`), ≤ 30 epochs, EarlyStopping on
val_loss (patience `kbnas.training.EARLY_STOPPING_PATIENCE`, best weights
restored), the held-out fold as validation data, one seed per fold (the fold
index). Reported per cell: mean best-epoch validation accuracy over the folds,
the mean number of epochs trained and the mean seconds per fit (building the
model included, since 2026-12-03).

Cases: breast cancer (the 456 train + validation rows of the split
``kbnas search --data bc.csv`` makes, `benchmarks.equal_time.user_split`), wine
(178 × 13), and the digits flattened to 64 features (1,797 rows). Architectures:
the linear model (``dropout``: input dropout, then the head) and
`kbnas.space.templates.FLAT_TEMPLATES`.

    python -m benchmarks.flat_learning_rate [--cases breast-cancer wine digits-flat]
        [--learning-rates 0.001 0.003 0.01] [--output benchmarks/results/flat_learning_rate.jsonl]

Appends one JSON line per (case, architecture, learning rate) to the output and
skips those already there (resumable). About 15 minutes on 2 cores for all cases.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

from benchmarks import stats

LINEAR = "dropout"
CASES = ("breast-cancer", "wine", "digits-flat")
DEFAULT_OUTPUT = pathlib.Path("benchmarks/results/flat_learning_rate.jsonl")


def load_case(case: str):
    if case == "breast-cancer":
        from benchmarks.flat_architectures import load_split

        return load_split()[3]  # train + validation
    from sklearn import datasets

    data = datasets.load_wine() if case == "wine" else datasets.load_digits()
    return data.data.astype("float32"), data.target.astype("int64")


def cross_validate(x, y, architecture: str, learning_rate: float, folds: int = 5) -> dict:
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from benchmarks.flat_architectures import fit

    scores, epochs, seconds = [], [], []
    splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
    for fold, (fit_rows, val_rows) in enumerate(splitter.split(x, y)):
        start = time.perf_counter()
        _, history = fit(x[fit_rows], y[fit_rows], architecture, fold, 30, (x[val_rows], y[val_rows]),
                         learning_rate=learning_rate)
        seconds.append(time.perf_counter() - start)
        losses = history.history["val_loss"]
        best = int(np.argmin(losses))
        scores.append(float(history.history["val_accuracy"][best]))
        epochs.append(len(losses))
    return {"fold_accuracy": scores, "epochs": epochs, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--learning-rates", nargs="+", type=float, default=[1e-3, 3e-3, 1e-2])
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    from kbnas.space.templates import FLAT_TEMPLATES

    done = {(r["case"], r["architecture"], r["learning_rate"]) for r in stats.read_jsonl(args.output)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for case in args.cases:
        x, y = load_case(case)
        for architecture in (LINEAR, *FLAT_TEMPLATES):
            for rate in args.learning_rates:
                if (case, architecture, rate) in done:
                    continue
                row = {"case": case, "architecture": architecture, "learning_rate": rate,
                       **cross_validate(x, y, architecture, rate)}
                with args.output.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                mean = sum(row["fold_accuracy"]) / len(row["fold_accuracy"])
                print(f"{case:14s} {architecture:48s} lr {rate:g}: cv {mean:.4f}, "
                      f"epochs {sum(row['epochs']) / len(row['epochs']):.1f}, "
                      f"{sum(row['seconds']) / len(row['seconds']):.1f} s/fit", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
