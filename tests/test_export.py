"""Tests for kbnas.export: SavedModel, .keras and architecture.json."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import kbnas
from kbnas.datasets import load_digits
from kbnas.export import ExportPaths, export_model, is_export_directory
from kbnas.hypermodel import ConvNetHyperModel
from kbnas.space import Architecture

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

RELOAD_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    import keras

    export_dir, inputs_path, out_dir = sys.argv[1:4]
    x = np.load(inputs_path)
    loaded = tf.saved_model.load(export_dir + "/saved_model")
    signature = loaded.signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.shape[0] is None, spec
    (signature_output,) = signature(inputs=tf.constant(x)).values()
    np.save(out_dir + "/saved_model.npy", signature_output.numpy())
    np.save(out_dir + "/endpoint.npy", loaded.serving_default(tf.constant(x)).numpy())
    layer = keras.layers.TFSMLayer(export_dir + "/saved_model", call_endpoint="serving_default")
    np.save(out_dir + "/tfsm_layer.npy", np.asarray(layer(x)))
    reloaded = keras.models.load_model(export_dir + "/model.keras")
    np.save(out_dir + "/keras.npy", reloaded.predict(x, verbose=0))
    """
)


@pytest.fixture(scope="module")
def trained():
    x, y = load_digits("train")
    hypermodel = ConvNetHyperModel(filters=(4, 8), units=(16,)).configure(x[:300], y[:300])
    architecture = Architecture.decode("conv3-8|relu|maxpool|dense-16|relu")
    model = hypermodel.build_architecture(architecture)
    model.fit(x[:300], y[:300], epochs=1, batch_size=32, verbose=0)
    x_test, _ = load_digits("test")
    return model, architecture, hypermodel.search_space, x_test[:16]


def test_export_layout_and_description(trained, tmp_path):
    model, architecture, space, _ = trained
    objective = keras_tuner.Objective("val_accuracy", "max")
    paths = export_model(
        model, tmp_path / "best", architecture=architecture, search_space=space, score=0.875,
        objective=objective, trial_id="07", search_settings={"max_trials": 3, "seed": 1},
    )
    assert paths == ExportPaths(
        directory=tmp_path / "best",
        saved_model=tmp_path / "best" / "saved_model",
        keras_model=tmp_path / "best" / "model.keras",
        architecture_json=tmp_path / "best" / "architecture.json",
        version=None,
    )
    assert (paths.saved_model / "saved_model.pb").is_file()
    assert paths.keras_model.is_file()
    assert sorted(p.name for p in paths.directory.iterdir()) == ["architecture.json", "model.keras", "saved_model"]
    assert is_export_directory(paths.directory)

    description = json.loads(paths.architecture_json.read_text())
    assert description["format"] == "kbnas-export"
    assert description["architecture"]["encoding"] == "conv3-8|relu|maxpool|dense-16|relu"
    assert [entry["token"] for entry in description["architecture"]["layers"]] == architecture.encode().split("|")
    assert [entry["output_shape"] for entry in description["architecture"]["layers"]] == [
        [8, 8, 8], [8, 8, 8], [4, 4, 8], [16], [16]
    ]
    assert description["architecture"]["param_count"] == space.param_count(architecture) == model.count_params()
    assert description["total_params"] == model.count_params()
    layers = {entry["name"]: entry for entry in description["layers"]}
    assert layers["l0_conv3_8"] == {
        "name": "l0_conv3_8", "class_name": "Conv2D", "output_shape": [None, 8, 8, 8], "params": 3 * 3 * 8 + 8,
    }
    assert layers["head"]["params"] == 16 * 10 + 10
    assert description["input_shape"] == [None, 8, 8, 1]
    assert description["score"] == 0.875
    assert description["objective"] == {"name": "val_accuracy", "direction": "max"}
    assert description["trial_id"] == "07"
    assert description["search_settings"] == {"max_trials": 3, "seed": 1}
    assert description["search_space"] == space.to_config()
    assert description["versions"] == {
        "kbnas": kbnas.__version__, "tensorflow": tf.__version__,
        "keras": keras.__version__, "keras_tuner": keras_tuner.__version__,
    }
    assert description["files"] == {
        "saved_model": "saved_model", "signature_name": "serving_default", "keras_model": "model.keras",
    }


