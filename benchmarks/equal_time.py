"""Real training at equal wall-clock budgets: ``kbnas search`` against what a user writes instead.

The question of issue 9: with the same minutes of a 2-core machine, does the main
job give a better model than the network a Keras user writes by hand, and than
KerasTuner's own tuners? Every run happens in a fresh process
(``python -m benchmarks.equal_time --one CONTENDER --case CASE --seed S``), one at
a time, seed-major, and appends one JSON line to `DEFAULT_OUTPUT`.

Cases and contenders (`CONTENDERS`):

digits (the bundled 8×8 digits, `kbnas.datasets.load_digits_split`: 1,079 train /
359 validation / 359 test):
    kbnas               ``kbnas search --seed S --output DIR --quiet``, every other
                        option at its default (time budget, space, initial design,
                        retraining), called in-process through `kbnas.cli.main`;
                        test accuracy from the export's ``architecture.json``
                        (records before issue 10, 2026-12-01, ran without early
                        stopping, which did not exist yet)
    kbnas-single        kbnas with ``--ensemble 1``: one retrained model and the
                        whole budget for the search and selection, as before
                        2026-12-06; side by side with kbnas in
                        ``benchmarks/results/equal_time_ensemble.jsonl``
    kbnas-full          the same with ``--no-early-stopping`` (issue 10: every
                        candidate trained fully); run side by side with kbnas in
                        ``benchmarks/results/equal_time_early_stopping.jsonl``
    kbnas-2-workers     kbnas with ``--workers 2`` (issue 11: two trials at a time,
                        one CPU core each, on KerasTuner's chief/worker engine); run
                        side by side with kbnas (one worker, the CPU default) in
                        ``benchmarks/results/equal_time_workers.jsonl``
    kbnas-bn099         kbnas with its batchnorm layers at Keras's default momentum
                        0.99 (`kbnas.model_builder.BATCHNORM_MOMENTUM` before
                        2026-12-03, set in the run's process): the ablation of
                        that change, run side by side with kbnas in
                        ``benchmarks/results/equal_time_batchnorm.jsonl``
    kbnas-judge-top-rung kbnas with the early-stopping rule before 2026-12-06, which
                        judged the top rung too (27 of 30 epochs:
                        ``EarlyStopping(judge_top_rung=True, rule="asha")``, set in the run's
                        process, one worker); side by side with kbnas in
                        ``benchmarks/results/equal_time_top_rung.jsonl``
    kbnas-asha          kbnas with the early-stopping rule before 2026-12-06, later:
                        a trial continues when it is in the top third of its rung
                        (``EarlyStopping(rule="asha")``, set in the run's process, one
                        worker); side by side with kbnas and kbnas-full in
                        ``benchmarks/results/equal_time_best_curves.jsonl``
    textbook            the hand-written Keras convnet: Normalization →
                        Conv2D(32, 3, relu) → Conv2D(64, 3, relu) → MaxPool →
                        Flatten → Dropout(0.3) → Dense(128, relu) → softmax; Adam,
                        batch 64, ≤ 30 epochs, EarlyStopping(val_loss, patience 5,
                        restore_best_weights); no budget (one training)
    keras-tuner-random, keras-tuner-bo, keras-tuner-hyperband
                        ``keras_tuner.RandomSearch`` / ``BayesianOptimization`` /
                        ``Hyperband(max_epochs=30, factor=3)`` over
                        `benchmarks.end_to_end.HandWrittenConvNet` (up to three
                        conv blocks and two dense layers, trained with the kbnas
                        recipe), objective val_accuracy, stopped at the budget: no
                        trial starts after it, the running one stops at it
                        (`kbnas.tuner.StopAtDeadline`); test accuracy of
                        ``get_best_models(1)[0]``

breast-cancer (scikit-learn's copy of the UCI Wisconsin data, 569 × 30, written
as a CSV and split 60/20/20 as ``kbnas search --data`` splits it):
    kbnas               ``kbnas search --data bc.csv`` with its defaults
    kbnas-single        kbnas with ``--ensemble 1`` (as for digits)
    kbnas-before-flat   kbnas as it was before 2026-12-03 on flat features: Adam at
                        1e-3 (``--learning-rate 0.001``; now 3e-3) and the four
                        perceptron templates without the linear model
                        (`PERCEPTRON_TEMPLATES`, set in the run's process, one
                        worker): the ablation of that change, run side by side with
                        kbnas in ``benchmarks/results/equal_time_flat.jsonl``
    kbnas-before-pool   kbnas as it was before the parsimonious selection pool and
                        100 flat epochs (2026-12-03, later): ``--epochs 30`` and the
                        oracle's four best trials cross-validated
                        (``SelectionSettings(parsimony=None)`` as `kbnas.cli.common.SELECTION`,
                        set in the run's process, one worker; since the choice
                        rule and the baseline came, ``choice_parsimony=None,
                        baseline=False`` too); side by side with
                        kbnas in ``benchmarks/results/equal_time_pool.jsonl``
    kbnas-before-choice kbnas as it was before the one-standard-error rule of the
                        cross-validated choice (2026-12-06): the best cross-validation
                        mean wins (``SelectionSettings(choice_parsimony=None)``, and
                        since the baseline came ``baseline=False``, set in the run's
                        process, one worker); side by side with kbnas in
                        ``benchmarks/results/equal_time_choice.jsonl``
    kbnas-before-baseline kbnas as it was before the smallest trial joined the
                        cross-validated candidates whatever its validation score
                        (2026-12-06, later): ``SelectionSettings(baseline=False)``, set
                        in the run's process, one worker; side by side with kbnas in
                        ``benchmarks/results/equal_time_baseline.jsonl``
    logistic-regression StandardScaler + LogisticRegression (scikit-learn defaults),
                        fitted on train + validation
    mlp                 Normalization → Dense(64, relu) → Dropout(0.3) → Dense(32,
                        relu) → sigmoid; Adam, batch 32, ≤ 100 epochs,
                        EarlyStopping(val_loss, patience 10, restore_best_weights)

breast-cancer-resplit (the same CSV with its rows shuffled by the seed, so that
the same fixed-seed 60/20/20 split draws another partition per seed: seed S is
both the search seed and the split; the case above tests every seed on the same
113 rows, where the logistic regression scores 112 every time):
    kbnas, logistic-regression, mlp   as above, on that seed's split
    svm-rbf             StandardScaler + SVC (RBF kernel, C = 1, gamma "scale":
                        scikit-learn's defaults), fitted on train + validation
                        (from 2026-12-07: a non-linear classical reference)
    gradient-boosting   HistGradientBoostingClassifier (scikit-learn's defaults,
                        random_state S), fitted on train + validation (likewise)

digits-flat (the bundled digits' 1,797 images as a CSV of 64 pixel columns,
`digits_csv`, rows shuffled by the seed and split 60/20/20 as for
breast-cancer-resplit: flat features whose signal is not linear):
    kbnas, logistic-regression, svm-rbf, gradient-boosting   as above (the
                        logistic regression multinomial)
    mlp                 the same hand-written MLP, its head a softmax over the 10
                        classes, a constant training column's variance taken as 1
                        (`_standardization`)

Budget: ``--budget`` seconds (default: ``kbnas search``'s default time budget) of
search for every tuner. kbnas' retraining of the exported architecture on train
+ validation came after its search until 2026-12-06, so the record keeps
``search_seconds`` and ``total_seconds`` apart, and the KerasTuner tuners get
``--budget`` plus `KERAS_TUNER_EXTRA_SECONDS` to cover it. Since the export is an
ensemble (2026-12-06) its members train inside kbnas' budget (its last sixth,
``kbnas search --ensemble``), and only the export and the test evaluation come
after it, so those 20 s now favour the KerasTuner tuners; ``kbnas-single``
(``--ensemble 1``) still retrains after its budget: compare ``total_seconds``.

Each record: case, contender, seed, budget, test_accuracy, search_seconds,
total_seconds, trials (completed), best (the chosen model in words), load averages
at start and end, versions, the checkout's git commit (from 2026-12-02); kbnas records add ``retrained`` and
``test_accuracy_before_retraining`` (the searched model's, from the export), which
the summary pairs with the retrained model's as "kbnas before retraining", and
(from 2026-12-06, when the export became an ensemble) ``test_accuracy_first_member``
(the ensemble's first member alone: the model one retraining gives), paired as
"kbnas first member".

Commands:
    python -m benchmarks.equal_time --case digits --seeds 10 --contenders kbnas textbook
    python -m benchmarks.equal_time --case digits --seeds 10 --contenders all
    python -m benchmarks.equal_time --case breast-cancer --seeds 5 --contenders all
    python -m benchmarks.equal_time --case breast-cancer --seeds 10 --contenders kbnas kbnas-before-flat \
        logistic-regression mlp --output benchmarks/results/equal_time_flat.jsonl
    python -m benchmarks.equal_time --case breast-cancer --seeds 10 --contenders kbnas kbnas-before-pool \
        logistic-regression --output benchmarks/results/equal_time_pool.jsonl
    python -m benchmarks.equal_time --case breast-cancer --seeds 10 --contenders kbnas kbnas-before-choice \
        logistic-regression --output benchmarks/results/equal_time_choice.jsonl
    python -m benchmarks.equal_time --case breast-cancer --seeds 10 --contenders kbnas kbnas-before-baseline \
        logistic-regression mlp --output benchmarks/results/equal_time_baseline.jsonl
    python -m benchmarks.equal_time --case digits --seeds 10 --contenders kbnas kbnas-judge-top-rung \
        --output benchmarks/results/equal_time_top_rung.jsonl
    python -m benchmarks.equal_time --case digits --seeds 10 --contenders kbnas kbnas-full kbnas-asha \
        --output benchmarks/results/equal_time_best_curves.jsonl
    python -m benchmarks.equal_time --case breast-cancer-resplit --seeds 10 --contenders kbnas logistic-regression \
        mlp --output benchmarks/results/equal_time_resplit.jsonl
    python -m benchmarks.equal_time --case digits-flat --seeds 10 --contenders all \
        --output benchmarks/results/equal_time_digits_flat.jsonl
    python -m benchmarks.equal_time --case breast-cancer-resplit --seeds 40 --contenders svm-rbf \
        gradient-boosting --output benchmarks/results/equal_time_resplit_references.jsonl
    python -m benchmarks.equal_time --summary [--write-into docs/benchmarks.md]
    python -m benchmarks.equal_time --case digits --seeds 5 --contenders kbnas kbnas-full \
        --output benchmarks/results/equal_time_early_stopping.jsonl
    python -m benchmarks.equal_time --case digits --seeds 5 --contenders kbnas-bn099 kbnas \
        --output benchmarks/results/equal_time_batchnorm.jsonl

Finished (case, contender, seed, budget) runs are skipped on restart.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

from benchmarks import stats

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "equal_time.jsonl"
DEFAULT_SUMMARY = RESULTS_DIR / "equal_time_summary.json"
DEFAULT_PLOT = RESULTS_DIR / "equal_time.png"
CASES = ("digits", "breast-cancer", "breast-cancer-resplit", "digits-flat")
CONTENDERS = {
    "digits": ("kbnas", "kbnas-single", "kbnas-full", "kbnas-2-workers", "kbnas-bn099", "kbnas-judge-top-rung", "kbnas-asha", "textbook", "keras-tuner-random", "keras-tuner-bo", "keras-tuner-hyperband"),
    "breast-cancer": ("kbnas", "kbnas-single", "kbnas-full", "kbnas-before-flat", "kbnas-before-pool", "kbnas-before-choice",
                      "kbnas-before-baseline", "logistic-regression", "mlp"),
    "breast-cancer-resplit": ("kbnas", "logistic-regression", "mlp", "svm-rbf", "gradient-boosting"),
    "digits-flat": ("kbnas", "logistic-regression", "mlp", "svm-rbf", "gradient-boosting"),
}
#: Cases of the breast-cancer CSV; "-resplit": its rows shuffled by the seed (`breast_cancer_csv`).
BREAST_CANCER_CASES = ("breast-cancer", "breast-cancer-resplit")
#: Cases whose data is a CSV that ``kbnas search --data`` reads (`_csv_of`).
CSV_CASES = (*BREAST_CANCER_CASES, "digits-flat")
#: `kbnas.space.templates.FLAT_TEMPLATES` before the linear model joined them (2026-12-03).
PERCEPTRON_TEMPLATES = (
    "dense-128|relu|dropout|dense-64|relu",
    "dense-64|relu",
    "dense-256|relu|dropout|dense-128|relu|dropout",
    "dense-32|relu|dropout|dense-32|relu",
)
#: Summary row of kbnas' searched model before its final retraining (same runs).
NO_RETRAINING = "kbnas before retraining"
FIRST_MEMBER = "kbnas first member"
#: Seconds added to the KerasTuner tuners' budget for kbnas' final retraining.
KERAS_TUNER_EXTRA_SECONDS = 20.0
TEXTBOOK_EPOCHS = 30
TEXTBOOK_PATIENCE = 5
BATCH_SIZE = 64
MLP_EPOCHS = 100
MLP_PATIENCE = 10
MLP_BATCH_SIZE = 32
#: Trials cap of the KerasTuner tuners (the budget ends them first).
KERAS_TUNER_MAX_TRIALS = 1000


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def default_budget() -> float:
    from kbnas.cli import DEFAULT_TIME_BUDGET

    return float(DEFAULT_TIME_BUDGET)


# ---------------------------------------------------------------------- data
def breast_cancer_csv(directory: str | pathlib.Path, shuffle_seed: int | None = None) -> pathlib.Path:
    """scikit-learn's breast-cancer data as ``bc.csv`` (30 feature columns, then ``label``).

    ``shuffle_seed``: the rows in the order of that seed's permutation, so that
    the fixed-seed 60/20/20 split of ``kbnas search --data`` (`user_split`) draws
    another train/validation/test partition per seed (case
    "breast-cancer-resplit"); None: scikit-learn's order (case "breast-cancer",
    whose 113 test rows are the same for every seed).
    """
    from sklearn.datasets import load_breast_cancer

    return _write_csv(load_breast_cancer(), pathlib.Path(directory) / "bc.csv", shuffle_seed)


def digits_csv(directory: str | pathlib.Path, shuffle_seed: int | None = None) -> pathlib.Path:
    """scikit-learn's 8×8 digits (the bundled data) as ``digits.csv``: 1,797 rows of 64
    pixel columns (0 … 16), then ``label`` (0 … 9), the rows in the order of
    ``shuffle_seed``'s permutation as in `breast_cancer_csv` (case "digits-flat").

    Flat features where the signal is not linear: the pixels as a table, without
    the image's shape, so kbnas searches its flat space (dense, activations,
    dropout, batchnorm), not convolutions.
    """
    from sklearn.datasets import load_digits

    return _write_csv(load_digits(), pathlib.Path(directory) / "digits.csv", shuffle_seed)


def _write_csv(data, path: pathlib.Path, shuffle_seed: int | None) -> pathlib.Path:
    import numpy as np

    header = ",".join([f"f{i}" for i in range(data.data.shape[1])] + ["label"])
    rows = np.column_stack([data.data, data.target])
    if shuffle_seed is not None:
        rows = rows[np.random.default_rng(shuffle_seed).permutation(len(rows))]
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt=["%.10g"] * data.data.shape[1] + ["%d"])
    return path


def user_split(x, y):
    """The 60/20/20 stratified split that ``kbnas search --data`` makes (`kbnas.cli`)."""
    from kbnas import datasets
    from kbnas.cli import USER_SPLIT_FRACTIONS, USER_SPLIT_SEED

    train, val, test = datasets.stratified_split_indices(y, USER_SPLIT_FRACTIONS, USER_SPLIT_SEED)
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])


# ---------------------------------------------------------------------- contenders
def run_kbnas(case: str, seed: int, budget: float, directory: str, *, early_stopping: bool = True,
              extra: Sequence[str] = ()) -> dict[str, Any]:
    from kbnas import cli

    argv = ["search", "--seed", str(seed), "--output", os.path.join(directory, "search"), "--quiet", *extra]
    if not early_stopping:
        argv.append("--no-early-stopping")
    if budget != default_budget():
        argv += ["--time-budget", f"{budget}s"]
    if case in CSV_CASES:
        argv += ["--data", str(_csv_of(case, seed, directory))]
    start = time.perf_counter()
    status = cli.main(argv)
    total = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"kbnas search exited with {status}")
    described = json.loads(pathlib.Path(directory, "search", "export", "architecture.json").read_text())
    settings = described["search_settings"]
    oracle = json.loads(pathlib.Path(directory, "search", "search", "oracle.json").read_text())
    trials = [json.loads(p.read_text()) for p in pathlib.Path(directory, "search", "search").glob("trial_*/trial.json")]
    return {
        "test_accuracy": float(settings["test_metrics"]["accuracy"]),
        "search_seconds": float(oracle.get("kbnas", {}).get("search_seconds", float("nan"))),
        "total_seconds": total,
        "trials": sum(t.get("status") == "COMPLETED" for t in trials),
        "stopped_early": len(oracle.get("kbnas", {}).get("stopped_early") or {}),
        "cut_by_time_budget": sum(stop.get("reason") == "time budget"
                                  for stop in (oracle.get("kbnas", {}).get("stopped_early") or {}).values()),
        "best": described.get("architecture", {}).get("encoding"),
        "retrained": settings.get("retrained"),
        "test_accuracy_before_retraining": (settings.get("test_metrics_before_retraining") or {}).get("accuracy"),
        "test_accuracy_first_member": (settings.get("test_metrics_first_member") or {}).get("accuracy"),
        "batch_size": settings.get("batch_size"),
        "selection": settings.get("selection"),
    }


def _textbook_model(x_train):
    import keras

    normalization = keras.layers.Normalization(axis=-1)
    normalization.adapt(x_train)
    model = keras.Sequential(
        [
            keras.Input(x_train.shape[1:]),
            normalization,
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run_textbook(seed: int) -> dict[str, Any]:
    import keras

    from kbnas import datasets

    split = datasets.load_digits_split()
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = _textbook_model(split.x_train)
    model.fit(
        split.x_train,
        split.y_train,
        validation_data=(split.x_val, split.y_val),
        epochs=TEXTBOOK_EPOCHS,
        batch_size=BATCH_SIZE,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=TEXTBOOK_PATIENCE, restore_best_weights=True)],
    )
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(split.x_test, split.y_test, verbose=0, return_dict=True)["accuracy"]
    return {"test_accuracy": float(accuracy), "search_seconds": seconds, "total_seconds": seconds, "trials": 1,
            "best": "textbook convnet"}


def run_keras_tuner(contender: str, seed: int, budget: float, directory: str) -> dict[str, Any]:
    import keras
    import keras_tuner

    from benchmarks.end_to_end import HandWrittenConvNet, handwritten_tokens
    from kbnas import datasets
    from kbnas.hypermodel import ConvNetHyperModel
    from kbnas.tuner import StopAtDeadline

    split = datasets.load_digits_split()
    keras.utils.set_random_seed(seed)
    seconds = budget + KERAS_TUNER_EXTRA_SECONDS
    start = time.perf_counter()
    deadline = time.monotonic() + seconds
    trainer = ConvNetHyperModel(seed=seed).configure(split.x_train, split.y_train)
    common = dict(objective="val_accuracy", seed=seed + 1, directory=directory, project_name="search", overwrite=True)
    hypermodel = HandWrittenConvNet(trainer)
    if contender == "keras-tuner-hyperband":
        tuner = keras_tuner.Hyperband(hypermodel, max_epochs=TEXTBOOK_EPOCHS, factor=3, **common)
    else:
        tuner_class = keras_tuner.RandomSearch if contender == "keras-tuner-random" else keras_tuner.BayesianOptimization
        tuner = tuner_class(hypermodel, max_trials=KERAS_TUNER_MAX_TRIALS, **common)

    create_trial = tuner.oracle.create_trial

    def create_trial_within_budget(tuner_id):
        if time.monotonic() >= deadline:  # KerasTuner's own stop: max_trials reached
            tuner.oracle.max_trials = len(tuner.oracle.trials)
        return create_trial(tuner_id)

    tuner.oracle.create_trial = create_trial_within_budget

    class Deadline(StopAtDeadline):
        def __init__(self) -> None:
            super().__init__(0.0)
            self.deadline = deadline

        def __deepcopy__(self, memo):
            return Deadline()

    tuner.search(
        split.x_train,
        split.y_train,
        validation_data=(split.x_val, split.y_val),
        epochs=TEXTBOOK_EPOCHS,
        batch_size=BATCH_SIZE,
        verbose=0,
        callbacks=[Deadline()],
    )
    search_seconds = time.perf_counter() - start
    best_trial = tuner.oracle.get_best_trials(1)[0]
    model = tuner.get_best_models(1)[0]
    accuracy = model.evaluate(split.x_test, split.y_test, verbose=0, return_dict=True)["accuracy"]
    return {
        "test_accuracy": float(accuracy),
        "search_seconds": search_seconds,
        "total_seconds": time.perf_counter() - start,
        "trials": sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values()),
        "best": "|".join(handwritten_tokens(best_trial.hyperparameters.values)) or "(head only)",
    }


def _csv_of(case: str, seed: int, directory: str) -> pathlib.Path:
    if case == "digits-flat":
        return digits_csv(directory, shuffle_seed=seed)
    return breast_cancer_csv(directory, shuffle_seed=seed if case == "breast-cancer-resplit" else None)


def scikit_learn_model(contender: str, seed: int):
    """The unfitted scikit-learn model of a `SCIKIT_LEARN` contender, at scikit-learn's defaults."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if contender == "logistic-regression":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if contender == "svm-rbf":
        return make_pipeline(StandardScaler(), SVC())
    if contender == "gradient-boosting":
        return HistGradientBoostingClassifier(random_state=seed)
    raise ValueError(f"no scikit-learn contender {contender!r}; expected one of {sorted(SCIKIT_LEARN)}")


