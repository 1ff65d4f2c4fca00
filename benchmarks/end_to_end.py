"""End to end with real training: kbnas against KerasTuner's BayesianOptimization and RandomSearch.

Every contender searches the bundled 8×8 digits (`kbnas.datasets.load_digits_split`:
1,079 train / 359 validation / 359 test) with the same number of trials, the same
epochs cap and the same training recipe; the best trial's model is then evaluated
on the test split.

Contenders (`CONTENDERS`):
    kbnas               `kbnas.BayesianNAS` + `kbnas.ConvNetHyperModel(max_depth=6)`, the
                        settings of ``kbnas search`` (EI, edit distance, rank warping),
                        driven through the Python API
    keras-tuner-bo      ``keras_tuner.BayesianOptimization`` (KerasTuner defaults) with the
                        hand-written `HandWrittenConvNet`
    keras-tuner-random  ``keras_tuner.RandomSearch`` with `HandWrittenConvNet`
    keras-tuner-bo-6init  (extra, not in the default set) ``keras-tuner-bo`` with
                        ``num_initial_points=6``, the size of kbnas' random initial
                        design here. KerasTuner's default, 3 × the number of
                        hyperparameters known so far, grows with this conditional
                        space (2 at the start, up to 16) and can exceed the budget:
                        the GP is then never fitted and ``keras-tuner-bo`` proposes
                        exactly what ``keras-tuner-random`` proposes for the same seed

The hand-written space (what a Keras user would write for the same layer kinds):

    n_conv ∈ {0..3};  block i:  Conv2D(filters_i ∈ {16, 32, 64}, kernel_i ∈ {3, 5},
                      padding "same", ReLU if relu_i) → [pool_i ∈ {none, max, avg}, 2×2
                      stride 2, skipped when the side would drop below 1]
    Flatten;  n_dense ∈ {0..2};  layer j: Dense(units_j ∈ {32, 64, 128}, ReLU)
    head: Dense(10, softmax)

    |space| = (1 + 36 + 36² + 36³) · (1 + 3 + 3²) = 623,857 networks (`space_sizes`;
    on 8×8 inputs three pools end at 1×1, so the skip never triggers). kbnas'
    default space (depth 1–6 over conv3, conv5, maxpool, avgpool, relu, dense)
    is counted by `kbnas.space.SearchSpace.count`.

Same recipe for everyone: both hypermodels put the same ``Normalization`` (mean and
variance of the training images) in front, compile with Adam at 1e-3 and
sparse categorical cross-entropy, and train through the SAME
`kbnas.ConvNetHyperModel.fit` (`HandWrittenConvNet.fit` delegates to it): a tf.data
pipeline shuffled with the run seed, batch size `BATCH_SIZE`, at most ``epochs``
epochs, ``EarlyStopping(val_loss, patience=3, restore_best_weights=True)`` and a
TerminateOnNaN guard (`kbnas.hypermodel.search_callbacks`). The objective is
``val_accuracy`` (max) everywhere; KerasTuner checkpoints each trial's best epoch.

Seeds: run seed s sets ``keras.utils.set_random_seed(s)`` and the shuffling seed;
every oracle gets seed s + 1 (KerasTuner turns a seed of 0 into a random one).
Each run happens in a fresh process (so no run inherits another's warmed-up
TensorFlow), one run at a time, seed-major (all contenders of seed 0, then seed 1…).

Measured per run (one JSON line):
    wall_seconds        tuner construction + ``search()`` (KerasTuner tuners build one
                        model at construction, kbnas inside ``search()``)
    fit_seconds         Σ over trials of on_train_begin → on_train_end (`FitTimer`),
                        which includes KerasTuner's per-epoch best-weights checkpoint
    checkpoint_seconds  Σ of ``keras.Model.save_weights`` calls (inside fit_seconds)
    create_trial_seconds Σ of ``oracle.create_trial`` (proposal + trial bookkeeping)
    outside_fraction    1 − fit_seconds / wall_seconds: oracle, building and
                        compiling models, data pipelines, trial and oracle files
    test_accuracy       of ``tuner.get_best_models(1)[0]`` on the test split
    load_start/load_end ``os.getloadavg()`` at the start and end of the run

Commands:
    python -m benchmarks.end_to_end --seeds 3 --trials 20 --epochs 30
    python -m benchmarks.end_to_end --summary [--trials 20 --epochs 30]

Finished (contender, seed, trials, epochs, batch size) runs are skipped on restart;
an interrupted run starts over (a resumed search would have no meaningful wall time).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import itertools
import json
import multiprocessing
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from typing import Any, Iterator, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after the TensorFlow log level)
import keras_tuner  # noqa: E402

from kbnas import datasets  # noqa: E402
from kbnas.hypermodel import ConvNetHyperModel, make_optimizer  # noqa: E402
from kbnas.space import Architecture, SearchSpace  # noqa: E402
from kbnas.tuner import BayesianNAS  # noqa: E402

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "end_to_end.jsonl"
DEFAULT_SUMMARY = RESULTS_DIR / "end_to_end_summary.json"

CONTENDERS = ("kbnas", "keras-tuner-bo", "keras-tuner-random", "keras-tuner-bo-6init")
#: What ``--contenders all`` runs.
DEFAULT_CONTENDERS = CONTENDERS[:3]
#: num_initial_points of ``keras-tuner-bo-6init``; also where the summary splits
#: trials into the initial design and later ones.
MATCHED_INITIAL_POINTS = 6
#: Validation accuracy the summary counts a trial as good at.
GOOD_TRIAL_ACCURACY = 0.95
#: ``kbnas search`` defaults.
BATCH_SIZE = 64
MAX_DEPTH = 6
#: kbnas' default space before issue 9 widened it (the space these results were
#: measured on): ``SearchSpace`` settings besides the input shape and depth.
SPACE_SETTINGS = dict(
    vocabulary=("conv3", "conv5", "maxpool", "avgpool", "relu", "dense"),
    filters=(16, 32, 64),
    units=(32, 64, 128),
)
PROJECT_NAME = "search"

#: The hand-written space.
MAX_CONV_BLOCKS = 3
FILTER_CHOICES = (16, 32, 64)
KERNEL_CHOICES = (3, 5)
POOL_CHOICES = ("none", "max", "avg")
MAX_DENSE_LAYERS = 2
UNIT_CHOICES = (32, 64, 128)
POOL_SIZE = 2


# ---------------------------------------------------------------------- the hand-written hypermodel
class HandWrittenConvNet(keras_tuner.HyperModel):
    """A Conv/Pool/Dense/ReLU HyperModel as a Keras user would write it.

    The space is in the module docstring. Building uses the Normalization
    statistics of ``trainer``; training is ``trainer.fit`` (the kbnas recipe).

    Args:
        trainer: a configured `kbnas.ConvNetHyperModel` (multiclass, image input).
    """

    def __init__(self, trainer: ConvNetHyperModel) -> None:
        super().__init__(name="hand_written_convnet")
        if not trainer.is_configured:
            raise ValueError("the trainer must be configured with the training data first")
        self.trainer = trainer

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Build and compile the network of ``hp``.

        Returns:
            A compiled `keras.Model` taking raw (batch, 8, 8, 1) images.
        """
        spec = self.trainer.data_spec
        inputs = keras.Input(shape=spec.data_shape)
        tensor = keras.layers.Normalization(
            axis=-1, mean=self.trainer.input_mean, variance=self.trainer.input_variance
        )(inputs)
        side = min(spec.data_shape[:-1])
        for i in range(hp.Int("n_conv", 0, MAX_CONV_BLOCKS)):
            tensor = keras.layers.Conv2D(
                hp.Choice(f"filters_{i}", list(FILTER_CHOICES)),
                hp.Choice(f"kernel_{i}", list(KERNEL_CHOICES)),
                padding="same",
                activation="relu" if hp.Boolean(f"relu_{i}") else None,
            )(tensor)
            pool = hp.Choice(f"pool_{i}", list(POOL_CHOICES))
            if pool != "none" and side // POOL_SIZE >= 1:
                layer = keras.layers.MaxPooling2D if pool == "max" else keras.layers.AveragePooling2D
                tensor = layer(POOL_SIZE)(tensor)
                side //= POOL_SIZE
        tensor = keras.layers.Flatten()(tensor)
        for j in range(hp.Int("n_dense", 0, MAX_DENSE_LAYERS)):
            tensor = keras.layers.Dense(hp.Choice(f"units_{j}", list(UNIT_CHOICES)), activation="relu")(tensor)
        outputs = keras.layers.Dense(spec.num_outputs, activation="softmax")(tensor)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=make_optimizer(self.trainer.optimizers[0], self.trainer.learning_rates[0]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any):
        """Train with the kbnas recipe (`kbnas.ConvNetHyperModel.fit`)."""
        return self.trainer.fit(hp, model, *args, **kwargs)


