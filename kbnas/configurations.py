"""KerasTuner hyperparameter spaces as seen by the numeric core.

A *configuration* is a KerasTuner values dict (active hyperparameters only). This
module turns a `keras_tuner.HyperParameters` space into what the core needs:

* random configurations and random neighbours (for the acquisition optimizer),
  honouring conditional hyperparameters (a child is active only when its parent
  conditions hold);
* an encoding of ordinary hyperparameters as an (n, P) float matrix for
  `kbnas.core.distances.hyperparameter_distances`: ``Boolean`` and unordered
  ``Choice`` are categories (integer codes); ``Int``, ``Float`` and ordered
  ``Choice`` (KerasTuner's default for numeric values, ``ordered=True``; position
  i of n maps to (i + ½)/n) are mapped to [0, 1] by KerasTuner's own
  ``value_to_prob`` (so log sampling is honoured), ``Fixed`` is
  ignored, an inactive hyperparameter is NaN;
* the architecture hyperparameter, a string holding the canonical encoding of a
  `kbnas.space.Architecture`, decoded into architectures for the architecture
  distance;
* enumeration of every configuration when the space is finite and small;
* *unread* hyperparameters (`infer_unread_conditions`): an unconditional
  hyperparameter that the trials' builds did not read for some values of an
  earlier one (KerasTuner's ``for i in range(hp.Int("depth", ...))`` idiom, see
  `kbnas.reads`) is treated as inactive for those values, exactly like a
  KerasTuner conditional one.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Iterator

import keras_tuner
import numpy as np

from kbnas import keras_tuner_internals as kt_internals
from kbnas.space import Architecture, SearchSpace

_hp_types = kt_internals.hyperparameter_types
CATEGORICAL = "categorical"
NUMERIC = "numeric"

#: Standard deviation, in KerasTuner's [0, 1] probability scale, of a numeric move.
NUMERIC_STEP = 0.15


def _is_unordered(hp) -> bool:
    """Boolean, and Choice unless ordered (KerasTuner's default for numeric values):
    compared as categories; an ordered Choice is compared by its position."""
    if isinstance(hp, _hp_types.Boolean):
        return True
    return isinstance(hp, _hp_types.Choice) and not getattr(hp, "ordered", False)


def _value_problem(hp, value: Any) -> str | None:
    """Why ``hp`` cannot take ``value`` (words after "name=value"), or None."""
    if isinstance(hp, _hp_types.Fixed):
        return None if value == hp.value else f"differs from the Fixed value {hp.value!r}"
    if isinstance(hp, _hp_types.Boolean):
        return None if isinstance(value, (bool, np.bool_)) else "is not True or False"
    if isinstance(hp, _hp_types.Choice):
        bools = all(isinstance(v, bool) for v in hp.values)
        taken = value in hp.values and isinstance(value, (bool, np.bool_)) == bools  # True == 1, but not a choice of 1
        return None if taken else f"is not one of the Choice's values {list(hp.values)}"
    if isinstance(hp, (_hp_types.Int, _hp_types.Float)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            return "is not a number"
        try:
            if not math.isfinite(float(value)):
                return "is not a finite number"
        except OverflowError:
            return f"lies outside [{hp.min_value}, {hp.max_value}]"
        if isinstance(hp, _hp_types.Int) and value != int(value):
            return "is not a whole number"
        if not hp.min_value <= value <= hp.max_value:
            return f"lies outside [{hp.min_value}, {hp.max_value}]"
        step = getattr(hp, "step", None)
        if isinstance(hp, _hp_types.Int) and step and getattr(hp, "sampling", "linear") == "linear" \
                and (int(value) - hp.min_value) % step:
            return f"is not on the grid {hp.min_value}, {hp.min_value + step}, … (step {step})"
    return None


#: Decoded architectures kept (LRU). The trained ones are looked up at every
#: proposal and stay; the ~700 candidates a proposal scores churn through. At
#: 65,536 the cache grew by 2.5 MiB per trial for ~90 trials (benchmarks/memory.py,
#: docs/benchmarks.md#memory-across-a-long-search); at 4,096 it holds ~4 MiB, and a
#: 40-trial search makes 3 % more decodes (28 µs each).
DECODE_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=DECODE_CACHE_SIZE)
def _decode_architecture(text: str) -> Architecture:
    return Architecture.decode(text)


def _is_active(hp, values: dict) -> bool:
    return all(condition.is_active(values) for condition in hp.conditions)


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def infer_unread_conditions(space: list, observed: list[dict]) -> dict[str, tuple[str, frozenset]]:
    """When each unconditional hyperparameter goes unread, learned from completed trials.

    ``observed`` are the values of completed trials, as `kbnas.reads.drop_unread`
    left them: a tunable hyperparameter h without KerasTuner conditions is *unread*
    in a trial that lacks it. For each h unread in at least one trial and read in at
    least one, the parent is
    a hyperparameter p before h in space order, present in every observed trial,
    whose observed values split the trials cleanly,

        {p(t) : h read in t}  ∩  {p(t) : h unread in t}  =  ∅.

    Among those, the one that splits the most hyperparameters this way, then the
    one with the fewest distinct observed values, then the first in space order: in
    the depth-loop idiom ``depth`` explains every slot, where a slot's token can
    split a few trials by chance, and a continuous hyperparameter splits any trials
    (every value distinct) but has more values. The condition is then "h is
    inactive when p ∈ U", U = the values of p at which h went unread. A value of p
    never observed leaves h active (the behaviour without this rule), so the rule
    only merges configurations that trials showed to be the same model; a wrong
    rule is undone by the first trial that reads h at a value in U.

    Args:
        space: the oracle's hyperparameters (``HyperParameters.space``), in order.
        observed: values of completed trials.

    Returns:
        h's name -> (p's name, U) for every h with a consistent parent; no entry
        when no trial left anything unread (e.g. under KerasTuner's own Tuner,
        which reports every value).
    """
    tunable: list = []
    for hp in space:
        if isinstance(hp, _hp_types.Fixed) or hp.conditions or any(t.name == hp.name for t in tunable):
            continue
        tunable.append(hp)
    always = {hp.name for hp in tunable if all(hp.name in values for values in observed)}
    consistent: dict[str, list[tuple[int, int, str, frozenset]]] = {}
    explains: dict[str, int] = {}
    for position, hp in enumerate(tunable):
        unread = [values for values in observed if hp.name not in values]
        read = [values for values in observed if hp.name in values]
        if not unread or not read:
            # Never unread; or never read by a completed trial (a value read only
            # outside what a trial records must not be switched off).
            continue
        for order, parent in enumerate(tunable[:position]):
            if parent.name not in always:
                continue
            seen_unread = {_hashable(values[parent.name]) for values in unread}
            seen_read = {_hashable(values[parent.name]) for values in read}
            if seen_read.isdisjoint(seen_unread):
                consistent.setdefault(hp.name, []).append(
                    (len(seen_read | seen_unread), order, parent.name, frozenset(seen_unread)))
                explains[parent.name] = explains.get(parent.name, 0) + 1
    conditions: dict[str, tuple[str, frozenset]] = {}
    for name, options in consistent.items():
        _, _, parent, unread_values = min(options, key=lambda o: (-explains[o[2]], o[0], o[1]))
        conditions[name] = (parent, unread_values)
    return conditions


class ConfigurationSpace:
    """The tunable part of a KerasTuner search space.

    Args:
        hyperparameters: the oracle's `keras_tuner.HyperParameters`.
        search_space: the architecture space, or None when the space has no
            architecture hyperparameter.
        architecture_hp: name of the architecture hyperparameter.
    """

    def __init__(
        self,
        hyperparameters: keras_tuner.HyperParameters,
        search_space: SearchSpace | None = None,
        architecture_hp: str = "architecture",
    ) -> None:
        self.space = list(hyperparameters.space)
        self.search_space = search_space
        self.architecture_hp = architecture_hp
        self.has_architecture = search_space is not None and any(
            hp.name == architecture_hp for hp in self.space
        )
        self.encoded: list[Any] = []
        for hp in self.space:
            if hp.name == architecture_hp or isinstance(hp, _hp_types.Fixed):
                continue
            if any(e.name == hp.name for e in self.encoded):
                continue
            self.encoded.append(hp)
        self.kinds = [CATEGORICAL if _is_unordered(hp) else NUMERIC for hp in self.encoded]
        self._rows: dict[tuple, np.ndarray] = {}
        #: `infer_unread_conditions`: h -> (p, U), h inactive when p's value is in U.
        self.unread_conditions: dict[str, tuple[str, frozenset]] = {}
        self._choice_codes = [
            {repr(v): i for i, v in enumerate(hp.values)}
            if isinstance(hp, _hp_types.Choice) and _is_unordered(hp)
            else None
            for hp in self.encoded
        ]

    def _active(self, hp, values: dict) -> bool:
        """Active under KerasTuner's conditions and the learned unread conditions."""
        if not _is_active(hp, values):
            return False
        condition = self.unread_conditions.get(hp.name)
        return condition is None or condition[0] not in values or _hashable(values[condition[0]]) not in condition[1]

    def project(self, values: dict) -> dict:
        """``values`` restricted to the hyperparameters active in it, in space order
        (what a trial's model depended on; names outside the space are kept)."""
        out: dict = {}
        for hp in self.space:
            if hp.name in values and hp.name not in out and self._active(hp, out):
                out[hp.name] = values[hp.name]
        names = {hp.name for hp in self.space}
        out.update((name, value) for name, value in values.items() if name not in names)
        return out

    def fill_unread(self, values: dict) -> dict:
        """``values`` plus each default that only a learned unread condition left out.

        What the oracle hands to a trial: a build that reads such a value after all
        (the rule was wrong) gets its default instead of a KeyError, and its read
        undoes the rule (`infer_unread_conditions`).
        """
        if not self.unread_conditions:
            return values
        out: dict = {}
        for hp in self.space:
            if hp.name in out:
                continue
            if hp.name in values:
                out[hp.name] = values[hp.name]
            elif hp.name in self.unread_conditions and _is_active(hp, out):
                out[hp.name] = hp.default
        out.update((name, value) for name, value in values.items() if name not in out)
        return out

    @property
    def n_dimensions(self) -> int:
        """Number of tunable dimensions (the architecture counts as one)."""
        return len(self.encoded) + int(self.has_architecture)

    # ------------------------------------------------------------------ sampling
    def _sample_hp(self, hp, rng: np.random.Generator) -> Any:
        if hp.name == self.architecture_hp and self.has_architecture:
            return self.search_space.sample(rng).encode()
        return hp.random_sample(int(rng.integers(2**31 - 1)))

    def complete(
        self,
        values: dict,
        rng: np.random.Generator | None,
        resample: str | None = None,
    ) -> dict:
        """Active values of a configuration, in space order.

        Inactive hyperparameters are dropped; active ones missing from ``values``
        (and the one named ``resample``) are drawn at random, or take their
        declared default when ``rng`` is None.
        """
        out: dict = {}
        for hp in self.space:
            if hp.name in out or not self._active(hp, out):
                continue
            if hp.name in values and hp.name != resample:
                out[hp.name] = values[hp.name]
            elif rng is None:
                out[hp.name] = hp.default
            else:
                out[hp.name] = self._sample_hp(hp, rng)
        return out

    def value_problem(self, values: dict) -> str | None:
        """What is wrong with a user's configuration (`kbnas.SearchSettings.initial_points`), or None.

        Every value of a declared hyperparameter must be one it can take: a
        Choice's value, a Boolean, an Int or Float within its bounds (an Int on
        its step), a Fixed one's own value. Names the space does not declare are
        `unknown_names` (a model may declare one later, as the depth-loop idiom
        does). The architecture is checked by its space
        (`kbnas.SearchSpace.from_hp_value`), not here.
        """
        for name, value in values.items():
            # (A name may be declared under several conditions, each with its range: any will do.)
            declarations = [hp for hp in self.space if hp.name == name]
            if not declarations or (name == self.architecture_hp and self.has_architecture):
                continue
            problems = [_value_problem(hp, value) for hp in declarations]
            if all(problems):
                return f"{name}={value!r} {problems[0]}"
        return None

    def normalized(self, values: dict) -> dict:
        """``values`` as KerasTuner's own draws hold them: Python scalars (numpy ones are
        not JSON), an Int's whole float as an int, a Choice's value as declared (``2.0`` → ``2``)."""
        out = {}
        for name, value in values.items():
            value = value.item() if isinstance(value, np.generic) else value
            for hp in self.space:
                if hp.name != name or _value_problem(hp, value):
                    continue
                if isinstance(hp, _hp_types.Int):
                    value = int(value)
                elif isinstance(hp, _hp_types.Choice):
                    value = hp.values[list(hp.values).index(value)]
                break
            out[name] = value
        return out

    def unknown_names(self, values: dict) -> list[str]:
        """The names in ``values`` that the space does not declare."""
        declared = {hp.name for hp in self.space}
        return [name for name in values if name not in declared]

    def sample(self, rng: np.random.Generator) -> dict:
        """A random configuration (KerasTuner's priors; uniform architectures)."""
        return self.complete({}, rng)

    def mutate(self, values: dict, rng: np.random.Generator) -> dict:
        """A random neighbour: one active tunable dimension moves.

        The architecture (when present) takes half of the moves and changes by one
        `SearchSpace.mutate` step; an unordered Choice moves to another value, an
        ordered one to a neighbouring value (3 times in 4) or any other, a Boolean flips,
        an Int/Float takes a Gaussian step of `NUMERIC_STEP` in KerasTuner's [0, 1]
        probability scale. Children of a changed parent are re-drawn as needed.
        """
        active = [hp for hp in self.encoded if hp.name in values]
        use_architecture = self.has_architecture and (not active or rng.random() < 0.5)
        if use_architecture:
            arch = self.architecture_of(values)
            new = dict(values)
            # SearchSpace.mutate returns valid architectures: encode, no re-validation.
            new[self.architecture_hp] = self.search_space.mutate(arch, rng).encode()
            return self.complete(new, rng)
        if not active:
            return self.sample(rng)
        hp = active[int(rng.integers(len(active)))]
        new = dict(values)
        new[hp.name] = self._move(hp, values[hp.name], rng)
        return self.complete(new, rng)

    def _move(self, hp, value: Any, rng: np.random.Generator) -> Any:
        if isinstance(hp, _hp_types.Boolean):
            return not value
        if isinstance(hp, _hp_types.Choice):
            others = [v for v in hp.values if v != value]
            if not others:
                return value
            if _is_unordered(hp) or value not in hp.values or rng.random() < 0.25:
                return others[int(rng.integers(len(others)))]
            # Ordered: to a neighbouring position, mostly.
            index = list(hp.values).index(value)
            step = 1 if index == 0 else -1 if index == len(hp.values) - 1 else int(rng.choice((-1, 1)))
            return hp.values[index + step]
        prob = hp.value_to_prob(value)
        for _ in range(4):
            step = rng.normal(0.0, NUMERIC_STEP)
            new = hp.prob_to_value(float(np.clip(prob + step, 0.0, 1.0 - 1e-9)))
            if new != value:
                return new
        return hp.random_sample(int(rng.integers(2**31 - 1)))

    # ------------------------------------------------------------------ encoding
    def encode(self, configurations: list[dict]) -> np.ndarray:
        """(n, P) matrix of ordinary hyperparameters; NaN where inactive.

        Rows are memoized: the observed configurations are encoded once, not at
        every batch of candidates.
        """
        X = np.empty((len(configurations), len(self.encoded)))
        for i, values in enumerate(configurations):
            key = tuple(values.items())
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = self._encode_one(values)
            X[i] = row
        return X

    def _encode_one(self, values: dict) -> np.ndarray:
        row = np.full(len(self.encoded), np.nan)
        for j, hp in enumerate(self.encoded):
            if hp.name not in values:
                continue
            v = values[hp.name]
            codes = self._choice_codes[j]
            if codes is not None:
                row[j] = codes.get(repr(v), len(codes))
            elif isinstance(hp, _hp_types.Boolean):
                row[j] = float(bool(v))
            else:
                row[j] = hp.value_to_prob(v)
        return row

    def architecture_of(self, values: dict) -> Architecture:
        """The architecture stored in a configuration (decoded once per string)."""
        return _decode_architecture(values[self.architecture_hp])

    # --------------------------------------------------------------- enumeration
    def _finite_values(self, hp) -> list | None:
        if hp.name == self.architecture_hp and self.has_architecture:
            return None  # enumerated separately, lazily
        if isinstance(hp, _hp_types.Fixed):
            return [hp.value]
        if isinstance(hp, _hp_types.Boolean):
            return [False, True]
        if isinstance(hp, _hp_types.Choice):
            return list(hp.values)
        if isinstance(hp, _hp_types.Int):
            if hp.step is None and hp.sampling == "linear":
                return list(range(hp.min_value, hp.max_value + 1))
            if hp.step is not None:
                return list(hp.values)
            return list(range(hp.min_value, hp.max_value + 1))
        if isinstance(hp, _hp_types.Float) and hp.step is not None:
            return list(hp.values)
        return None

    def enumerate(self, limit: int) -> list[dict] | None:
        """Every configuration when there are at most ``limit``; else None."""
        per_hp = {}
        for hp in self.space:
            if hp.name == self.architecture_hp and self.has_architecture:
                archs = list(itertools.islice(self.search_space.enumerate(), limit + 1))
                if len(archs) > limit:
                    return None
                per_hp[hp.name] = [self.search_space.to_hp_value(a) for a in archs]
                continue
            vals = self._finite_values(hp)
            if vals is None:
                return None
            per_hp.setdefault(hp.name, vals)
        out: list[dict] = []
        for values in self._expand({}, 0, per_hp):
            out.append(values)
            if len(out) > limit:
                return None
        return out

    def _expand(self, values: dict, index: int, per_hp: dict) -> Iterator[dict]:
        if index == len(self.space):
            yield dict(values)
            return
        hp = self.space[index]
        if hp.name in values or not self._active(hp, values):
            yield from self._expand(values, index + 1, per_hp)
            return
        for v in per_hp[hp.name]:
            values[hp.name] = v
            yield from self._expand(values, index + 1, per_hp)
            del values[hp.name]


