"""Distance channels (`kbnas.featurizer`): shapes, the fidelity channel, and what enters the cache."""

from __future__ import annotations

import keras_tuner
import numpy as np

from kbnas.configurations import ConfigurationSpace
from kbnas.core.edit_distance import edit_distance
from kbnas.featurizer import Featurizer
from kbnas.space import Architecture, SearchSpace

SPACE = SearchSpace(input_shape=(8, 8, 1), vocabulary=("conv3", "maxpool", "relu", "dense"), filters=(16,),
                    units=(32,), min_depth=1, max_depth=3)


def _cspace():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("architecture", SPACE.to_hp_value(SPACE.default_architecture()))
    hp.Choice("learning_rate", [1e-3, 1e-2])
    return ConfigurationSpace(hp, SPACE, "architecture")


def _values(encoding, lr=1e-3):
    return {"architecture": encoding, "learning_rate": lr}


def test_channels_are_the_architecture_distance_then_one_per_hyperparameter_then_fidelity():
    cspace = _cspace()
    tried = [_values("conv3-16|relu"), _values("conv3-16|maxpool", 1e-2)]
    featurizer = Featurizer(SPACE, "edit", lambda v: v in tried)
    candidates = [_values("dense-32"), _values("conv3-16|relu|maxpool", 1e-2)]
    channels = featurizer.channels(cspace, candidates, tried)
    assert channels.shape == (2, 2, 2)
    for i, a in enumerate(candidates):
        for j, b in enumerate(tried):
            expected = edit_distance(Architecture.decode(a["architecture"]), Architecture.decode(b["architecture"]))
            assert channels[0, i, j] == expected
    assert (channels[1] > 0).tolist() == [[False, True], [True, False]]  # the learning-rate channel
    fidelities = np.array([1.0, 1 / 9])
    with_fidelity = featurizer.channels(cspace, candidates, tried, None, fidelities)
    np.testing.assert_allclose(with_fidelity[-1], np.tile(np.abs(np.log(1.0) - np.log(fidelities)), (2, 1)))


def test_only_tried_configurations_enter_the_cache():
    cspace = _cspace()
    tried = [_values("conv3-16|relu"), _values("dense-32")]
    featurizer = Featurizer(SPACE, "edit", lambda v: v in tried)
    featurizer.channels(cspace, tried, tried)
    assert len(featurizer) == 2
    pool = [_values(a.encode()) for a in SPACE.enumerate()][:30]
    pairwise = featurizer.channels(cspace, pool, pool)  # a candidate pool against itself
    featurizer.channels(cspace, pool, tried)  # candidates against the tried ones
    assert pairwise.shape[1:] == (30, 30) and len(featurizer) == 2
