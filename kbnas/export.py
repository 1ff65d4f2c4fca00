"""Export a found model for serving, with a description of what it is.

`export_model` writes one directory:

    <directory>/
        saved_model/          TensorFlow SavedModel (``saved_model/<version>/`` when
                              ``versioned=True``, the layout TF Serving expects)
        model.keras           the native Keras model (reload with keras.models.load_model)
        architecture.json     layers with output shapes and parameter counts, the
                              architecture encoding, validation score and objective,
                              trial id, search settings, kbnas/TensorFlow/Keras versions

The SavedModel has one serving signature (``serving_default`` unless renamed)
taking a float32 batch of *raw* inputs — the model normalises them itself — with
an unknown batch dimension. Exporting over a previous export replaces it (a
versioned export adds the next version number instead); any other non-empty
directory is refused.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
import shutil
import tempfile
from typing import Any, Mapping

import keras
import tensorflow as tf

from kbnas.layout import EXPORT_STAGING_PREFIX
from kbnas.model_builder import architecture_layer_names, layer_name
from kbnas.space import Architecture, SearchSpace

#: Marker stored in architecture.json, to recognise previous exports.
EXPORT_FORMAT = "kbnas-export"
#: Name prefix of the folder an export is written into before it replaces the previous one.
STAGING_PREFIX = EXPORT_STAGING_PREFIX
EXPORT_FORMAT_VERSION = 1
SAVED_MODEL_DIRNAME = "saved_model"
KERAS_FILENAME = "model.keras"
ARCHITECTURE_FILENAME = "architecture.json"
_EXPORT_ENTRIES = (SAVED_MODEL_DIRNAME, KERAS_FILENAME, ARCHITECTURE_FILENAME)


@dataclasses.dataclass(frozen=True)
class ExportPaths:
    """Where `export_model` wrote each artefact.

    Attributes:
        directory: the export directory.
        saved_model: the SavedModel directory (``…/saved_model`` or
            ``…/saved_model/<version>``).
        keras_model: the ``model.keras`` file.
        architecture_json: the ``architecture.json`` file.
        version: the SavedModel version number, or None when not versioned.
    """

    directory: pathlib.Path
    saved_model: pathlib.Path
    keras_model: pathlib.Path
    architecture_json: pathlib.Path
    version: int | None = None


def export_model(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    architecture: Architecture | str | None = None,
    search_space: SearchSpace | None = None,
    score: float | None = None,
    objective: Any = None,
    trial_id: str | None = None,
    search_settings: Mapping[str, Any] | None = None,
    versioned: bool = False,
    signature_name: str = "serving_default",
) -> ExportPaths:
    """Write a SavedModel, a ``.keras`` file and ``architecture.json``.

    Args:
        model: a single-input functional or built Keras model.
        directory: export directory; created if missing. It must be empty, absent
            or a previous export.
        architecture: the model's architecture (or its encoding), recorded with
            per-layer shapes and parameters when `search_space` is given.
        search_space: the space the architecture comes from; its config is
            recorded, and the model's parameter count is checked against
            ``search_space.param_count(architecture)``.
        score: the validation score of the model.
        objective: name of the objective (a string, or a `keras_tuner.Objective`,
            whose name and direction are recorded).
        trial_id: KerasTuner trial id.
        search_settings: JSON-serialisable settings of the search (tuner,
            budget, seed, …), recorded as given.
        versioned: write the SavedModel under ``saved_model/<n>/``, n = 1 or the
            previous export's highest version + 1 (TF Serving serves the highest).
        signature_name: name of the serving signature.

    Returns:
        The `ExportPaths`.

    Raises:
        FileExistsError: `directory` is a non-empty directory that is not a
            previous export, or a file.
        ValueError: the model does not have exactly one input, or its parameter
            count disagrees with the architecture in `search_space`.
    """
    directory = pathlib.Path(directory)
    _check_target(directory)
    if len(model.inputs) != 1:
        raise ValueError(f"export_model supports single-input models; this one has {len(model.inputs)}")
    if isinstance(architecture, str):
        architecture = Architecture.decode(architecture)
    description = describe_model(
        model,
        architecture=architecture,
        search_space=search_space,
        score=score,
        objective=objective,
        trial_id=trial_id,
        search_settings=search_settings,
    )
    version = _next_version(directory) if versioned else None
    description["files"] = {
        "saved_model": SAVED_MODEL_DIRNAME + ("" if version is None else f"/{version}"),
        "signature_name": signature_name,
        "keras_model": KERAS_FILENAME,
    }
    try:
        description_text = json.dumps(description, indent=2) + "\n"
    except TypeError as error:
        raise ValueError(f"search_settings must be JSON-serialisable: {error}") from None

    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob(f"{STAGING_PREFIX}*"):  # of an export that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=directory))
    try:
        _write_saved_model(model, staging / SAVED_MODEL_DIRNAME, signature_name)
        _build_optimizer(model)
        model.save(staging / KERAS_FILENAME)
        (staging / ARCHITECTURE_FILENAME).write_text(description_text)
        saved_model_path = _install(staging, directory, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportPaths(
        directory=directory,
        saved_model=saved_model_path,
        keras_model=directory / KERAS_FILENAME,
        architecture_json=directory / ARCHITECTURE_FILENAME,
        version=version,
    )


def _build_optimizer(model: keras.Model) -> None:
    """Creates the variables of a compiled model's optimizer that never stepped (a model
    rebuilt for its checkpoint, an ensemble): saved unbuilt, ``keras.models.load_model``
    warns that it skips loading its 2 variables against the built optimizer's."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        with model.distribute_strategy.scope():  # a model built under a MirroredStrategy: its variables' scope
            optimizer.build(model.trainable_variables)


