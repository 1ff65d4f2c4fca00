"""Seconds per proposal of the oracle itself, against KerasTuner's BayesianOptimizationOracle.

For each size n, an oracle first receives n completed trials (random proposals,
scored by a closed-form function, not timed), then proposes ``--repeats`` more
trials with its model; the mean and the maximum wall time of those
``create_trial`` calls are reported (with ``--repeats 5`` above 100 trials, one of
the five proposals re-optimizes the kernel hyperparameters: the maximum). Two spaces:

* ``mixed``: 3 Choice, 1 Boolean, 2 Float (one log-scaled) and 2 Int
  hyperparameters, which both oracles handle;
* ``architecture``: kbnas' default architecture space before issue 9 on 8x8x1 images (depth
  1-6); KerasTuner's oracle gets the equivalent "depth + one Choice per layer
  slot" encoding.

Run:
    python -m benchmarks.oracle_speed --sizes 10 50 100 200 500 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import warnings
import os
import pathlib
import platform
import statistics
import tempfile
import time

import keras_tuner
import numpy as np
from threadpoolctl import threadpool_limits

from kbnas.configurations import architecture_from_tokens, architecture_hyperparameters, token_hyperparameters
from kbnas.offline import run_oracle
from kbnas.oracle import BayesianNASOracle
from kbnas.space import Architecture, SearchSpace

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
#: The space of the speed figures in docs/oracle.md (kbnas' default space before
#: issue 9 widened it), kept so that the figures stay comparable across sessions.
ARCH_SPACE = SearchSpace(
    input_shape=(8, 8, 1),
    vocabulary=("conv3", "conv5", "maxpool", "avgpool", "relu", "dense"),
    filters=(16, 32, 64),
    units=(32, 64, 128),
    max_depth=6,
)


def mixed_space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Choice("optimizer", ["adam", "sgd", "rmsprop"])
    hp.Choice("activation", ["relu", "tanh", "gelu", "elu"])
    hp.Choice("units", [32, 64, 128, 256])
    hp.Boolean("batchnorm")
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Float("dropout", 0.0, 0.5)
    hp.Int("layers", 1, 6)
    hp.Int("filters", 8, 128, step=8)
    return hp


def mixed_score(values: dict) -> float:
    score = -abs(np.log10(values["learning_rate"]) + 2.5) - abs(values["dropout"] - 0.2)
    score += {"adam": 0.3, "sgd": 0.0, "rmsprop": 0.2}[values["optimizer"]]
    score += {"relu": 0.2, "tanh": 0.0, "gelu": 0.25, "elu": 0.1}[values["activation"]]
    score += 0.05 * np.log2(values["units"] / 32) - 0.05 * abs(values["layers"] - 3)
    return float(score + 0.1 * values["batchnorm"] + values["filters"] / 1280)


def architecture_hp() -> keras_tuner.HyperParameters:
    return architecture_hyperparameters(ARCH_SPACE)


def token_space() -> keras_tuner.HyperParameters:
    return token_hyperparameters(ARCH_SPACE)


def architecture_score(arch: Architecture) -> float:
    kinds = [layer.kind for layer in arch.layers]
    score = 0.3 * sum(a in ("conv3", "conv5") and b == "relu" for a, b in zip(kinds, kinds[1:]))
    score += 0.2 * any(k in ("maxpool", "avgpool") for k in kinds)
    return float(score - 0.1 * abs(len(kinds) - 5))


def token_score(values: dict) -> float:
    arch = architecture_from_tokens(values)
    return architecture_score(arch) if ARCH_SPACE.is_valid(arch) else -2.0


def time_proposals(make_oracle, evaluate, n: int, repeats: int) -> dict:
    """Mean, median and max seconds of ``create_trial`` after n completed random trials.

    Both oracles run with one BLAS thread (kbnas sets it itself; KerasTuner's
    oracle is 4-5x faster that way on 2 cores than with the default threads).
    """
    oracle = make_oracle(n)
    directory = tempfile.mkdtemp(prefix="kbnas-speed-")
    with threadpool_limits(limits=1, user_api="blas"):
        run_oracle(oracle, evaluate, n, directory=directory)
        times = [t.oracle_seconds for t in run_oracle(oracle, evaluate, repeats, directory=directory)]
    return {"mean": statistics.mean(times), "median": statistics.median(times), "max": max(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-keras-tuner-above", type=int, default=10**9,
                        help="skip KerasTuner's oracle above this size (it is slow)")
    parser.add_argument("--output", default=str(RESULTS / "oracle_speed.json"))
    parser.add_argument("--distance", default="edit", choices=["edit", "otmann"],
                        help="kbnas' architecture distance (default edit)")
    parser.add_argument("--spaces", nargs="+", default=["mixed", "architecture"],
                        choices=["mixed", "architecture"])
    parser.add_argument("--oracles", nargs="+", default=["kbnas", "keras_tuner"],
                        choices=["kbnas", "keras_tuner"])
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="sklearn")  # KerasTuner's GP convergence chatter
    objective = keras_tuner.Objective("score", "max")

    contenders = {
        ("mixed", "kbnas"): (
            lambda n: BayesianNASOracle(objective=objective, max_trials=n + args.repeats, templates=False,
                                        hyperparameters=mixed_space(), seed=0, num_initial_points=n),
            lambda v: mixed_score(v),
        ),
        ("mixed", "keras_tuner"): (
            lambda n: keras_tuner.oracles.BayesianOptimizationOracle(
                objective=objective, max_trials=n + args.repeats, hyperparameters=mixed_space(), seed=1,
                num_initial_points=n),
            lambda v: mixed_score(v),
        ),
        ("architecture", "kbnas"): (
            lambda n: BayesianNASOracle(objective=objective, max_trials=n + args.repeats, templates=False,
                                        hyperparameters=architecture_hp(), search_space=ARCH_SPACE, seed=0,
                                        num_initial_points=n, distance=args.distance),
            lambda v: architecture_score(Architecture.decode(v["architecture"])),
        ),
        ("architecture", "keras_tuner"): (
            lambda n: keras_tuner.oracles.BayesianOptimizationOracle(
                objective=objective, max_trials=n + args.repeats, hyperparameters=token_space(), seed=1,
                num_initial_points=n),
            token_score,
        ),
    }
    rows = []
    for (space, name), (make, evaluate) in contenders.items():
        if space not in args.spaces or name not in args.oracles:
            continue
        for n in args.sizes:
            if name == "keras_tuner" and n > args.skip_keras_tuner_above:
                continue
            seconds = time_proposals(make, evaluate, n, args.repeats)
            rows.append({"space": space, "oracle": name, "completed": n, "seconds_per_proposal": seconds})
            print(f"{space:>12} {name:>12} n={n:<4d} mean {seconds['mean']:.3f} s, "
                  f"max {seconds['max']:.3f} s", flush=True)

    print("\n| space | completed trials | kbnas s/proposal, mean (max) | KerasTuner BO s/proposal, mean (max) |")
    print("|---|---:|---:|---:|")
    for space in ("mixed", "architecture"):
        for n in args.sizes:
            ours = next((r["seconds_per_proposal"] for r in rows if r["space"] == space
                         and r["oracle"] == "kbnas" and r["completed"] == n), None)
            theirs = next((r["seconds_per_proposal"] for r in rows if r["space"] == space
                           and r["oracle"] == "keras_tuner" and r["completed"] == n), None)
            fmt = lambda s: "-" if s is None else f"{s['mean']:.3f} ({s['max']:.3f})"  # noqa: E731
            print(f"| {space} | {n} | {fmt(ours)} | {fmt(theirs)} |")
    out = pathlib.Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python -m benchmarks.oracle_speed " + " ".join(
            ["--sizes", *map(str, args.sizes), "--repeats", str(args.repeats), "--distance", args.distance,
             "--spaces", *args.spaces, "--oracles", *args.oracles]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "load_average_at_end": os.getloadavg(),
        "rows": rows,
    }, indent=2))


if __name__ == "__main__":
    main()