def handwritten_tokens(values: dict[str, Any], input_side: int = 8) -> list[str]:
    """The kbnas layer tokens of a hand-written network (e.g. ``conv3-32``, ``relu``).

    Args:
        values: ``trial.hyperparameters.values`` of `HandWrittenConvNet`.
        input_side: smallest spatial side of the input (for the pooling skip).

    Returns:
        The layers in kbnas' vocabulary; the Flatten and the head are implicit.
    """
    tokens: list[str] = []
    side = input_side
    for i in range(values["n_conv"]):
        tokens.append(f"conv{values[f'kernel_{i}']}-{values[f'filters_{i}']}")
        if values[f"relu_{i}"]:
            tokens.append("relu")
        pool = values[f"pool_{i}"]
        if pool != "none" and side // POOL_SIZE >= 1:
            tokens.append(f"{pool}pool")
            side //= POOL_SIZE
    for j in range(values["n_dense"]):
        tokens.extend([f"dense-{values[f'units_{j}']}", "relu"])
    return tokens


def kbnas_default_space() -> SearchSpace:
    """kbnas' default architecture space on the digits (what ``kbnas search`` searches)."""
    return SearchSpace(input_shape=datasets.DIGITS_INPUT_SHAPE, max_depth=MAX_DEPTH, **SPACE_SETTINGS)