def is_export_directory(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a previous `export_model` export."""
    path = pathlib.Path(directory) / ARCHITECTURE_FILENAME
    try:
        return json.loads(path.read_text()).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def holds_files(directory: pathlib.Path) -> bool:
    """Whether ``directory`` holds anything but what a killed export left behind."""
    return any(not entry.name.startswith(STAGING_PREFIX) for entry in directory.iterdir())


def _check_target(directory: pathlib.Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"export target {directory} exists and is not a directory")
    if directory.is_dir() and holds_files(directory) and not is_export_directory(directory):
        raise FileExistsError(
            f"refusing to export into {directory}: it is not empty and holds no previous "
            f"kbnas export ({ARCHITECTURE_FILENAME} missing); choose an empty or new directory"
        )


def exported_versions(directory: str | os.PathLike) -> list[int]:
    """The SavedModel versions of a versioned export in ``directory`` (``saved_model/<n>/``),
    ascending; empty for an unversioned export or none."""
    return _existing_versions(pathlib.Path(directory) / SAVED_MODEL_DIRNAME)


def _existing_versions(saved_model_root: pathlib.Path) -> list[int]:
    if not saved_model_root.is_dir():
        return []
    return sorted(int(entry.name) for entry in saved_model_root.iterdir() if entry.is_dir() and entry.name.isdigit())


def _next_version(directory: pathlib.Path) -> int:
    versions = _existing_versions(directory / SAVED_MODEL_DIRNAME)
    return versions[-1] + 1 if versions else 1


def _install(staging: pathlib.Path, directory: pathlib.Path, version: int | None) -> pathlib.Path:
    """Move the staged export into place, replacing a previous export's files."""
    saved_model_root = directory / SAVED_MODEL_DIRNAME
    if version is None:
        if saved_model_root.exists():
            shutil.rmtree(saved_model_root)
        target = saved_model_root
    else:
        if (saved_model_root / "saved_model.pb").exists():
            # A previous unversioned export: its files would shadow the version folders.
            shutil.rmtree(saved_model_root)
        saved_model_root.mkdir(exist_ok=True)
        target = saved_model_root / str(version)
    os.replace(staging / SAVED_MODEL_DIRNAME, target)
    for name in (KERAS_FILENAME, ARCHITECTURE_FILENAME):
        os.replace(staging / name, directory / name)
    return target


def _write_saved_model(model: keras.Model, path: pathlib.Path, signature_name: str) -> None:
    model_input = model.inputs[0]
    input_spec = tf.TensorSpec(
        shape=(None,) + tuple(model_input.shape[1:]),
        dtype=tf.as_dtype(model_input.dtype),
        name="inputs",
    )
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=signature_name,
        fn=lambda inputs: model(inputs, training=False),
        input_signature=[input_spec],
    )
    archive.write_out(str(path), verbose=False)


def _shape_list(shape: Any) -> list[int | None]:
    return [None if size is None else int(size) for size in shape]


