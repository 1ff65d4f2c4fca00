"""Which hyperparameter values a trial actually read (docs/oracle.md §1, "Unread hyperparameters").

KerasTuner's idiom for a variable depth is a loop,

    for i in range(hp.Int("depth", 1, 6)):
        model.add(layers.Dense(hp.Choice(f"units_{i}", [32, 64, 128])))

which registers ``units_0`` … ``units_5`` as *unconditional* hyperparameters: every
trial carries a value for each, and a trial of depth 2 differs from another only in
``units_4`` without the two models differing at all. An oracle that cannot tell
proposes the same network again under a new name (measured: 33.5 distinct
architectures in 100 queries on the digits table, docs/oracle.md §11).

`kbnas.BayesianNAS` records which values each trial read while it was built and
trained (`ReadRecorder`, a dict that notes the keys it is indexed with: KerasTuner's
``hp.Choice``/``hp.Int``/… and ``hp.get`` all read ``hp.values[name]``) and, before
the trial ends, drops the values it never read (`drop_unread`). The trial then
reaches the oracle, on the chief too, carrying only what shaped its model;
`kbnas.configurations.infer_unread_conditions` learns from those trials when a
value goes unread. A deterministic build reads the same values again from the
trial's remaining ones, so rebuilding the trial's model (``get_best_models``, the
export) needs nothing that was dropped.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

from kbnas import keras_tuner_internals as kt_internals


class ReadRecorder(dict):
    """A dict that records which keys were read.

    ``d[key]`` and ``d.get(key)`` record ``key``; ``d[key] = value`` too (KerasTuner
    registers a hyperparameter the build declares for the first time by writing its
    default: the build uses it). Anything that can read values unseen — iterating,
    ``items()``, ``keys()``, ``values()``, ``copy()`` (``hp.copy()`` and
    ``hp.get_config()`` go through ``items()``) — marks every key read: the trial then
    keeps all its values, as without this module. `plain` copies without recording.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        self.read.add(key)
        super().__setitem__(key, value)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def _read_all(self) -> None:
        self.read.update(dict.keys(self))

    def __iter__(self):
        self._read_all()
        return super().__iter__()

    def items(self):
        self._read_all()
        return super().items()

    def keys(self):
        self._read_all()
        return super().keys()

    def values(self):
        self._read_all()
        return super().values()

    def copy(self):
        self._read_all()
        return dict(dict.items(self))

    def plain(self) -> dict:
        """The values as a plain dict, recording nothing."""
        return dict(dict.items(self))

    @contextlib.contextmanager
    def unrecorded(self) -> Iterator[None]:
        """Reads within the block are forgotten (a caller that reads every value for its own records)."""
        before = set(self.read)
        try:
            yield
        finally:
            self.read.intersection_update(before)


def drop_unread(values: dict, read: Iterable[str], droppable: Iterable[str]) -> dict:
    """``values`` without the ``droppable`` names that were not ``read``.

    Args:
        values: a trial's hyperparameter values.
        read: the names read while the trial ran.
        droppable: the names that may go: the space's tunable, unconditional
            hyperparameters (a conditional one is already absent when inactive).

    Returns:
        A plain dict, in the order of ``values``. When nothing at all was read (a
        HyperModel that ignores ``hp``), every value is kept: there is nothing to
        learn from.
    """
    read = set(read)
    if not read:
        return dict(values)
    droppable = set(droppable)
    return {name: value for name, value in values.items() if name in read or name not in droppable}


def droppable_names(hyperparameters: Any) -> list[str]:
    """The names a trial may leave out when unread: the tunable, unconditional
    hyperparameters of ``hyperparameters.space`` (an inactive conditional one has
    no value already; a Fixed one is not searched)."""
    fixed = kt_internals.hyperparameter_types.Fixed
    return [hp.name for hp in hyperparameters.space if not hp.conditions and not isinstance(hp, fixed)]


@contextlib.contextmanager
def not_recorded(hyperparameters: Any) -> Iterator[None]:
    """Reads of ``hyperparameters.values`` inside are not the trial's: KerasTuner's
    oracle serializes a running trial (``update_trial`` saves it at every report)."""
    values = hyperparameters.values
    if not isinstance(values, ReadRecorder):
        yield
        return
    hyperparameters.values = values.plain()
    try:
        yield
    finally:
        hyperparameters.values = values
