"""Bad data and bad data options, found by fuzzing ``kbnas search``: each is refused
with one line naming the problem (a `DataFileError` or `ValueError` from the loaders,
``kbnas: error: …`` and exit status 2 from the command), never a traceback or a
numpy warning; and the documented (N, 1) labels are accepted.

The loaders are called directly where they decide; the command only for what it
decides itself (the options), so no test trains a model.
"""

from __future__ import annotations

import argparse
import re
import warnings

import numpy as np
import pytest

from kbnas.cli import main
from kbnas.cli.inputs import _load_split
from kbnas.data_files import MAX_IMAGE_SIZE, DataFileError, load_data, load_npz, read_data
from kbnas.data_inference import infer_data_spec, infer_task

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4)).astype("float32")
Y = np.arange(60) % 2


def _npz(tmp_path, x, y):
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y)
    return path


def _csv(tmp_path, content: bytes):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    return path


def _rows(labels) -> bytes:
    return "".join(f"{i * 0.1},{label}\n" for i, label in enumerate(labels)).encode()


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("kbnas: error: ")
    assert "Traceback" not in captured.err
    return lines[0]


def _search(tmp_path, *options: str) -> list[str]:
    return ["search", "--max-trials", "1", "--epochs", "1", "--no-retrain", "--no-report",
            "--output", str(tmp_path / "out"), *options]


# ---------------------------------------------------------------------------
# .npz arrays


@pytest.mark.parametrize("name", ["x", "y"])
def test_complex_arrays_are_refused(tmp_path, name):
    arrays = {"x": X, "y": Y}
    arrays[name] = arrays[name].astype(np.complex64)
    with pytest.raises(DataFileError, match=f"data.npz: {name} must be real numbers, got complex64"):
        load_npz(_npz(tmp_path, **arrays))


@pytest.mark.parametrize("name", ["x", "y"])
def test_complex_arrays_are_refused_by_the_python_api(name):
    arrays = {"x": X, "y": Y}
    arrays[name] = arrays[name].astype(np.complex128)
    with pytest.raises(ValueError, match=f"^{name} must be real numbers, got complex128$"):
        infer_data_spec(arrays["x"], arrays["y"])


def test_labels_of_shape_n_1_are_one_label_per_example(tmp_path):
    path = _npz(tmp_path, X, Y[:, None])
    assert load_npz(path)[1].shape == (60,)
    args = argparse.Namespace(data=str(path), label_column=None, image_size=None, task="auto")
    arrays, source = _load_split(args)
    assert [len(arrays[part][1]) for part in ("train", "val", "test")] == [36, 12, 12]
    assert source["task"].startswith("binary")


# ---------------------------------------------------------------------------
# Class labels beyond int64


@pytest.mark.parametrize(
    "labels, shown",
    [
        (Y * 1e300, "1e+300"),
        (np.where(Y == 1, np.uint64(2**63 + 5), np.uint64(0)), "9223372036854775813"),
        (Y * float(2**63), "9.223372036854776e+18"),
    ],
    ids=["float 1e300", "uint64 2**63+5", "float 2**63"],
)
def test_labels_too_large_for_int64_are_named_without_a_warning(labels, shown):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for task in ("auto", "multiclass", "binary"):
            with pytest.raises(ValueError, match=f"^class label {re.escape(shown)} is too large"):
                infer_task(labels, task=task)


def test_labels_too_negative_for_int64_are_negative_labels():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="^class labels must be non-negative, found -1e\\+30$"):
            infer_task(Y * -1e30)


def test_a_constant_huge_label_is_a_single_class():
    with pytest.raises(ValueError, match="every label is 1e\\+300"):
        infer_task(np.full(10, 1e300))


def test_many_huge_integer_values_are_a_regression_target():
    assert infer_task(np.arange(60) * 1e30) == ("regression", None)


