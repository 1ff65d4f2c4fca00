"""The oracle as a drop-in for KerasTuner's BayesianOptimization on plain hyperparameter spaces.

The README says `kbnas.BayesianNASOracle` replaces ``kt.BayesianOptimization``
where there is no architecture: a space of Float, Int and Choice
hyperparameters. Earlier measurements (docs/oracle.md §11) used architectures
written as tokens; this runner measures the spaces KerasTuner users write, on
closed-form objectives with a known minimum f*, through KerasTuner's own
protocol (`kbnas.offline.run_oracle`: ``create_trial`` → ``update_trial`` →
``end_trial``), without training.

Objectives (all minimized; ``x`` on KerasTuner's declared ranges):

* ``branin``: two Floats x1, x2 ∈ [0, 1], mapped to (15 x1 − 5, 15 x2) of
  Branin's function, f* = 0.397887 (three global minima).
* ``hartmann6``: six Floats x1 … x6 ∈ [0, 1] of the 6-dimensional Hartmann
  function, f* = −3.32237.
* ``mixed``: the space of a Keras user's MLP, with a closed-form "validation
  loss" whose minimum is 0:

      u = log10(learning_rate) ∈ [−4, −1] (log sampling),
      f = (u − u*)² + ((log2 units − 7)/2)² + 0.15 (layers − 2)²
          + a(activation) + o(optimizer) + 4 (dropout − d*(units))²,
      u* = −2.5 for adam, −1.5 for sgd;  o = 0 (adam), 0.1 (sgd);
      a = 0 (relu), 0.05 (elu), 0.1 (selu), 0.3 (tanh);
      d*(units) = 0.1 + 0.02 (log2 units − 4),

  with units an Int 16 … 512 (step 16), layers an Int 1 … 4, dropout a Float
  0 … 0.5; f* = 0 at (10^−2.5, 128, 2, relu, adam, 0.16). Two Choices interact
  with the continuous values (the optimizer moves the best learning rate, the
  width the best dropout), as they do in real training.
* ``digits-mlp``: the same space with real training: the MLP (a Normalization
  layer, ``layers`` × Dense(units, activation) + Dropout(dropout), a softmax
  head) trained on the bundled digits' 1,079 training images flattened to 64
  features (batch 64, ≤ `MLP_EPOCHS` epochs, EarlyStopping on the validation
  loss, patience 3, best weights restored; Keras seed 0 for every trial, so f is a
  deterministic function of the configuration). f is the validation loss on the
  359 validation images, f* = 0: the "regret" is log10 of the best validation
  loss. Each trial also reports the test accuracy on the 359 test images of the
  model it trained (``test_accuracy`` in the record; `test_accuracy_of_best`).
* ``noisy-branin``, ``noisy-hartmann6``, ``noisy-mixed``: the same spaces and f,
  observed with noise, as a real training's validation score is (another seed,
  another score): trial i of a run with seed s reports

      y_i = f(x_i) + σ ε_i,   ε_i ~ N(0, 1) from a generator seeded by (s, i),

  so every contender of a seed sees the same noise sequence, trial by trial
  (`observation_noise`). σ = `NOISE_FRACTION` (0.1) × the standard deviation of
  f over uniform random configurations of the space (`SPREAD`, 10⁶ draws for
  Branin and Hartmann-6, 2·10⁵ for the mixed space): σ = 5.12 (Branin), 0.0384
  (Hartmann-6), 0.159 (mixed). For comparison, the digits MLP (``digits-mlp``)
  trained with 5 Keras seeds had validation losses with a standard deviation of
  0.020–0.026 at three configurations (best, good, sgd), against 0.93 (0.61
  from the interquartile range) over its random initial configurations: 0.03–0.04
  of the spread. 0.1 is a noisier task (a smaller validation set), and on
  Branin, whose spread is its high rim, σ is larger than the regret of 99 % of
  random configurations (0.55). The record holds the observed y (``f``), the
  true f (``f_true``), and after each k = 1 … budget trials the contender's
  recommendation (``recommended``: the index of the trial its
  ``get_best_trials(1)`` returns; kbnas ranks by the GP's posterior mean,
  KerasTuner by the observed score) with its true f (``f_recommended``).
  Regrets are of the true f (`regret_after`): of the recommendation, of the
  best-observed trial, and of the best trial tried (what an oracle that knew f
  would pick among the same trials).

The regret after k trials is r_k = min_{i ≤ k} f(x_i) − f*; the report gives the
mean of log10(r_k + 10⁻⁶) over seeds with its 95 % t-interval, and the paired
difference kbnas − contender on the same seeds (negative: kbnas lower). Each
oracle gets the same seed; proposals run with one BLAS thread (KerasTuner's
oracle is several times faster that way on 2 cores), and the seconds per
proposal are compared as a ratio within the same run.

Commands (docs/oracle.md, "Plain hyperparameter spaces"):
    python -m benchmarks.plain_spaces --objectives branin hartmann6 mixed --seeds 10 --budget 50
    python -m benchmarks.plain_spaces --report
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import pathlib
import platform
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks import stats
from benchmarks.search_efficiency import parse_options

DEFAULT_OUTPUT = pathlib.Path(__file__).resolve().parent / "results" / "plain_spaces.jsonl"
CONTENDERS = ("kbnas", "keras-tuner-bo", "keras-tuner-random")
REPORT_BUDGETS = (10, 25, 50)
#: Regrets below this are reported as this (log10 −6).
REGRET_FLOOR = 1e-6
#: σ of a ``noisy-*`` objective as a fraction of `SPREAD`.
NOISE_FRACTION = 0.1
#: Standard deviation of f over uniform random configurations of its space (KerasTuner's
#: sampling: the learning rate log-uniform, the Ints and Choices uniform over their values).
SPREAD = {"branin": 51.2, "hartmann6": 0.384, "mixed": 1.59}
#: noisy objective -> σ of its observation noise.
NOISE_SIGMA = {f"noisy-{name}": NOISE_FRACTION * spread for name, spread in SPREAD.items()}
#: Separates the noise's generator from every other generator seeded with (seed, index).
_NOISE_STREAM = 0x6E6F6973
#: How `regret_after` picks the trial of the first k: the contender's recommendation, the
#: lowest observed value, or the lowest true f.
REGRET_MEASURES = ("recommended", "best_observed", "best_tried")

# Hartmann-6 (Picheny et al. 2013's constants).
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]], dtype=float)
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]], dtype=float)
#: Its minimizer on [0, 1]^6 and minimum.
HARTMANN6_ARGMIN = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
HARTMANN6_MIN = -3.32237
BRANIN_MIN = 0.397887

_ACTIVATION_OFFSET = {"relu": 0.0, "elu": 0.05, "selu": 0.1, "tanh": 0.3}
_OPTIMIZER = {"adam": (-2.5, 0.0), "sgd": (-1.5, 0.1)}  # (best log10 learning rate, offset)


def branin(values: dict) -> float:
    x1, x2 = 15.0 * values["x1"] - 5.0, 15.0 * values["x2"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5.0 / math.pi, 1.0 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6.0) ** 2 + 10.0 * (1 - t) * math.cos(x1) + 10.0


def hartmann6(values: dict) -> float:
    x = np.array([values[f"x{i}"] for i in range(1, 7)], dtype=float)
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def mixed(values: dict) -> float:
    best_rate, offset = _OPTIMIZER[values["optimizer"]]
    width = math.log2(values["units"])
    return ((math.log10(values["learning_rate"]) - best_rate) ** 2 + ((width - 7.0) / 2.0) ** 2
            + 0.15 * (values["layers"] - 2) ** 2 + _ACTIVATION_OFFSET[values["activation"]] + offset
            + 4.0 * (values["dropout"] - (0.1 + 0.02 * (width - 4.0))) ** 2)


#: Epoch limit of a ``digits-mlp`` trial.
MLP_EPOCHS = 30


@functools.lru_cache(maxsize=1)
def _digits_flat() -> dict[str, np.ndarray]:
    from kbnas.datasets import load_digits_split

    split = load_digits_split()
    return {name: getattr(split, name).reshape(len(getattr(split, name)), -1) if name.startswith("x")
            else getattr(split, name) for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}


def digits_mlp(values: dict) -> dict[str, float]:
    """Train the MLP of ``values`` on the digits: {"loss": validation loss, "test_accuracy": …}."""
    import keras

    data = _digits_flat()
    keras.utils.set_random_seed(0)
    normalization = keras.layers.Normalization()
    normalization.adapt(data["x_train"])
    model = keras.Sequential([keras.Input((data["x_train"].shape[1],)), normalization])
    for _ in range(values["layers"]):
        model.add(keras.layers.Dense(values["units"], activation=values["activation"]))
        model.add(keras.layers.Dropout(values["dropout"]))
    model.add(keras.layers.Dense(10, activation="softmax"))
    optimizer = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[values["optimizer"]]
    model.compile(optimizer=optimizer(values["learning_rate"]), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(data["x_train"], data["y_train"], validation_data=(data["x_val"], data["y_val"]),
                        batch_size=64, epochs=MLP_EPOCHS, verbose=0,
                        callbacks=[keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
    val_loss = float(np.nanmin(history.history["val_loss"]))
    _, test_accuracy = model.evaluate(data["x_test"], data["y_test"], verbose=0)
    keras.backend.clear_session()
    return {"loss": val_loss if math.isfinite(val_loss) else 1e3, "test_accuracy": float(test_accuracy)}


def test_accuracy_of_best(record: dict[str, Any], k: int) -> float | None:
    """Test accuracy of the trial with the lowest f among the first k (``digits-mlp``)."""
    pairs = [(f, a) for f, a in zip(record["f"][:k], record.get("test_accuracy", [])[:k]) if f is not None]
    if len(record["f"]) < k or not pairs:
        return None
    return min(pairs)[1]


def observation_noise(seed: int, index: int) -> float:
    """ε of trial ``index`` (0-based) of a run with ``seed``: a standard normal draw,
    the same for every contender."""
    return float(np.random.default_rng([_NOISE_STREAM, seed, index]).standard_normal())


def hyperparameters(objective: str):
    """The objective's KerasTuner search space."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    objective = objective.removeprefix("noisy-") if objective in NOISE_SIGMA else objective
    if objective in ("branin", "hartmann6"):
        for i in range(1, (2 if objective == "branin" else 6) + 1):
            hp.Float(f"x{i}", 0.0, 1.0)
    elif objective in ("mixed", "digits-mlp"):
        hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
        hp.Int("units", 16, 512, step=16)
        hp.Int("layers", 1, 4)
        hp.Choice("activation", ["relu", "tanh", "elu", "selu"])
        hp.Choice("optimizer", ["adam", "sgd"])
        hp.Float("dropout", 0.0, 0.5)
    else:
        raise ValueError(f"unknown objective {objective!r}; expected one of {tuple(OBJECTIVES)}")
    return hp


