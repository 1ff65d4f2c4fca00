"""Baseline architecture searches as KerasTuner Oracles: aging evolution and local search.

Both work on the same search space as `kbnas.oracle.BayesianNASOracle`: one string
hyperparameter (``architecture`` by default) holding the canonical encoding of an
architecture of a `kbnas.space.SearchSpace`. They use only the space's own moves
(`SearchSpace.sample`, `SearchSpace.mutate`, `SearchSpace.mutations`), never
propose an architecture that was evaluated, failed or is running (KerasTuner's
``_tried_so_far`` hashes, as in kbnas/oracle.py), and answer ``STOPPED`` once no
new architecture is left. Other hyperparameters of the space are not tuned: they
keep their defaults (KerasTuner fills them in).

Notation:
    P            population size, S tournament (sample) size (aging evolution).
    y(a)         the objective value of a completed trial of architecture a,
                 sign-flipped once so that larger is better (``min`` objectives).
    N(a)         `SearchSpace.mutations(a)`: every valid single-step neighbour
                 (insert, delete, substitute, swap one layer).

Aging (regularized) evolution, Real et al. 2019, "Regularized Evolution for Image
Classifier Architecture Search", Algorithm 1:

    while fewer than P trials completed:  propose a new random architecture
    population = the P most recently completed trials (the oldest dies first)
    repeat: draw S members uniformly without replacement; parent = argmax y;
            child = one random mutation of the parent (`SearchSpace.mutate`)
    until the child is new

A completed child joins the population and, the population being the P most
recent completions, the oldest member leaves: age, not fitness, decides who dies.
A failed trial never joins.

First-improvement local search with random restarts:

    current = the first completed random start
    loop:  if some already evaluated b ∈ N(current) has y(b) > y(current):
               current = the best such b (a free move: no new query)
           elif some b ∈ N(current) is untried: propose one uniformly at random;
               if y(b) > y(current), current = b  (first improvement)
           else: current is a local optimum (every neighbour evaluated, none
               better): restart from a new random architecture.

Observations are noisy in real NAS (and in the tabular replay): a local optimum is
a local optimum of the observed values.
"""

from __future__ import annotations

from typing import Any

import keras_tuner
import numpy as np

from kbnas.oracle import ResumableOracle
from kbnas.space import Architecture, SearchSpace

RUNNING = "RUNNING"
STOPPED = "STOPPED"
COMPLETED = "COMPLETED"

#: Random draws from `SearchSpace.sample` before falling back to enumerating the
#: untried architectures (nearly exhausted spaces).
SAMPLE_TRIES = 100
#: Largest space whose untried architectures are enumerated when sampling stalls;
#: a larger space whose draws all collide is treated as exhausted.
ENUMERATION_LIMIT = 200_000