def test_csv_labels_too_large_for_int64_stay_floats(tmp_path):
    path = _csv(tmp_path, b"a,label\n" + _rows([0, 1e30] * 30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, y = load_data(str(path))
        assert y.dtype == np.float64 and y.max() == 1e30
        with pytest.raises(ValueError, match="class label 1e\\+30 is too large"):
            infer_data_spec(x, y)


def test_whole_csv_labels_are_still_int64(tmp_path):
    _, y = load_data(str(_csv(tmp_path, b"a,label\n" + _rows([0, 1, 2] * 3))))
    assert y.dtype == np.int64


# ---------------------------------------------------------------------------
# CSV text


def test_a_non_utf8_byte_names_the_file_and_line(tmp_path):
    path = _csv(tmp_path, b"a,label\n0.5,1\n\xff,0\n" + _rows([0, 1] * 5))
    with pytest.raises(DataFileError, match=r"data\.csv: line 3 is not UTF-8 text \(byte 0xff\)"):
        load_data(str(path))


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    path = _csv(tmp_path, b"\xef\xbb\xbflabel,a\n" + b"".join(b"%d,%d\n" % (i % 2, i) for i in range(6)))
    x, y = load_data(str(path))
    assert y.tolist() == [0, 1, 0, 1, 0, 1] and x[:, 0].tolist() == [0, 1, 2, 3, 4, 5]


def test_a_label_column_named_twice_is_refused(tmp_path):
    path = _csv(tmp_path, b"a,label,label\n" + b"".join(b"%d,%d,%d\n" % (i, i, i % 2) for i in range(10)))
    with pytest.raises(DataFileError, match="data.csv: the header names the label column 'label' 2 times"):
        load_data(str(path))


@pytest.mark.parametrize("header", [b"a,a,label", b"label,,"])
def test_repeated_or_empty_feature_names_are_fine(tmp_path, header):
    # Features are read by position (spreadsheets export unnamed columns as empty names).
    path = _csv(tmp_path, header + b"\n" + b"".join(b"%d,%d,%d\n" % (i % 2, i, i) for i in range(10)))
    x, y = load_data(str(path))
    assert x.shape == (10, 2) and len(y) == 10


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("", "line 3, column 'b' is empty (a missing value); fill it in (impute) or drop the row"),
        ("red", "line 3, column 'b' holds 'red', not a number; encode such a column as numbers"),
        ("nan", "line 3, column 'b' holds 'nan', not a finite number; fill it in (impute) or drop the row"),
        ("-inf", "line 3, column 'b' holds '-inf', not a finite number"),
        ("1e300", "line 3, column 'b' holds '1e300', beyond float32's range"),
    ],
)
def test_a_feature_cell_that_is_not_a_finite_number_is_named_by_line_and_column(tmp_path, cell, expected):
    path = _csv(tmp_path, f"a,b,label\n1,2,0\n3,{cell},1\n".encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no overflow warning from the float32 cast)
        with pytest.raises(DataFileError, match="^" + re.escape(f"{path}: {expected}")):
            load_data(str(path))


@pytest.mark.parametrize("rows, expected", [(b"1,2,0\n3,nan,1\n5,6,0\n7,red,1\n", "line 3, column 'b' holds 'nan'"),
                                            (b"1,2,0\nnan,zz,1\n", "line 3, column 'a' holds 'nan'")])
def test_the_first_bad_cell_in_the_file_is_named_whatever_its_kind(tmp_path, rows, expected):
    path = _csv(tmp_path, b"a,b,label\n" + rows)
    with pytest.raises(DataFileError, match=re.escape(expected)):
        load_data(str(path))


def test_an_unnamed_column_is_named_by_its_position(tmp_path):
    path = _csv(tmp_path, b"a,,label\n1,x,0\n")
    with pytest.raises(DataFileError, match=re.escape("line 2, column 2 (no name) holds 'x'")):
        load_data(str(path))


def test_an_unnamed_empty_column_is_dropped(tmp_path):
    # A trailing comma on every line, as some exports write it.
    path = _csv(tmp_path, b"a,b,label,\n" + b"".join(b"%d,%d,%d,\n" % (i, -i, i % 2) for i in range(6)))
    x, y = load_data(str(path))
    assert x.shape == (6, 2) and y.tolist() == [0, 1, 0, 1, 0, 1]