#: name -> (f, f*); f returns a value, or a metrics dict with f as "loss" (``digits-mlp``).
OBJECTIVES: dict[str, tuple[Callable[[dict], float | dict[str, float]], float]] = {
    "branin": (branin, BRANIN_MIN),
    "hartmann6": (hartmann6, HARTMANN6_MIN),
    "mixed": (mixed, 0.0),
    "digits-mlp": (digits_mlp, 0.0),
    "noisy-branin": (branin, BRANIN_MIN),
    "noisy-hartmann6": (hartmann6, HARTMANN6_MIN),
    "noisy-mixed": (mixed, 0.0),
}
#: Objectives run unless --objectives names others (``digits-mlp`` trains models).
DEFAULT_OBJECTIVES = ("branin", "hartmann6", "mixed")


def make_oracle(contender: str, objective: str, seed: int, budget: int):
    """The contender's oracle; ``"kbnas:key=value,..."`` is kbnas with those settings
    (`kbnas.SearchSettings` fields, e.g. ``kbnas:num_initial_points=18``);
    ``"kbnas-VARIANT[:…]"`` is kbnas whose GP runs with a kernel of
    `benchmarks.kernel_variants` (`run` applies it)."""
    import keras_tuner

    from kbnas import BayesianNASOracle

    kwargs = dict(objective=keras_tuner.Objective("loss", "min"), max_trials=budget,
                  hyperparameters=hyperparameters(objective), seed=seed)
    base, _, options = contender.partition(":")
    if base == "kbnas" or kernel_variant(contender):
        return BayesianNASOracle(**kwargs, **parse_options(options))
    if options:
        raise ValueError(f"only kbnas takes options, got {contender!r}")
    if contender == "keras-tuner-bo":
        return keras_tuner.oracles.BayesianOptimizationOracle(**kwargs)
    if contender == "keras-tuner-random":
        return keras_tuner.oracles.RandomSearchOracle(**kwargs)
    raise ValueError(f"unknown contender {contender!r}; expected one of {CONTENDERS}")


