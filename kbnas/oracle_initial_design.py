"""The oracle's initial design: the user's points, templates, random draws.

A mixin of `kbnas.BayesianNASOracle` (docs/oracle.md §7, "Initial design"). Until
``num_initial_points`` trials have completed (default dims + 2, clipped to
[4, 8], an architecture counting four dimensions), each new trial is the first
untried configuration of: the user's ``initial_points``; the templates of
`kbnas.space.templates` adapted to an architecture space; random draws. In an
architecture space a draw is space-filling, the farthest of
`SPACE_FILLING_POOL` random templates from every tried configuration (a maximin
design over the distance channels D_c):

    x* = argmax_{x ∈ pool} min_{t ∈ tried} Σ_c D_c(x, t) / max D_c;

in a space without an architecture it is uniform (the maximin draw sits on the
faces of the box there; docs/oracle.md §12).

It uses the oracle's settings, featurizer and trials (`templates`,
`search_space`, `architecture_hp`, `featurizer`, `_key`, `trials`).
"""

from __future__ import annotations

import warnings

import numpy as np

from kbnas.configurations import ConfigurationSpace
from kbnas.space import Architecture
from kbnas.space.templates import random_template
from kbnas.space.templates import templates as space_templates

#: Initial-design slots left to random draws however many templates there are.
MIN_RANDOM_INITIAL = 2
#: Random draws a space-filling initial point is chosen from.
SPACE_FILLING_POOL = 32
#: Random templates drawn before falling back to a uniform draw.
RANDOM_TEMPLATE_TRIES = 20


class InitialDesign:
    """The initial design's configurations, in order, and its random draws."""

    def _initial_points(self, cspace: ConfigurationSpace) -> int:
        if self.num_initial_points is not None:
            return self.num_initial_points
        dims = len(cspace.encoded) + 4 * int(cspace.has_architecture)
        return int(np.clip(dims + 2, 4, 8))

    def _initial_design(self, cspace: ConfigurationSpace) -> list[tuple[str, dict]]:
        """(method, values) of the user's initial points, then of the templates.

        Templates fill the initial design up to `_initial_points` minus
        `MIN_RANDOM_INITIAL` slots, which are left to space-filling random draws.
        """
        design = [("initial", cspace.complete(point, None)) for point in self.initial_points]
        slots = self._initial_points(cspace) - MIN_RANDOM_INITIAL - len(design)
        if self.templates and cspace.has_architecture and slots > 0:
            for architecture in space_templates(self.search_space)[:slots]:
                design.append(("template", cspace.complete({self.architecture_hp: architecture.encode()}, None)))
        return design

    def check_initial_points(self) -> None:
        """The user's initial points against the declared hyperparameters, before the first trial.

        `kbnas.BayesianNAS.prepare_search` calls it once the space is populated
        (before a search's first trial, and before a parallel search's chief
        serves), outside KerasTuner's lock (a proposal must not raise:
        `create_trial` would keep the lock).

        The points are then held as KerasTuner's own values are
        (`kbnas.configurations.ConfigurationSpace.normalized`: ``np.int64(16)``
        is 16, an Int's ``16.0`` is 16).

        Raises:
            ValueError: a value its hyperparameter cannot take
                (`kbnas.configurations.ConfigurationSpace.value_problem`), named
                with the point's number.

        Warns:
            RuntimeWarning: a name the space does not declare (a misspelling, or a
                hyperparameter the model declares only later).
        """
        cspace = ConfigurationSpace(self.hyperparameters, self.search_space, self.architecture_hp)
        for number, point in enumerate(self.initial_points, start=1):
            problem = cspace.value_problem(point)
            if problem:  # a value the space cannot take would train something else
                raise ValueError(f"initial point {number}: {problem}")
            self.initial_points[number - 1] = point = cspace.normalized(point)
            unknown = cspace.unknown_names(point)
            if unknown:
                names = ", ".join(hp.name for hp in cspace.space)
                warnings.warn(f"kbnas: initial point {number}: no hyperparameter {', '.join(map(repr, unknown))} "
                              f"in the search space (its names: {names}); ignored unless the model declares it "
                              "(a misspelling?)", RuntimeWarning, stacklevel=3)

    def _random_draw(self, cspace, everything, avoid, rng) -> dict | None:
        """A random untried configuration: a random template (`kbnas.space.templates`)
        when templates are on in an architecture space too large to enumerate,
        else a uniform draw."""
        if self.templates and cspace.has_architecture and everything is None:
            for _ in range(RANDOM_TEMPLATE_TRIES):
                architecture = random_template(self.search_space, rng)
                if architecture is None:
                    continue
                values = cspace.complete({self.architecture_hp: architecture.encode()}, rng)
                if self._key(values) not in avoid:
                    return values
        return self._random_new(cspace, everything, avoid, rng)

    def _space_filling_random(self, cspace, everything, avoid, rng) -> dict | None:
        """The farthest of `SPACE_FILLING_POOL` random draws from every tried configuration.

        Distance: the sum over channels of each channel's distance divided by
        its largest value in the pool (maximin design). In a space without an
        architecture, a uniform draw instead: there the farthest draw lies on the
        boundary of the box (a learning rate of 1e-4 or 1e-1, a dropout of 0 or
        0.5), where a model's best values seldom are: on a Keras MLP's space
        uniform draws gave 0.20 decades lower log10 regret after 10 trials and
        0.78 after 50 (20 seeds; docs/oracle.md §12).
        """
        if not cspace.has_architecture:
            return self._random_new(cspace, everything, avoid, rng)
        pool: dict[str, dict] = {}
        for _ in range(SPACE_FILLING_POOL):
            values = self._random_draw(cspace, everything, avoid | set(pool), rng)
            if values is None:
                break
            pool[self._key(values)] = values
        candidates = list(pool.values())
        tried = [self._values_of(t, cspace) for t in self.trials.values() if t.hyperparameters.values]
        if len(candidates) < 2 or not tried or cspace.n_dimensions == 0:
            return candidates[0] if candidates else None
        channels = self.featurizer.distance_channels(cspace, candidates, tried)
        scale = channels.reshape(len(channels), -1).max(axis=1)
        scale[scale <= 0] = 1.0
        nearest = (channels / scale[:, None, None]).sum(axis=0).min(axis=1)
        return candidates[int(np.argmax(nearest))]

    def _random_new(self, cspace, everything, avoid, rng) -> dict | None:
        if everything is not None:
            fresh = [v for v in everything if self._key(v) not in avoid]
            return fresh[int(rng.integers(len(fresh)))] if fresh else None
        for _ in range(200):
            values = cspace.sample(rng)
            if self._key(values) not in avoid:
                return values
        return None


def _as_initial_point(point: dict | str, architecture_hp: str) -> dict:
    """A user's initial point as hyperparameter values: an encoding becomes the architecture."""
    if isinstance(point, str):
        return {architecture_hp: point}
    if isinstance(point, Architecture):
        return {architecture_hp: point.encode()}
    if not isinstance(point, dict):
        raise ValueError(
            f"an initial point must be a dict of hyperparameter values or an architecture "
            f"encoding, got {type(point).__name__}"
        )
    return dict(point)
