"""Statistics shared by the benchmarks: t-intervals, paired differences, result files.

Notation: x_1 … x_n independent measurements; mean x̄, sample standard deviation s;
the 95 % t-interval of the mean is x̄ ± t_{0.975, n−1} · s / √n. A *paired*
difference between contenders A and B uses the same seeds: d_i = a_i − b_i, and
its t-interval says whether A and B differ beyond seed noise.
"""

from __future__ import annotations

import json
import math
import pathlib
import statistics
import subprocess
from typing import Any, Iterable, Sequence

from scipy import stats as _scipy_stats


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """The t-interval of the mean of ``values``; None for fewer than two values."""
    values = [float(v) for v in values]
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = _scipy_stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def mean_and_interval(values: Sequence[float]) -> dict[str, Any]:
    """``{"n", "mean", "ci95"}`` of ``values`` (``mean``/``ci95`` None when empty/single)."""
    values = [float(v) for v in values]
    return {
        "n": len(values),
        "mean": statistics.fmean(values) if values else None,
        "ci95": t_interval(values),
    }


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict[str, Any]:
    """Mean and t-interval of a − b over the seeds both have.

    Args:
        a, b: seed -> measurement.
    """
    seeds = sorted(set(a) & set(b))
    result = mean_and_interval([a[seed] - b[seed] for seed in seeds])
    result["seeds"] = seeds
    return result


def read_jsonl(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a truncated last line (a killed run) is skipped."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_jsonl(path: str | pathlib.Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records to a JSON-lines file, one line each, flushed."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
            handle.flush()


def git_commit() -> str | None:
    """The checkout's HEAD commit (with "+dirty" when tracked files changed), or None."""
    root = pathlib.Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")
