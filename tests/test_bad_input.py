"""Bad input, refused before any trial starts: one line and exit status 2 from
``kbnas search``, the same message as a ``ValueError`` from the Python API.

One table of cases. Each builds the ``kbnas search`` arguments; the cases that
exist in the Python API also say how to reach them there
(`ConvNetHyperModel.configure`, `BayesianNAS`, `BayesianNAS.search`).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from kbnas.cli import main

pytestmark = pytest.mark.integration

FAST = ["--max-trials", "2", "--epochs", "1", "--max-depth", "3", "--no-retrain"]
RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4)).astype("float32")
Y = RNG.integers(0, 3, size=60)


def _with(array, index, value):
    array = np.array(array, dtype=float if isinstance(value, float) else array.dtype)
    array.flat[index] = value
    return array


#: name → (x, y) for the array cases (written as .npz for the CLI).
ARRAYS = {
    "empty arrays": (np.zeros((0, 4), "float32"), np.zeros(0, int)),
    "length mismatch": (X, Y[:-1]),
    "nan in x": (_with(X, 5, np.nan), Y),
    "inf in x": (_with(X, 5, np.inf), Y),
    "rank 5 x": (RNG.normal(size=(60, 2, 2, 2, 2)), Y),
    "rank 1 x": (RNG.normal(size=60), Y),
    "string labels": (X, np.array(["a", "b", "c"] * 20)),
    "negative labels": (X, _with(Y, 0, -1)),
    "single class": (X, np.zeros(60, int)),
    "labels of shape (N, 2)": (X, np.stack([Y, Y], axis=1)),
    "regression target beyond float32": (X, _with(RNG.normal(size=60), 0, 1e39)),
    # Inside float32, but its square is not: the loss would be infinite in every trial.
    "regression target whose squared errors overflow": (X, _with(RNG.normal(size=60), 0, 3e38)),
    "constant regression target": (X, np.full(60, 2.5)),
    "x beyond float32 in float64": (_with(X, 5, 1e300), Y),
    # A fill value of 1e21 in one cell: the normalization's variance is infinite in float32.
    "x whose variance overflows float32": (_with(X, 5, 1e21), Y),
}
#: name → expected fragment of the message (lower case).
EXPECTED = {
    "empty arrays": "x is empty",
    "length mismatch": "lengths differ",
    "nan in x": "nan or infinite",
    "inf in x": "nan or infinite",
    "rank 5 x": "rank 5",
    "rank 1 x": "rank 1",
    "string labels": "must be numeric",
    "negative labels": "non-negative",
    "single class": "single class",
    "labels of shape (N, 2)": "one label per example",
    "regression target beyond float32": "y holds the regression target 1e+39, beyond float32's range",
    "regression target whose squared errors overflow": "y's regression targets lie up to 3e+38 from their mean: "
                                                       "squared errors that large are beyond float32's range",
    "constant regression target": "y is constant (every target is 2.5): a constant target cannot be learned",
    "x beyond float32 in float64": "x holds 1e+300 (example 1), beyond float32's range",
    "x whose variance overflows float32": "x's feature 1 values reach 1e+21: their variance (1.6e+40) is beyond "
                                          "float32's range",
    "semicolon-separated csv": "the file seems separated by ';', and kbnas reads comma-separated values",
    "csv with na for a missing value": "line 3, column 'a' holds 'na', a missing value",
    "output name too long": "file name too long",
    "csv label beyond float32": "line 3, column 'label' (the label) holds '1e39', beyond float32's range",
    "csv without features": "data.csv: no feature columns, only the label column 'label'",
    "cross-validation on too few examples": "--selection cross-validation needs at least 3 train + validation "
                                            "examples (3 folds), the data give 2",
    "fractional labels for multiclass": "non-integer values",
    "too few examples to split": "too few examples to split: 2; the 60/20/20 train/validation/test split needs at least 3",
    "a class with too few examples": "class with too few examples",
    "missing file": "no such file",
    "text file named .npz": "not an .npz archive",
    "unsupported extension": "unsupported data file",
    "empty csv": "empty csv file",
    "ragged csv": "line 3 has 2 cells",
    "non-numeric csv": "line 2, column 'b' holds 'x', not a number",
    "csv with a missing value": "line 3, column 'a' is empty (a missing value)",
    "missing label column": "no column named",
    "image folder without class folders": "one subfolder per class",
    "image folder without images": "no images found",
    "max trials 0": "--max-trials must be at least 1",
    "epochs 0": "--epochs must be at least 1",
    "batch size 0": "--batch-size must be at least 1",
    "batch size -5": "--batch-size must be at least 1",
    "learning rate 0": "--learning-rate must be a positive number",
    "learning rate nan": "--learning-rate must be a positive number",
    "max depth 0": "--max-depth must be between 1 and 100",
    "max depth 1000": "--max-depth must be between 1 and 100",
    "time budget 0": "positive duration",
    "time budget garbled": "positive duration",
    "seed -1": "--seed: expected a non-negative integer",
    "unknown acquisition": "--acquisition: invalid choice",
    "unknown distance": "--distance: invalid choice",
    "workers 0": "--workers",
    "ensemble 0": "--ensemble must be at least 1",
    "ensemble without retraining": "--ensemble 3 needs --retrain",
    "listen without port": "--listen: expected an address",
    "invalid start architecture": "initial point 1",
    "output is a file": "is a file, not a folder",
    "output below a file": "cannot be a folder",
    "output holds something else": "holds no kbnas search",
}


def _cli_args(case: str, tmp_path) -> list[str]:
    def npz(x, y):
        path = tmp_path / "data.npz"
        np.savez(path, x=x, y=y)
        return ["--data", str(path)]

    def text(name, content):
        path = tmp_path / name
        path.write_text(content)
        return ["--data", str(path)]

    if case in ARRAYS:
        return npz(*ARRAYS[case])
    options = {
        "max trials 0": ["--max-trials", "0"],
        "epochs 0": ["--epochs", "0"],
        "batch size 0": ["--batch-size", "0"],
        "batch size -5": ["--batch-size", "-5"],
        "learning rate 0": ["--learning-rate", "0"],
        "learning rate nan": ["--learning-rate", "nan"],
        "max depth 0": ["--max-depth", "0"],
        "max depth 1000": ["--max-depth", "1000"],
        "time budget 0": ["--time-budget", "0"],
        "time budget garbled": ["--time-budget", "3 minutes"],
        "seed -1": ["--seed", "-1"],
        "unknown acquisition": ["--acquisition", "magic"],
        "unknown distance": ["--distance", "magic"],
        "workers 0": ["--workers", "0"],
        "ensemble 0": ["--ensemble", "0"],
        "ensemble without retraining": ["--ensemble", "3", "--no-retrain"],
        "listen without port": ["--listen", "localhost"],
        "invalid start architecture": ["--start", "dense-32|conv3-16"],
        "missing file": ["--data", str(tmp_path / "nope.npz")],
    }
    if case in options:
        return options[case]
    if case == "fractional labels for multiclass":
        return npz(X, Y + 0.5) + ["--task", "multiclass"]
    if case == "too few examples to split":
        return npz(X[:2], np.array([0, 1]))
    if case == "a class with too few examples":
        return npz(X, _with(Y, 0, 3))
    if case == "text file named .npz":
        return text("data.npz", "hello")
    if case == "unsupported extension":
        return text("data.txt", "hello")
    if case == "empty csv":
        return text("data.csv", "")
    if case == "ragged csv":
        return text("data.csv", "a,b,label\n1,2,0\n1,0\n")
    if case == "semicolon-separated csv":
        return text("data.csv", "a;b;label\n1;2;0\n3;4;1\n")
    if case == "csv with na for a missing value":
        return text("data.csv", "a,b,label\n1,2,0\nNA,2,1\n")
    if case == "output name too long":
        return ["--output", str(tmp_path / ("a" * 300))]
    if case == "csv with a missing value":
        return text("data.csv", "a,b,label\n1,2,0\n,2,1\n")
    if case == "non-numeric csv":
        return text("data.csv", "a,b,label\n1,x,0\n1,2,1\n")
    if case == "missing label column":
        return text("data.csv", "a,b\n1,2\n")
    if case == "csv without features":
        return text("data.csv", "label,\n0,\n1,\n0,\n")
    if case == "csv label beyond float32":
        return text("data.csv", "a,label\n1,0.5\n2,1e39\n3,1.5\n4,2.5\n")
    if case == "cross-validation on too few examples":  # 3 rows split 1/1/1: 2 for 3 folds
        return text("data.csv", "a,label\n1,0.5\n2,1.7\n3,2.9\n") + ["--selection", "cross-validation"]
    if case == "image folder without class folders":
        (tmp_path / "images").mkdir()
        return ["--data", str(tmp_path / "images")]
    if case == "image folder without images":
        for name in ("cats", "dogs"):
            (tmp_path / "images" / name).mkdir(parents=True)
        return ["--data", str(tmp_path / "images")]
    if case == "output is a file":
        (tmp_path / "taken").write_text("x")
        return ["--output", str(tmp_path / "taken")]
    if case == "output below a file":
        (tmp_path / "taken").write_text("x")
        return ["--output", str(tmp_path / "taken" / "run")]
    if case == "output holds something else":
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "notes.txt").write_text("mine")
        return ["--output", str(tmp_path / "busy")]
    raise AssertionError(f"no arguments for case {case!r}")


def _assert_one_line(captured, expected: str) -> None:
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("kbnas: error: ")
    assert expected in lines[0].lower(), lines[0]
    assert "Traceback" not in captured.err
    assert "trial 1/" not in captured.out  # refused before any trial


def test_the_table_has_at_least_25_cases():
    assert len(EXPECTED) >= 25


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_cli_refuses_with_one_line_and_exit_status_2(tmp_path, capsys, case):
    args = _cli_args(case, tmp_path)
    if "--output" not in args:
        args += ["--output", str(tmp_path / "out")]
    assert main(["search", *FAST, *args]) == 2
    _assert_one_line(capsys.readouterr(), EXPECTED[case].lower())


def test_a_cross_validation_the_data_cannot_make_is_refused_before_anything_is_written(tmp_path, capsys):
    # Without a time budget and with --quiet it was first noticed after the search.
    data = tmp_path / "data.csv"
    data.write_text("a,label\n1,0.5\n2,1.7\n3,2.9\n")
    out = tmp_path / "out"
    assert main(["search", *FAST, "--data", str(data), "--output", str(out), "--selection", "cross-validation",
                 "--time-budget", "none", "--quiet"]) == 2
    _assert_one_line(capsys.readouterr(), "--selection cross-validation needs at least 3")
    assert not out.exists()


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["search", *FAST, "--quiet", "--output", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    "damaged, expected",
    [
        ("kbnas_run.json", "kbnas_run.json is damaged"),
        ("search/oracle.json", "oracle.json is damaged"),
        ("search/trial_0/trial.json", "trial.json is damaged"),
        ("search/tuner0.json", "tuner0.json is damaged"),
    ],
)
def test_a_damaged_search_directory_is_named(tmp_path, capsys, finished_search, damaged, expected):
    out = tmp_path / "run"
    shutil.copytree(finished_search, out)
    path = out / damaged
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    assert main(["search", *FAST, "--max-trials", "3", "--output", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kbnas: error: ") and expected in lines[0], captured.err


def test_a_different_search_in_the_directory_is_refused(tmp_path, capsys, finished_search):
    out = tmp_path / "run"
    shutil.copytree(finished_search, out)
    assert main(["search", *FAST, "--seed", "5", "--output", str(out)]) == 2
    captured = capsys.readouterr()
    _assert_one_line(captured, "holds a different search")
    assert json.loads((out / "kbnas_run.json").read_text())["seed"] == 0  # untouched


def _json_edit(change):
    """A damage: the file's JSON replaced by ``change(value)``."""
    def damage(path):
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return damage