def _normalization_params(model: keras.Model) -> int:
    return sum(
        layer.count_params()
        for layer in model.layers
        if isinstance(layer, keras.layers.Normalization)
    )


def _versions() -> dict[str, str | None]:
    import kbnas

    versions = {"kbnas": getattr(kbnas, "__version__", None), "tensorflow": tf.__version__, "keras": keras.__version__}
    try:
        import keras_tuner

        versions["keras_tuner"] = keras_tuner.__version__
    except ImportError:
        versions["keras_tuner"] = None
    return versions


def describe_model(
    model: keras.Model,
    *,
    architecture: Architecture | None = None,
    search_space: SearchSpace | None = None,
    score: float | None = None,
    objective: Any = None,
    trial_id: str | None = None,
    search_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON-serialisable description written to ``architecture.json``.

    Keys: ``format``, ``format_version``, ``created`` (UTC ISO time),
    ``input_shape``/``output_shape`` (batch dimension null), ``layers`` (one
    entry per Keras layer: name, class, output shape, params), ``total_params``,
    ``trainable_params``, ``architecture`` (encoding, and per architecture
    layer its token, output shape and params when the space is known, or null;
    of each member for an ensemble), ``ensemble`` (``{"members", "combination"}``
    for a `kbnas.ensemble.average_models` model, else null),
    ``search_space`` (its config, or null), ``score``, ``objective``
    (``{"name", "direction"}`` or null), ``trial_id``, ``search_settings``,
    ``versions``.

    Raises:
        ValueError: the model's parameter count (without Normalization layers)
            differs from ``search_space.param_count(architecture)``, or a model
            `kbnas.model_builder.build_model` made has other layers than the architecture.
    """
    from kbnas.ensemble import ensemble_members

    members = ensemble_members(model)
    layers = []
    for layer in model.layers:
        try:
            output_shape = _shape_list(layer.output.shape)
        except (AttributeError, ValueError):
            output_shape = None
        layers.append(
            {
                "name": layer.name,
                "class_name": type(layer).__name__,
                "output_shape": output_shape,
                "params": int(layer.count_params()),
            }
        )
    architecture_entry = None
    if architecture is not None:
        architecture_entry = {"encoding": architecture.encode(), "depth": len(architecture)}
        if search_space is not None:
            expected = search_space.param_count(architecture)
            expected_names = [layer_name(position, layer) for position, layer in enumerate(architecture)]
            for member in members:  # an ensemble's members are each the architecture
                actual = member.count_params() - _normalization_params(member)
                if expected != actual:
                    raise ValueError(
                        f"the model has {actual} parameters, but architecture "
                        f"{architecture.encode()!r} has {expected} in the search space: is it "
                        "the right architecture?"
                    )
                names = architecture_layer_names(member)
                if names and names != expected_names:  # a model kbnas built (a model of your own: no such names)
                    raise ValueError(
                        f"the model's layers are {names}, but architecture {architecture.encode()!r} "
                        f"builds {expected_names}: is it the right architecture?"
                    )
            architecture_entry["layers"] = [
                {"token": layer.encode(), "output_shape": list(shape), "params": params}
                for layer, shape, params in zip(
                    architecture,
                    search_space.output_shapes(architecture),
                    search_space.param_counts(architecture),
                )
            ]
            architecture_entry["head_params"] = search_space.head_param_count(architecture)
            architecture_entry["param_count"] = expected
    objective_entry = None
    if objective is not None:
        if isinstance(objective, str):
            objective_entry = {"name": objective, "direction": None}
        else:
            objective_entry = {
                "name": str(getattr(objective, "name", objective)),
                "direction": getattr(objective, "direction", None),
            }
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model_name": model.name,
        "input_shape": _shape_list(model.inputs[0].shape),
        "output_shape": _shape_list(model.outputs[0].shape) if getattr(model, "outputs", None) else None,
        "layers": layers,
        "total_params": int(model.count_params()),
        "trainable_params": int(sum(math.prod(weight.shape) for weight in model.trainable_weights)),
        "architecture": architecture_entry,
        "ensemble": None if len(members) == 1 else {"members": len(members), "combination": "mean of the outputs"},
        "search_space": None if search_space is None else search_space.to_config(),
        "score": None if score is None else float(score),
        "objective": objective_entry,
        "trial_id": trial_id,
        "search_settings": None if search_settings is None else dict(search_settings),
        "versions": _versions(),
    }