def run_scikit_learn(contender: str, seed: int, csv: pathlib.Path) -> dict[str, Any]:
    """One of scikit-learn's classifiers at its defaults (`scikit_learn_model`), fitted on train + validation."""
    import numpy as np

    from kbnas.data_files import load_data

    x, y = load_data(str(csv), label_column="label")
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = user_split(x, y)
    start = time.perf_counter()
    model = scikit_learn_model(contender, seed)
    model.fit(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]))
    seconds = time.perf_counter() - start
    return {"test_accuracy": float(model.score(x_test, y_test)), "search_seconds": seconds,
            "total_seconds": seconds, "trials": 1, "best": SCIKIT_LEARN[contender]}


#: Flat-feature contenders from scikit-learn: contender -> the model in words (`run_scikit_learn`).
SCIKIT_LEARN = {
    "logistic-regression": "standardized logistic regression",
    "svm-rbf": "standardized RBF support vector machine",
    "gradient-boosting": "histogram gradient boosting",
}


def run_mlp(seed: int, csv: pathlib.Path) -> dict[str, Any]:
    import keras

    from kbnas.data_files import load_data

    x, y = load_data(str(csv), label_column="label")
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = user_split(x, y)
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    normalization = _standardization(x_train)
    classes = int(y.max()) + 1
    # Two classes: one sigmoid unit; more: a softmax over them (case "digits-flat").
    head, loss = ((keras.layers.Dense(1, activation="sigmoid"), "binary_crossentropy") if classes == 2 else
                  (keras.layers.Dense(classes, activation="softmax"), "sparse_categorical_crossentropy"))
    model = keras.Sequential(
        [
            keras.Input(x_train.shape[1:]),
            normalization,
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(32, activation="relu"),
            head,
        ]
    )
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.fit(
        x_train, y_train.astype("float32"), validation_data=(x_val, y_val.astype("float32")),
        epochs=MLP_EPOCHS, batch_size=MLP_BATCH_SIZE, verbose=0,
        callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=MLP_PATIENCE, restore_best_weights=True)],
    )
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_test, y_test.astype("float32"), verbose=0, return_dict=True)["accuracy"]
    return {"test_accuracy": float(accuracy), "search_seconds": seconds, "total_seconds": seconds, "trials": 1,
            "best": "hand-written MLP"}


