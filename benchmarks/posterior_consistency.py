"""The GP's predictions at new architectures: textbook formulas against the
consistent PSD model (`kbnas.core.gp`, "Test points, consistently").

With an edit distance, exp(−D/ℓ) is indefinite and the training kernel is flipped.
The textbook formulas then predict new points from another model than the
training points': s² − k*ᵀK_y⁻¹k* goes negative (and was clipped to 0), and the
mean at a training point is not its fitted value. This script measures, on
architectures sampled from the default space with a smooth target:

- the share of held-out variances ≤ 0 (clipped) under each;
- Spearman's rank correlation between predicted means and the true held-out
  targets under each (the surrogate's ranking quality);
- max |mean at the training points − `training_mean`| under each.

Run: ``python -m benchmarks.posterior_consistency [--seeds 10] [--n 100]``.
Output: one line per (seed, lengthscale setting) and means with 95 % t intervals.
No training, no TensorFlow.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.linalg
import scipy.stats

from benchmarks.stats import t_interval
from kbnas.core.edit_distance import pairwise_edit_distances
from kbnas.core.gp import DistanceGP, median_positive_distance
from kbnas.core.kernels import exponential_kernel
from kbnas.space import SearchSpace
from kbnas.space.sampling import sample_many


def _textbook(gp: DistanceGP, cross_dists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """K*α and s² − ‖L⁻¹K*ᵀ‖² with the (flipped) training factor: kbnas before the fix."""
    cross_kernel = exponential_kernel(cross_dists, gp.lengthscales_, gp.signal_variance_)
    whitened = scipy.linalg.solve_triangular(gp.cholesky_factor_, cross_kernel.T, lower=True)
    return cross_kernel @ gp.alpha_, gp.signal_variance_ - np.einsum("ij,ij->j", whitened, whitened)


def _target(dists_to_references: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth function of the architecture: a mixture of bumps around three references."""
    weights = np.array([1.0, 0.7, 0.4])
    return (weights[:, None] * np.exp(-dists_to_references / 3.0)).sum(axis=0) + 0.01 * rng.normal(
        size=dists_to_references.shape[1]
    )


def measure(seed: int, n: int, n_test: int) -> list[dict]:
    space = SearchSpace(input_shape=(8, 8, 1))
    rng = np.random.default_rng(seed)
    archs = sample_many(space, n + n_test + 3, rng, unique=True)
    references, archs = archs[:3], archs[3:]
    dists = pairwise_edit_distances(archs, archs)[np.newaxis]
    y = _target(pairwise_edit_distances(references, archs), rng)
    train, test = np.arange(n), np.arange(n, n + n_test)
    y_train = (y[train] - y[train].mean()) / y[train].std()
    train_dists = dists[:, train][:, :, train]
    cross = dists[:, test][:, :, train]
    scale = median_positive_distance(train_dists)
    rows = []
    settings = {
        "fitted": None,
        "lengthscale=4": np.log([1.0, 4.0, 1e-4]),
    }
    for name, theta in settings.items():
        gp = DistanceGP()
        if theta is None:
            gp.fit(train_dists, y_train, rng=seed, channel_scales=scale, n_restarts=2)
        else:
            gp.fit_fixed(train_dists, y_train, theta)
        old_mean, old_var = _textbook(gp, cross)
        new_mean, new_var = gp.predict(cross)
        old_at_train, _ = _textbook(gp, train_dists)
        new_at_train, _ = gp.predict(train_dists)
        rows.append({
            "seed": seed,
            "setting": name,
            "flipped": bool(gp.spectrum_flipped_),
            "lengthscale": float(gp.lengthscales_[0]),
            "noise": float(gp.noise_variance_),
            "clipped_textbook": float(np.mean(old_var <= 0.0)),
            "clipped_consistent": float(np.mean(new_var <= 0.0)),
            "spearman_textbook": float(scipy.stats.spearmanr(old_mean, y[test]).statistic),
            "spearman_consistent": float(scipy.stats.spearmanr(new_mean, y[test]).statistic),
            "train_gap_textbook": float(np.max(np.abs(old_at_train - gp.training_mean()))),
            "train_gap_consistent": float(np.max(np.abs(new_at_train - gp.training_mean()))),
        })
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n", type=int, default=100, help="training architectures")
    parser.add_argument("--n-test", type=int, default=100, help="held-out architectures")
    args = parser.parse_args(argv)
    rows = [row for seed in range(args.seeds) for row in measure(seed, args.n, args.n_test)]
    for row in rows:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    print(f"\n{args.seeds} seeds, {args.n} training + {args.n_test} held-out architectures; mean [95 % CI]")
    for setting in dict.fromkeys(r["setting"] for r in rows):
        chosen = [r for r in rows if r["setting"] == setting]
        print(f"{setting}: flipped in {sum(r['flipped'] for r in chosen)}/{len(chosen)} fits")
        for key in ("clipped", "spearman", "train_gap"):
            for model in ("textbook", "consistent"):
                values = [r[f"{key}_{model}"] for r in chosen]
                low, high = t_interval(values) or (float("nan"), float("nan"))
                print(f"  {key:<10} {model:<10} {np.mean(values):8.4f} [{low:8.4f}, {high:8.4f}]")


if __name__ == "__main__":
    main()
