"""Parallel trials on one host: ``kbnas search --workers 1`` against ``--workers N``.

Issue 11's measurement: the wall time of the same search (the bundled digits,
``--max-trials 8 --time-budget none --no-retrain``) with one worker and with N,
run side by side:
for each seed, one run of each, in alternating order (seed-major; the order
flips from seed to seed so that a slow start of the machine hits both), each a
fresh ``python -m kbnas.cli search`` process. The speed is reported as the ratio
of the two wall times of the same seed, with the t-interval of the ratio over
seeds; trials per minute and epochs per second (the searches train different
architectures once the GP takes over) next to it.

Three modes (``--mode``): "fixed", the same 8 architectures (`FIXED_ARCHITECTURES`,
given with ``--start``) trained fully for `FIXED_EPOCHS` epochs, so that both
worker counts do the same work; "default", a default 8-trial search (early
stopping on), whose trials differ between the two; and "budget", the default
search under its default 3-minute budget (`BUDGET`), where what counts is the
work done in the same minutes: trials and epochs, as ratios to one worker.

``--against CODE ...`` adds, per seed and in the same rotation, the largest worker
count run by other code: a git revision (checked out into a temporary worktree) or
the path of another checkout. The report then gives that code's ratio to this
checkout's one worker, and the paired difference in seconds, this checkout's N
workers minus that code's N workers: a change measured side by side, in one run.

``--ceiling N`` measures what two workers can gain at most on this machine: one
training process against two at once, each pinned to one core (`measure_ceiling`).

Run from the repository root::

    python -m benchmarks.parallel --seeds 5 --workers 1 2 --mode fixed   # appends to DEFAULT_OUTPUT
    python -m benchmarks.parallel --seeds 3 --workers 1 2 --mode default
    python -m benchmarks.parallel --seeds 12 --workers 1 2 --against 0ee0629 --output A_B.jsonl
    python -m benchmarks.parallel --report                               # the table
    python -m benchmarks.parallel --ceiling 5
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

from benchmarks.stats import git_commit, mean_and_interval, read_jsonl

DEFAULT_OUTPUT = pathlib.Path("benchmarks/results/parallel.jsonl")
MAX_TRIALS = 8
#: The same 8 trials for every run of mode "fixed": the first 8 proposals of a
#: default digits search (seed 0), given with --start, trained fully for
#: `FIXED_EPOCHS` epochs (--no-early-stopping), so both worker counts do exactly
#: the same work with the same training seeds.
FIXED_ARCHITECTURES = (
    "conv3-32|relu|conv3-64|relu|maxpool|dropout|dense-128|relu",
    "conv3-32|batchnorm|relu|maxpool|conv3-64|batchnorm|relu|maxpool|dropout|dense-128|relu|dropout",
    "conv3-64|relu|conv3-64|relu|maxpool|conv3-128|relu|dropout|dense-128|relu",
    "conv5-32|relu|maxpool|dense-64|relu",
    "conv5-128|batchnorm|relu|conv3-16|batchnorm|relu|conv3-128|batchnorm|relu|dropout",
    "conv5-16|relu|maxpool|conv5-16|relu|maxpool|conv3-16|relu|maxpool|dense-256|relu|dense-128",
    "conv3-32|relu|conv3-64|relu|maxpool|dropout|dense-64|relu",
    "conv3-32|relu|conv5-64|relu|maxpool|dropout|dense-128|relu",
)
FIXED_EPOCHS = 15
#: Mode "budget": the default search under its default 3-minute budget.
BUDGET = "3m"
MODES = ("fixed", "default", "budget")


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(\d+)s", text)
    return 60.0 * int(match.group(1) or 0) + int(match.group(2))


def run_search(workers: int, seed: int, mode: str = "fixed", max_trials: int = MAX_TRIALS,
               code: Checkout | None = None) -> dict[str, Any]:
    """One ``kbnas search`` in a fresh process; its times, trials and epochs.

    ``code``: run another checkout's kbnas (the process starts in its directory,
    which comes first on ``sys.path``); None: this one's.
    """
    with tempfile.TemporaryDirectory(prefix="kbnas-parallel-") as directory:
        output = pathlib.Path(directory) / "search"
        command = [sys.executable, "-m", "kbnas.cli", "search", "--workers", str(workers), "--seed", str(seed),
                   "--no-retrain", "--output", str(output)]
        if mode == "budget":
            command += ["--time-budget", BUDGET]
        else:
            command += ["--max-trials", str(max_trials), "--time-budget", "none"]
        if mode == "fixed":
            command += ["--no-early-stopping", "--epochs", str(FIXED_EPOCHS)]
            for architecture in FIXED_ARCHITECTURES[:max_trials]:
                command += ["--start", architecture]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                              cwd=None if code is None else code.path)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
        search = re.search(r"search time ((?:\d+m)?\d+s)", done.stdout)
        trials = [json.loads(p.read_text()) for p in (output / "search").glob("trial_*/trial.json")]
        epochs = [len(t["metrics"]["metrics"]["val_accuracy"]["observations"]) for t in trials]
        architectures = {t["hyperparameters"]["values"]["architecture"] for t in trials}
        test = json.loads((output / "export" / "architecture.json").read_text())
        return {
            "mode": mode,
            "workers": workers,
            "seed": seed,
            "wall_seconds": wall,
            "search_seconds": _seconds(search.group(1)) if search else None,
            "trials": len(trials),
            "completed": sum(t["status"] == "COMPLETED" for t in trials),
            "distinct": len(architectures),
            "epochs": sum(epochs),
            "test_accuracy": test.get("search_settings", {}).get("test_metrics", {}).get("accuracy"),
            "cpus": os.cpu_count(),
            "commit": git_commit(),
            "code": None if code is None else code.label,
            "code_commit": None if code is None else code.commit,
        }


@dataclasses.dataclass(frozen=True)
class Checkout:
    """Other code to run side by side (``--against``): a directory holding a kbnas checkout."""

    label: str
    path: pathlib.Path
    commit: str | None


@contextlib.contextmanager
def checkouts(specs: Sequence[str]):
    """`Checkout`s of ``specs`` (paths of checkouts, or git revisions of this
    repository, checked out into temporary worktrees removed afterwards)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    made, found = [], []
    try:
        for spec in specs:
            path = pathlib.Path(spec)
            if not (path / "kbnas" / "__init__.py").exists():
                path = pathlib.Path(tempfile.mkdtemp(prefix="kbnas-against-")) / "tree"
                subprocess.run(["git", "worktree", "add", "--detach", str(path), spec], cwd=root, check=True,
                               capture_output=True)
                made.append(path)
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True,
                                    text=True).stdout.strip() or None
            found.append(Checkout(spec, path.resolve(), commit))
        yield found
    finally:
        for path in made:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=root, capture_output=True)
            shutil.rmtree(path.parent, ignore_errors=True)