def _standardization(x_train):
    """A Keras ``Normalization`` layer adapted to ``x_train``, a constant column's
    variance replaced by 1 (as scikit-learn's StandardScaler and kbnas do): adapted
    as it is, the layer divides such a column by 1e-7, and a test row with a pixel
    that every training row left blank (case "digits-flat") becomes an outlier of
    millions of standard deviations."""
    import keras
    import numpy as np

    variance = np.var(x_train, axis=0)
    if np.all(variance > 1e-12):
        normalization = keras.layers.Normalization(axis=-1)
        normalization.adapt(x_train)  # as before 2026-12-07 (the breast-cancer records)
        return normalization
    return keras.layers.Normalization(axis=-1, mean=np.mean(x_train, axis=0), variance=np.where(variance > 1e-12,
                                                                                                 variance, 1.0))


#: Digits contenders that are kbnas with an earlier early-stopping rule:
#: contender -> `kbnas.EarlyStopping` fields.
RULE_ABLATIONS = {
    "kbnas-judge-top-rung": {"judge_top_rung": True, "rule": "asha"},
    "kbnas-asha": {"rule": "asha"},
}

#: Breast-cancer contenders that are kbnas with an earlier small-data selection:
#: contender -> (`kbnas.SelectionSettings` fields, extra ``kbnas search`` arguments).
SELECTION_ABLATIONS = {
    "kbnas-before-pool": ({"parsimony": None, "choice_parsimony": None, "baseline": False}, ("--epochs", "30")),
    "kbnas-before-choice": ({"choice_parsimony": None, "baseline": False}, ()),
    "kbnas-before-baseline": ({"baseline": False}, ()),
}