def kernel_variant(contender: str) -> str | None:
    """The kernel variant of a ``kbnas-VARIANT[:…]`` contender (checked), else None."""
    base = contender.partition(":")[0]
    if not base.startswith("kbnas-"):
        return None
    from benchmarks import kernel_variants

    variant = base[len("kbnas-"):]
    kernel_variants.functions(variant)
    return variant


class NoisyObservation:
    """``values -> f(values) + σ ε_i`` for the i-th call of a run; keeps each true f and,
    before each call, the oracle's recommendation after the trials that ended.

    Args:
        function: the true f.
        sigma: σ.
        seed: the run's seed (`observation_noise`).
        oracle: the oracle asked for ``get_best_trials(1)``; trials run one at a time,
            so before call i exactly i trials have ended.
    """

    def __init__(self, function: Callable[[dict], float], sigma: float, seed: int, oracle) -> None:
        self.function, self.sigma, self.seed, self.oracle = function, sigma, seed, oracle
        self.f_true: list[float] = []
        self.recommended_ids: list[str] = []

    def recommend(self) -> None:
        """Keep the trial id the oracle recommends now."""
        self.recommended_ids.append(self.oracle.get_best_trials(1)[0].trial_id)

    def __call__(self, values: dict) -> float:
        index = len(self.f_true)
        if index:
            self.recommend()
        true = float(self.function(values))
        self.f_true.append(true)
        return true + self.sigma * observation_noise(self.seed, index)


