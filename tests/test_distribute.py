"""Tests for kbnas.distribute, and training a hypermodel under MirroredStrategy."""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import pytest
import tensorflow as tf

from kbnas.distribute import default_strategy, describe_strategy, enable_mixed_precision_if_gpu

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Logical devices must be configured before TensorFlow initialises its runtime,
# so the two-replica run happens in a fresh interpreter.
TWO_CPU_REPLICAS = textwrap.dedent(
    """
    import json, math, sys
    import tensorflow as tf
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import keras, keras_tuner
    from kbnas.datasets import load_digits
    from kbnas.distribute import describe_strategy
    from kbnas.hypermodel import ConvNetHyperModel

    class BatchCounter(keras.callbacks.Callback):
        batches = 0
        def on_train_batch_end(self, batch, logs=None):
            BatchCounter.batches += 1

    x, y = load_digits("train")
    x, y = x[:200], y[:200]
    hypermodel = ConvNetHyperModel(filters=(4,), units=(8,)).configure(x, y)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    hp = keras_tuner.HyperParameters()
    with strategy.scope():
        model = hypermodel.build(hp)
    history = hypermodel.fit(
        hp, model, x, y, batch_size=25, epochs=1, verbose=0,
        validation_data=(x[:50], y[:50]), callbacks=[BatchCounter()],
    )
    # A model built under the strategy that never trained (KerasTuner's get_best_models):
    # exporting it builds its optimizer, in the strategy's scope.
    import tempfile
    from kbnas.export import export_model
    with strategy.scope():
        untrained = hypermodel.build(hp)
    exported = export_model(untrained, tempfile.mkdtemp() + "/export")
    reloaded = keras.models.load_model(exported.keras_model)
    print(json.dumps({
        "exported_optimizer_variables": len(reloaded.optimizer.variables),
        "replicas": strategy.num_replicas_in_sync,
        "model_replicas": model.distribute_strategy.num_replicas_in_sync,
        "loss": history.history["loss"][-1],
        "val_loss": history.history["val_loss"][-1],
        "batches": BatchCounter.batches,
        "description": describe_strategy(strategy),
    }))
    """
)


def run_script(script: str, *arguments: str) -> dict:
    """Run ``script`` in a fresh interpreter (logical devices are set before TensorFlow
    starts); its last line of output, a JSON object."""
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_hypermodel_trains_on_two_mirrored_cpu_replicas():
    report = run_script(TWO_CPU_REPLICAS)
    assert report["replicas"] == 2
    assert report["model_replicas"] == 2
    assert report["exported_optimizer_variables"] > 2  # built: Adam's slots, not only its step and rate
    assert math.isfinite(report["loss"]) and math.isfinite(report["val_loss"])
    # 200 examples, 25 per replica: global batches of 50, so 4 steps.
    assert report["batches"] == 4
    assert report["description"].startswith("MirroredStrategy with 2 replicas")
    assert "CPU:0" in report["description"].upper() and "CPU:1" in report["description"].upper()


def test_default_strategy_without_several_gpus_is_the_default_strategy():
    if len(tf.config.list_logical_devices("GPU")) > 1:
        assert isinstance(default_strategy(), tf.distribute.MirroredStrategy)
    else:
        strategy = default_strategy()
        assert strategy is tf.distribute.get_strategy()
        assert strategy.num_replicas_in_sync == 1
        assert describe_strategy(strategy) == "default strategy with 1 replica"


def test_mixed_precision_only_when_asked_and_gpu_present():
    previous = keras.mixed_precision.global_policy()
    try:
        assert enable_mixed_precision_if_gpu(False) is False
        assert keras.mixed_precision.global_policy().name == previous.name
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
        assert enable_mixed_precision_if_gpu(True) is has_gpu
        expected = "mixed_float16" if has_gpu else previous.name
        assert keras.mixed_precision.global_policy().name == expected
    finally:
        keras.mixed_precision.set_global_policy(previous)


# `kbnas search` whose trials train under a MirroredStrategy of 2 replicas (as on a host with
# two GPUs and --workers 1), and `kbnas export` of it: the chief retrains on one device.
CLI_TWO_CPU_REPLICAS = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import kbnas.distribute, kbnas.ensemble
    from kbnas import cli

    kbnas.distribute.default_strategy = lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    batches, replicas = [], []
    retrain = kbnas.ensemble.retrain

    def recording_retrain(build, x, y, **kwargs):
        batches.append(kwargs["batch_size"])
        def recording_build():
            model = build()
            replicas.append(model.distribute_strategy.num_replicas_in_sync)
            return model
        return retrain(recording_build, x, y, **kwargs)

    kbnas.ensemble.retrain = recording_retrain
    out = sys.argv[1]
    common = ["--output", out, "--quiet", "--no-report", "--ensemble", "1"]
    assert cli.main(["search", "--workers", "1", "--max-trials", "1", "--epochs", "1", "--batch-size", "8",
                     "--max-depth", "2", "--selection", "validation", *common]) == 0
    assert cli.main(["export", *common]) == 0
    # Resumed where trials train on one device: the run keeps the count it began with.
    kbnas.distribute.default_strategy = lambda: tf.distribute.get_strategy()
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(["search", "--workers", "1", "--max-trials", "2", "--epochs", "1", "--batch-size", "8",
                         "--max-depth", "2", "--selection", "validation", *common]) == 0
    run = json.load(open(out + "/kbnas_run.json"))
    print(json.dumps({"trial_devices": run.get("trial_devices"), "batch_size": run["batch_size"],
                      "retrain_batches": batches, "retrain_replicas": replicas,
                      "warnings": [str(w.message) for w in caught if "device(s) each" in str(w.message)]}))
    """
)


@pytest.mark.integration
def test_the_chief_retrains_with_the_global_batch_of_trials_on_two_replicas(tmp_path):
    report = run_script(CLI_TWO_CPU_REPLICAS, str(tmp_path / "run"))
    assert report["trial_devices"] == 2 and report["batch_size"] == 8
    # The search's retraining, the export's (which reads trial_devices from the run file) and the
    # resumed search's: each on one device at the first trials' global batch, 8 per replica x 2.
    assert report["retrain_batches"] == [16, 16, 16]
    assert report["retrain_replicas"] == [1, 1, 1]
    assert len(report["warnings"]) == 1 and "trained on 2 device(s) each, these train on 1" in report["warnings"][0]


def test_the_chiefs_global_batch_is_the_batch_times_the_trial_devices():
    from types import SimpleNamespace

    from kbnas.cli.best import _global_batch_size

    assert _global_batch_size(SimpleNamespace(batch_size=8, trial_devices=2)) == 16
    assert _global_batch_size(SimpleNamespace(batch_size=8)) == 8  # an export of a search from before
    assert _global_batch_size(SimpleNamespace(batch_size=None, trial_devices=2)) is None