def _text(content):
    return lambda path: path.write_text(content)


def _every_kbnas_value_bad(state):
    return {**state, "kbnas": {key: "bad" for key in state["kbnas"]}}


def _search_folder_a_file(path):
    shutil.rmtree(path)
    path.write_text("x")


EXPORT = ["export", "--no-retrain", "--no-report"]
RESUME = ["search", *FAST, "--max-trials", "3"]


@pytest.mark.parametrize(
    "command, damaged, damage, expected",
    [
        pytest.param(EXPORT, "export/architecture.json", _text("{"), "export/architecture.json is damaged (expecting",
                     id="export: architecture.json not json"),
        pytest.param(["show"], "export/architecture.json", _text("[1]"),
                     "export/architecture.json is damaged (it is an array", id="show: architecture.json an array"),
        pytest.param(EXPORT, "kbnas_run.json", _text("[1, 2]"), "kbnas_run.json is damaged (it is an array",
                     id="export: kbnas_run.json an array"),
        pytest.param(RESUME, "kbnas_run.json", _text("[1, 2]"), "kbnas_run.json is damaged (it is an array",
                     id="search: kbnas_run.json an array"),
        pytest.param(["report"], "kbnas_run.json", _text("[1, 2]"), "kbnas_run.json is damaged (it is an array",
                     id="report: kbnas_run.json an array"),
        pytest.param(EXPORT, "kbnas_run.json", _json_edit(lambda run: {k: v for k, v in run.items() if k != "data"}),
                     'kbnas_run.json is damaged ("data" is missing)', id="export: kbnas_run.json without data"),
        pytest.param(EXPORT, "kbnas_run.json", _json_edit(lambda run: {**run, "epochs": "one"}),
                     'kbnas_run.json is damaged ("epochs" is a string, expected an integer)',
                     id="export: kbnas_run.json epochs a string"),
        pytest.param(EXPORT, "kbnas_run.json", _json_edit(lambda run: {**run, "seed": [1]}),
                     'kbnas_run.json is damaged ("seed" is an array', id="export: kbnas_run.json seed an array"),
        pytest.param(EXPORT, "kbnas_run.json", _json_edit(lambda run: {**run, "task": 5}),
                     'kbnas_run.json is damaged ("task" is an integer, expected a string)',
                     id="export: kbnas_run.json task a number"),
        pytest.param(EXPORT, "kbnas_run.json", _json_edit(lambda run: {**run, "acquisition": "magic"}),
                     "kbnas_run.json is damaged (\"acquisition\" is 'magic', expected one of ei,",
                     id="export: kbnas_run.json acquisition unknown"),
        pytest.param(EXPORT, "kbnas_run.json", _json_edit(lambda run: {**run, "epochs": 0}),
                     'kbnas_run.json is damaged ("epochs" is 0, expected at least 1)',
                     id="export: kbnas_run.json epochs 0"),
        *[pytest.param(command, "search/oracle.json", _text("[]"), "oracle.json is damaged (it is an array",
                       id=f"{command[0]}: oracle.json an array") for command in (EXPORT, ["show"], ["report"])],
        *[pytest.param(command, "search/oracle.json", _json_edit(_every_kbnas_value_bad),
                       'oracle.json is damaged ("kbnas.', id=f"{command[0]}: oracle.json kbnas values bad")
          for command in (EXPORT, ["show"], ["report"])],
        *[pytest.param(command, "search/trial_0/trial.json", _json_edit(lambda t: {**t, "hyperparameters": None}),
                       'trial_0/trial.json is damaged ("hyperparameters" is null, expected an object)',
                       id=f"{command[0]}: trial.json hyperparameters null")
          for command in (EXPORT, ["show"], ["report"])],
        pytest.param(["report"], "search/trial_0/trial.json",
                     _json_edit(lambda t: {k: v for k, v in t.items() if k != "message"}),
                     'trial_0/trial.json is damaged ("message" is missing)', id="report: trial.json without message"),
        pytest.param(["show"], "search/trial_0/trial.json", lambda path: path.write_text(path.read_text()[:50]),
                     "trial_0/trial.json is damaged (unterminated string", id="show: trial.json cut short"),
        pytest.param(EXPORT, "search/trial_0/checkpoint.weights.h5", lambda path: path.write_bytes(b"junk" * 500),
                     "trial_0/checkpoint.weights.h5 is damaged (the weights of trial 1: unable to",
                     id="export: checkpoint junk"),
        pytest.param(EXPORT, "search/trial_0/checkpoint.weights.h5", lambda path: path.unlink(),
                     "trial_0/checkpoint.weights.h5 is missing (the weights of trial 1)",
                     id="export: checkpoint missing"),
        *[pytest.param(command, "search", _search_folder_a_file, "search is damaged (a file, not the search's folder)",
                       id=f"{command[0]}: search folder a file") for command in (EXPORT, ["show"], ["report"])],
    ],
)
def test_a_damaged_file_is_named_by_show_export_and_report(tmp_path, capsys, finished_search, command, damaged,
                                                            damage, expected):
    out = tmp_path / "run"
    shutil.copytree(finished_search, out)
    damage(out / damaged)
    assert main([*command, "--output", str(out)]) == 2
    _assert_one_line(capsys.readouterr(), expected)