def run(contender: str, objective: str, seed: int, budget: int) -> dict[str, Any]:
    """One search: the values tried, f at each, and the oracle's seconds per proposal
    (on a noisy objective also the true f and the recommendation after each trial)."""
    import tempfile

    from threadpoolctl import threadpool_limits

    from kbnas.offline import run_oracle

    from benchmarks import kernel_variants

    function, _ = OBJECTIVES[objective]
    oracle = make_oracle(contender, objective, seed, budget)
    noisy = NoisyObservation(function, NOISE_SIGMA[objective], seed, oracle) if objective in NOISE_SIGMA else None
    variant = kernel_variant(contender)
    kernel = kernel_variants.patched(variant) if variant else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="kbnas-plain-") as directory, threadpool_limits(1), kernel:
        trials = run_oracle(oracle, function if noisy is None else noisy, budget, directory=directory,
                            metric_name="loss")
        if noisy is not None and trials:
            noisy.recommend()
    if noisy is not None:
        position = {trial.trial_id: i for i, trial in enumerate(trials)}
        recommended = [position[trial_id] for trial_id in noisy.recommended_ids]
        noise_fields = {"noise_sigma": noisy.sigma, "f_true": noisy.f_true, "recommended": recommended,
                        "f_recommended": [noisy.f_true[i] for i in recommended]}
    return {
        "contender": contender,
        "objective": objective,
        "seed": seed,
        "budget": budget,
        "values": [trial.values for trial in trials],
        "f": [trial.metrics.get("loss") for trial in trials],
        **({"test_accuracy": [trial.metrics.get("test_accuracy") for trial in trials]}
           if objective == "digits-mlp" else {}),
        **(noise_fields if noisy is not None else {}),
        "oracle_seconds": [trial.oracle_seconds for trial in trials],
        "commit": stats.git_commit(),
        "machine": platform.machine(),
        "load_average": os.getloadavg()[0],
    }