def space_sizes() -> dict[str, int]:
    """Sizes of both spaces and of their overlap.

    The hand-written networks are counted by structure (per block: ReLU or not,
    pool kind; per dense layer: nothing) times the width and kernel multiplicity
    (6 per block, 3 per dense layer). Kernel sizes and widths do not change
    validity in kbnas' space (padding "same", no parameter budget), so one
    representative per structure decides whether the network is one of kbnas'
    architectures (at most `MAX_DEPTH` layers, at least one).

    Returns:
        ``kbnas`` (|kbnas space|), ``hand_written`` (|hand-written space|) and
        ``both`` (networks in both spaces; the translation is one-to-one).
    """
    space = kbnas_default_space()
    total = both = 0
    per_block = len(FILTER_CHOICES) * len(KERNEL_CHOICES)
    for n_conv in range(MAX_CONV_BLOCKS + 1):
        for n_dense in range(MAX_DENSE_LAYERS + 1):
            for block_shapes in itertools.product(itertools.product((False, True), POOL_CHOICES), repeat=n_conv):
                values: dict[str, Any] = {"n_conv": n_conv, "n_dense": n_dense}
                for i, (relu, pool) in enumerate(block_shapes):
                    values.update({f"kernel_{i}": 3, f"filters_{i}": 16, f"relu_{i}": relu, f"pool_{i}": pool})
                values.update({f"units_{j}": UNIT_CHOICES[0] for j in range(n_dense)})
                multiplicity = per_block**n_conv * len(UNIT_CHOICES) ** n_dense
                total += multiplicity
                tokens = handwritten_tokens(values, min(datasets.DIGITS_INPUT_SHAPE[:-1]))
                if tokens and space.is_valid(Architecture.from_layers(tokens)):
                    both += multiplicity
    return {"kbnas": space.count(), "hand_written": total, "both": both}


