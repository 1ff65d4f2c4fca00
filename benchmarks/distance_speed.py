"""Speed of the architecture distances at the size the oracle scores per proposal.

A (500 candidates × 200 observed) matrix, the vectorised implementations against
the scalar references measured in the same run, so the machine's load cancels out
in the ratio:

- edit: `pairwise_edit_distances` (blocked, vectorised DP) against `edit_distance`
  per pair;
- OTMANN: `pairwise_otmann_distances` against `otmann_distance` per pair.

The scalar references run on a random sample of the pairs and are scaled up to
the whole matrix. Run: ``python -m benchmarks.distance_speed [--repeats 5]``; each
line gives the median seconds of the whole matrix for both and their ratio, with
the minimum and maximum over repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from kbnas.core.edit_distance import edit_distance, pairwise_edit_distances
from kbnas.core.otmann import otmann_distance, pairwise_otmann_distances
from kbnas.space import LAYER_KINDS, SearchSpace

SPACE = SearchSpace(input_shape=(32, 32, 3), vocabulary=LAYER_KINDS, max_depth=12)


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(repeats: int, n_candidates: int = 500, n_observed: int = 200, sampled_pairs: int = 2000) -> dict:
    candidates = SPACE.sample_many(n_candidates, rng=0)
    observed = SPACE.sample_many(n_observed, rng=1)
    rng = np.random.default_rng(2)
    pairs = [(candidates[i], observed[j]) for i, j in zip(rng.integers(0, n_candidates, sampled_pairs),
                                                          rng.integers(0, n_observed, sampled_pairs))]
    scale = n_candidates * n_observed / sampled_pairs
    kinds = {
        "edit": (lambda: pairwise_edit_distances(candidates, observed),
                 lambda: [edit_distance(a, b) for a, b in pairs]),
        "otmann": (lambda: pairwise_otmann_distances(candidates, observed, SPACE),
                   lambda: [otmann_distance(a, b, SPACE) for a, b in pairs[: sampled_pairs // 10]]),
    }
    result = {}
    for name, (vectorised, scalar) in kinds.items():
        vectorised()  # warm-up
        fast, slow = [], []
        for _ in range(repeats):
            fast.append(_seconds(vectorised))
            factor = scale if name == "edit" else scale * 10
            slow.append(_seconds(scalar) * factor)
        ratios = [s / f for s, f in zip(slow, fast)]
        result[name] = {"vectorised_s": statistics.median(fast), "scalar_s": statistics.median(slow),
                        "ratio": statistics.median(ratios), "ratio_range": (min(ratios), max(ratios))}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    for name, row in measure(args.repeats).items():
        low, high = row["ratio_range"]
        print(f"{name:<7} 500x200: vectorised {row['vectorised_s']:.3f} s, scalar reference "
              f"{row['scalar_s']:.2f} s: {row['ratio']:.1f}x faster (range {low:.1f}-{high:.1f}, "
              f"{args.repeats} repeats)")


if __name__ == "__main__":
    main()
