"""Which trials are best: the oracle's recommendation, and re-evaluating it.

A mixin of `kbnas.BayesianNASOracle` (docs/oracle.md §8): `get_best_trials`
ranks the completed trials by the GP's posterior mean at their configurations,

    rank(t) = argsort_t −μ(x_t),   μ = K(X, X) (K(X, X) + σ_n² I)⁻¹ z,

the score with its fitted noise smoothed out by similar configurations (the
best raw score is the luckiest draw: the winner's curse), ties by score; fully
trained trials before those stopped early. `surrogate_leave_one_out` says how
well that GP predicts each trial from the others, and `_reevaluation` trains
the best configurations again (``reevaluate_every``), another draw of their
noise at distance 0.

It uses the oracle's trials, settings, caches and GP inputs
(`_completed_trials`, `_configuration_space`, `_training_data`, `_theta`,
`_fidelities`, `stopped_early`, `proposal_log`, `_state_lock`).
"""

from __future__ import annotations

import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from kbnas.configurations import ConfigurationSpace
from kbnas.core.gp import DistanceGP
from kbnas.core.surrogate import leave_one_out
from kbnas.oracle_early_stopping import COMPLETED
from kbnas.resumable_oracle import _id_order

#: Most full trainings of one configuration that `reevaluate_every` asks for.
MAX_EVALUATIONS = 3