class _ArchitectureOracle(ResumableOracle):
    """Shared plumbing: the space, seeding, duplicate checks, random new architectures.

    Args:
        objective, max_trials, hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: as in
            `keras_tuner.Oracle`.
        seed: random seed; ``seed=0`` is a real seed, ``None`` draws one.
        search_space: the architecture space.
        architecture_hp: name of the string hyperparameter holding the architecture.
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int | None = 20,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        seed: int | None = None,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        *,
        search_space: SearchSpace,
        architecture_hp: str = "architecture",
    ) -> None:
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        if not isinstance(search_space, SearchSpace):
            raise TypeError(f"search_space must be a kbnas SearchSpace, got {type(search_space).__name__}")
        self.search_space = search_space
        self.architecture_hp = architecture_hp
        self._space_size: int | None = None

    # ------------------------------------------------------------------ helpers
    def _rng(self) -> np.random.Generator:
        # One generator per trial index: the same seed gives the same proposals.
        return np.random.default_rng([self.seed, len(self.trials)])

    def _key(self, architecture: Architecture) -> str:
        return self._compute_values_hash(self._values(architecture))

    def _values(self, architecture: Architecture) -> dict:
        return {self.architecture_hp: architecture.encode()}

    def _sign(self) -> float:
        return 1.0 if self.objective.direction == "max" else -1.0

    def _completed_in_end_order(self) -> list[tuple[str, Architecture, float]]:
        """(trial_id, architecture, y) of successful trials, oldest completion first."""
        completed = []
        for trial_id in self.end_order:
            trial = self.trials[trial_id]
            if trial.status != COMPLETED or trial.score is None or not np.isfinite(trial.score):
                continue
            encoding = trial.hyperparameters.values.get(self.architecture_hp)
            if encoding is None:
                continue
            completed.append((trial_id, Architecture.decode(encoding), self._sign() * float(trial.score)))
        return completed

    def _random_new(self, rng: np.random.Generator, avoid: set[str]) -> Architecture | None:
        """A new architecture from `SearchSpace.sample`; None when none is left.

        After `SAMPLE_TRIES` colliding draws the untried architectures are enumerated
        (when the space has at most `ENUMERATION_LIMIT`) and one is drawn uniformly.
        """
        for _ in range(SAMPLE_TRIES):
            architecture = self.search_space.sample(rng)
            if self._key(architecture) not in avoid:
                return architecture
        if self._space_size is None:
            self._space_size = self.search_space.count()
        if self._space_size > ENUMERATION_LIMIT:
            return None
        fresh = [a for a in self.search_space.enumerate() if self._key(a) not in avoid]
        return fresh[int(rng.integers(len(fresh)))] if fresh else None

    def _proposal(self, architecture: Architecture | None) -> dict:
        if architecture is None:
            return {"status": STOPPED, "values": None}
        return {"status": RUNNING, "values": self._values(architecture)}

    def _settings_state(self) -> dict:
        return {
            "search_space": self.search_space.to_config(),
            "architecture_hp": self.architecture_hp,
        }


class AgingEvolutionOracle(_ArchitectureOracle):
    """Aging (regularized) evolution of Real et al. 2019 (see the module docstring).

    Args:
        population_size: P, the number of most recent completed trials that form
            the population; also the number of random trials that start the search.
        sample_size: S, the tournament size (1 ≤ S ≤ P).
        mutation_tries: tournaments tried before a new random architecture is
            proposed instead (when every child they give has been tried).
        **kwargs: as in `_ArchitectureOracle` (objective, max_trials, seed,
            search_space, ...).
    """

    def __init__(
        self,
        *args: Any,
        population_size: int = 20,
        sample_size: int = 5,
        mutation_tries: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if population_size < 1:
            raise ValueError(f"population_size must be >= 1, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise ValueError(
                f"sample_size must be in 1..population_size={population_size}, got {sample_size}"
            )
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.mutation_tries = int(mutation_tries)
        #: trial_id -> "random" or "mutation of <parent encoding>".
        self.proposal_log: dict[str, str] = {}

    def populate_space(self, trial_id: str) -> dict:
        """Proposes the architecture of a new trial (KerasTuner protocol)."""
        rng = self._rng()
        avoid = set(self._tried_so_far)
        completed = self._completed_in_end_order()
        child, how = None, "random"
        if len(completed) >= self.population_size:
            population = completed[-self.population_size :]
            for _ in range(self.mutation_tries):
                members = rng.choice(len(population), size=self.sample_size, replace=False)
                parent = population[max(members, key=lambda i: population[i][2])][1]
                candidate = self.search_space.mutate(parent, rng)
                if self._key(candidate) in avoid:
                    # Fall back on the parent's untried neighbours, uniformly.
                    untried = [n for n in self.search_space.mutations(parent) if self._key(n) not in avoid]
                    candidate = untried[int(rng.integers(len(untried)))] if untried else None
                if candidate is not None:
                    child, how = candidate, f"mutation of {parent.encode()}"
                    break
        if child is None:
            child = self._random_new(rng, avoid)
        if child is not None:
            self.proposal_log[trial_id] = how
        return self._proposal(child)

    def get_state(self) -> dict:
        state = super().get_state()
        state["aging_evolution"] = {
            **self._settings_state(),
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "mutation_tries": self.mutation_tries,
            "proposal_log": self.proposal_log,
        }
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        saved = state.get("aging_evolution")
        if saved:
            self.proposal_log = dict(saved.get("proposal_log", {}))


class LocalSearchOracle(_ArchitectureOracle):
    """First-improvement local search with random restarts (see the module docstring).

    Attributes:
        restarts: number of local optima met (each followed by a random restart).
        proposal_log: trial_id -> "start", "start after local optimum <encoding>" or
            "neighbour of <current encoding>".
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.restarts = 0
        self.proposal_log: dict[str, str] = {}
        self._current: str | None = None
        self._current_y = -np.inf
        # Trial ids (end order) already folded into the current state.
        self._n_processed = 0
        # trial_id -> encoding of `current` when it was proposed (None: a start).
        self._proposed_from: dict[str, str | None] = {}

    def _process_finished(self, completed_by_id: dict[str, tuple[Architecture, float]]) -> None:
        for trial_id in self.end_order[self._n_processed :]:
            self._n_processed += 1
            if trial_id not in completed_by_id:
                continue  # failed: no value, the neighbour is simply used up
            architecture, y = completed_by_id[trial_id]
            origin = self._proposed_from.get(trial_id)
            if self._current is None and origin is None:
                self._current, self._current_y = architecture.encode(), y
            elif origin is not None and origin == self._current and y > self._current_y:
                self._current, self._current_y = architecture.encode(), y

    def populate_space(self, trial_id: str) -> dict:
        """Proposes the architecture of a new trial (KerasTuner protocol)."""
        rng = self._rng()
        avoid = set(self._tried_so_far)
        completed = self._completed_in_end_order()
        completed_by_id = {tid: (arch, y) for tid, arch, y in completed}
        self._process_finished(completed_by_id)
        known = {arch.encode(): y for _, arch, y in completed}
        local_optimum = None
        while self._current is not None:
            neighbours = self.search_space.mutations(Architecture.decode(self._current))
            better = [(known[n.encode()], n.encode()) for n in neighbours if known.get(n.encode(), -np.inf) > self._current_y]
            if better:
                self._current_y, self._current = max(better)
                continue
            untried = [n for n in neighbours if self._key(n) not in avoid]
            if untried:
                choice = untried[int(rng.integers(len(untried)))]
                self._proposed_from[trial_id] = self._current
                self.proposal_log[trial_id] = f"neighbour of {self._current}"
                return self._proposal(choice)
            self.restarts += 1
            local_optimum = self._current
            self._current, self._current_y = None, -np.inf
        start = self._random_new(rng, avoid)
        if start is not None:
            self._proposed_from[trial_id] = None
            self.proposal_log[trial_id] = (
                "start" if local_optimum is None else f"start after local optimum {local_optimum}"
            )
        return self._proposal(start)

    def get_state(self) -> dict:
        state = super().get_state()
        state["local_search"] = {
            **self._settings_state(),
            "restarts": self.restarts,
            "current": self._current,
            "current_y": None if self._current is None else float(self._current_y),
            "n_processed": self._n_processed,
            "proposed_from": self._proposed_from,
            "proposal_log": self.proposal_log,
        }
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        saved = state.get("local_search")
        if not saved:
            return
        self.restarts = int(saved["restarts"])
        self._current = saved["current"]
        self._current_y = -np.inf if saved["current_y"] is None else float(saved["current_y"])
        self._n_processed = int(saved["n_processed"])
        self._proposed_from = dict(saved["proposed_from"])
        self.proposal_log = dict(saved.get("proposal_log", {}))