# ---------------------------------------------------------------------- encodings
def architecture_hyperparameters(
    space: SearchSpace, name: str = "architecture"
) -> keras_tuner.HyperParameters:
    """The kbnas encoding: one string hyperparameter holding an architecture of ``space``.

    Its value is overwritten by `kbnas.BayesianNASOracle`; other KerasTuner oracles
    keep the default architecture.
    """
    hp = keras_tuner.HyperParameters()
    hp.Fixed(name, space.to_hp_value(space.default_architecture()))
    return hp


def token_hyperparameters(space: SearchSpace, conditional: bool = False) -> keras_tuner.HyperParameters:
    """The same architectures as ordinary hyperparameters, for KerasTuner's own oracles.

    ``depth`` ∈ [min_depth, max_depth] and one Choice of layer token per slot
    (``layer_0`` …). Unconditional (the default), slots beyond ``depth`` are ignored
    but still searched over; with ``conditional=True``, slot k ≥ min_depth is a
    KerasTuner conditional hyperparameter (``parent_name="depth"``,
    ``parent_values`` = k+1 … max_depth), active only when the architecture has
    that layer. Either way some token strings are invalid architectures. Used to
    compare with `keras_tuner.oracles.BayesianOptimizationOracle` on an equivalent space.
    """
    hp = keras_tuner.HyperParameters()
    hp.Int("depth", space.min_depth, space.max_depth)
    tokens = [layer.encode() for layer in space.alphabet()]
    for slot in range(space.max_depth):
        if conditional and slot >= space.min_depth:
            hp.Choice(f"layer_{slot}", tokens, parent_name="depth",
                      parent_values=list(range(slot + 1, space.max_depth + 1)))
        else:
            hp.Choice(f"layer_{slot}", tokens)
    return hp


def architecture_from_tokens(values: dict) -> Architecture:
    """The architecture of `token_hyperparameters` values (possibly invalid)."""
    return Architecture.decode("|".join(str(values[f"layer_{slot}"]) for slot in range(int(values["depth"]))))
