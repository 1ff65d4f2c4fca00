"""A search fed by tf.data, and the exported model served inside a tf.data pipeline.

1. Builds ``tf.data.Dataset`` pipelines (cache, shuffle, batch, prefetch) from the
   bundled 8x8 digits and passes them to ``BayesianNAS.search`` for training and
   validation. `ConvNetHyperModel` reads the input shape, the task and the
   normalisation statistics from the training dataset (up to 10,000 examples).
2. Exports the best model with ``kbnas.export_model``.
3. Loads the SavedModel with ``tf.saved_model.load`` (no kbnas and no Keras model
   code needed) and calls its ``serving_default`` signature inside a
   ``Dataset.map`` — batch inference as a pipeline stage — then checks that the
   predictions equal those of the Keras model.

Run from the repository root:

    python examples/tf_data_pipeline.py                         # 8 trials, 10 epochs
    python examples/tf_data_pipeline.py --max-trials 2 --epochs 1 --output /tmp/kbnas-tfdata
"""

from __future__ import annotations

import argparse
import pathlib
import warnings
from typing import Sequence

import numpy as np
import tensorflow as tf

import kbnas

BATCH_SIZE = 64
#: Largest difference allowed between SavedModel and Keras probabilities.
PREDICTION_TOLERANCE = 1e-5


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-trials", type=int, default=8, help="architectures to train (default 8)")
    parser.add_argument("--epochs", type=int, default=10, help="maximum epochs per trial (default 10)")
    parser.add_argument("--max-depth", type=int, default=4, help="maximum number of layers (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--output", default="kbnas_tf_data", help="directory for the search and the export")
    return parser.parse_args(argv)


def training_pipeline(x: np.ndarray, y: np.ndarray, seed: int) -> tf.data.Dataset:
    """Shuffled batches of (image, label), reshuffled every epoch."""
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .cache()
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH_SIZE)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_pipeline(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    """Batches of (image, label) in a fixed order."""
    return tf.data.Dataset.from_tensor_slices((x, y)).cache().batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = pathlib.Path(args.output)
    x_train, y_train = kbnas.load_digits("train")
    x_val, y_val = kbnas.load_digits("val")
    x_test, y_test = kbnas.load_digits("test")

    train_dataset = training_pipeline(x_train, y_train, args.seed)
    validation_dataset = evaluation_pipeline(x_val, y_val)

    # ---------------------------------------------------------------- search
    hypermodel = kbnas.ConvNetHyperModel(max_depth=args.max_depth, seed=args.seed)
    tuner = kbnas.BayesianNAS(
        hypermodel,
        max_trials=args.max_trials,
        seed=args.seed,
        directory=str(output),
        project_name="search",
        overwrite=True,
    )
    # Batched datasets pass through unchanged: the batch size is the pipeline's.
    tuner.search(train_dataset, validation_data=validation_dataset, epochs=args.epochs, verbose=0)

    best_trial = tuner.oracle.get_best_trials(1)[0]
    with warnings.catch_warnings():
        # Trial checkpoints hold the weights only; the optimizer state is not needed here.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        best_model = tuner.load_model(best_trial)
    architecture = best_trial.hyperparameters.get(hypermodel.architecture_hp)
    print(f"best architecture: {architecture} "
          f"({tuner.oracle.objective.name}={best_trial.score:.4f}, trial {best_trial.trial_id})")

    # ---------------------------------------------------------------- export
    paths = kbnas.export_model(
        best_model,
        output / "export",
        architecture=architecture,
        search_space=hypermodel.search_space,
        score=best_trial.score,
        objective=tuner.oracle.objective,
        trial_id=best_trial.trial_id,
    )
    print(f"exported the SavedModel to {paths.saved_model}")

    # ---------------------------------------------------------------- serve in tf.data
    loaded = tf.saved_model.load(str(paths.saved_model))
    serve = loaded.signatures["serving_default"]  # float32 raw images (batch, 8, 8, 1) -> "output_0"

    def predict_batch(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        probabilities = serve(inputs=images)["output_0"]
        return probabilities, labels

    served = evaluation_pipeline(x_test, y_test).map(predict_batch)
    served_probabilities = np.concatenate([probabilities.numpy() for probabilities, _ in served])
    served_labels = np.concatenate([labels.numpy() for _, labels in served])

    keras_probabilities = best_model.predict(x_test, batch_size=BATCH_SIZE, verbose=0)
    largest_difference = float(np.max(np.abs(served_probabilities - keras_probabilities)))
    if largest_difference > PREDICTION_TOLERANCE:
        print(f"SavedModel and Keras predictions differ by up to {largest_difference:.3g}")
        return 1
    accuracy = float(np.mean(np.argmax(served_probabilities, axis=-1) == served_labels))
    print(f"SavedModel predictions served in tf.data match the Keras model "
          f"(largest difference {largest_difference:.2g})")
    print(f"test accuracy of the served model: {accuracy:.4f} on {len(served_labels)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
