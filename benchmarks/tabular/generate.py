"""Generate the tabular benchmark: train every architecture of the digits space per seed.

    python -m benchmarks.tabular.generate --workers 2 [--limit N] [--seeds 0 1 2] [--epochs E]

Each finished (architecture, seed) is appended as one JSON line to the table
(``digits_table.jsonl`` by default) and flushed, so the run can be killed at any
time; a restart skips the rows already present. Only the main process writes, and
it holds an exclusive ``fcntl`` lock on the table for the whole run, so two
generators cannot write the same table. The work is ordered seed-major (every
architecture with seed 0, then seed 1, …), so a partial table is usable with one
seed early. Worker processes pull (architecture, seed) pairs from a shared queue.

The recipe (space, data, training) is stored in ``settings.json`` next to the
table. A run whose recipe differs from the stored one stops with a
`RecipeMismatchError` naming the differing entries: one table never mixes recipes.

Training of one (architecture a, seed s):

    keras.utils.set_random_seed(s)
    model = ConvNetHyperModel(space, task="multiclass", num_classes=10)
            .configure(x_train, y_train).build_architecture(a, learning_rate, optimizer)
    model.fit(x_train, y_train, batch_size, epochs, shuffle=True)   # no early stopping

The model is recompiled with the same optimizer, loss and accuracy metric plus
``steps_per_execution`` = steps per epoch (fewer Python round trips; the weights
and results are unchanged). After every epoch a callback computes the validation
accuracy with one forward pass over the 359 validation images (cheaper than Keras'
``validation_data``, which builds an evaluation loop each epoch); the test
accuracy is computed once, after the last epoch.

Only the worker processes import TensorFlow; each sets
``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS`` (``--threads``, default 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import logging
import math
import multiprocessing
import os
import pathlib
import signal
import sys
import time
from typing import IO, Any, Callable, Iterable, Sequence

import numpy as np

from benchmarks.tabular.table import (
    DEFAULT_TABLE_PATH,
    Record,
    read_rows,
    read_settings,
    settings_path_for,
)
from kbnas import datasets
from kbnas.space import SearchSpace

logger = logging.getLogger("benchmarks.tabular.generate")

#: Version of the row format and recipe layout; part of the recipe.
TABLE_FORMAT = "kbnas-tabular-v1"
#: The benchmark's search space: 918 architectures.
DIGITS_SPACE = SearchSpace(
    input_shape=datasets.DIGITS_INPUT_SHAPE,
    vocabulary=("conv3", "conv5", "maxpool", "avgpool", "relu", "dense"),
    filters=(16,),
    units=(32,),
    min_depth=1,
    max_depth=4,
    num_outputs=datasets.DIGITS_NUM_CLASSES,
)
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_EPOCHS = 30
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_OPTIMIZER = "adam"
#: Worker processes are replaced after this many trainings, bounding any slow leak.
TRAININGS_PER_WORKER_PROCESS = 100
#: Decimals kept for accuracies (k/359 stays distinguishable) and seconds.
ACCURACY_DECIMALS = 6
SECONDS_DECIMALS = 3


class RecipeMismatchError(ValueError):
    """The requested recipe differs from the one the table was generated with."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that determines a row's numbers (besides the seed and the software).

    Attributes:
        space: the search space.
        epochs: epochs per training; no early stopping.
        batch_size: examples per step.
        learning_rate: constant learning rate of the optimizer.
        optimizer: Keras optimizer name.
    """

    space: SearchSpace = DIGITS_SPACE
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE
    optimizer: str = DEFAULT_OPTIMIZER

    def to_config(self) -> dict[str, Any]:
        """The JSON ``recipe`` entry of ``settings.json``; equal recipes give equal dicts."""
        return {
            "format": TABLE_FORMAT,
            "dataset": {
                "loader": "kbnas.datasets.load_digits_split",
                "split_seed": datasets.DIGITS_SPLIT_SEED,
                "split_fractions": list(datasets.DIGITS_SPLIT_FRACTIONS),
                "split_sizes": list(datasets.DIGITS_SPLIT_SIZES),
            },
            "space": self.space.to_config(),
            "model": {
                "hypermodel": "kbnas.hypermodel.ConvNetHyperModel",
                "task": "multiclass",
                "num_classes": datasets.DIGITS_NUM_CLASSES,
                "normalization": "per-channel mean and variance of x_train",
            },
            "training": {
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "optimizer": self.optimizer,
                "learning_rate": self.learning_rate,
                "learning_rate_schedule": "constant",
                "early_stopping": False,
                "shuffle": "every epoch, seeded",
                "seeding": "keras.utils.set_random_seed(seed) before building the model",
            },
            "metrics": {
                "val_accuracy": "validation accuracy after the last epoch",
                "val_accuracy_per_epoch": "validation accuracy after each epoch",
                "test_accuracy": "test accuracy after the last epoch",
            },
        }


def software_versions() -> dict[str, str | None]:
    """Versions of Python and of the installed numpy, TensorFlow and Keras distributions."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def installed(*distributions: str) -> str | None:
        for distribution in distributions:
            try:
                return version(distribution)
            except PackageNotFoundError:
                continue
        return None

    return {
        "python": platform.python_version(),
        "numpy": installed("numpy"),
        "tensorflow": installed("tensorflow", "tensorflow-cpu"),
        "keras": installed("keras"),
    }