class ReferenceGPOracle(_ArchitectureOracle):
    """A deliberately plain small-budget GP-EI: the reference of issue 12.

    Each architecture is its vector of D = ``max_depth`` layer tokens, padded with
    an empty token; H(a, b) is the Hamming distance between two such vectors (the
    number of slots whose tokens differ). The GP has one shared lengthscale ℓ:

        k(a, b) = s² · exp(−H(a, b) / ℓ)        (a product over slots of PSD
                                                  kernels, hence PSD)

    on rank-warped scores z_i = Φ⁻¹((r_i − ½) / n) (r_i the average rank of y_i
    among the n completed trials, larger is better), with a zero prior mean and
    noise η · s². (ℓ, η) is the maximizer of the profiled log marginal likelihood

        log L(ℓ, η) = −n/2 · log ŝ² − ½ · log |R + η I|,   ŝ² = zᵀ (R + η I)⁻¹ z / n

    over the grid `LENGTHSCALES` × `NOISE_RATIOS`. Posterior of the latent f at a
    candidate c: μ(c) = rᵀ(R + ηI)⁻¹ z and σ²(c) = ŝ² (1 − rᵀ(R + ηI)⁻¹ r), with
    r_i = exp(−H(c, x_i) / ℓ); expected improvement over f* = max_i μ(x_i):

        EI(c) = σ(c) (u Φ(u) + φ(u)),   u = (μ(c) − f*) / σ(c).

    The acquisition is maximized exactly over a finite candidate set: every valid
    1-edit neighbour (`SearchSpace.mutations`) of the `TOP_ONE_EDIT` best observed
    architectures, every 2-edit neighbour of the `TOP_TWO_EDIT` best, and
    `RANDOM_CANDIDATES` random architectures, minus everything tried. The first
    `INITIAL_POINTS` trials are uniform random architectures.
    """

    LENGTHSCALES = (0.5, 1.0, 2.0, 4.0, 8.0)
    NOISE_RATIOS = (1e-3, 1e-2, 1e-1, 0.3)
    INITIAL_POINTS = 5
    TOP_ONE_EDIT = 5
    TOP_TWO_EDIT = 2
    RANDOM_CANDIDATES = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: trial_id -> "random" or the proposal's (ℓ, η, EI, μ, σ).
        self.proposal_log: dict[str, Any] = {}
        self._tokens = {layer.encode(): i + 1 for i, layer in enumerate(self.search_space.alphabet())}

    def _vectors(self, architectures: list[Architecture]) -> np.ndarray:
        out = np.zeros((len(architectures), self.search_space.max_depth), dtype=np.int32)
        for row, architecture in enumerate(architectures):
            for slot, layer in enumerate(architecture.layers):
                out[row, slot] = self._tokens.get(layer.encode(), -1)
        return out

    @staticmethod
    def rank_warp(y: np.ndarray) -> np.ndarray:
        from scipy.stats import norm, rankdata

        return norm.ppf((rankdata(y) - 0.5) / len(y))

    @classmethod
    def fit(cls, hamming: np.ndarray, z: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        """(ℓ, η, ŝ², Cholesky factor of R + ηI) maximizing the profiled likelihood."""
        n = len(z)
        best = None
        for lengthscale in cls.LENGTHSCALES:
            correlation = np.exp(-hamming / lengthscale)
            for noise in cls.NOISE_RATIOS:
                factor = np.linalg.cholesky(correlation + noise * np.eye(n))
                alpha = np.linalg.solve(factor, z)
                signal = float(alpha @ alpha) / n
                value = -0.5 * n * np.log(max(signal, 1e-300)) - float(np.sum(np.log(np.diag(factor))))
                if best is None or value > best[0]:
                    best = (value, lengthscale, noise, signal, factor)
        return best[1], best[2], best[3], best[4]

    def _candidates(self, ranked: list[Architecture], rng: np.random.Generator, avoid: set[str]) -> list[Architecture]:
        found: dict[str, Architecture] = {}
        for architecture in ranked[: self.TOP_ONE_EDIT]:
            for neighbour in self.search_space.mutations(architecture):
                found.setdefault(neighbour.encode(), neighbour)
        for architecture in ranked[: self.TOP_TWO_EDIT]:
            for neighbour in self.search_space.mutations(architecture):
                for second in self.search_space.mutations(neighbour):
                    found.setdefault(second.encode(), second)
        for _ in range(self.RANDOM_CANDIDATES):
            sample = self.search_space.sample(rng)
            found.setdefault(sample.encode(), sample)
        return [a for a in found.values() if self._key(a) not in avoid]

    def populate_space(self, trial_id: str) -> dict:
        """Proposes the architecture of a new trial (KerasTuner protocol)."""
        from scipy.stats import norm

        from kbnas import keras_tuner_internals as kt_internals

        rng = self._rng()
        avoid = set(kt_internals.tried_so_far(self))
        completed = self._completed_in_end_order()
        if len(completed) < self.INITIAL_POINTS:
            self.proposal_log[trial_id] = "random"
            return self._proposal(self._random_new(rng, avoid))
        architectures = [arch for _, arch, _ in completed]
        y = np.array([value for _, _, value in completed])
        z = self.rank_warp(y)
        observed = self._vectors(architectures)
        hamming = np.sum(observed[:, None, :] != observed[None, :, :], axis=2).astype(float)
        lengthscale, noise, signal, factor = self.fit(hamming, z)
        alpha = np.linalg.solve(factor.T, np.linalg.solve(factor, z))
        correlation = np.exp(-hamming / lengthscale)
        incumbent = float(np.max(correlation @ alpha))
        ranked = [architectures[i] for i in np.argsort(-y, kind="stable")]
        candidates = self._candidates(ranked, rng, avoid)
        if not candidates:
            self.proposal_log[trial_id] = "random"
            return self._proposal(self._random_new(rng, avoid))
        cross = np.exp(-np.sum(self._vectors(candidates)[:, None, :] != observed[None, :, :], axis=2) / lengthscale)
        mean = cross @ alpha
        solved = np.linalg.solve(factor, cross.T)
        std = np.sqrt(np.maximum(signal * (1.0 - np.sum(solved**2, axis=0)), 1e-12))
        u = (mean - incumbent) / std
        ei = std * (u * norm.cdf(u) + norm.pdf(u))
        best = int(np.argmax(ei))
        self.proposal_log[trial_id] = {"lengthscale": lengthscale, "noise": noise, "ei": float(ei[best]),
                                       "mean": float(mean[best]), "std": float(std[best]),
                                       "candidates": len(candidates)}
        return self._proposal(candidates[best])

    def get_state(self) -> dict:
        state = super().get_state()
        state["reference_gp"] = {**self._settings_state(), "proposal_log": self.proposal_log}
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        saved = state.get("reference_gp")
        if saved:
            self.proposal_log = dict(saved.get("proposal_log", {}))