def log_regret(record: dict[str, Any], k: int, measure: str = "best_observed") -> float | None:
    """log10 of `regret_after`, floored at `REGRET_FLOOR`; None where that is None.

    Without noise the best-observed trial's f is the best f among the first k trials.
    """
    regret = regret_after(record, k, measure)
    return None if regret is None else math.log10(max(regret, REGRET_FLOOR))


def regret_after(record: dict[str, Any], k: int, measure: str = "best_observed") -> float | None:
    """f − f* of one of the first k trials: its true f (``f_true`` where the run was
    noisy, else ``f``).

    Args:
        record: a run's record.
        k: trials.
        measure: which trial (`REGRET_MEASURES`): ``"recommended"`` the contender's
            recommendation after k trials (only in records that have one),
            ``"best_observed"`` the lowest observed value, ``"best_tried"`` the lowest
            true f.

    Returns:
        The regret; None when the run has fewer than k trials, none of them reported
        a value, or the record has no recommendation.
    """
    if measure not in REGRET_MEASURES:
        raise ValueError(f"unknown regret measure {measure!r}; expected one of {REGRET_MEASURES}")
    observed = record["f"]
    true = record.get("f_true", observed)
    if len(observed) < k or k < 1:
        return None
    if measure == "recommended":
        if "f_recommended" not in record:
            return None
        value = record["f_recommended"][k - 1]
    else:
        finished = [i for i in range(k) if observed[i] is not None]
        if not finished:
            return None
        by = observed if measure == "best_observed" else true
        value = true[min(finished, key=lambda i: by[i])]
    return value - OBJECTIVES[record["objective"]][1]


def summarize(records: Sequence[dict[str, Any]], budgets: Sequence[int] = REPORT_BUDGETS,
              reference: str = "kbnas") -> dict[str, Any]:
    """Per objective and contender: mean log10 regret at each budget with its interval,
    the paired difference reference − contender, and seconds per proposal (mean, and
    its ratio to the reference's over the same seeds). On a noisy objective
    ``log10_regret`` is the best-observed trial's, and ``log10_regret_recommended`` and
    ``log10_regret_best_tried`` (each ``{"mean": …, "reference_minus_this": …}``) are
    the other `REGRET_MEASURES`."""
    summary: dict[str, Any] = {}
    for objective in sorted({r["objective"] for r in records}):
        runs = {}
        for record in records:
            if record["objective"] == objective:
                runs.setdefault(record["contender"], {})[record["seed"]] = record
        table: dict[str, Any] = {}
        for contender, by_seed in runs.items():
            row: dict[str, Any] = {"seeds": len(by_seed), "budgets": {}}
            for k in budgets:
                entry = _paired(by_seed, runs.get(reference, {}), contender != reference,
                                lambda record: log_regret(record, k), "log10_regret")
                if objective in NOISE_SIGMA:
                    for measure in ("recommended", "best_tried"):
                        entry[f"log10_regret_{measure}"] = _paired(
                            by_seed, runs.get(reference, {}), contender != reference,
                            lambda record: log_regret(record, k, measure), "mean")
                if objective == "digits-mlp":
                    entry["test_accuracy"] = _paired(
                        by_seed, runs.get(reference, {}), contender != reference,
                        lambda record: _percent(test_accuracy_of_best(record, k)), "mean")
                row["budgets"][str(k)] = entry
            seconds = {s: float(np.mean(r["oracle_seconds"])) for s, r in by_seed.items()}
            row["seconds_per_proposal"] = stats.mean_and_interval(list(seconds.values()))
            reference_seconds = {s: float(np.mean(r["oracle_seconds"])) for s, r in runs.get(reference, {}).items()}
            shared = sorted(set(seconds) & set(reference_seconds))
            if contender != reference and shared:
                row["seconds_ratio_to_reference"] = float(np.mean([seconds[s] for s in shared])
                                                          / np.mean([reference_seconds[s] for s in shared]))
            table[contender] = row
        summary[objective] = {"reference": reference, "contenders": table}
    return summary