def test_spaces_around_the_header_names_are_dropped(tmp_path):
    path = _csv(tmp_path, b"a, b , label\r\n1, 2,0\r\n3,4 , 1\r\n")
    x, y = load_data(str(path))
    assert x.tolist() == [[1, 2], [3, 4]] and y.tolist() == [0, 1]
    assert load_data(str(path), label_column="b")[1].tolist() == [2, 4]


def test_class_names_as_labels_are_numbered_in_sorted_order(tmp_path):
    path = _csv(tmp_path, b"a,label\n1,dog\n2,cat\n3, dog\n4,bird\n")
    x, y, names = read_data(str(path))
    assert names == ["bird", "cat", "dog"] and y.tolist() == [2, 1, 2, 0] and y.dtype == np.int64
    # Numbers are numbers, not names.
    assert read_data(str(_csv(tmp_path, b"a,label\n1,0\n2,1\n")))[2] is None


@pytest.mark.parametrize("label, expected", [("", "line 3, column 'label' (the label) is empty"),
                                             ("nan", "line 3, column 'label' (the label) holds 'nan'"),
                                             ("-inf", "line 3, column 'label' (the label) holds '-inf'")])
def test_an_empty_or_infinite_label_is_named(tmp_path, label, expected):
    path = _csv(tmp_path, f"a,label\n1,0\n2,{label}\n3,1\n".encode())
    with pytest.raises(DataFileError, match=re.escape(expected)):
        load_data(str(path))


def test_numbers_and_names_mixed_in_the_label_column_are_refused(tmp_path):
    # A regression target with "NA" in it must not become the ranks of its values.
    path = _csv(tmp_path, b"a,label\n1,0.5\n2,1.25\n3,NA\n4,2.0\n")
    with pytest.raises(DataFileError, match=re.escape("line 4, column 'label' (the label) holds 'NA', not a "
                                                      "number, while line 2 holds '0.5'")):
        load_data(str(path))


def test_named_classes_are_classes_however_many(tmp_path):
    # 25 integer labels with 3 examples each would be inferred as a regression
    # target; 25 named classes are a multiclass task, for the model too.
    from kbnas.cli.search import _hypermodel

    rows = "".join(f"{i},class{i % 25:02d}\n" for i in range(75))
    path = _csv(tmp_path, ("a,label\n" + rows).encode())
    args = argparse.Namespace(data=str(path), label_column=None, image_size=None, task="auto")
    arrays, source = _load_split(args)
    assert source["task"] == "multiclass, 25 classes, inferred: pass --task to change"
    assert len(source["class_names"]) == 25 and args.class_task == "multiclass"
    args.max_depth, args.seed = 3, 0
    hypermodel = _hypermodel(args)
    hypermodel.configure(*arrays["train"])
    assert hypermodel.task == "multiclass"
    numbers = _csv(tmp_path, ("a,label\n" + "".join(f"{i},{i % 25}\n" for i in range(75))).encode())
    args = argparse.Namespace(data=str(numbers), label_column=None, image_size=None, task="auto")
    assert _load_split(args)[1]["task"].startswith("regression") and args.class_task is None
    # A search whose run file predates the rule keeps the task it was searched with.
    args = argparse.Namespace(data=str(path), label_column=None, image_size=None, task="auto")
    assert _load_split(args, saved={"data": str(path)})[1]["task"].startswith("regression")
    assert args.class_task is None


def test_a_single_class_name_is_a_single_class(tmp_path, capsys):
    path = _csv(tmp_path, ("a,label\n" + "".join(f"{i},cat\n" for i in range(30))).encode())
    assert main(_search(tmp_path, "--data", str(path))) == 2
    # Named as the file names it, not as class 0.
    assert _one_error_line(capsys).endswith("data.csv: every label is 'cat', a single class; "
                                            "classification needs at least two classes")
    assert not (tmp_path / "out").exists()