def run_one(case: str, contender: str, seed: int, budget: float) -> dict[str, Any]:
    """One run in this process; the JSON record (module docstring)."""
    if contender not in CONTENDERS[case]:
        raise ValueError(f"unknown contender {contender!r} for {case}; expected one of {CONTENDERS[case]}")
    import keras
    import tensorflow as tf

    load_start = os.getloadavg()
    started_at = _utc_now()
    with tempfile.TemporaryDirectory(prefix=f"equal_time_{contender}_{seed}_") as directory:
        if contender in ("kbnas", "kbnas-full"):
            result = run_kbnas(case, seed, budget, directory, early_stopping=contender == "kbnas")
        elif contender == "kbnas-single":
            result = run_kbnas(case, seed, budget, directory, extra=("--ensemble", "1"))
        elif contender == "kbnas-2-workers":
            result = run_kbnas(case, seed, budget, directory, extra=("--workers", "2"))
        elif contender == "kbnas-bn099":
            from kbnas import model_builder

            model_builder.BATCHNORM_MOMENTUM = 0.99  # this process only: Keras's default
            # One process: worker processes (one per GPU by default) would import 0.9 afresh.
            result = run_kbnas(case, seed, budget, directory, extra=("--workers", "1"))
        elif contender in RULE_ABLATIONS:
            from kbnas.cli import common
            from kbnas.core.early_stopping import EarlyStopping

            common.EARLY_STOPPING = EarlyStopping(**RULE_ABLATIONS[contender])  # this process only (one worker)
            result = run_kbnas(case, seed, budget, directory, extra=("--workers", "1"))
        elif contender == "kbnas-before-flat":
            from kbnas.space import templates

            templates.FLAT_TEMPLATES = PERCEPTRON_TEMPLATES  # this process only
            result = run_kbnas(case, seed, budget, directory, extra=("--workers", "1", "--learning-rate", "0.001"))
        elif contender in SELECTION_ABLATIONS:
            from kbnas.cli import common
            from kbnas.selection import SelectionSettings

            fields, extra = SELECTION_ABLATIONS[contender]
            common.SELECTION = SelectionSettings(**fields)  # this process only (one worker)
            result = run_kbnas(case, seed, budget, directory, extra=("--workers", "1", *extra))
        elif contender == "textbook":
            result = run_textbook(seed)
        elif contender.startswith("keras-tuner"):
            result = run_keras_tuner(contender, seed, budget, directory)
        elif contender in SCIKIT_LEARN:
            result = run_scikit_learn(contender, seed, _csv_of(case, seed, directory))
        else:
            result = run_mlp(seed, _csv_of(case, seed, directory))
    return {
        "case": case,
        "contender": contender,
        "seed": seed,
        "budget": budget,
        **result,
        "started_at": started_at,
        "load_start": list(load_start),
        "load_end": list(os.getloadavg()),
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__},
        "commit": stats.git_commit(),
    }