def _listed(budgets: Sequence[int]) -> str:
    words = [str(k) for k in budgets]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _paired(by_seed: dict, reference_by_seed: dict, paired: bool, measure: Callable, name: str) -> dict[str, Any]:
    """{name: mean and interval of measure over the seeds, "reference_minus_this": paired}."""
    mine = {s: v for s, r in by_seed.items() if (v := measure(r)) is not None}
    theirs = {s: v for s, r in reference_by_seed.items() if (v := measure(r)) is not None}
    entry = {name: stats.mean_and_interval(list(mine.values()))}
    if paired and theirs:
        entry["reference_minus_this"] = stats.paired_difference(theirs, mine)
    return entry


def _interval(entry: dict[str, Any], signed: bool = True) -> str:
    if entry["mean"] is None:
        return "–"
    form = "+.2f" if signed else ".2f"
    if entry["ci95"] is None:
        return f"{entry['mean']:{form}}"
    low, high = entry["ci95"]
    return f"{entry['mean']:{form}} [{low:{form}}, {high:{form}}]"


#: Noisy objectives: the tables after the best-observed one, (summary key, what the regret is of).
_NOISY_TABLES = (("log10_regret_recommended", "the recommended trial (kbnas: GP posterior mean; "
                  "KerasTuner: best observed)"),
                 ("log10_regret_best_tried", "the best trial tried (lowest true f)"))