def test_the_state_files_of_a_search_have_their_shapes(finished_search):
    from kbnas.atomic_files import STATE_FILE_SHAPES, read_state_file

    files = [path for path in finished_search.rglob("*.json") if path.name in STATE_FILE_SHAPES]
    assert {path.name for path in files} >= {"kbnas_run.json", "oracle.json", "trial.json", "architecture.json"}
    for path in files:
        read_state_file(path)


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"a": {"b": [1, "x"]}}, '"a.b[1]" is a string, expected a number'),
        ({"a": {"b": [True]}}, '"a.b[0]" is true or false, expected a number'),
        ({"a": None}, '"a" is null, expected an object'),
        ({}, '"a" is missing'),
        ([], "it is an array, expected an object"),
        ({"a": {"b": [1.5]}, "c": {"0": "x"}}, '"c.0" is a string, expected an integer or null'),
        ({"a": {"b": []}, "c": {"0": None}}, None),
    ],
)
def test_shape_mismatch_names_the_first_difference(value, expected):
    from kbnas.atomic_files import NUMBER, JSONList, JSONObject, shape_mismatch

    shape = JSONObject(required={"a": JSONObject(required={"b": JSONList(NUMBER)})},
                       optional={"c": JSONObject(each=(int, None))})
    assert shape_mismatch(value, shape) == expected


