"""Distribution strategies and mixed precision for the search.

A search trains many small models one after another; each one can use every GPU
of the machine through `tf.distribute.MirroredStrategy` (synchronous data
parallelism: each replica sees ``batch_size`` examples per step, so the global
batch is ``batch_size * num_replicas_in_sync``). `ConvNetHyperModel.fit` scales
its batch size by the replica count of the current strategy.

Pass the strategy to the tuner (``distribution_strategy=default_strategy()``):
KerasTuner builds every model under its scope.
"""

from __future__ import annotations

import logging
from typing import Any

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


def default_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all visible GPUs when there are several, else the default.

    Returns:
        `tf.distribute.MirroredStrategy` when more than one GPU is visible;
        otherwise `tf.distribute.get_strategy()` (the default strategy of the
        current context: one device, no replication).
    """
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def describe_strategy(strategy: Any) -> str:
    """One-line human description of a strategy: class, replica count, devices.

    Args:
        strategy: a `tf.distribute.Strategy`.

    Returns:
        e.g. ``"MirroredStrategy with 2 replicas on /job:localhost/.../device:CPU:0,
        …"``, or ``"default strategy with 1 replica"``.
    """
    replicas = strategy.num_replicas_in_sync
    try:
        devices = list(strategy.extended.worker_devices)
    except (AttributeError, NotImplementedError, RuntimeError):
        # The default strategy has no device list: it runs where ops are placed.
        devices = []
    where = f" on {', '.join(devices)}" if devices else ""
    noun = "replica" if replicas == 1 else "replicas"
    name = type(strategy).__name__
    if name.startswith("_Default"):
        name = "default strategy"
    return f"{name} with {replicas} {noun}{where}"


def enable_mixed_precision_if_gpu(enabled: bool) -> bool:
    """Set the global Keras dtype policy to ``mixed_float16`` when a GPU is present.

    Mixed precision computes in float16 and keeps variables in float32; it speeds
    up training on GPUs with tensor cores and slows it down on CPUs, so it is
    only switched on when asked *and* a GPU is visible. `ConvNetHyperModel`
    keeps its input normalisation and output head in float32 so losses and
    outputs stay float32. Call this before building models.

    Args:
        enabled: whether mixed precision is wanted.

    Returns:
        True if the policy was set to ``mixed_float16``; False if it was left
        unchanged (not asked, or no GPU).
    """
    if not enabled:
        return False
    if not tf.config.list_physical_devices("GPU"):
        logger.info("mixed precision requested but no GPU is visible; staying in float32")
        return False
    keras.mixed_precision.set_global_policy("mixed_float16")
    return True