# ---------------------------------------------------------------------- the runner
def run_key(record: dict[str, Any]) -> tuple:
    return record["case"], record["contender"], int(record["seed"]), float(record["budget"])


def run_all(case: str, contenders: Sequence[str], seeds: Sequence[int], budget: float, output: pathlib.Path) -> None:
    """Runs every missing (contender, seed), seed-major, each in a fresh process."""
    done = {run_key(record) for record in stats.read_jsonl(output)}
    for seed in seeds:
        for contender in contenders:
            if (case, contender, seed, budget) in done:
                continue
            command = [sys.executable, "-m", "benchmarks.equal_time", "--one", contender, "--case", case,
                       "--seed", str(seed), "--budget", str(budget)]
            print(f"[{_utc_now()}] {case} {contender} seed {seed}", flush=True)
            completed = subprocess.run(command, capture_output=True, text=True,
                                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
            if completed.returncode != 0 or not lines:
                print(f"  failed ({completed.returncode}): {completed.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            record = json.loads(lines[-1])
            stats.append_jsonl(output, [record])
            print(f"  test accuracy {record['test_accuracy']:.4f}, {record['trials']} trials, "
                  f"{record['total_seconds']:.0f} s", flush=True)


# ---------------------------------------------------------------------- the summary
def merge_records(records: Sequence[dict[str, Any]], *others: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records``, with each run of ``others`` replacing the run of the same
    (case, contender, seed, budget), later files last."""
    def key(r):
        return r["case"], r["contender"], int(r["seed"]), float(r["budget"])

    merged = {key(r): r for r in records}
    for group in others:
        merged.update({key(r): r for r in group})
    return list(merged.values())


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per case and budget: each contender's mean test accuracy and its paired difference to kbnas."""
    summary: dict[str, Any] = {}
    for case in CASES:
        for budget in sorted({float(r["budget"]) for r in records if r["case"] == case}):
            rows = [r for r in records if r["case"] == case and float(r["budget"]) == budget]
            accuracy = {c: {int(r["seed"]): r["test_accuracy"] for r in rows if r["contender"] == c}
                        for c in CONTENDERS[case]}
            table = {}
            for contender in CONTENDERS[case]:
                mine = [r for r in rows if r["contender"] == contender]
                if not mine:
                    continue
                table[contender] = {
                    "test_accuracy": stats.mean_and_interval(list(accuracy[contender].values())),
                    "total_seconds": stats.mean_and_interval([r["total_seconds"] for r in mine]),
                    "trials": stats.mean_and_interval([r["trials"] for r in mine]),
                    "kbnas_minus_this": None if contender == "kbnas" else stats.paired_difference(
                        accuracy["kbnas"], accuracy[contender]),
                }
            # The same kbnas runs' searched model, before the final retraining on
            # train + validation (what the retraining default gives), and the first
            # member of the exported ensemble alone (what the ensemble gives), paired.
            for row_name, field in ((NO_RETRAINING, "test_accuracy_before_retraining"),
                                    (FIRST_MEMBER, "test_accuracy_first_member")):
                alone = {int(r["seed"]): r[field] for r in rows
                         if r["contender"] == "kbnas" and r.get(field) is not None}
                if not alone:
                    continue
                mine = [r for r in rows if r["contender"] == "kbnas" and int(r["seed"]) in alone]
                table[row_name] = {
                    "test_accuracy": stats.mean_and_interval(list(alone.values())),
                    "total_seconds": stats.mean_and_interval([r["search_seconds"] for r in mine]),
                    "trials": stats.mean_and_interval([r["trials"] for r in mine]),
                    "kbnas_minus_this": stats.paired_difference(accuracy["kbnas"], alone),
                }
            summary[f"{case}@{budget:g}s"] = table
    return summary


def _pct(interval: dict[str, Any] | None, signed: bool = False) -> str:
    if not interval or interval.get("mean") is None:
        return "–"
    mean = 100 * interval["mean"]
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    if interval.get("ci95"):
        low, high = (100 * v for v in interval["ci95"])
        text += f" [{low:+.2f}, {high:+.2f}]" if signed else f" [{low:.2f}, {high:.2f}]"
    return text


def format_markdown(summary: dict[str, Any]) -> str:
    lines = []
    for key, table in summary.items():
        lines += [f"**{key}** (test accuracy in %, mean [95 % t-interval]; paired kbnas − contender on the same seeds)", "",
                  "| contender | seeds | test accuracy | kbnas − contender | trials | wall s |",
                  "|---|---:|---:|---:|---:|---:|"]
        for contender, row in table.items():
            lines.append(
                f"| {contender} | {row['test_accuracy']['n']} | {_pct(row['test_accuracy'])} | "
                f"{_pct(row['kbnas_minus_this'], signed=True)} | {row['trials']['mean']:.1f} | "
                f"{row['total_seconds']['mean']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(records: Sequence[dict[str, Any]], path: str | pathlib.Path) -> None:
    """Test accuracy against wall time: every run a dot, each contender's mean a cross
    with its 95 % t-intervals on both axes; one panel per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [case for case in CASES if any(r["case"] == case for r in records)]
    figure, axes = plt.subplots(1, len(cases), figsize=(6.2 * len(cases), 4.4), squeeze=False)
    for axis, case in zip(axes[0], cases):
        for index, contender in enumerate(CONTENDERS[case]):
            mine = [r for r in records if r["case"] == case and r["contender"] == contender]
            if not mine:
                continue
            color = f"C{index}"
            seconds = [r["total_seconds"] for r in mine]
            accuracy = [100 * r["test_accuracy"] for r in mine]
            axis.scatter(seconds, accuracy, s=12, alpha=0.35, color=color)
            x, y = stats.mean_and_interval(seconds), stats.mean_and_interval(accuracy)
            xerr = None if x["ci95"] is None else [[x["mean"] - x["ci95"][0]], [x["ci95"][1] - x["mean"]]]
            yerr = None if y["ci95"] is None else [[y["mean"] - y["ci95"][0]], [y["ci95"][1] - y["mean"]]]
            axis.errorbar([x["mean"]], [y["mean"]], xerr=xerr, yerr=yerr, fmt="x", color=color, capsize=4,
                          markersize=9, label=f"{contender} (n={len(mine)})")
        axis.set_xlabel("wall seconds per run (search + final training)")
        axis.set_ylabel("test accuracy (%)")
        axis.set_title(f"{case}: test accuracy against wall time")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_into(markdown_path: str | pathlib.Path, block: str, command: str) -> None:
    """Replace the text between the ``equal-time`` markers of a Markdown file.

    Raises:
        ValueError: the file lacks the markers.
    """
    import re

    path = pathlib.Path(markdown_path)
    text = path.read_text(encoding="utf-8")
    begin, end = "<!-- equal-time:begin", "<!-- equal-time:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text) is None:
        raise ValueError(f"{path} has no '{begin} ...' … '{end}' block")
    replacement = f"{begin} (generated by `{command}`; do not edit) -->\n{block}\n{end}"
    path.write_text(pattern.sub(lambda _: replacement, text, count=1), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, default="digits")
    parser.add_argument("--contenders", nargs="+", default=["all"])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 … N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=None, help="search seconds (default: kbnas search's)")
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--one", help="run one contender in this process and print its record")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summary", action="store_true", help="print the tables, write the summary and the plot")
    parser.add_argument("--write-into", type=pathlib.Path, help="with --summary: replace the equal-time block of this file")
    parser.add_argument("--include", type=pathlib.Path, nargs="+", default=[],
                        help="with --summary: also these result files; their runs replace the main file's runs of "
                             "the same case, contender, seed and budget (e.g. a contender re-run at a newer default)")
    args = parser.parse_args(argv)
    budget = default_budget() if args.budget is None else args.budget
    if args.one:
        print(json.dumps(run_one(args.case, args.one, args.seed, budget)), flush=True)
        return 0
    if args.summary:
        records = merge_records(stats.read_jsonl(args.output), *(stats.read_jsonl(p) for p in args.include))
        summary = summarize(records)
        # equal_time.jsonl -> equal_time_summary.json and equal_time.png, beside it.
        args.output.with_name(args.output.stem + "_summary.json").write_text(json.dumps(summary, indent=2))
        plot(records, args.output.with_name(args.output.stem + ".png"))
        block = format_markdown(summary)
        print(block)
        if args.write_into:
            write_into(args.write_into, block, "python -m benchmarks.equal_time --summary")
        return 0
    contenders = CONTENDERS[args.case] if args.contenders == ["all"] else args.contenders
    unknown = [c for c in contenders if c not in CONTENDERS[args.case]]
    if unknown:
        parser.error(f"no contender {', '.join(map(repr, unknown))} for case {args.case}; "
                     f"choose from {', '.join(CONTENDERS[args.case])} or all")
    run_all(args.case, contenders, range(args.first_seed, args.first_seed + args.seeds), budget, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