def test_cli_names_a_class_with_too_few_examples_and_speaks_its_options(tmp_path, capsys):
    rows = "".join(f"{i},{name}\n" for i, name in enumerate(["cat", "dog"] * 5 + ["zebra"]))
    path = _csv(tmp_path, ("a,label\n" + rows).encode())
    assert main(_search(tmp_path, "--data", str(path))) == 2
    assert "class with too few examples for the 60/20/20 split: 'zebra' (1 example)" in _one_error_line(capsys)
    assert main(_search(tmp_path, "--data", str(path), "--task", "regression")) == 2
    assert "--task regression needs numeric labels" in _one_error_line(capsys)
    # The Python API's advice (task='multiclass') in the command's words.
    path = _csv(tmp_path, b"a,label\n" + _rows([1, 2] * 10))
    assert main(_search(tmp_path, "--data", str(path), "--task", "binary")) == 2
    line = _one_error_line(capsys)
    assert "pass --task multiclass" in line and "task='" not in line


# ---------------------------------------------------------------------------
# Image folders


def _image_folder(tmp_path):
    import tensorflow as tf

    folder = tmp_path / "img"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            (folder / name / f"{i}.png").write_bytes(tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)).numpy())
    return folder


def test_an_undecodable_image_is_named(tmp_path):
    folder = _image_folder(tmp_path)
    (folder / "b" / "bad.png").write_text("junk\n")
    with pytest.raises(DataFileError, match=r"img/b/bad\.png: cannot decode this image"):
        load_data(str(folder), image_size=4)


def test_a_readable_image_folder_loads(tmp_path):
    x, y = load_data(str(_image_folder(tmp_path)), image_size=5)
    assert x.shape == (6, 5, 5, 3) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]


def test_a_class_folder_without_images_is_named(tmp_path):
    folder = _image_folder(tmp_path)
    (folder / "c").mkdir()
    (folder / "c" / "notes.txt").write_text("no image\n")
    (folder / "b" / "bad.png").write_text("junk\n")  # named before any image is decoded
    with pytest.raises(DataFileError, match=r"img/c: no images in this class folder"):
        load_data(str(folder), image_size=4)


def test_hidden_folders_are_not_classes_and_the_class_names_are_the_folders(tmp_path):
    folder = _image_folder(tmp_path)
    (folder / ".ipynb_checkpoints").mkdir()
    x, y, names = read_data(str(folder), image_size=4)
    assert names == ["a", "b"] and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("size", [0, -3, MAX_IMAGE_SIZE + 1])
def test_the_image_loader_refuses_a_bad_size(tmp_path, size):
    with pytest.raises(DataFileError, match=f"image size must be between 1 and {MAX_IMAGE_SIZE}, got {size}"):
        load_data(str(_image_folder(tmp_path)), image_size=size)


# ---------------------------------------------------------------------------
# Options


def test_an_empty_data_path_is_refused(tmp_path, capsys):
    assert main(_search(tmp_path, "--data", "")) == 2
    assert "argument --data: " in _one_error_line(capsys)
    with pytest.raises(DataFileError, match="the data path is empty"):
        load_data("")


@pytest.mark.parametrize("value", ["0", "-3", "100000", "abc"])
def test_image_size_is_a_side_from_1_to_the_maximum(tmp_path, capsys, value):
    assert main(_search(tmp_path, "--image-size", value)) == 2
    line = _one_error_line(capsys)
    assert f"argument --image-size: expected an image side from 1 to {MAX_IMAGE_SIZE} pixels, got '{value}'" in line


@pytest.mark.parametrize("data", ["digits", "csv", "npz"])
def test_image_size_needs_an_image_folder(tmp_path, capsys, data):
    paths = {"csv": _csv(tmp_path, b"a,label\n" + _rows([0, 1] * 5)), "npz": _npz(tmp_path, X, Y)}
    options = [] if data == "digits" else ["--data", str(paths[data])]
    assert main(_search(tmp_path, "--image-size", "16", *options)) == 2
    assert "--image-size resizes the images of an image folder" in _one_error_line(capsys)