@pytest.mark.integration
def test_reloaded_exports_predict_like_the_model_in_a_fresh_process(trained, tmp_path):
    model, architecture, space, x = trained
    paths = export_model(model, tmp_path / "export", architecture=architecture, search_space=space)
    np.save(tmp_path / "inputs.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_IN_FRESH_PROCESS, str(paths.directory), str(tmp_path / "inputs.npy"), str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = model.predict(x, verbose=0)
    assert expected.shape == (16, 10)
    assert not np.allclose(expected, expected[0])  # the inputs are raw and different
    for name in ("saved_model", "endpoint", "tfsm_layer", "keras"):
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected, atol=1e-5, err_msg=name)


def test_versioned_exports_count_up(trained, tmp_path):
    model, architecture, space, _ = trained
    export_model(model, tmp_path)
    first = export_model(model, tmp_path, versioned=True)
    assert not (tmp_path / "saved_model" / "saved_model.pb").exists()
    second = export_model(model, tmp_path, versioned=True, architecture=architecture)
    assert (first.version, second.version) == (1, 2)
    assert first.saved_model == tmp_path / "saved_model" / "1"
    assert (second.saved_model / "saved_model.pb").is_file()
    assert (first.saved_model / "saved_model.pb").is_file()
    assert json.loads(second.architecture_json.read_text())["files"]["saved_model"] == "saved_model/2"


def test_overwrites_a_previous_export_but_nothing_else(trained, tmp_path):
    model, _, _, _ = trained
    target = tmp_path / "export"
    export_model(model, target, versioned=True)
    (target / "notes.txt").write_text("mine")
    paths = export_model(model, target, signature_name="predict")
    assert (paths.saved_model / "saved_model.pb").is_file()
    assert not (target / "saved_model" / "1").exists()
    assert (target / "notes.txt").read_text() == "mine"
    assert {"predict", "serving_default"} <= set(tf.saved_model.load(str(paths.saved_model)).signatures)
    assert not [entry for entry in target.iterdir() if entry.name.startswith(".kbnas-export")]

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "data.csv").write_text("1,2\n")
    with pytest.raises(FileExistsError, match="not empty"):
        export_model(model, occupied)
    assert sorted(p.name for p in occupied.iterdir()) == ["data.csv"]
    with pytest.raises(FileExistsError, match="not a directory"):
        export_model(model, occupied / "data.csv")

    # What a killed first export leaves (its staging folder) is no obstacle, and is removed.
    killed = tmp_path / "killed"
    (killed / ".kbnas-export-abc123" / "saved_model").mkdir(parents=True)
    export_model(model, killed)
    assert sorted(p.name for p in killed.iterdir()) == ["architecture.json", "model.keras", "saved_model"]


def test_rejects_an_architecture_that_is_not_the_model(trained, tmp_path):
    model, _, space, _ = trained
    with pytest.raises(ValueError, match="is it the right architecture"):
        export_model(model, tmp_path / "x", architecture="conv3-4|relu|maxpool|dense-16|relu", search_space=space)
    assert not (tmp_path / "x").exists()
    # The same parameter count, other layers: the layer names tell (relu and dropout have no weights).
    with pytest.raises(ValueError, match=r"the model's layers are \['l0_conv3_8', 'l1_relu', 'l2_maxpool', "
                                         r"'l3_dense_16', 'l4_relu'\], but architecture 'conv3-8\|maxpool\|relu\|"
                                         r"dense-16\|relu' builds"):
        export_model(model, tmp_path / "x", architecture="conv3-8|maxpool|relu|dense-16|relu", search_space=space)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        export_model(model, tmp_path / "y", search_settings={"callback": object()})


def test_a_model_that_never_trained_loads_without_optimizer_warnings(trained, tmp_path):
    """A model rebuilt for a checkpoint (get_best_models) or an ensemble has a compiled
    optimizer that never stepped; saved so, Keras warned on every load that it skipped
    loading the optimizer's variables."""
    import warnings

    _, architecture, space, x = trained
    hypermodel = ConvNetHyperModel(filters=(4, 8), units=(16,)).configure(input_shape=(8, 8, 1), task="multiclass",
                                                                          num_classes=10)
    model = hypermodel.build_architecture(architecture)
    paths = export_model(model, tmp_path / "e", architecture=architecture, search_space=space)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reloaded = keras.models.load_model(paths.keras_model)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