def run_all(seeds: Sequence[int], workers: Sequence[int], output: pathlib.Path, mode: str = "fixed",
            against: Sequence[Checkout] = ()) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["mode"], r["seed"], r["workers"], r.get("code")) for r in read_jsonl(output)}
    arms = [(n, None) for n in workers] + [(max(workers), code) for code in against]
    for index, seed in enumerate(seeds):
        if len(arms) == 2:
            order = arms if index % 2 == 0 else arms[::-1]
        else:  # each arm first in turn
            shift = index % len(arms)
            order = arms[shift:] + arms[:shift]
        for n, code in order:
            if (mode, seed, n, None if code is None else code.label) in done:
                continue
            record = run_search(n, seed, mode, code=code)
            with output.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mode and worker count against one worker on the same seeds: wall-time ratio, throughput."""
    by = {}
    for r in records:
        by.setdefault((r["mode"], r["workers"], r.get("code")), {})[r["seed"]] = r
    rows = []
    for mode, n, code in sorted(by, key=lambda key: (MODES.index(key[0]), key[1], key[2] or "")):
        runs = by[(mode, n, code)]
        base = by.get((mode, 1, None), {})
        seeds = sorted(set(runs) & set(base))
        mine = by.get((mode, n, None), {}) if code is not None else {}
        paired = sorted(set(runs) & set(mine))
        rows.append({
            "mode": mode,
            "workers": n,
            "code": code,
            # ``--against``: this checkout's N workers minus that code's, seconds, same seeds.
            "seconds_here_minus_code": mean_and_interval([mine[s]["wall_seconds"] - runs[s]["wall_seconds"]
                                                          for s in paired]) if code is not None else None,
            "seeds": sorted(runs),
            "ratio": mean_and_interval([runs[s]["wall_seconds"] / base[s]["wall_seconds"] for s in seeds]),
            "search_ratio": mean_and_interval([runs[s]["search_seconds"] / base[s]["search_seconds"] for s in seeds
                                               if runs[s]["search_seconds"] and base[s]["search_seconds"]]),
            "trials_per_minute": mean_and_interval([60 * r["trials"] / r["wall_seconds"] for r in runs.values()]),
            "epochs_per_second": mean_and_interval([r["epochs"] / r["wall_seconds"] for r in runs.values()]),
            "all_completed_distinct": all(r["completed"] == r["trials"] == r["distinct"]
                                          and (mode == "budget" or r["trials"] == MAX_TRIALS)
                                          for r in runs.values()),
            # Mode "budget": work done in the same minutes, against one worker.
            "epochs_ratio": mean_and_interval([runs[s]["epochs"] / base[s]["epochs"] for s in seeds]),
            "trials_ratio": mean_and_interval([runs[s]["trials"] / base[s]["trials"] for s in seeds]),
            "test_accuracy": mean_and_interval([r["test_accuracy"] for r in runs.values() if r["test_accuracy"]]),
        })
    return rows


def _fmt(summary: dict[str, Any], digits: int = 2) -> str:
    if summary["mean"] is None:
        return "-"
    ci = summary["ci95"]
    return f"{summary['mean']:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def _workers(row: dict[str, Any]) -> str:
    """The worker count, with the other code it ran (``--against``)."""
    return f"{row['workers']} at {row['code']}" if row.get("code") else str(row["workers"])


def format_markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| search | workers | seeds | wall time / 1 worker | search time / 1 worker | trials per minute | "
             "epochs per second | test accuracy | all trials completed, distinct |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["mode"] == "budget":
            continue
        lines.append(f"| {row['mode']} | {_workers(row)} | {len(row['seeds'])} | {_fmt(row['ratio'])} | {_fmt(row['search_ratio'])} | "
                     f"{_fmt(row['trials_per_minute'], 1)} | {_fmt(row['epochs_per_second'], 1)} | "
                     f"{_fmt(row['test_accuracy'], 4)} | {'yes' if row['all_completed_distinct'] else 'NO'} |")
    for row in rows:
        if row.get("code") and row["seconds_here_minus_code"]["mean"] is not None:
            lines.append(f"\n{row['mode']}, {row['workers']} workers, this checkout minus {row['code']} "
                         f"(paired, {row['seconds_here_minus_code']['n']} seeds): {_fmt(row['seconds_here_minus_code'], 1)} s")
    budget = [row for row in rows if row["mode"] == "budget"]
    if budget:
        lines += ["", f"In the same {BUDGET} budget:", "",
                  "| workers | seeds | trials / 1 worker | epochs / 1 worker | trials per minute | test accuracy |",
                  "|---|---|---|---|---|---|"]
        for row in budget:
            lines.append(f"| {_workers(row)} | {len(row['seeds'])} | {_fmt(row['trials_ratio'])} | "
                         f"{_fmt(row['epochs_ratio'])} | {_fmt(row['trials_per_minute'], 1)} | "
                         f"{_fmt(row['test_accuracy'], 4)} |")
    return "\n".join(lines)


def train_one(cpus: Sequence[int] | None, threads: int | None, epochs: int) -> float:
    """Seconds per epoch of the textbook convnet on the digits in this process.

    Pinned to ``cpus`` with ``threads`` TensorFlow threads when given (what a
    worker of `kbnas.parallel` does), else TensorFlow's defaults.
    """
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    from kbnas.datasets import load_digits_split

    split = load_digits_split()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(split.x_train.shape[1:]),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    fit = dict(batch_size=64, verbose=0, validation_data=(split.x_val, split.y_val))
    model.fit(split.x_train, split.y_train, epochs=1, **fit)  # tracing
    started = time.perf_counter()
    model.fit(split.x_train, split.y_train, epochs=epochs, **fit)
    return (time.perf_counter() - started) / epochs


def measure_ceiling(repeats: int, epochs: int = 20) -> list[dict[str, Any]]:
    """The most two workers can gain on this machine: epochs per second of one
    process with TensorFlow's default threads against two processes at once, each
    pinned to one core with one thread, training the same model (no search, no
    start-up). Alternating, ``repeats`` times."""
    def launch(cpu: int | None, threads: int | None) -> subprocess.Popen:
        command = [sys.executable, "-m", "benchmarks.parallel", "--train-one", "--epochs", str(epochs)]
        if cpu is not None:
            command += ["--cpu", str(cpu), "--threads", str(threads)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))

    def seconds(process: subprocess.Popen) -> float:
        out, _ = process.communicate()
        return float(out.strip().splitlines()[-1])

    records = []
    for repeat in range(repeats):
        one = seconds(launch(None, None))
        pair = [launch(0, 1), launch(1, 1)]
        two = [seconds(p) for p in pair]
        record = {"repeat": repeat, "one_process_seconds_per_epoch": one, "two_processes_seconds_per_epoch": two,
                  "throughput_ratio": (1 / two[0] + 1 / two[1]) / (1 / one), "cpus": os.cpu_count(),
                  "commit": git_commit()}
        print(json.dumps(record), flush=True)
        records.append(record)
    return records


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--mode", choices=MODES, default="fixed",
                        help="fixed: the same 8 architectures trained fully (FIXED_ARCHITECTURES); "
                             "default: a default search (early stopping on; different trials)")
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--against", nargs="+", default=[], metavar="CODE",
                        help="also run the largest --workers count with other code, side by side: a git "
                             "revision or the path of another checkout")
    parser.add_argument("--report", action="store_true", help="print the table of --output and exit")
    parser.add_argument("--ceiling", type=int, metavar="REPEATS",
                        help="measure the machine's two-process throughput ceiling (see measure_ceiling) and exit")
    parser.add_argument("--train-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train_one:
        print(train_one(None if args.cpu is None else [args.cpu], args.threads, args.epochs))
        return 0
    if args.ceiling:
        records = measure_ceiling(args.ceiling, args.epochs)
        ratios = [r["throughput_ratio"] for r in records]
        print(f"two pinned single-thread processes / one default process, epochs per second: {_fmt(mean_and_interval(ratios))}")
        return 0
    if not args.report:
        with checkouts(args.against) as against:
            run_all(range(args.first_seed, args.first_seed + args.seeds), args.workers, args.output, args.mode,
                    against)
    rows = summarize(read_jsonl(args.output))
    print(format_markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
