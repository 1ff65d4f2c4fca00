"""kbnas.tf_workarounds: TensorFlow keeps every traced model alive through its
gradient registry (tensorflow/tensorflow#80895); the scope lets them go."""

from __future__ import annotations

import gc

import keras
import numpy as np
import pytest

from kbnas.tf_workarounds import CustomGradientScope, custom_gradient_names

pytestmark = pytest.mark.integration


def _fit_one():
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(64, 4)), rng.integers(0, 3, 64), epochs=1, batch_size=32, verbose=0)


def _graphs() -> int:
    gc.collect()
    return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())


def test_tensorflow_still_registers_custom_gradients_that_it_never_removes():
    """Fails when TensorFlow fixes #80895 (or moves its registry): then drop the workaround."""
    before = custom_gradient_names()
    _fit_one()
    assert custom_gradient_names() - before, "a Keras fit no longer registers CustomGradient-* names"


def test_the_scope_removes_what_was_registered_inside_it_only():
    _fit_one()
    earlier = custom_gradient_names()
    assert earlier
    with CustomGradientScope() as scope:
        _fit_one()
        inside = custom_gradient_names() - earlier
    assert inside and scope.removed == len(inside)
    assert custom_gradient_names() == earlier  # the ones from before are kept


def test_traced_graphs_no_longer_pile_up_fit_after_fit():
    for _ in range(2):
        _fit_one()
    start = _graphs()
    for _ in range(4):
        _fit_one()
    without = _graphs() - start  # the leak: graphs of every earlier fit stay alive
    start = _graphs()
    for _ in range(4):
        with CustomGradientScope():
            _fit_one()
    within = _graphs() - start
    assert without >= 4, without
    assert within <= 1, within