@pytest.mark.parametrize("data", ["digits", "npz", "folder"])
def test_label_column_needs_a_csv_file(tmp_path, capsys, data):
    paths = {"npz": _npz(tmp_path, X, Y), "folder": tmp_path}
    options = [] if data == "digits" else ["--data", str(paths[data])]
    assert main(_search(tmp_path, "--label-column", "y", *options)) == 2
    assert "--label-column names the label column of a CSV file" in _one_error_line(capsys)


@pytest.mark.parametrize("options", [["--max-trials", "0"], ["--epochs", "-1"], ["--ensemble", "0"],
                                     ["--listen", "nonsense"], ["--image-size", "8"], ["--label-column", "y"],
                                     ["--workers", "2", "--max-depth", "0"],
                                     ["--start", "dense-32", "--start", "conv3-32|foo"], ["--start", "dense-032"]])
def test_a_wrong_option_is_refused_before_tensorflow_is_imported(tmp_path, options):
    # One line within a second: neither TensorFlow's import nor the workers' fork server first.
    import subprocess
    import sys

    script = ("import sys; from kbnas.cli import main; code = main(sys.argv[1:]); "
              "import multiprocessing.forkserver as f; "
              "print(code, 'tensorflow' in sys.modules, f._forkserver._forkserver_pid)")
    done = subprocess.run([sys.executable, "-c", script, *_search(tmp_path, *options)], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.split() == ["2", "False", "None"], done.stderr
    assert done.stderr.startswith("kbnas: error: ") and len(done.stderr.strip().splitlines()) == 1
    if "--start" in options:  # the spelling, named by its position among the --start options
        number, text = len(options) // 2, options[-1]
        assert done.stderr.startswith(f"kbnas: error: --start {number}: cannot decode architecture {text!r}")


def test_an_output_that_cannot_be_a_folder_is_refused_before_tensorflow_is_imported(tmp_path):
    import subprocess
    import sys

    taken = tmp_path / "taken"
    taken.write_text("a file\n")
    script = "import sys; from kbnas.cli import main; code = main(sys.argv[1:]); print(code, 'tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script, "search", "--output", str(taken)], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert done.stderr.strip() == f"kbnas: error: --output {taken} is a file, not a folder; choose another --output"


def test_a_huge_batch_size_is_refused_by_the_parser(tmp_path, capsys):
    assert main(_search(tmp_path, "--batch-size", "100000000000000000000")) == 2
    assert "argument --batch-size: expected at most 2147483647" in _one_error_line(capsys)


def test_connect_and_listen_together_are_refused(tmp_path, capsys):
    assert main(_search(tmp_path, "--connect", "127.0.0.1:1", "--listen", "127.0.0.1:5000")) == 2
    line = _one_error_line(capsys)
    assert "--listen" in line and "--connect" in line and "not allowed" in line


def test_class_labels_that_would_need_a_huge_output_layer_are_refused():
    from kbnas.data_inference import MAX_CLASSES, infer_task

    y = np.array([0, 1, 10**12] * 30)
    with pytest.raises(ValueError, match=r"1000000000001 classes .* more than 100000; y has 3 distinct labels: "
                                         r"number them 0\.\.2"):
        infer_task(y)
    assert infer_task(np.arange(MAX_CLASSES).repeat(2), task="multiclass") == ("multiclass", MAX_CLASSES)


def test_a_csv_file_names_its_feature_columns_in_the_order_of_x(tmp_path):
    from kbnas.data_files import read_data_file

    path = _csv(tmp_path, b" b ,label,a,,\n1,0,2,3,\n4,1,5,6,\n")
    data = read_data_file(str(path))
    # The label column dropped, spaces around names dropped, an unnamed column with
    # values named by its position, the trailing empty column dropped.
    assert data.feature_columns == ["b", "a", "column 4 (no name)"]
    assert data.x.tolist() == [[1, 2, 3], [4, 5, 6]] and data.y.tolist() == [0, 1]
    np.savez(tmp_path / "d.npz", x=data.x, y=data.y)
    assert read_data_file(str(tmp_path / "d.npz")).feature_columns is None