class Recommendation:
    """`get_best_trials` by the GP's posterior mean, leave-one-out quality, re-evaluations."""

    def get_best_trials(self, num_trials: int = 1) -> list:
        """The best trials, best first (KerasTuner protocol).

        With ``recommendation="posterior_mean"`` and at least as many completed
        trials as the initial design, completed trials are ranked by the GP
        posterior mean at their configurations (`DistanceGP.training_mean`, with
        the last fitted kernel hyperparameters), ties by score; otherwise, as in
        KerasTuner, by score. Trials that did not complete follow, as in KerasTuner,
        when fewer than ``num_trials`` completed. Trials stopped early (a lower
        fidelity: their score is that of fewer epochs, and so is their
        checkpoint) come after every fully trained one, in either ranking.
        """
        with self._state_lock:
            return self._best_trials(num_trials)

    def _best_trials(self, num_trials: int) -> list:
        completed = self._completed_trials()
        if self.recommendation == "observed" or not completed:
            return self._full_fidelity_first(super().get_best_trials(len(self.trials)))[:num_trials]
        cspace, _ = self._configuration_space()
        if len(completed) < self._initial_points(cspace) or cspace.n_dimensions == 0:
            return self._full_fidelity_first(super().get_best_trials(len(self.trials)))[:num_trials]
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                ranked_ids = self._rank_by_posterior_mean(cspace, completed)
        except Exception as error:  # noqa: BLE001 - a ranking must not break a search
            warnings.warn(
                f"kbnas: ranking trials by the GP failed ({type(error).__name__}: {error}); "
                "ranking them by score.",
                RuntimeWarning,
                stacklevel=2,
            )
            return self._full_fidelity_first(super().get_best_trials(len(self.trials)))[:num_trials]
        ranked = self._full_fidelity_first([self.trials[trial_id] for trial_id in ranked_ids])
        if len(ranked) < num_trials:
            ranked_set = set(ranked_ids)
            rest = [t for t in super().get_best_trials(len(self.trials)) if t.trial_id not in ranked_set]
            ranked += rest
        return ranked[:num_trials]

    def surrogate_leave_one_out(self) -> dict[str, dict]:
        """How well the GP predicts each completed trial from the others.

        The trials and their warped scores z are those the proposals see
        (`kbnas.core.surrogate.leave_one_out`, the last fitted kernel
        hyperparameters θ, fidelities included); the means and standard
        deviations are on the warped scale of z, which is monotone in the score
        (so rank correlations with the scores are meaningful).

        Returns:
            trial_id -> {"score", "z", "mean", "std"}; empty with fewer than 3
            completed trials or no dimension to model.
        """
        with self._state_lock:
            completed = self._completed_trials()
            if len(completed) < 3:
                return {}
            cspace, _ = self._configuration_space()
            if cspace.n_dimensions == 0:
                return {}
            _, _, z, dists, _ = self._training_data(cspace, completed)
            theta = self._theta
            with threadpool_limits(limits=1, user_api="blas"):
                if theta is None or len(theta) != dists.shape[0] + 2:
                    theta = DistanceGP().fit(dists, z, n_restarts=1,
                                             rng=np.random.default_rng([self.seed or 0, len(z), 2])).theta_
                mean, var = leave_one_out(dists, z, theta)
        return {
            t.trial_id: {"score": float(t.score), "z": float(zi), "mean": float(m), "std": float(np.sqrt(max(v, 0.0)))}
            for t, zi, m, v in zip(completed, z, mean, var)
        }

    def _full_fidelity_first(self, trials: list) -> list:
        """Completed trials the rule did not stop, then those it stopped, then the
        rest, each group in the given order (a stable partition)."""

        def group(trial) -> int:
            if trial.status != COMPLETED:
                return 2
            return int(trial.trial_id in self.stopped_early)

        return sorted(trials, key=group)

    def _rank_by_posterior_mean(self, cspace: ConfigurationSpace, completed: list) -> list[str]:
        fidelity = self._fidelities(completed)
        key = (
            # (The number of values: a trial is ranked again once kbnas restores the
            # values it reported, see `end_trial`.)
            tuple((t.trial_id, t.score, t.trial_id in self.stopped_early, len(t.hyperparameters.values))
                  for t in completed),
            tuple(sorted(cspace.unread_conditions.items())),
            None if fidelity is None else fidelity.tobytes(),
            None if self._theta is None else self._theta.tobytes(),
        )
        if self._recommendation_cache is not None and self._recommendation_cache[0] == key:
            return self._recommendation_cache[1]
        train, scores, z, dists, _ = self._training_data(cspace, completed)
        gp = DistanceGP()
        if self._theta is not None and len(self._theta) == dists.shape[0] + 2:
            gp.fit_fixed(dists, z, self._theta)
        else:
            gp.fit(dists, z, n_restarts=1, rng=np.random.default_rng([self.seed, len(z), 1]))
        means = gp.training_mean()
        order = sorted(range(len(completed)), key=lambda i: (-means[i], -scores[i], completed[i].trial_id))
        ranked = [completed[i].trial_id for i in order]
        self._recommendation_cache = (key, ranked)
        return ranked

    def _reevaluation(self, cspace, completed) -> tuple[dict, dict] | None:
        """(values, info) of a re-evaluation when one is due, else None.

        Due once `reevaluate_every` GP proposals made since the last
        re-evaluation have trained fully (completed, not stopped early: with
        early stopping, re-evaluations are then about 1 / (reevaluate_every + 1)
        of the full trainings, as without). The configuration is the first, in the recommendation's
        order (`_best_trials`), of the fully trained trials whose configuration has
        fewer than `MAX_EVALUATIONS` full trainings and none running. Its new
        trial is another draw of the same configuration's noise (another training
        seed): the GP sees both observations at distance 0, so the posterior mean
        there moves towards their average, and the early-stopping rule never
        judges it.
        """
        if not self.reevaluate_every:
            return None
        since = 0
        for trial_id in sorted(self.proposal_log, key=_id_order, reverse=True):
            method = self.proposal_log[trial_id].get("method", "")
            if method == "reevaluate":
                break
            trial = self.trials.get(trial_id)
            since += (method.startswith("gp") and trial is not None and trial.status == COMPLETED
                      and trial_id not in self.stopped_early)
        if since < self.reevaluate_every:
            return None
        full = [t for t in completed if t.trial_id not in self.stopped_early]
        counts: dict[str, int] = {}
        for trial in full:
            key = self._key(self._values_of(trial, cspace))
            counts[key] = counts.get(key, 0) + 1
        running = {self._key(self._values_of(t, cspace)) for t in self.ongoing_trials.values()
                   if t.hyperparameters.values}
        for trial in self._best_trials(len(self.trials)):
            if trial.status != COMPLETED or trial.trial_id in self.stopped_early:
                continue
            values = self._values_of(trial, cspace)
            key = self._key(values)
            if counts.get(key, 0) < MAX_EVALUATIONS and key not in running:
                return dict(values), {"method": "reevaluate", "reevaluates": trial.trial_id}
        return None
