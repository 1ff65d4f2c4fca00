"""The examples run end to end with tiny settings (2 trials, 1 epoch).

Each example is run as a subprocess, as a user would run it, into ``tmp_path``.
``mnist_or_cifar10.py`` downloads its data, so it is only compiled.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import py_compile
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
REPOSITORY = EXAMPLES.parent
EXAMPLE_FILES = (
    "quickstart_digits.py",
    "mnist_or_cifar10.py",
    "tf_data_pipeline.py",
    "hyperparameter_search.py",
)
TINY = ("--max-trials", "2", "--epochs", "1")
SUBPROCESS_TIMEOUT_SECONDS = 300


def run_example(name: str, *arguments: str, cwd: pathlib.Path) -> str:
    """Run one example; fail with its output unless it exits with 0. Returns stdout."""
    environment = dict(os.environ)
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")])
    )
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
    )
    assert completed.returncode == 0, (
        f"{name} exited with {completed.returncode}\n--- stdout\n{completed.stdout}\n"
        f"--- stderr\n{completed.stderr[-4000:]}"
    )
    return completed.stdout


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_compiles_and_has_a_runnable_shape(name, tmp_path):
    path = EXAMPLES / name
    py_compile.compile(str(path), cfile=str(tmp_path / "compiled.pyc"), doraise=True)
    tree = ast.parse(path.read_text())
    docstring = ast.get_docstring(tree)
    assert docstring and f"python examples/{name}" in docstring, "the docstring says how to run it"
    assert any(
        isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
        for node in tree.body
    ), "a __main__ guard"


@pytest.mark.integration
def test_quickstart_digits(tmp_path):
    output = tmp_path / "quickstart"
    stdout = run_example("quickstart_digits.py", *TINY, "--output", str(output), cwd=tmp_path)

    assert "Results summary" in stdout
    accuracy = float(re.search(r"test accuracy of the best model: ([0-9.]+)", stdout).group(1))
    assert 0.0 <= accuracy <= 1.0
    description = json.loads((output / "export" / "architecture.json").read_text())
    assert description["objective"] == {"name": "val_accuracy", "direction": "max"}
    assert description["search_settings"] == {"max_trials": 2, "epochs": 1, "seed": 0}
    assert f"best architecture (trial {description['trial_id']}, val_accuracy={description['score']:.4f})" in stdout
    assert (output / "export" / "saved_model" / "saved_model.pb").is_file()
    assert len(list((output / "search").glob("trial_*/trial.json"))) == 2


@pytest.mark.integration
def test_tf_data_pipeline(tmp_path):
    output = tmp_path / "tf_data"
    stdout = run_example("tf_data_pipeline.py", *TINY, "--output", str(output), cwd=tmp_path)

    assert "SavedModel predictions served in tf.data match the Keras model" in stdout
    assert "on 359 images" in stdout  # the whole test split went through the pipeline
    assert (output / "export" / "saved_model" / "saved_model.pb").is_file()


@pytest.mark.integration
def test_hyperparameter_search(tmp_path):
    output = tmp_path / "hyperparameters"
    stdout = run_example("hyperparameter_search.py", *TINY, "--output", str(output), cwd=tmp_path)

    assert "best val_accuracy after 2 trials of 1 epochs:" in stdout
    for name in (
        "kbnas.BayesianNAS",
        "keras_tuner.Tuner + BayesianNASOracle",
        "keras_tuner.BayesianOptimization",
    ):
        score = float(re.search(re.escape(name) + r"\s+([0-9.]+)", stdout).group(1))
        assert 0.0 <= score <= 1.0
    for project in ("kbnas_tuner", "kbnas_oracle", "keras_tuner_bayesian"):
        assert len(list((output / project).glob("trial_*/trial.json"))) == 2
