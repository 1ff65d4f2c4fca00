"""Test accuracy of fixed flat architectures, exported the way ``kbnas search`` exports.

The question: on the breast-cancer split that ``kbnas search --data bc.csv`` makes
(`benchmarks.equal_time.user_split`: 343 train / 113 validation / 113 test rows),
which architectures of the flat space can match a standardized logistic
regression on the test rows at all, and does the epoch cap matter? For each seed
s, architecture a and epoch cap E, exactly the CLI's small-data path for one
candidate (`kbnas.selection`, `kbnas.cli.best._retrain`):

1. 3-fold stratified cross-validation of a on train + validation
   (`kbnas.selection.stratified_folds` with seed s; fold k trained from seed
   s + k), the search recipe: Adam at the default learning rate, the automatic
   batch size, ≤ E epochs, EarlyStopping on val_loss (patience 3, best weights);
   ``cv``: the mean over the folds of the best validation accuracy; ``epochs``:
   per fold the (0-based) epoch of the lowest validation loss;
2. retraining on all of train + validation for median(epochs) + 1 epochs from
   seed s, evaluated on the test rows: ``retrained``;
3. for comparison, one training on train with early stopping on validation (no
   retraining): ``trained``.

    python -m benchmarks.flat_architectures [--seeds 5] [--max-epochs 30 100]
        [--architectures dropout dense-64 ...] [--output benchmarks/results/flat_architectures.jsonl]

Appends one JSON line per (seed, architecture, max_epochs) and skips those already
there (resumable). About 1–2 minutes per seed and cap on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

from benchmarks import stats

DEFAULT_OUTPUT = pathlib.Path("benchmarks/results/flat_architectures.jsonl")
#: The linear model, the flat templates' small members, and deep stacks that
#: earlier equal-time searches exported (benchmarks/results/equal_time_flat.jsonl).
ARCHITECTURES = (
    "dropout",
    "dense-64",
    "dense-64|relu",
    "dense-32|batchnorm|dense-32",
    "dense-128|relu|dropout|dense-64|relu",
    "dense-256|batchnorm|dense-128|relu|dense-256|relu|dropout|dense-128|batchnorm|relu",
)


def load_split():
    import numpy as np

    from benchmarks.equal_time import breast_cancer_csv, user_split
    from kbnas.data_files import load_data

    x, y = load_data(str(breast_cancer_csv(tempfile.mkdtemp())), label_column="label")
    (xt, yt), (xv, yv), (xs, ys) = user_split(x, y)
    return (xt, yt), (xv, yv), (xs, ys), (np.concatenate([xt, xv]), np.concatenate([yt, yv]))


def fit(x, y, architecture, seed, epochs, validation=None, learning_rate=None):
    """One training with the search recipe from seed ``seed`` (early stopping on
    ``validation`` when given); the model and its History."""
    import keras

    from kbnas import ConvNetHyperModel
    from kbnas.training import auto_batch_size, search_callbacks

    keras.utils.set_random_seed(seed)
    model = ConvNetHyperModel(seed=seed).configure(x, y).build_architecture(architecture, learning_rate=learning_rate)
    kwargs = dict(validation_data=validation, callbacks=search_callbacks([])) if validation is not None else {}
    history = model.fit(x, y, epochs=epochs, batch_size=auto_batch_size(len(x)), verbose=0, **kwargs)
    return model, history


def measure(split, architecture: str, seed: int, max_epochs: int) -> dict:
    import numpy as np

    from kbnas.selection import stratified_folds

    (xt, yt), (xv, yv), (xs, ys), (xd, yd) = split
    scores, best_epochs, seconds = [], [], []
    for k, held_out in enumerate(stratified_folds(yd, 3, seed)):
        rows = np.setdiff1d(np.arange(len(xd)), held_out)
        start = time.perf_counter()
        _, history = fit(xd[rows], yd[rows], architecture, seed + k, max_epochs, (xd[held_out], yd[held_out]))
        seconds.append(time.perf_counter() - start)
        best_epochs.append(int(np.argmin(history.history["val_loss"])))
        scores.append(float(max(history.history["val_accuracy"])))
    epochs = int(np.floor(np.median(best_epochs))) + 1
    model, _ = fit(xd, yd, architecture, seed, epochs)
    retrained = float(model.evaluate(xs, ys, verbose=0, return_dict=True)["accuracy"])
    model, _ = fit(xt, yt, architecture, seed, max_epochs, (xv, yv))
    trained = float(model.evaluate(xs, ys, verbose=0, return_dict=True)["accuracy"])
    return {"seed": seed, "architecture": architecture, "max_epochs": max_epochs, "cv": float(np.mean(scores)),
            "fold_scores": scores, "best_epochs": best_epochs, "fold_seconds": seconds,
            "retrained": retrained, "trained": trained}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-epochs", nargs="+", type=int, default=[30, 100])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    done = {(r["seed"], r["architecture"], r["max_epochs"]) for r in stats.read_jsonl(args.output)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    split = load_split()
    for seed in range(args.seeds):
        for max_epochs in args.max_epochs:
            for architecture in args.architectures:
                if (seed, architecture, max_epochs) in done:
                    continue
                row = measure(split, architecture, seed, max_epochs)
                with args.output.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(f"seed {seed} ≤{max_epochs:3d} epochs {architecture[:48]:48s} cv {row['cv']:.4f} "
                      f"best epochs {row['best_epochs']} test retrained {row['retrained']:.4f} "
                      f"trained {row['trained']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