def test_a_report_into_an_existing_folder_is_refused_in_one_line(tmp_path, capsys, finished_search):
    assert main(["report", "--output", str(finished_search), "--to", str(tmp_path)]) == 2
    _assert_one_line(capsys.readouterr(), f"{tmp_path} is a folder: name the report's file".lower())


# ------------------------------------------------------------------ Python API
@pytest.mark.parametrize("case", sorted(ARRAYS))
def test_python_api_gives_the_same_messages_for_bad_arrays(case):
    from kbnas import ConvNetHyperModel

    x, y = ARRAYS[case]
    with pytest.raises(ValueError) as raised:
        ConvNetHyperModel().configure(x, y)
    assert EXPECTED[case] in str(raised.value).lower()


def test_python_api_refuses_fractional_multiclass_labels():
    from kbnas import ConvNetHyperModel

    with pytest.raises(ValueError, match="non-integer values"):
        ConvNetHyperModel(task="multiclass").configure(X, Y + 0.5)


def test_search_refuses_bad_arrays_before_any_trial(tmp_path):
    from kbnas import BayesianNAS, ConvNetHyperModel

    tuner = BayesianNAS(ConvNetHyperModel(max_depth=3), max_trials=2, directory=str(tmp_path), project_name="p")
    x, y = ARRAYS["nan in x"]
    with pytest.raises(ValueError, match="NaN or infinite"):
        tuner.search(x, y, validation_split=0.2, epochs=1)
    assert not tuner.oracle.trials


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: __import__("kbnas").ConvNetHyperModel(max_depth=0), "max_depth"),
        (lambda: __import__("kbnas").BayesianNASOracle(acquisition="magic"), "acquisition"),
        (lambda: __import__("kbnas").BayesianNASOracle(distance="magic"), "distance"),
        (lambda: __import__("kbnas").BayesianNASOracle(max_time=0), "max_time"),
        (lambda: __import__("kbnas").BayesianNASOracle(seed=-1), "seed"),
    ],
)
def test_python_api_refuses_bad_settings(make, expected):
    with pytest.raises(ValueError) as raised:
        make()
    assert expected in str(raised.value)


def test_a_folder_the_user_cannot_write_is_one_line_naming_it(tmp_path, capsys, monkeypatch, finished_search):
    """Root ignores file permissions, so the system's refusal is played by the report's writer."""
    import errno

    import kbnas.report
    from kbnas.cli.run import _file_error

    denied = PermissionError(errno.EACCES, "Permission denied", "runs/ro/.report.html.x1y2.tmp")
    assert _file_error(denied) == "runs/ro: permission denied"  # the folder, not a temporary name
    assert _file_error(PermissionError(errno.EPERM, "Operation not permitted", "/sys/x")) == \
        "/sys/x: operation not permitted"
    assert _file_error(OSError("no path")) is None and _file_error(ValueError("x")) is None

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(finished_search / ".report.html.tmp"))

    monkeypatch.setattr(kbnas.report, "write_report", refuse)
    assert main(["report", "--output", str(finished_search)]) == 2
    _assert_one_line(capsys.readouterr(), f"kbnas: error: {finished_search}: permission denied".lower())
