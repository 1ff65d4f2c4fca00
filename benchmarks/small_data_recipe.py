"""The batch size of the small-data recipe, measured: 64 against `kbnas.training.auto_batch_size`.

On the 456 train + validation rows of the breast-cancer case (the split of
``kbnas search --data bc.csv``), the four flat templates and one 10-layer
perceptron are trained with the search recipe (≤ 30 epochs, early stopping
patience 3, restoring the best weights) at batch 64 and at the automatic batch
size of the search (21, from its 343 training rows), in stratified 5-fold cross-validation repeated with
2 fold seeds; the same fold seeds and training seeds for both batch sizes.
Prints each mean held-out accuracy and the paired difference per architecture.

    python -m benchmarks.small_data_recipe

About 4 minutes on 2 cores; nothing is written.
"""

from __future__ import annotations

import os
import sys
import tempfile

ARCHITECTURES = (
    "dense-128|relu|dropout|dense-64|relu",
    "dense-64|relu",
    "dense-256|relu|dropout|dense-128|relu|dropout",
    "dense-32|relu|dropout|dense-32|relu",
    "dense-64|batchnorm|relu|dropout|dense-256|batchnorm|relu|dense-32|relu|dropout",
)


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import keras_tuner
    import numpy as np

    from benchmarks.equal_time import breast_cancer_csv, user_split
    from kbnas import ConvNetHyperModel
    from kbnas.data_files import load_data
    from kbnas.selection import stratified_folds
    from kbnas.training import auto_batch_size

    x, y = load_data(str(breast_cancer_csv(tempfile.mkdtemp())), label_column="label")
    (xt, yt), (xv, yv), _ = user_split(x, y)
    both_x, both_y = np.concatenate([xt, xv]), np.concatenate([yt, yv])
    hypermodel = ConvNetHyperModel(seed=0).configure(xt, yt)
    automatic = auto_batch_size(len(xt))  # what `kbnas search` uses for every training: 21
    means: dict[tuple[str, int], list[float]] = {}
    for repeat in range(2):
        folds = stratified_folds(both_y, 5, repeat)
        for arch in ARCHITECTURES:
            for batch in (64, automatic):
                accuracies = []
                for k, held_out in enumerate(folds):
                    fit = np.setdiff1d(np.arange(len(both_x)), held_out)
                    keras.utils.set_random_seed(100 * repeat + k)
                    model = hypermodel.build_architecture(arch)
                    hypermodel.fit(keras_tuner.HyperParameters(), model, both_x[fit], both_y[fit],
                                   validation_data=(both_x[held_out], both_y[held_out]), epochs=30,
                                   batch_size=batch, verbose=0)
                    accuracies.append(model.evaluate(both_x[held_out], both_y[held_out], verbose=0,
                                                     return_dict=True)["accuracy"])
                means.setdefault((arch, batch), []).append(float(np.mean(accuracies)))
                print(f"fold seed {repeat}  batch {batch:2d}  {arch:80s} {np.mean(accuracies):.4f}", flush=True)
    differences = [np.mean(means[(a, automatic)]) - np.mean(means[(a, 64)]) for a in ARCHITECTURES]
    print(f"batch {automatic} - batch 64, per architecture (points): "
          f"{', '.join(f'{100 * d:+.2f}' for d in differences)}; mean {100 * np.mean(differences):+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
