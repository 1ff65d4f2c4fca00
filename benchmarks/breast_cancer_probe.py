"""Why kbnas misses the logistic regression on the breast-cancer case: two measurements.

1. On the split ``kbnas search --data bc.csv`` makes (343 train / 113 validation /
   113 test rows): the logistic regression's validation and test accuracy, and, for a
   few architectures trained with the search recipe (batch 64, ≤ 30 epochs, early
   stopping patience 3) and with a longer one (≤ 100 epochs, patience 10), their best
   validation accuracy, test accuracy and epochs, seeds 0–2.
2. Stratified 5-fold cross-validation (shuffled, seed 0) on the 456 train +
   validation rows: the logistic regression and the same architectures.

    python -m benchmarks.breast_cancer_probe

Prints its results; nothing is written. About 2 minutes on 2 cores.
"""

from __future__ import annotations

import os
import sys
import tempfile

ARCHITECTURES = ("dropout", "dense-64|relu", "dense-128|relu|dropout|dense-64|relu",
                 "dropout|batchnorm|relu|dense-128|dense-256")


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from benchmarks.equal_time import breast_cancer_csv, user_split
    from kbnas import ConvNetHyperModel
    from kbnas.data_files import load_data

    x, y = load_data(str(breast_cancer_csv(tempfile.mkdtemp())), label_column="label")
    (xt, yt), (xv, yv), (xs, ys) = user_split(x, y)
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(xt, yt)
    print(f"split {len(xt)}/{len(xv)}/{len(xs)}; logistic regression: validation {lr.score(xv, yv):.3f}, "
          f"test {lr.score(xs, ys):.3f}")

    def train(arch, x_fit, y_fit, x_val, y_val, seed, epochs, patience, batch):
        keras.utils.set_random_seed(seed)
        model = ConvNetHyperModel(seed=seed).configure(x_fit, y_fit).build_architecture(arch)
        history = model.fit(x_fit, y_fit, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch, verbose=0,
                            callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=patience,
                                                                     restore_best_weights=True)])
        return model, history

    for arch in ARCHITECTURES:
        for epochs, patience in ((30, 3), (100, 10)):
            runs = []
            for seed in range(3):
                model, history = train(arch, xt, yt, xv, yv, seed, epochs, patience, 64)
                test = model.evaluate(xs, ys, verbose=0, return_dict=True)["accuracy"]
                runs.append(f"{max(history.history['val_accuracy']):.3f}/{test:.3f}/{len(history.history['loss'])}")
            print(f"  {arch:45s} epochs<={epochs:3d} patience {patience:2d}: validation/test/epochs {', '.join(runs)}")

    both_x, both_y = np.concatenate([xt, xv]), np.concatenate([yt, yv])
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(both_x, both_y))
    scores = [make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(both_x[a], both_y[a])
              .score(both_x[b], both_y[b]) for a, b in folds]
    print(f"5-fold CV on {len(both_x)} rows: logistic regression {np.mean(scores):.4f}")
    for arch in ARCHITECTURES:
        batch, epochs, patience = (16, 100, 10) if arch == "dropout" else (64, 30, 3)
        scores = []
        for a, b in folds:
            model, _ = train(arch, both_x[a], both_y[a], both_x[b], both_y[b], 0, epochs, patience, batch)
            scores.append(model.evaluate(both_x[b], both_y[b], verbose=0, return_dict=True)["accuracy"])
        print(f"  {arch:45s} batch {batch}, epochs<={epochs}, patience {patience}: {np.mean(scores):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