def format_markdown(summary: dict[str, Any], budgets: Sequence[int] = REPORT_BUDGETS) -> str:
    lines = []
    for objective, result in summary.items():
        reference, table = result["reference"], result["contenders"]
        if objective in NOISE_SIGMA:
            lines += _format_noisy(objective, result, budgets)
            lines.append("")
            continue
        lines += [f"**{objective}** (mean log10 regret [95 % t-interval] after {_listed(budgets)} trials; paired "
                  f"ref − contender, ref = {reference}, negative: ref lower)", "",
                  "| contender | seeds | " + " | ".join(f"{k} trials" for k in budgets)
                  + " | s/proposal |",
                  "|---|---:|" + "---:|" * len(budgets) + "---:|"]
        for contender in sorted(table, key=lambda c: (c != reference, c)):
            row = table[contender]
            cells = []
            for k in budgets:
                entry = row["budgets"][str(k)]
                cell = _interval(entry["log10_regret"])
                if "reference_minus_this" in entry:
                    cell += f"; ref − it {_interval(entry['reference_minus_this'])}"
                cells.append(cell)
            seconds = row["seconds_per_proposal"]["mean"]
            ratio = row.get("seconds_ratio_to_reference")
            cells.append(f"{seconds:.3f}" + ("" if ratio is None else f" ({ratio:.2g}× ref)"))
            lines.append(f"| {contender} | {row['seeds']} | " + " | ".join(cells) + " |")
        lines.append("")
        if objective == "digits-mlp":
            lines += [f"**{objective}**: test accuracy (%) of the trial with the lowest validation loss "
                      f"[95 % t-interval]; paired ref − contender (positive: ref higher)", "",
                      "| contender | " + " | ".join(f"{k} trials" for k in budgets) + " |",
                      "|---|" + "---:|" * len(budgets)]
            for contender in sorted(table, key=lambda c: (c != reference, c)):
                cells = []
                for k in budgets:
                    entry = table[contender]["budgets"][str(k)]["test_accuracy"]
                    cell = _interval(entry["mean"], signed=False)
                    if "reference_minus_this" in entry:
                        cell += f"; ref − it {_interval(entry['reference_minus_this'])}"
                    cells.append(cell)
                lines.append(f"| {contender} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def _format_noisy(objective: str, result: dict[str, Any], budgets: Sequence[int]) -> list[str]:
    """A noisy objective's tables: the regret (true f − f*) of the recommended, the
    best-observed and the best tried trial."""
    reference, table = result["reference"], result["contenders"]
    order = sorted(table, key=lambda c: (c != reference, c))
    lines = []
    for key, of in (_NOISY_TABLES[0], ("log10_regret", "the best-observed trial (lowest noisy value)"),
                    _NOISY_TABLES[1]):
        lines += [f"**{objective}** (σ = {NOISE_SIGMA[objective]:.3g}): mean log10 regret of {of} "
                  f"[95 % t-interval] after {_listed(budgets)} trials; paired ref − contender, ref = "
                  f"{reference}, negative: ref lower", "",
                  "| contender | seeds | " + " | ".join(f"{k} trials" for k in budgets) + " |",
                  "|---|---:|" + "---:|" * len(budgets)]
        for contender in order:
            cells = []
            for k in budgets:
                entry = table[contender]["budgets"][str(k)]
                measured = entry[key] if key != "log10_regret" else {
                    "mean": entry["log10_regret"], **({"reference_minus_this": entry["reference_minus_this"]}
                                                      if "reference_minus_this" in entry else {})}
                cell = _interval(measured["mean"])
                if "reference_minus_this" in measured:
                    cell += f"; ref − it {_interval(measured['reference_minus_this'])}"
                cells.append(cell)
            lines.append(f"| {contender} | {table[contender]['seeds']} | " + " | ".join(cells) + " |")
        lines.append("")
    seconds = ", ".join(f"{c} {table[c]['seconds_per_proposal']['mean']:.3f}" for c in order)
    lines.append(f"Seconds per proposal: {seconds}.")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", nargs="+", choices=tuple(OBJECTIVES), default=list(DEFAULT_OBJECTIVES))
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS),
                        help=f"of {', '.join(CONTENDERS)}, or kbnas:key=value,... (kbnas with those settings), "
                             "or kbnas-matern52 / kbnas-additive[-W][:key=value,...] (a kernel variant)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--report", action="store_true", help="print the summary of --output and stop")
    parser.add_argument("--include", nargs="*", type=pathlib.Path, default=[],
                        help="with --report: more result files (a run repeated in two files counts once)")
    parser.add_argument("--reference", default="kbnas", help="with --report: the contender the others are paired with")
    parser.add_argument("--report-budgets", nargs="+", type=int, default=list(REPORT_BUDGETS),
                        help="with --report: the trial counts reported")
    args = parser.parse_args(argv)
    if args.report:
        records = [r for path in [args.output, *args.include] for r in stats.read_jsonl(path)]
        print(format_markdown(summarize(records, args.report_budgets, reference=args.reference),
                              args.report_budgets))
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    done = {(r["contender"], r["objective"], r["seed"], r["budget"]) for r in stats.read_jsonl(args.output)}
    for seed in range(args.first_seed, args.first_seed + args.seeds):  # seed-major: a stopped run stays paired
        for objective in args.objectives:
            for contender in args.contenders:
                if (contender, objective, seed, args.budget) in done:
                    continue
                started = time.perf_counter()
                record = run(contender, objective, seed, args.budget)
                stats.append_jsonl(args.output, [record])
                recommended = log_regret(record, args.budget, "recommended")
                print(f"{objective} seed {seed} {contender}: log10 regret {log_regret(record, args.budget):+.2f}"
                      + ("" if recommended is None else f", of the recommendation {recommended:+.2f}")
                      + f" ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