def settings_document(recipe: Recipe) -> dict[str, Any]:
    """The full ``settings.json``: the recipe (compared on resume) and the software (not)."""
    return {"recipe": recipe.to_config(), "software": software_versions()}


def _differences(stored: Any, requested: Any, prefix: str = "") -> list[str]:
    """Readable ``key: stored -> requested`` lines for every differing leaf."""
    if isinstance(stored, dict) and isinstance(requested, dict):
        lines = []
        for key in sorted(set(stored) | set(requested)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored:
                lines.append(f"{name}: absent -> {requested[key]!r}")
            elif key not in requested:
                lines.append(f"{name}: {stored[key]!r} -> absent")
            else:
                lines.extend(_differences(stored[key], requested[key], name))
        return lines
    return [] if stored == requested else [f"{prefix}: {stored!r} -> {requested!r}"]


def check_settings(
    settings_path: str | pathlib.Path, recipe: Recipe, *, table_has_rows: bool
) -> bool:
    """Check that a table may be extended with ``recipe``.

    Args:
        settings_path: the table's ``settings.json``.
        recipe: the requested recipe.
        table_has_rows: whether the table already holds rows.

    Returns:
        True when the settings file exists and matches; False when it does not
        exist and the table is empty (the caller writes it).

    Raises:
        RecipeMismatchError: the stored recipe differs (the message lists every
            difference), or the table has rows but no settings file.
    """
    settings = read_settings(settings_path)
    if settings is None:
        if table_has_rows:
            raise RecipeMismatchError(
                f"the table next to {settings_path} has rows but no settings file, so its "
                "recipe is unknown; restore the settings file or start a new table (--output)"
            )
        return False
    differences = _differences(settings.get("recipe"), recipe.to_config())
    if differences:
        raise RecipeMismatchError(
            f"the requested recipe differs from the one in {settings_path}:\n  "
            + "\n  ".join(differences)
            + "\nOne table never mixes recipes: pass the stored settings (e.g. --epochs), or "
            "write a new table with --output in another folder."
        )
    return True


def remaining_work(
    architectures: Sequence[str], seeds: Sequence[int], done: Iterable[tuple[str, int]]
) -> list[tuple[str, int]]:
    """The (architecture, seed) pairs still to train, seed-major.

    Every architecture with the first seed, then every architecture with the second,
    …; within a seed, the order of ``architectures``. Pairs in ``done`` are skipped,
    and so are pairs of ``done`` outside the request (they are simply kept).

    Args:
        architectures: encodings in the order to train them.
        seeds: seeds in the order to train them.
        done: pairs already in the table.
    """
    done = set(done)
    return [
        (architecture, seed)
        for seed in seeds
        for architecture in architectures
        if (architecture, seed) not in done
    ]


def _drop_unfinished_last_line(handle) -> None:
    """Truncate a table opened for appending after its last newline (a row cut by a kill)."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return
    handle.seek(0)
    content = handle.read()
    if content.endswith(b"\n"):
        return
    keep = content.rfind(b"\n") + 1
    logger.warning("dropping an unfinished last row (%d bytes) of the table", size - keep)
    handle.truncate(keep)


# ---------------------------------------------------------------------- training (workers)

_WORKER: "_Trainer | None" = None


class _Trainer:
    """Per-process training state: the data, the configured hypermodel and the recipe."""

    def __init__(self, recipe: Recipe) -> None:
        import keras
        import tensorflow as tf

        from kbnas.hypermodel import ConvNetHyperModel

        self.keras, self.tf = keras, tf
        self.recipe = recipe
        split = datasets.load_digits_split()
        self.split = split
        self.hypermodel = ConvNetHyperModel(
            search_space=recipe.space, task="multiclass", num_classes=datasets.DIGITS_NUM_CLASSES
        ).configure(split.x_train, split.y_train)
        self.x_val = tf.constant(split.x_val)
        self.x_test = tf.constant(split.x_test)
        self.steps_per_epoch = math.ceil(len(split.x_train) / recipe.batch_size)

    @staticmethod
    def _accuracy(predict: Callable, x: Any, y: np.ndarray) -> float:
        """Fraction of ``x`` whose most probable class is ``y``, as Keras' accuracy counts it."""
        probabilities = predict(x).numpy()
        return float(np.mean(np.argmax(probabilities, axis=1) == y))

    def train(self, encoding: str, seed: int) -> dict[str, Any]:
        """Train ``encoding`` with ``seed``; return the table row."""
        keras, tf = self.keras, self.tf
        recipe = self.recipe
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = self.hypermodel.build_architecture(
            encoding, learning_rate=recipe.learning_rate, optimizer=recipe.optimizer
        )
        model.compile(
            optimizer=model.optimizer,
            loss=model.loss,
            metrics=["accuracy"],
            steps_per_execution=self.steps_per_epoch,
        )
        predict = tf.function(lambda x: model(x, training=False))
        val_accuracies: list[float] = []
        trainer = self

        class ValidationAccuracy(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                val_accuracies.append(
                    trainer._accuracy(predict, trainer.x_val, trainer.split.y_val)
                )

        started = time.perf_counter()
        history = model.fit(
            self.split.x_train,
            self.split.y_train,
            batch_size=recipe.batch_size,
            epochs=recipe.epochs,
            shuffle=True,
            verbose=0,
            callbacks=[ValidationAccuracy()],
        )
        seconds = time.perf_counter() - started
        test_accuracy = self._accuracy(predict, self.x_test, self.split.y_test)
        best_index = int(np.argmax(val_accuracies))
        record = Record(
            architecture=encoding,
            seed=seed,
            epochs=recipe.epochs,
            params=recipe.space.param_count(recipe.space.from_hp_value(encoding)),
            val_accuracy=round(val_accuracies[-1], ACCURACY_DECIMALS),
            best_val_accuracy=round(val_accuracies[best_index], ACCURACY_DECIMALS),
            best_epoch=best_index + 1,
            test_accuracy=round(test_accuracy, ACCURACY_DECIMALS),
            train_accuracy=round(float(history.history["accuracy"][-1]), ACCURACY_DECIMALS),
            train_loss=round(float(history.history["loss"][-1]), ACCURACY_DECIMALS),
            val_accuracy_per_epoch=tuple(round(v, ACCURACY_DECIMALS) for v in val_accuracies),
            train_seconds=round(seconds, SECONDS_DECIMALS),
        )
        return record.to_row()


def _init_worker(recipe: Recipe, threads: int, *, own_process: bool = True) -> None:
    """Build this process's training state; in a fresh worker, first fix TensorFlow's threads.

    Args:
        recipe: the training recipe.
        threads: intra-op and inter-op threads.
        own_process: a worker process, whose environment this may change before
            TensorFlow starts; False when training in the caller's process.
    """
    global _WORKER
    if own_process:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # TensorFlow already runs in this process (in-process mode): its pools stay.
        logger.info("TensorFlow is already initialised here; its thread counts stay as they are")
    _WORKER = _Trainer(recipe)


def _train_task(task: tuple[str, int]) -> dict[str, Any]:
    return _WORKER.train(*task)


# ---------------------------------------------------------------------- driver


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def generate(
    output: str | pathlib.Path = DEFAULT_TABLE_PATH,
    *,
    recipe: Recipe = Recipe(),
    seeds: Sequence[int] = DEFAULT_SEEDS,
    limit: int | None = None,
    workers: int = 2,
    threads: int = 1,
    settings_path: str | pathlib.Path | None = None,
) -> int:
    """Train the missing (architecture, seed) pairs and append their rows.

    Args:
        output: the JSON-lines table (created if missing).
        recipe: the training recipe; must match the table's settings file.
        seeds: seeds to cover, in order.
        limit: only the first ``limit`` architectures of ``space.enumerate()``.
        workers: worker processes; 1 trains in this process.
        threads: TensorFlow intra-/inter-op threads per worker.
        settings_path: default ``settings.json`` next to ``output``.

    Returns:
        Number of rows appended.

    Raises:
        RecipeMismatchError: the table was generated with another recipe.
        RuntimeError: another generator holds the table.
    """
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be positive, got {workers} and {threads}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {list(seeds)}")
    output = pathlib.Path(output)
    settings_path = pathlib.Path(settings_path) if settings_path else settings_path_for(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    architectures = [architecture.encode() for architecture in recipe.space.enumerate()]
    if limit is not None:
        architectures = architectures[:limit]

    with open(output, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another generator is writing {output}") from None
        _drop_unfinished_last_line(handle)
        rows = read_rows(output)
        if not check_settings(settings_path, recipe, table_has_rows=bool(rows)):
            settings_path.write_text(json.dumps(settings_document(recipe), indent=2) + "\n")
            logger.info("wrote the recipe to %s", settings_path)
        else:
            _warn_on_software_change(settings_path)
        wrong_epochs = sorted({row["epochs"] for row in rows} - {recipe.epochs})
        if wrong_epochs:
            raise RecipeMismatchError(
                f"{output} holds rows of {wrong_epochs} epochs, not {recipe.epochs}"
            )
        done = {(row["architecture"], row["seed"]) for row in rows}
        work = remaining_work(architectures, seeds, done)
        total = len(architectures) * len(seeds)
        logger.info(
            "%s: %d architectures x %d seeds = %d trainings requested, %d already done, "
            "%d to go; %d workers x %d threads, %d epochs",
            output, len(architectures), len(seeds), total, total - len(work), len(work),
            workers, threads, recipe.epochs,
        )
        if not work:
            return 0
        return _run(handle, work, total - len(work), total, recipe, workers, threads)


def _run(
    handle: IO[bytes],
    work: Sequence[tuple[str, int]],
    done_before: int,
    total: int,
    recipe: Recipe,
    workers: int,
    threads: int,
) -> int:
    """Train ``work`` (in this process or a pool), appending each row as it arrives."""
    started = time.perf_counter()
    appended = 0
    train_seconds = 0.0

    def append(row: dict[str, Any]) -> None:
        nonlocal appended, train_seconds
        handle.write((json.dumps(row) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
        appended += 1
        train_seconds += row["train_seconds"]
        elapsed = time.perf_counter() - started
        wall_per_row = elapsed / appended
        logger.info(
            "[%d/%d] seed %d %-40s val %.4f best %.4f test %.4f fit %.2f s | "
            "mean fit %.2f s, %.2f s wall per row, ETA %s",
            done_before + appended, total, row["seed"], row["architecture"],
            row["val_accuracy"], row["best_val_accuracy"], row["test_accuracy"],
            row["train_seconds"], train_seconds / appended, wall_per_row,
            _format_duration(wall_per_row * (len(work) - appended)),
        )

    if workers == 1:
        _init_worker(recipe, threads, own_process=False)
        for task in work:
            append(_train_task(task))
        return appended

    context = multiprocessing.get_context("spawn")
    with context.Pool(
        workers,
        initializer=_init_worker,
        initargs=(recipe, threads),
        maxtasksperchild=TRAININGS_PER_WORKER_PROCESS,
    ) as pool:
        for row in pool.imap_unordered(_train_task, work, chunksize=1):
            append(row)
    return appended


def _warn_on_software_change(settings_path: pathlib.Path) -> None:
    stored = (read_settings(settings_path) or {}).get("software", {})
    changed = {
        name: (stored.get(name), now)
        for name, now in software_versions().items()
        if stored.get(name) != now
    }
    if changed:
        logger.warning(
            "software differs from the one the table was started with (stored -> now): %s; "
            "rows may differ in the last digits",
            ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changed.items()),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tabular.generate",
        description="Train every architecture of the digits space per seed into a resumable table.",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (1: in-process)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads per worker")
    parser.add_argument("--limit", type=int, default=None, help="only the first N architectures")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--learning-rate", type=float, default=DEFAULT_LEARNING_RATE)
    parser.add_argument("--output", default=str(DEFAULT_TABLE_PATH), help="the JSON-lines table")
    parser.add_argument(
        "--settings", default=None, help="recipe file (default: settings.json next to --output)"
    )
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
        )
    # A plain `kill` then unwinds through the worker pool's exit, which stops the workers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    recipe = Recipe(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate
    )
    try:
        appended = generate(
            args.output,
            recipe=recipe,
            seeds=args.seeds,
            limit=args.limit,
            workers=args.workers,
            threads=args.threads,
            settings_path=args.settings,
        )
    except (RecipeMismatchError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logger.info("appended %d rows", appended)
    return 0


if __name__ == "__main__":
    sys.exit(main())
