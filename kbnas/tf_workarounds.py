"""Workarounds for TensorFlow defects, each with the test that fails when TensorFlow changes under it.

**Custom gradients are never unregistered** (tensorflow/tensorflow#80895, open as of
TensorFlow 2.21). Tracing a Keras model's train step registers functions named
``CustomGradient-<n>`` in TensorFlow's global gradient registry
(``tensorflow.python.framework.ops._gradient_registry``); they are never removed, and
their closures keep the traced graphs (``FuncGraph``, ``AtomicFunction``) alive. A
process that trains model after model therefore grows by megabytes per model, with or
without ``keras.backend.clear_session()``. Measured (``benchmarks/memory.py`` and the
loop in ``tests/test_tf_workarounds.py``): a plain ``model.fit`` of the digits
template in a loop grew by 9.6 MiB per fit; a 60-trial kbnas search by 20 MiB per
trial.

`CustomGradientScope` records the registry's custom-gradient names on entry and
removes those registered inside it on exit. `kbnas.BayesianNAS.run_trial` runs each
trial in one: the trial's models are not trained again after it, and gradients
registered by the user's own models before or after a trial are left alone.

There is no public TensorFlow API for this; the registry's private attributes are
reached only here. If they are missing, the scope does nothing.
"""

from __future__ import annotations

CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


def _registry() -> dict | None:
    """TensorFlow's gradient registry (name → entry), or None where it is not reachable."""
    try:
        from tensorflow.python.framework import ops
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        return None
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


def custom_gradient_names() -> set[str]:
    """The ``CustomGradient-*`` names now registered (empty if the registry is unreachable)."""
    registry = _registry()
    if registry is None:
        return set()
    return {name for name in list(registry) if name.startswith(CUSTOM_GRADIENT_PREFIX)}


class CustomGradientScope:
    """``with CustomGradientScope():`` — custom gradients registered inside are removed on exit.

    Attributes:
        removed: how many were removed at the last exit.
    """

    def __init__(self) -> None:
        self._before: set[str] = set()
        self.removed = 0

    def __enter__(self) -> "CustomGradientScope":
        self._before = custom_gradient_names()
        return self

    def __exit__(self, *exc_info) -> None:
        registry = _registry()
        self.removed = 0
        if registry is None:
            return
        for name in custom_gradient_names() - self._before:
            if registry.pop(name, None) is not None:
                self.removed += 1