# ---------------------------------------------------------------------- instruments
class FitTimer(keras.callbacks.Callback):
    """Seconds and epochs of every ``model.fit`` of a search (on_train_begin → on_train_end).

    KerasTuner deep-copies the search callbacks for each trial; this one returns
    itself from ``__deepcopy__`` so that one object collects every trial.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fit_seconds: list[float] = []
        self.epochs: list[int] = []
        self._started = 0.0
        self._epochs = 0

    def __deepcopy__(self, memo: dict) -> "FitTimer":
        return self

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._epochs = 0
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._epochs += 1

    def on_train_end(self, logs: dict | None = None) -> None:
        self.fit_seconds.append(time.perf_counter() - self._started)
        self.epochs.append(self._epochs)


@contextlib.contextmanager
def timed_weight_saving(seconds: list[float]) -> Iterator[None]:
    """Append the duration of every ``keras.Model.save_weights`` call to ``seconds``."""
    original = keras.Model.save_weights

    def save_weights(model, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(model, *args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    keras.Model.save_weights = save_weights
    try:
        yield
    finally:
        keras.Model.save_weights = original


def _time_create_trial(oracle: keras_tuner.Oracle, seconds: list[float], gp_flags: list[bool]) -> None:
    """Wrap ``oracle.create_trial`` to record its seconds and, for KerasTuner's
    BayesianOptimization, whether the proposal came from its GP (it proposes at
    random until ``num_initial_points`` or 3 × the number of hyperparameters known
    so far have completed)."""
    original = oracle.create_trial
    is_keras_bo = isinstance(oracle, keras_tuner.oracles.BayesianOptimizationOracle)

    def create_trial(*args, **kwargs):
        completed = sum(t.status == "COMPLETED" for t in oracle.trials.values())
        needed = (oracle.num_initial_points or max(3 * len(oracle.hyperparameters.space), 3)) if is_keras_bo else 0
        start = time.perf_counter()
        try:
            trial = original(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)
        if is_keras_bo and trial.status == "RUNNING":  # the last call only says STOPPED
            gp_flags.append(completed >= needed)
        return trial

    oracle.create_trial = create_trial


# ---------------------------------------------------------------------- one run
def make_tuner(contender: str, *, split: datasets.Split, seed: int, trials: int, directory: str):
    """The tuner of ``contender``; oracles get seed ``seed + 1``.

    Returns:
        (tuner, hypermodel).
    """
    common = dict(
        max_trials=trials,
        seed=seed + 1,
        directory=directory,
        project_name=PROJECT_NAME,
        overwrite=True,
        max_consecutive_failed_trials=max(3, trials),  # as ``kbnas search``
    )
    if contender == "kbnas":
        hypermodel = ConvNetHyperModel(max_depth=MAX_DEPTH, seed=seed, **SPACE_SETTINGS)
        # templates=False: the oracle of these results started from random draws.
        return BayesianNAS(hypermodel, acquisition="ei", distance="edit", templates=False, **common), hypermodel
    trainer = ConvNetHyperModel(max_depth=MAX_DEPTH, seed=seed, **SPACE_SETTINGS).configure(split.x_train, split.y_train)
    hypermodel = HandWrittenConvNet(trainer)
    if contender == "keras-tuner-bo":
        tuner_class = keras_tuner.BayesianOptimization
    elif contender == "keras-tuner-bo-6init":
        tuner_class = keras_tuner.BayesianOptimization
        common["num_initial_points"] = MATCHED_INITIAL_POINTS
    elif contender == "keras-tuner-random":
        tuner_class = keras_tuner.RandomSearch
    else:
        raise ValueError(f"unknown contender {contender!r}; expected one of {CONTENDERS}")
    return tuner_class(hypermodel, objective="val_accuracy", **common), hypermodel


def _best_description(contender: str, values: dict[str, Any]) -> str:
    if contender == "kbnas":
        return str(values.get("architecture"))
    return "|".join(handwritten_tokens(values)) or "(head only)"


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_one(
    contender: str,
    seed: int,
    *,
    trials: int,
    epochs: int,
    batch_size: int = BATCH_SIZE,
    directory: str | None = None,
) -> dict[str, Any]:
    """One search of ``contender`` with real training, and its measurements.

    Args:
        contender: one of `CONTENDERS`.
        seed: run seed (weights, shuffling; the oracle gets ``seed + 1``).
        trials: trials of the search.
        epochs: epochs cap per trial (early stopping usually ends sooner).
        batch_size: examples per step.
        directory: where the tuner writes (default: a temporary directory, removed).

    Returns:
        The JSON record (see the module docstring).
    """
    if contender not in CONTENDERS:
        raise ValueError(f"unknown contender {contender!r}; expected one of {CONTENDERS}")
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix=f"e2e_{contender}_{seed}_"))
        return _run_in(contender, seed, trials, epochs, batch_size, directory)


def _run_in(contender: str, seed: int, trials: int, epochs: int, batch_size: int, directory: str) -> dict[str, Any]:
    import tensorflow as tf

    load_start = os.getloadavg()
    started_at = _utc_now()
    split = datasets.load_digits_split()
    keras.utils.set_random_seed(seed)
    timer = FitTimer()
    create_trial_seconds: list[float] = []
    checkpoint_seconds: list[float] = []
    gp_flags: list[bool] = []
    with timed_weight_saving(checkpoint_seconds), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        start = time.perf_counter()
        tuner, _ = make_tuner(contender, split=split, seed=seed, trials=trials, directory=directory)
        construct_seconds = time.perf_counter() - start
        _time_create_trial(tuner.oracle, create_trial_seconds, gp_flags)
        search_start = time.perf_counter()
        tuner.search(
            split.x_train,
            split.y_train,
            validation_data=(split.x_val, split.y_val),
            epochs=epochs,
            batch_size=batch_size,
            verbose=0,
            callbacks=[timer],
        )
        search_seconds = time.perf_counter() - search_start
        search_checkpoint_seconds = sum(checkpoint_seconds)

        best = tuner.oracle.get_best_trials(1)[0]
        evaluate_start = time.perf_counter()
        model = tuner.get_best_models(1)[0]
        test = model.evaluate(split.x_test, split.y_test, verbose=0, return_dict=True)
        evaluate_seconds = time.perf_counter() - evaluate_start

    statuses = Counter(t.status for t in tuner.oracle.trials.values())
    ordered = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials, key=int)]
    wall_seconds = construct_seconds + search_seconds
    fit_seconds = sum(timer.fit_seconds)
    record: dict[str, Any] = {
        "contender": contender,
        "seed": seed,
        "oracle_seed": seed + 1,
        "trials": trials,
        "epochs": epochs,
        "batch_size": batch_size,
        "best_val_accuracy": best.score,
        "test_accuracy": float(test["accuracy"]),
        "test_loss": float(test["loss"]),
        "best_trial": best.trial_id,
        "best_network": _best_description(contender, best.hyperparameters.values),
        "best_params": int(model.count_params()),
        "completed_trials": statuses.get("COMPLETED", 0),
        "failed_trials": statuses.get("FAILED", 0) + statuses.get("INVALID", 0),
        "trial_scores": [t.score for t in ordered],
        "wall_seconds": wall_seconds,
        "construct_seconds": construct_seconds,
        "search_seconds": search_seconds,
        "fit_seconds": fit_seconds,
        "trial_fit_seconds": timer.fit_seconds,
        "trial_epochs": timer.epochs,
        "epochs_trained": sum(timer.epochs),
        "checkpoint_seconds": search_checkpoint_seconds,
        "checkpoints": len(checkpoint_seconds),
        "create_trial_seconds": sum(create_trial_seconds),
        "outside_fraction": 1.0 - fit_seconds / wall_seconds,
        "evaluate_seconds": evaluate_seconds,
        "load_start": list(load_start),
        "load_end": list(os.getloadavg()),
        "started_at": started_at,
        "finished_at": _utc_now(),
        "cpu_count": os.cpu_count(),
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "keras_tuner": keras_tuner.__version__,
        },
    }
    if contender == "kbnas":
        log = tuner.oracle.proposal_log
        record["proposal_seconds"] = sum(entry.get("seconds", 0.0) for entry in log.values())
        record["gp_proposals"] = sum(not entry.get("method", "").startswith("random") for entry in log.values())
    elif contender.startswith("keras-tuner-bo"):
        record["gp_proposals"] = sum(gp_flags)
        record["hyperparameters_known"] = len(tuner.oracle.hyperparameters.space)
    else:
        record["gp_proposals"] = 0
    return record


# ---------------------------------------------------------------------- the benchmark
def read_records(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` (none when it does not exist)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_key(record: dict[str, Any]) -> tuple[str, int, int, int, int]:
    """What makes two runs the same: contender, seed, trials, epochs, batch size."""
    return (record["contender"], record["seed"], record["trials"], record["epochs"], record["batch_size"])


def run_end_to_end(
    contenders: Sequence[str],
    seeds: Sequence[int],
    *,
    trials: int,
    epochs: int,
    batch_size: int = BATCH_SIZE,
    output: str | pathlib.Path = DEFAULT_OUTPUT,
    isolate: bool = True,
) -> list[dict[str, Any]]:
    """Run the missing (contender, seed) pairs, seed-major, appending one JSON line each.

    Args:
        contenders: names from `CONTENDERS`.
        seeds: run seeds.
        trials, epochs, batch_size: the budget, as in `run_one`.
        output: the results file (JSON lines; finished runs are skipped).
        isolate: run each search in a fresh spawned process (False: in this one).

    Returns:
        The records written by this call.
    """
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown:
        raise ValueError(f"unknown contenders {unknown}; expected some of {CONTENDERS}")
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = {run_key(r) for r in read_records(output)}
    todo = [(c, s) for s in seeds for c in contenders if (c, s, trials, epochs, batch_size) not in done]
    written = []
    for number, (contender, seed) in enumerate(todo, 1):
        print(f"[{_utc_now()}] run {number}/{len(todo)}: {contender} seed {seed} "
              f"({trials} trials x {epochs} epochs), load {os.getloadavg()[0]:.2f}", flush=True)
        kwargs = dict(trials=trials, epochs=epochs, batch_size=batch_size)
        if isolate:
            from benchmarks import end_to_end  # by module name, also when run as __main__

            with concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            ) as pool:
                record = pool.submit(end_to_end.run_one, contender, seed, **kwargs).result()
        else:
            record = run_one(contender, seed, **kwargs)
        with output.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        written.append(record)
        print(f"  test accuracy {record['test_accuracy']:.4f}, best val {record['best_val_accuracy']:.4f}, "
              f"wall {record['wall_seconds']:.0f}s, outside training {record['outside_fraction']:.1%}", flush=True)
    return written


# ---------------------------------------------------------------------- summary
def t_interval(values: Sequence[float], confidence: float = 0.95) -> list[float] | None:
    """Student-t interval of the mean: mean ± t_{(1+c)/2, n−1} · s / √n (None for n < 2)."""
    import scipy.stats

    if len(values) < 2:
        return None
    mean, std = statistics.fmean(values), statistics.stdev(values)
    half = float(scipy.stats.t.ppf((1 + confidence) / 2, len(values) - 1)) * std / len(values) ** 0.5
    return [mean - half, mean + half]


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def summarize(
    records: Sequence[dict[str, Any]], *, trials: int | None = None, epochs: int | None = None
) -> dict[str, Any]:
    """Per-contender means, standard deviations and per-seed values.

    Args:
        records: JSON records of `run_one`.
        trials, epochs: the budget to summarise (default: the most frequent one).

    Besides the recorded metrics: ``outside_seconds`` = wall − fit;
    ``wall_vs_random`` = wall time / wall time of ``keras-tuner-random`` with the
    same seed (runs of one seed are adjacent in time, so they met similar load);
    ``same_trials_as_random``: seeds whose 20 trial scores equal, in order, those
    of ``keras-tuner-random`` (same networks proposed, same deterministic training).

    Returns:
        ``{"trials", "epochs", "runs", "load_1min", "contenders": {name: {...}}}``;
        each metric holds ``mean``, ``std`` (sample; None for one run) and
        ``per_seed`` ({seed: value}).
    """
    if not records:
        raise ValueError("no records to summarise")
    if trials is None or epochs is None:
        common = Counter((r["trials"], r["epochs"]) for r in records if
                         (trials is None or r["trials"] == trials) and (epochs is None or r["epochs"] == epochs))
        if not common:
            raise ValueError(f"no records with trials={trials}, epochs={epochs}")
        trials, epochs = common.most_common(1)[0][0]
    chosen = [r for r in records if r["trials"] == trials and r["epochs"] == epochs]
    if not chosen:
        raise ValueError(f"no records with trials={trials}, epochs={epochs}")
    metrics = ("test_accuracy", "best_val_accuracy", "wall_seconds", "fit_seconds", "outside_fraction",
               "create_trial_seconds", "checkpoint_seconds", "epochs_trained", "best_params")
    summary: dict[str, Any] = {"trials": trials, "epochs": epochs, "runs": len(chosen), "contenders": {}}
    loads = [load for r in chosen for load in (r["load_start"][0], r["load_end"][0])]
    summary["load_1min"] = {"min": min(loads), "max": max(loads), "mean": statistics.fmean(loads)}
    random_runs = {r["seed"]: r for r in chosen if r["contender"] == "keras-tuner-random"}

    def metric_entry(rows: list[dict[str, Any]], values: list[float]) -> dict[str, Any]:
        mean, std = _mean_std(values)
        return {"mean": mean, "std": std, "per_seed": {str(r["seed"]): v for r, v in zip(rows, values)}}

    for contender in [c for c in CONTENDERS if any(r["contender"] == c for r in chosen)]:
        rows = sorted((r for r in chosen if r["contender"] == contender), key=lambda r: r["seed"])
        entry: dict[str, Any] = {"runs": len(rows), "seeds": [r["seed"] for r in rows]}
        for metric in metrics:
            entry[metric] = metric_entry(rows, [float(r[metric]) for r in rows])
        entry["outside_seconds"] = metric_entry(rows, [r["wall_seconds"] - r["fit_seconds"] for r in rows])
        paired = [r for r in rows if r["seed"] in random_runs]
        if paired:
            entry["wall_vs_random"] = metric_entry(
                paired, [r["wall_seconds"] / random_runs[r["seed"]]["wall_seconds"] for r in paired]
            )
            for metric in ("test_accuracy", "best_val_accuracy"):
                differences = [r[metric] - random_runs[r["seed"]][metric] for r in paired]
                entry[f"{metric}_minus_random"] = metric_entry(paired, differences)
                entry[f"{metric}_minus_random"]["t95"] = t_interval(differences)
        entry["same_trials_as_random"] = [
            r["seed"] for r in paired if r["trial_scores"] == random_runs[r["seed"]]["trial_scores"]
        ]
        entry["gp_proposals"] = [r.get("gp_proposals") for r in rows]
        entry["trial_quality"] = {
            part: _trial_quality([score for r in rows for score in r["trial_scores"][start:stop]])
            for part, start, stop in (("initial", 0, MATCHED_INITIAL_POINTS), ("later", MATCHED_INITIAL_POINTS, None))
        }
        entry["best_networks"] = [r["best_network"] for r in rows]
        summary["contenders"][contender] = entry
    return summary


def _trial_quality(scores: Sequence[float | None]) -> dict[str, Any]:
    """Mean validation accuracy of finished trials and the share at or above `GOOD_TRIAL_ACCURACY`."""
    finished = [score for score in scores if score is not None]
    if not finished:
        return {"trials": 0, "mean": None, "good_share": None}
    good = sum(score >= GOOD_TRIAL_ACCURACY for score in finished)
    return {"trials": len(finished), "mean": statistics.fmean(finished), "good_share": good / len(finished)}


def _cell(metric: dict[str, Any], fmt: str, scale: float = 1.0) -> str:
    mean, std = metric["mean"] * scale, metric["std"]
    per_seed = ", ".join(format(v * scale, fmt) for v in metric["per_seed"].values())
    spread = "" if std is None else f" ± {format(std * scale, fmt.replace('+', ''))}"
    return f"{format(mean, fmt)}{spread} ({per_seed})"


def format_summary_markdown(summary: dict[str, Any]) -> str:
    """Markdown tables of `summarize`: mean ± sample std (per-seed values, seed order)."""
    lines = [
        f"{summary['runs']} runs, {summary['trials']} trials × at most {summary['epochs']} epochs each; "
        f"1-minute load average during the runs {summary['load_1min']['min']:.1f}–"
        f"{summary['load_1min']['max']:.1f} (mean {summary['load_1min']['mean']:.1f}) on "
        "a 2-core machine.",
        "",
        "| contender | runs | test accuracy (%) | best val accuracy (%) | wall time (s) | "
        "wall / random, same seed | outside training (%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in summary["contenders"].items():
        ratio = _cell(entry["wall_vs_random"], ".2f") if "wall_vs_random" in entry else "–"
        lines.append(
            f"| {name} | {entry['runs']} | {_cell(entry['test_accuracy'], '.1f', 100)} | "
            f"{_cell(entry['best_val_accuracy'], '.1f', 100)} | {_cell(entry['wall_seconds'], '.0f')} | "
            f"{ratio} | {_cell(entry['outside_fraction'], '.1f', 100)} |"
        )
    lines += [
        "",
        "| contender | time in fit (s) | outside fit (s) | oracle create_trial (s) | "
        "checkpoint saves, inside fit (s) | epochs trained | GP proposals | best model params |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in summary["contenders"].items():
        gp = ", ".join(str(v) for v in entry["gp_proposals"])
        lines.append(
            f"| {name} | {_cell(entry['fit_seconds'], '.0f')} | {_cell(entry['outside_seconds'], '.0f')} | "
            f"{_cell(entry['create_trial_seconds'], '.1f')} | {_cell(entry['checkpoint_seconds'], '.1f')} | "
            f"{_cell(entry['epochs_trained'], '.0f')} | {gp} | {_cell(entry['best_params'], '.0f')} |"
        )
    paired = {name: entry for name, entry in summary["contenders"].items()
              if name != "keras-tuner-random" and "test_accuracy_minus_random" in entry}
    if paired:
        lines += [
            "",
            "Paired by seed, minus keras-tuner-random (percentage points; mean ± std [95% t-interval] "
            "(per seed)):",
            "",
            "| contender | seeds | Δ test accuracy | Δ best val accuracy |",
            "|---|---|---|---|",
        ]
        for name, entry in paired.items():
            cells = []
            for metric in ("test_accuracy_minus_random", "best_val_accuracy_minus_random"):
                interval = entry[metric]["t95"]
                bracket = "" if interval is None else f" [{interval[0] * 100:+.1f}, {interval[1] * 100:+.1f}]"
                cells.append(_cell(entry[metric], "+.1f", 100).replace(" (", f"{bracket} (", 1))
            lines.append(f"| {name} | {len(entry['wall_vs_random']['per_seed'])} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        f"Trials 1–{MATCHED_INITIAL_POINTS} (kbnas' random initial design) and "
        f"{MATCHED_INITIAL_POINTS + 1}–{summary['trials']}, over all runs: mean validation accuracy "
        f"(%) and share of trials at or above {GOOD_TRIAL_ACCURACY:.0%}:",
        "",
        f"| contender | trials 1–{MATCHED_INITIAL_POINTS} | trials {MATCHED_INITIAL_POINTS + 1}–{summary['trials']} |",
        "|---|---|---|",
    ]
    for name, entry in summary["contenders"].items():
        cells = [
            "–" if part["mean"] is None else
            f"{part['mean'] * 100:.1f}, {part['good_share']:.0%} ≥ {GOOD_TRIAL_ACCURACY:.0%} ({part['trials']} trials)"
            for part in (entry["trial_quality"]["initial"], entry["trial_quality"]["later"])
        ]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    identical = [
        f"{name} (seeds {', '.join(map(str, entry['same_trials_as_random']))})"
        for name, entry in summary["contenders"].items()
        if name != "keras-tuner-random" and entry["same_trials_as_random"]
    ]
    if identical:
        lines += ["", "Trial by trial the same scores as keras-tuner-random with the same seed: "
                  + "; ".join(identical) + "."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.end_to_end", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of run seeds: FIRST..FIRST+SEEDS-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=None, help="trials per search (default 20)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs cap per trial (default 30)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--contenders", default="all", help=f"comma-separated from {', '.join(CONTENDERS)}, or all (the first three)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="results file (JSON lines, resumable)")
    parser.add_argument("--in-process", action="store_true", help="run searches in this process (tests)")
    parser.add_argument("--summary", action="store_true", help="only print the markdown summary of the results")
    parser.add_argument("--summary-json", default=str(DEFAULT_SUMMARY), help="where --summary writes its JSON ('' for nowhere)")
    parser.add_argument("--spaces", action="store_true", help="only print the sizes of both spaces")
    args = parser.parse_args(argv)

    if args.spaces:
        print(json.dumps(space_sizes()))
        return 0
    if args.summary:
        summary = summarize(read_records(args.output), trials=args.trials, epochs=args.epochs)
        if args.summary_json:
            pathlib.Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n")
        print(format_summary_markdown(summary), end="")
        return 0
    contenders = DEFAULT_CONTENDERS if args.contenders == "all" else tuple(args.contenders.split(","))
    run_end_to_end(
        contenders,
        range(args.first_seed, args.first_seed + args.seeds),
        trials=20 if args.trials is None else args.trials,
        epochs=30 if args.epochs is None else args.epochs,
        batch_size=args.batch_size,
        output=args.output,
        isolate=not args.in_process,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
