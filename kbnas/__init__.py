"""kbnas: Keras-native neural architecture search by Bayesian optimization.

The search space (`kbnas.space`) and the numeric core (`kbnas.core`) import only
numpy and scipy. The Keras/KerasTuner glue is imported lazily on first use of the
names below, so ``import kbnas`` stays light.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "SearchSpace": "kbnas.space",
    "Architecture": "kbnas.space",
    "Layer": "kbnas.space",
    "InvalidArchitectureError": "kbnas.space",
    "load_digits": "kbnas.datasets",
    "load_digits_split": "kbnas.datasets",
    "BayesianNASOracle": "kbnas.oracle",
    "EarlyStopping": "kbnas.core.early_stopping",
    "EvolutionSettings": "kbnas.core.acquisition_optimizer",
    "SearchSettings": "kbnas.settings",
    "BayesianNAS": "kbnas.tuner",
    "ConvNetHyperModel": "kbnas.hypermodel",
    "export_model": "kbnas.export",
    "ParallelSearch": "kbnas.parallel",
    "ParallelSettings": "kbnas.parallel",
    "search_in_parallel": "kbnas.parallel",
    "EnsembleSettings": "kbnas.ensemble",
    "average_models": "kbnas.ensemble",
    "SelectionSettings": "kbnas.selection",
    "select_by_cross_validation": "kbnas.selection",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        # A submodule, as the documentation reaches them after a plain ``import kbnas``:
        # ``kbnas.ensemble.ensemble_members(model)``, ``kbnas.distribute.strategy_for(...)``.
        if name.isidentifier() and not name.startswith("_") and importlib.util.find_spec(f"kbnas.{name}"):
            return importlib.import_module(f"kbnas.{name}")
        raise AttributeError(f"module 'kbnas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
