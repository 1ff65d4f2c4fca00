"""Resident memory across a long search: does a kbnas search slowly eat the machine?

Each run is a fresh process: a `kbnas.BayesianNAS` search of ``--trials``
trials on the bundled digits (the default 12-layer space, ``--epochs`` epochs
per trial, early stopping off so that every trial trains the same number of
epochs, no time budget). After each trial ends, an oracle callback
(``trial_end_callbacks``) records the process's resident set size (VmRSS, from
``/proc/self/status``; Linux only) and the trial's parameter count.

Growth is the ordinary-least-squares slope of RSS against the trial index over
trials ``--warmup`` … end (the first trials load TensorFlow's kernels and
allocator pools), with its 95 % t-interval; also the RSS at the end of the
warm-up and at the last trial.

    python -m benchmarks.memory --trials 60 --seeds 2
    python -m benchmarks.memory --report

Each sample also counts the Python objects the garbage collector tracks
(``len(gc.get_objects())``), so that a growth of Python objects can be told
from native memory. ``--malloc-trim`` returns glibc's free heap pages to the
system (``malloc_trim(0)``) before each sample: if the growth then vanishes,
it was allocator fragmentation, not memory held by anything.

Results are appended to ``benchmarks/results/memory.jsonl`` (one record per
run, with every sample), and a finished (seed, trials, epochs, commit,
malloc_trim) run is skipped on restart.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

DEFAULT_OUTPUT = pathlib.Path(__file__).parent / "results" / "memory.jsonl"


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux ``/proc``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def slope_interval(xs, ys) -> dict[str, float]:
    """OLS slope of ys on xs with its 95 % t-interval (n ≥ 3)."""
    import numpy as np
    from scipy import stats

    x, y = np.asarray(xs, float), np.asarray(ys, float)
    n = len(x)
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.975, n - 2) * fit.stderr
    return {"slope": float(fit.slope), "low": float(fit.slope - half), "high": float(fit.slope + half), "n": n}


def _malloc_trim() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_one(seed: int, trials: int, epochs: int, directory: str, malloc_trim: bool = False) -> dict[str, Any]:
    import gc

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: F401 - counted in the start figure

    from kbnas import BayesianNAS, ConvNetHyperModel
    from kbnas.datasets import load_digits_split

    start_rss = rss_mib()
    split = load_digits_split()
    tuner = BayesianNAS(ConvNetHyperModel(seed=seed), max_trials=trials, seed=seed, directory=directory,
                        project_name="memory", overwrite=True, early_stopping=None, max_time=None,
                        max_consecutive_failed_trials=trials)
    samples: list[dict[str, Any]] = []

    def sample(oracle, trial) -> None:
        if malloc_trim:
            _malloc_trim()
        samples.append({"trial": len(samples), "rss_mib": rss_mib(), "status": trial.status,
                        "python_objects": len(gc.get_objects())})

    tuner.oracle.trial_end_callbacks.append(sample)
    began = time.perf_counter()
    tuner.search(split.x_train, split.y_train, validation_data=(split.x_val, split.y_val), epochs=epochs,
                 batch_size=64, verbose=0)
    return {"start_rss_mib": start_rss, "samples": samples, "seconds": time.perf_counter() - began}


def summarize(record: dict[str, Any], warmup: int) -> dict[str, Any]:
    samples = [s for s in record["samples"] if s["trial"] >= warmup]
    xs = [s["trial"] for s in samples]
    ys = [s["rss_mib"] for s in samples]
    return {"growth_mib_per_trial": slope_interval(xs, ys), "rss_after_warmup_mib": ys[0], "rss_last_mib": ys[-1],
            "trials": len(record["samples"])}


def _done(path: pathlib.Path) -> set:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        r = json.loads(line)
        keys.add((r["seed"], r["trials"], r["epochs"], r["commit"], r.get("malloc_trim", False)))
    return keys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--malloc-trim", action="store_true",
                        help="call glibc's malloc_trim(0) before each sample (fragmentation or a leak?)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--directory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--report", action="store_true", help="print the summary of the recorded runs")
    args = parser.parse_args(argv)

    if args.one:
        print(json.dumps(run_one(args.seed, args.trials, args.epochs, args.directory, args.malloc_trim)))
        return 0
    if args.report:
        for line in args.output.read_text().splitlines():
            r = json.loads(line)
            s = summarize(r, args.warmup)
            g = s["growth_mib_per_trial"]
            trim = ", malloc_trim" if r.get("malloc_trim") else ""
            objects = ""
            if "python_objects" in r["samples"][-1]:
                ob = slope_interval([x["trial"] for x in r["samples"][args.warmup:]],
                                    [x["python_objects"] for x in r["samples"][args.warmup:]])
                objects = f"; Python objects {ob['slope']:+.0f} [{ob['low']:+.0f}, {ob['high']:+.0f}] per trial"
            print(f"{r['commit']}{trim} seed {r['seed']}: {s['trials']} trials x {r['epochs']} epochs, "
                  f"RSS {r['start_rss_mib']:.0f} MiB after importing TensorFlow, {s['rss_after_warmup_mib']:.0f} MiB "
                  f"after trial {args.warmup}, {s['rss_last_mib']:.0f} MiB at the end; growth "
                  f"{g['slope']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}] MiB/trial over trials {args.warmup}-end{objects}")
        return 0

    import tempfile

    from benchmarks.stats import git_commit

    commit = git_commit()
    done = _done(args.output)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for seed in range(args.seeds):
        if (seed, args.trials, args.epochs, commit, args.malloc_trim) in done:
            continue
        with tempfile.TemporaryDirectory() as directory:
            command = [sys.executable, "-m", "benchmarks.memory", "--one", "--seed", str(seed), "--trials",
                       str(args.trials), "--epochs", str(args.epochs), "--directory", directory]
            if args.malloc_trim:
                command.append("--malloc-trim")
            completed = subprocess.run(command, capture_output=True, text=True, cwd=pathlib.Path(__file__).parent.parent)
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        if completed.returncode != 0 or not lines:
            print(f"seed {seed} failed: {completed.stderr.strip().splitlines()[-3:]}", flush=True)
            continue
        record = {"seed": seed, "trials": args.trials, "epochs": args.epochs, "commit": commit,
                  "malloc_trim": args.malloc_trim,
                  "load_end": list(os.getloadavg()), **json.loads(lines[-1])}
        with open(args.output, "a") as f:
            f.write(json.dumps(record) + "\n")
        s = summarize(record, args.warmup)
        g = s["growth_mib_per_trial"]
        print(f"seed {seed}: {g['slope']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}] MiB/trial; "
              f"{s['rss_after_warmup_mib']:.0f} -> {s['rss_last_mib']:.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
