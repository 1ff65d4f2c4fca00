"""Ensembles of several searched architectures against retrainings of one, on the same search.

``kbnas search`` exports the mean of K retrainings of one chosen architecture
(`kbnas.ensemble`). Ensembles of *different* architectures are often more
diverse than ensembles of one: Zaidi et al., "Neural Ensemble Search for
Uncertainty Estimation and Dataset Shift" (NeurIPS 2021), build them from a
search's pool by forward selection; Caruana et al., "Ensemble Selection from
Libraries of Models" (ICML 2004), is the forward selection itself; auto-sklearn
and AutoGluon export such ensembles. This benchmark asks whether that would
give kbnas's users better exported models, paired on the same search.

For one case and seed it runs ``kbnas search`` with its defaults (equal_time's
``kbnas`` contender, same data, same partition), then, on that search's folder,
trains members on train + validation as the export does (`kbnas.ensemble.retrain`:
each trial's own seed, its best epoch count, or the cross-validated one for the
exported trial) and scores on the test split:

    one       the exported trial's architecture, members 0 … K−1 (kbnas's default export, recomputed);
    top       the exported trial, then the next K−1 distinct trials in the oracle's
              ranking (`get_best_trials`, posterior mean), one member each;
    greedy    forward selection of K distinct trials from the exported trial and
              the oracle's next POOL − 1, by the validation log loss of the mean
              of the searched models' (train-only) predictions, in the order
              picked; each pick retrained once.

Test accuracy of each ensemble at K = 1 … 5 (prefixes) is recorded per seed; the
report gives paired differences against ``one`` with 95 % t-intervals.

    python -m benchmarks.architecture_ensembles --case digits-flat --seeds 10 \\
        --output benchmarks/results/architecture_ensembles.jsonl
    python -m benchmarks.architecture_ensembles --report --output benchmarks/results/architecture_ensembles.jsonl

Each seed runs in a fresh process; finished (case, seed) records are skipped on restart.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from benchmarks import equal_time, stats

CASES = ("digits-flat", "breast-cancer-resplit", "digits")
K = 5
POOL = 8


def _classify(probabilities: np.ndarray) -> np.ndarray:
    if probabilities.shape[-1] == 1:
        return (probabilities[:, 0] > 0.5).astype(np.int64)
    return np.argmax(probabilities, axis=-1)


def _log_loss(probabilities: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    if p.shape[-1] == 1:
        p1 = p[:, 0]
        return float(-np.mean(np.where(y == 1, np.log(p1), np.log(1 - p1))))
    return float(-np.mean(np.log(p[np.arange(len(y)), y.astype(np.int64)])))


def greedy_selection(predictions: Sequence[np.ndarray], y: np.ndarray, picks: int) -> list[int]:
    """Forward selection without replacement (Zaidi et al.'s ForwardSelect): ``picks``
    distinct indices into ``predictions``, each the one whose addition gives the
    mean of the lowest log loss on ``y``."""
    chosen: list[int] = []
    total = np.zeros_like(predictions[0])
    for _ in range(min(picks, len(predictions))):
        losses = [np.inf if i in chosen else _log_loss((total + p) / (len(chosen) + 1), y)
                  for i, p in enumerate(predictions)]
        best = int(np.argmin(losses))
        chosen.append(best)
        total = total + predictions[best]
    return chosen


def _rebuild(directory: pathlib.Path):
    """The search's tuner, hypermodel, arrays and settings, as ``kbnas export`` rebuilds them."""
    from kbnas import cli
    from kbnas.cli import inspect as cli_inspect
    from kbnas.cli.best import _check_ensemble
    from kbnas.cli.common import _read_json
    from kbnas.cli.inputs import _load_split, _reading_options
    from kbnas.cli.search import _hypermodel, _make_tuner
    from kbnas.layout import RUN_FILE

    output = directory / "search"
    args = cli.build_parser().parse_args(["export", "--output", str(output), "--quiet"])
    saved = _read_json(output / RUN_FILE)
    cli_inspect.restore_search_arguments(args, saved)
    _reading_options(args, saved, exporting=True)
    args.max_trials, args.time_budget, args.start = 1, None, None
    args.ensemble = cli_inspect._exported_members(output)
    _check_ensemble(args)
    arrays, _ = _load_split(args, check_split=False, saved=saved)
    hypermodel = _hypermodel(args)
    hypermodel.configure(*arrays["train"])
    tuner = _make_tuner(args, hypermodel)
    tuner.oracle.set_search_space(hypermodel.search_space)
    return tuner, hypermodel, arrays, args


def run_seed(case: str, seed: int, budget: float) -> dict[str, Any]:
    """One seed: the search, then the three ensembles on its folder (module docstring)."""
    import keras
    import tensorflow as tf

    from kbnas.cli.best import _global_batch_size, _load_searched_model
    from kbnas.ensemble import member_seed, retrain
    from kbnas.tuner import trial_training_seed

    started_at, load_start = equal_time._utc_now(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix=f"architecture_ensembles_{seed}_") as name:
        directory = pathlib.Path(name)
        searched = equal_time.run_kbnas(case, seed, budget, name)
        described = json.loads((directory / "search" / "export" / "architecture.json").read_text())
        exported_id = described["trial_id"]
        exported_epochs = described["search_settings"]["retrained"]["epochs"]
        tuner, hypermodel, arrays, args = _rebuild(directory)
        oracle = tuner.oracle
        stopped = set(getattr(oracle, "stopped_early", {}))
        ranked = [t for t in oracle.get_best_trials(len(oracle.trials))
                  if t.status == "COMPLETED" and t.trial_id not in stopped and t.trial_id != exported_id]
        pool = [oracle.trials[exported_id], *ranked[: POOL - 1]]
        x = np.concatenate([arrays["train"][0], arrays["val"][0]])
        y = np.concatenate([arrays["train"][1], arrays["val"][1]])
        x_val, y_val = arrays["val"]
        x_test, y_test = arrays["test"]

        val_predictions = [np.asarray(_load_searched_model(tuner, t).predict(x_val, verbose=0)) for t in pool]
        picks = greedy_selection(val_predictions, np.asarray(y_val), K)

        cache: dict[tuple[str, int], np.ndarray] = {}
        seconds: list[float] = []

        def member(trial, k: int) -> np.ndarray:
            key = (trial.trial_id, k)
            if key not in cache:
                epochs = exported_epochs if trial.trial_id == exported_id else int(trial.best_step or 0) + 1
                seed_k = member_seed(trial_training_seed(args.seed, trial.trial_id), k)
                models, took = retrain(lambda: hypermodel.build(trial.hyperparameters), x, y, seed=seed_k,
                                       epochs=epochs, members=1, batch_size=_global_batch_size(args))
                cache[key] = np.asarray(models[0].predict(x_test, verbose=0))
                seconds.extend(took)
                keras.backend.clear_session()
            return cache[key]

        def accuracies(members: list[np.ndarray]) -> list[float]:
            total, out = np.zeros_like(members[0]), []
            for i, p in enumerate(members, start=1):
                total = total + p
                out.append(float(np.mean(_classify(total / i) == np.asarray(y_test))))
            return out

        one = accuracies([member(pool[0], k) for k in range(K)])
        top = accuracies([member(t, 0) for t in pool[:K]])
        counts: dict[int, int] = {}
        greedy_members = []
        for index in picks:
            greedy_members.append(member(pool[index], counts.get(index, 0)))
            counts[index] = counts.get(index, 0) + 1
        greedy = accuracies(greedy_members)
        singles = [accuracies([member(t, 0)])[0] for t in pool[:K]]
        encode = hypermodel.search_space.from_hp_value

        def encoding(trial) -> str:
            return encode(trial.hyperparameters.values[hypermodel.architecture_hp]).encode()

        return {
            "case": case,
            "seed": seed,
            "budget": budget,
            "kbnas": searched,
            "one": one,
            "top": top,
            "greedy": greedy,
            "greedy_picks": [pool[i].trial_id for i in picks],
            "pool": [{"trial_id": t.trial_id, "score": t.score, "epochs": (exported_epochs if t.trial_id == exported_id
                      else int(t.best_step or 0) + 1), "architecture": encoding(t)} for t in pool],
            "singles_top": singles,
            "member_seconds": [round(s, 3) for s in seconds],
            "started_at": started_at,
            "load_start": list(load_start),
            "load_end": list(os.getloadavg()),
            "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                         "keras": keras.__version__},
            "commit": stats.git_commit(),
        }


def run_all(case: str, seeds: Sequence[int], budget: float, output: pathlib.Path) -> None:
    done = {(r["case"], int(r["seed"])) for r in stats.read_jsonl(output)}
    for seed in seeds:
        if (case, seed) in done:
            continue
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "benchmarks.architecture_ensembles", "--one", case, str(seed),
                                 "--budget", str(budget)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{case} seed {seed} failed:\n{result.stderr[-3000:]}", file=sys.stderr, flush=True)
            continue
        record = json.loads(result.stdout.strip().splitlines()[-1])
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{case} seed {seed}: one {record['one'][-1]:.4f} top {record['top'][-1]:.4f} "
              f"greedy {record['greedy'][-1]:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)


def report(records: Sequence[dict[str, Any]]) -> str:
    lines = []
    for case in sorted({r["case"] for r in records}):
        rows = [r for r in records if r["case"] == case]
        one = np.array([r["one"][-1] for r in rows]) * 100
        lines.append(f"**{case}** ({len(rows)} seeds; test accuracy in %, mean [95 % t-interval]; "
                     f"paired difference against `one`, K = {K})\n")
        lines.append("| ensemble | K | test accuracy | − one (K = 5) | ahead / equal / behind |")
        lines.append("|---|---:|---:|---:|---:|")
        for name in ("one", "top", "greedy"):
            for k in (1, 3, K):
                if name != "one" and k == 1 and name == "top":
                    continue
                values = np.array([r[name][k - 1] for r in rows]) * 100
                mean = _interval(values)
                diff = _interval(values - one) if not (name == "one" and k == K) else None
                counts = (f"{int(np.sum(values > one + 1e-9))} / {int(np.sum(np.abs(values - one) <= 1e-9))} / "
                          f"{int(np.sum(values < one - 1e-9))}") if diff else "–"
                lines.append(f"| {name} | {k} | {_fmt(mean)} | {_fmt(diff, signed=True) if diff else '–'} | "
                             f"{counts} |")
        kbnas = np.array([r["kbnas"]["test_accuracy"] for r in rows]) * 100
        lines.append(f"\n(kbnas's own export in the same runs: {_fmt(_interval(kbnas))}; "
                     f"members {np.mean([len(r['kbnas']['retrained']['member_seconds']) for r in rows]):.1f} "
                     "on average)\n")
    return "\n".join(lines)


def _interval(values: np.ndarray) -> dict[str, float]:
    low, high = stats.t_interval(values)
    return {"mean": float(np.mean(values)), "low": low, "high": high}


def _fmt(interval: dict[str, Any] | None, signed: bool = False) -> str:
    if interval is None:
        return "–"
    sign = "+" if signed else ""
    return (f"{interval['mean']:{sign}.2f} [{interval['low']:{sign}.2f}, {interval['high']:{sign}.2f}]")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, default="digits-flat")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--output", type=pathlib.Path, default=pathlib.Path("benchmarks/results/architecture_ensembles.jsonl"))
    parser.add_argument("--budget", type=float, default=None, help="search seconds (default: kbnas search's)")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("CASE", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    budget = equal_time.default_budget() if args.budget is None else args.budget
    if args.one:
        print(json.dumps(run_seed(args.one[0], int(args.one[1]), budget)))
        return 0
    if args.report:
        print(report(stats.read_jsonl(args.output)))
        return 0
    run_all(args.case, range(args.first_seed, args.first_seed + args.seeds), budget, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
