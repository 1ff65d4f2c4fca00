"""The `kbnas` command end to end, and its answers to bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from kbnas import search_lock
from kbnas.data_inference import InferredRegressionWarning, infer_task
from kbnas.cli import main

pytestmark = pytest.mark.integration

# One retraining, not the default ensemble of five (five trainings more per search): the
# ensemble is tested where a test names its members.
FAST = ["--max-trials", "2", "--epochs", "1", "--max-depth", "3", "--ensemble", "1"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "kbnas.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_search_show_export_and_resume(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["search", "--max-trials", "2", "--epochs", "1", "--max-depth", "3", "--ensemble", "2",
                 "--output", out]) == 0
    printed = capsys.readouterr().out
    assert "trial 1/2" in printed and "trial 2/2" in printed
    assert "test accuracy=" in printed
    export = tmp_path / "run" / "export"
    assert (export / "model.keras").exists()
    info = json.loads((export / "architecture.json").read_text())
    assert info["trial_id"] in ("0", "1")
    assert info["objective"] == {"name": "val_accuracy", "direction": "max"}  # the direction too
    # Retraining on train + validation is the default, as an ensemble (here of two
    # members); the searched model's and the first member's test metrics are kept
    # beside the exported model's.
    assert "retraining trial" in printed and "2 members" in printed
    assert "exported: the mean of 2 retrainings of it (2 x " in printed  # not one member's parameters alone
    retrained = info["search_settings"]["retrained"]
    assert retrained["examples"] == 1079 + 359 and retrained["members"] == 2
    assert len(retrained["member_seconds"]) == 2
    assert info["ensemble"] == {"members": 2, "combination": "mean of the outputs"}
    assert set(info["search_settings"]["test_metrics_before_retraining"]) >= {"accuracy", "loss"}
    assert set(info["search_settings"]["test_metrics_first_member"]) >= {"accuracy", "loss"}

    # The same command with a larger budget resumes: one more trial, not three.
    assert main(["search", "--max-trials", "3", "--epochs", "1", "--max-depth", "3", "--ensemble", "2",
                 "--output", out]) == 0
    printed = capsys.readouterr().out
    assert "resuming" in printed
    assert "trial 3/3" in printed and "trial 1/3" not in printed
    # Images train at 1e-3; the run file records it, and another rate is another search.
    assert json.loads((tmp_path / "run" / "kbnas_run.json").read_text())["learning_rate"] == 1e-3
    assert main(["search", *FAST, "--learning-rate", "0.01", "--output", out]) == 2
    assert "learning_rate: 0.001 there, 0.01 now" in capsys.readouterr().err

    assert main(["show", "--output", out]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + 3 + 1  # header, trials, the footnote of the exported mark
    rows = [line.lstrip("*").split() for line in table[1:4]]
    scores = [float(row[2]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    # One numbering everywhere: 1-based, as the progress lines; the exported trial marked.
    assert sorted(row[0] for row in rows) == ["1", "2", "3"]
    assert {row[3] for row in rows} <= {"template", "random", "gp-ei", "initial"}
    marked = [line for line in table[1:4] if line.startswith("*")]
    assert len(marked) == 1
    exported = json.loads((export / "architecture.json").read_text())["trial_id"]
    assert marked[0].lstrip("*").split()[0] == str(int(exported) + 1)

    # While another process holds the folder (a search running), a second search or an
    # export stops at once with one line naming it, and writes nothing.
    with search_lock.acquire(out, "kbnas search"):
        written = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*") if p.name != "kbnas.lock"}
        assert main(["search", "--max-trials", "4", "--epochs", "1", "--max-depth", "3", "--output", out]) == 2
        assert main(["export", "--output", out]) == 2
        errors = capsys.readouterr().err.splitlines()
        assert len(errors) == 2 and all(f"kbnas: error: {out} is in use by kbnas search (process {os.getpid()} on "
                                        in line for line in errors), errors
        assert {p: p.stat().st_mtime_ns for p in written} == written
        assert main(["show", "--output", out]) == 0
        assert capsys.readouterr().out.splitlines()[-1].startswith(f"running: kbnas search (process {os.getpid()} ")

    best_score = max(scores)
    before = json.loads((export / "architecture.json").read_text())["search_settings"]["retrained"]["members"]
    assert main(["export", "--output", out]) == 0
    info = json.loads((export / "architecture.json").read_text())
    assert abs(info["score"] - best_score) < 1e-4, info
    # As many members as the export it replaced (which the search's budget may have cut), not the default 5.
    assert info["search_settings"]["retrained"]["members"] == before == 2

    assert main(["export", "--output", out, "--retrain", "--ensemble", "1"]) == 0
    assert "retraining trial" in capsys.readouterr().out
    info = json.loads((export / "architecture.json").read_text())
    assert info["search_settings"]["retrained"]["examples"] == 1079 + 359
    assert info["search_settings"]["retrained"]["members"] == 1 and info["ensemble"] is None
    assert "test_metrics_first_member" not in info["search_settings"]


def test_search_on_npz_and_csv_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert main(["search", *FAST, "--data", str(tmp_path / "d.npz"), "--output", str(tmp_path / "a")]) == 0
    # Class names as labels: numbered in sorted order, and named in the export.
    # The label column between feature columns: the export names the features in x's order.
    lines = ["f0,f1,target,f2"] + [f"{a:.4f},{b:.4f},{'yes' if a > b else 'no'},{c:.4f}" for a, b, c in x[:, :3]]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    assert main(["search", *FAST, "--data", str(tmp_path / "d.csv"), "--label-column", "target",
                 "--output", str(tmp_path / "b")]) == 0
    assert "test accuracy=" in capsys.readouterr().out
    searched = json.loads((tmp_path / "b" / "export" / "architecture.json").read_text())
    assert searched["search_settings"]["feature_columns"] == ["f0", "f1", "f2"]  # kbnas search's own export
    # The run file records the label column: a resume and an export read the CSV
    # file alike without it (the export once read column "label": "data changed").
    assert json.loads((tmp_path / "b" / "kbnas_run.json").read_text())["label_column"] == "target"
    assert main(["search", *FAST, "--data", str(tmp_path / "d.csv"), "--output", str(tmp_path / "b")]) == 0
    assert "resuming search" in capsys.readouterr().out
    # Other data in that folder is another search, named as such (not the recorded
    # label column applied to the .npz file).
    assert main(["search", *FAST, "--data", str(tmp_path / "d.npz"), "--output", str(tmp_path / "b")]) == 2
    assert "holds a different search (data: " in capsys.readouterr().err
    assert main(["export", "--output", str(tmp_path / "b"), "--no-retrain"]) == 0
    assert "(search time 0s)" not in capsys.readouterr().out  # the search's own time, not this command's
    info = json.loads((tmp_path / "b" / "export" / "architecture.json").read_text())
    assert info["search_settings"]["class_names"] == ["no", "yes"]
    assert info["search_settings"]["feature_columns"] == ["f0", "f1", "f2"]
    npz_export = json.loads((tmp_path / "a" / "export" / "architecture.json").read_text())
    assert "feature_columns" not in npz_export["search_settings"]  # an .npz file names no columns
    # Elsewhere, in TensorFlow Serving's layout; a folder that holds versions gets the
    # next one, also without --versioned (an unversioned export would delete them).
    serving = tmp_path / "serving"
    for version, versioned in ((1, ["--versioned"]), (2, [])):
        assert main(["export", "--output", str(tmp_path / "b"), "--no-retrain", "--no-report",
                     "--to", str(serving), *versioned]) == 0
        assert f"exported to {serving}/: SavedModel saved_model/{version}/" in capsys.readouterr().out
    assert sorted(path.name for path in (serving / "saved_model").iterdir()) == ["1", "2"]
    assert json.loads((serving / "architecture.json").read_text())["trial_id"] == info["trial_id"]
    for to, expected in [("", "--to is empty"), (str(tmp_path / "d.csv" / "sub"), "cannot be a folder: ")]:
        assert main(["export", "--output", str(tmp_path / "b"), "--to", to]) == 2
        assert expected in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["export", "--output", str(tmp_path / "b"), "--no-retrain", "--to", str(tmp_path / "busy")]) == 2
    assert "holds files and no kbnas export" in capsys.readouterr().err
    assert main(["export", "--output", str(tmp_path / "b"), "--no-retrain", "--label-column", "f0"]) == 2
    assert capsys.readouterr().err.strip() == ("kbnas: error: the search read its data with --label-column target, "
                                               "not f0; leave --label-column out to export it")


def test_an_image_folder_search_exports_at_its_image_size(tmp_path, capsys):
    import tensorflow as tf

    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("dark", "light"):
        (folder / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 100, (10, 10, 3)) + (120 if name == "light" else 0)
            (folder / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels.astype(np.uint8)).numpy())
    out = str(tmp_path / "run")
    assert main(["search", *FAST, "--data", str(folder), "--image-size", "6", "--no-retrain", "--no-report",
                 "--output", out]) == 0
    assert json.loads((tmp_path / "run" / "kbnas_run.json").read_text())["image_size"] == 6
    capsys.readouterr()
    # Without --image-size: the size of the search (it once read 32 x 32 images: "data changed").
    assert main(["export", "--output", out, "--no-retrain"]) == 0
    info = json.loads((tmp_path / "run" / "export" / "architecture.json").read_text())
    assert info["input_shape"][1:] == [6, 6, 3]
    assert main(["export", "--output", out, "--no-retrain", "--image-size", "8"]) == 2
    assert "read its data with --image-size 6, not 8" in capsys.readouterr().err


# Bad input: tests/test_bad_input.py.


def test_process_exit_code_and_debug_traceback(tmp_path):
    result = run_cli("search", "--data", str(tmp_path / "missing.npz"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("kbnas: error:")
    assert "Traceback" not in result.stderr
    result = run_cli("--debug", "search", "--data", str(tmp_path / "missing.npz"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_best_trial_heading_says_when_the_recommendation_is_not_the_best_score():
    from types import SimpleNamespace

    from kbnas.cli.best import _best_trial_heading

    def trial(trial_id, score):
        return SimpleNamespace(trial_id=trial_id, score=score, status="COMPLETED")

    trials = {t.trial_id: t for t in (trial("00", 0.9), trial("01", 0.98), trial("02", 0.97))}
    oracle = SimpleNamespace(trials=trials, objective=SimpleNamespace(name="val_accuracy", direction="max"))

    assert _best_trial_heading(oracle, trials["01"]) == "best architecture (trial 2, val_accuracy=0.9800)"
    heading = _best_trial_heading(oracle, trials["02"])
    assert heading.startswith("best architecture (trial 3, val_accuracy=0.9700; ranked first by the GP")
    assert "0.9800 in trial 2" in heading


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 90.0), ("90s", 90.0), ("3m", 180.0), ("1.5h", 5400.0), ("0.5M", 30.0), ("none", None)],
)
def test_time_budget_durations(text, seconds):
    from kbnas.cli import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-3m", "3 minutes", "m", "", "nan", "inf"])
def test_time_budget_refuses_what_is_not_a_positive_duration(text):
    import argparse

    from kbnas.cli import parse_duration

    with pytest.raises(argparse.ArgumentTypeError, match="positive duration"):
        parse_duration(text)


def test_time_budget_refuses_more_than_a_year():
    import argparse

    from kbnas.cli import parse_duration

    assert parse_duration("8784h") == 366 * 86400.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected at most 366 days \(or none for no limit\), "
                                                         r"got '1e300h'"):
        parse_duration("1e300h")


def test_start_architectures_are_trained_first(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["search", "--max-trials", "2", "--epochs", "1", "--no-retrain", "--output", out,
            "--start", "dense-32|relu", "--start", "conv3-16|relu|maxpool"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "trial 1/2 [initial] dense-32|relu " in printed
    assert "trial 2/2 [initial] conv3-16|relu|maxpool " in printed
    assert "retraining" not in printed


def test_quiet_search_prints_nothing_not_even_tensorflow_start_up_lines(tmp_path):
    for _ in range(2):  # a search, then the same command again: KerasTuner's "Reloading Tuner from" too
        result = run_cli("search", *FAST, "--no-retrain", "--quiet", "--output", str(tmp_path / "run"))
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        assert "oneDNN" not in result.stderr and "absl" not in result.stderr, result.stderr


def test_export_of_a_search_without_trials_says_so(tmp_path, capsys):
    rows = "".join(f"{i},{i % 2}\n" for i in range(30))
    (tmp_path / "d.csv").write_text("a,label\n" + rows)
    out = str(tmp_path / "run")
    # A convolution cannot start on flat features: refused before any trial.
    assert main(["search", *FAST, "--data", str(tmp_path / "d.csv"), "--start", "conv3-16|relu",
                 "--output", out]) == 2
    assert "initial point 1" in capsys.readouterr().err
    assert main(["export", "--output", out, "--no-retrain"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"kbnas: error: the search in {out} has no trial yet: nothing to export; run kbnas search with this --output")


def test_integer_regression_target_is_inferred_and_task_can_be_forced(tmp_path, capsys):
    """Many integer values with few rows each (scikit-learn's diabetes) are a regression target."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    lines = [",".join(f"f{i}" for i in range(10)) + ",label"]
    lines += [",".join(f"{v:.6f}" for v in row) + f",{int(t)}" for row, t in zip(data.data, data.target)]
    (tmp_path / "diabetes.csv").write_text("\n".join(lines) + "\n")
    args = ["search", *FAST, "--no-retrain", "--data", str(tmp_path / "diabetes.csv")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, "--output", str(tmp_path / "a")]) == 0
        # The start line says it; the Python API's warning is for the API (and only this command drops it).
        assert not [w for w in caught if issubclass(w.category, InferredRegressionWarning)]
        infer_task(data.target.astype(int))
        assert [w for w in caught if issubclass(w.category, InferredRegressionWarning)]
    printed = capsys.readouterr().out
    assert "(regression, inferred: pass --task to change;" in printed
    assert "val_loss=" in printed and "test mean_absolute_error=" in printed
    import keras

    exported = keras.models.load_model(tmp_path / "a" / "export" / "model.keras")
    assert exported.layers[-1].name == "target_scale"  # predicts in the target's units
    run_file = tmp_path / "a" / "kbnas_run.json"
    assert json.loads(run_file.read_text())["scale_targets"] is True
    assert json.loads(run_file.read_text())["learning_rate"] == 3e-3  # flat features
    # A search from before the scale (no such key) exports as it was trained: without it.
    old = json.loads(run_file.read_text())
    del old["scale_targets"]
    run_file.write_text(json.dumps(old))
    tuner_file = tmp_path / "a" / "search" / "tuner0.json"  # nor the hypermodel's saved configuration
    tuner_file.write_text(json.dumps({k: v for k, v in json.loads(tuner_file.read_text()).items()
                                      if k != "kbnas_hypermodel"}))
    assert main(["export", "--output", str(tmp_path / "a")]) == 0
    exported = keras.models.load_model(tmp_path / "a" / "export" / "model.keras")
    from kbnas.ensemble import ensemble_members

    assert exported.layers[-1].name == "mean"  # the retrained ensemble of five (the default)
    assert [m.layers[-1].name for m in ensemble_members(exported)] == ["head"] * 5
    capsys.readouterr()
    # Forced to classification, the 347 "classes" (most with 1 or 2 rows) cannot be split.
    assert main([*args, "--task", "multiclass", "--output", str(tmp_path / "b")]) == 2
    assert "classes with too few examples for the 60/20/20 split: 25 (1 example)," in capsys.readouterr().err


def test_no_early_stopping_is_recorded_and_turns_the_rule_off(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", *FAST, "--no-early-stopping", "--no-retrain", "--output", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "kbnas_run.json").read_text())["early_stopping"] is False
    state = json.loads((out / "search" / "oracle.json").read_text())["kbnas"]
    assert state["early_stopping"] is None
    # Resuming it with early stopping on would be another search.
    assert main(["search", *FAST, "--output", str(out)]) == 2
    assert "early_stopping" in capsys.readouterr().err


def _show(tmp_path, capsys, scores: dict, stopped_early: dict) -> list[str]:
    """``kbnas show``'s lines for a search folder of trials (id -> score; None: a trial
    still RUNNING) and the oracle's ``stopped_early`` record."""
    project = tmp_path / "run" / "search"
    for trial_id, score in scores.items():
        (project / f"trial_{trial_id}").mkdir(parents=True)
        (project / f"trial_{trial_id}" / "trial.json").write_text(json.dumps(
            {"trial_id": trial_id, "status": "COMPLETED" if score is not None else "RUNNING", "score": score,
             "hyperparameters": {"values": {"architecture": "conv3-16|relu"}}}))
    (project / "oracle.json").write_text(json.dumps({"kbnas": {
        "objective": {"name": "val_accuracy", "direction": "max"}, "stopped_early": stopped_early}}))
    assert main(["show", "--output", str(tmp_path / "run")]) == 0
    return capsys.readouterr().out.splitlines()


def test_show_marks_trials_stopped_early(tmp_path, capsys):
    lines = _show(tmp_path, capsys, {"00": 0.9, "01": 0.5},
                  {"01": {"epochs": 3, "rung": 3, "value": 0.5, "peers": 6}})
    assert "stopped" in lines[0]
    assert "ep 3" in lines[2] and "ep 3" not in lines[1]
    assert lines[-1].startswith("stopped: 1 trial was stopped early at that epoch by the early-stopping rule")


def test_show_tells_a_trial_the_time_budget_cut_from_one_stopped_early(tmp_path, capsys):
    lines = _show(tmp_path, capsys, {"00": 0.9, "01": 0.7, "02": 0.5, "03": 0.4},
                  {"01": {"epochs": 1, "rung": None, "value": 0.7, "reason": "time budget"},
                   "02": {"epochs": 3, "rung": 3, "value": 0.5, "peers": 6},
                   "03": {"epochs": 2, "rung": None, "value": 0.4, "reason": "time budget"}})
    assert "ep 1 (b)" in lines[2] and "ep 3" in lines[3] and "(b)" not in lines[3]
    assert lines[-2] == ("stopped: 1 trial was stopped early at that epoch by the early-stopping rule "
                         "(scored at fewer epochs; see docs/oracle.md)")
    assert lines[-1] == "(b): 2 trials were cut short at that epoch by the time budget (scored at fewer epochs)"


def test_show_counts_the_stops_of_completed_trials_only(tmp_path, capsys):
    # Trial 03's record is not written yet (oracle.json is saved first): its stop is not counted.
    lines = _show(tmp_path, capsys, {"00": 0.9, "01": 0.7},
                  {"01": {"epochs": 1, "rung": None, "value": 0.7, "reason": "time budget"},
                   "03": {"epochs": 3, "rung": 3, "value": 0.5, "peers": 6}})
    assert lines[-1] == "(b): 1 trial was cut short at that epoch by the time budget (scored at fewer epochs)"
    assert not any(line.startswith("stopped:") for line in lines)


@pytest.mark.parametrize("selection, ensemble, retrain, expected", [
    ("validation", None, True, 150.0),         # the ensemble's sixth kept
    ("cross-validation", None, True, 90.0),    # and the selection's third
    ("validation", 1, True, 180.0),            # one model: the whole budget
    ("cross-validation", 1, True, 120.0),
    ("validation", None, False, 180.0),        # no retraining, no ensemble
])
def test_the_time_budget_is_split_between_search_selection_and_ensemble(selection, ensemble, retrain, expected):
    import argparse

    from kbnas.cli.budget import _search_budget

    arrays = {"train": (np.zeros((300, 4)), np.zeros(300)), "val": (np.zeros((100, 4)), np.zeros(100))}
    args = argparse.Namespace(time_budget=180.0, selection=selection, ensemble=ensemble, retrain=retrain)
    assert _search_budget(args, arrays) == pytest.approx(expected)
    assert _search_budget(argparse.Namespace(**{**vars(args), "time_budget": None}), arrays) is None


def test_the_members_train_in_the_last_sixth_of_the_whole_budget():
    import argparse
    import time

    from kbnas.cli.budget import _members_deadline

    args = argparse.Namespace(time_budget=180.0, ensemble=None, retrain=True)
    now = time.monotonic()
    assert now + 30.0 <= _members_deadline(args) <= time.monotonic() + 30.0
    assert _members_deadline(argparse.Namespace(time_budget=None, ensemble=None, retrain=True)) is None


def test_a_budget_that_ends_in_the_initial_design_says_so(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["search", "--time-budget", "3s", "--max-depth", "3", "--ensemble", "1", "--no-report",
                 "--output", out]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(r"kbnas: note: the 3s search budget ended after 1 trial of the initial design, trial 1 cut "
                        r"at epoch \d+ of 30, before any GP proposal: the export is a starting architecture, not one "
                        r"the search chose\. It took \d+s here\. Run the same command with a larger --time-budget "
                        r"to resume the search \(or lower --epochs\)\.", last), last


@pytest.mark.parametrize("command", ["search", "show", "report", "export"])
def test_every_command_prints_its_help(command, capsys):
    """argparse formats help strings with %: a literal percent sign must be doubled."""
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert "usage: kbnas" in capsys.readouterr().out


def test_show_tells_an_interrupted_trial_from_one_in_progress(tmp_path, capsys):
    lines = _show(tmp_path, capsys, {"00": 0.9, "01": None}, {})
    assert "RUNNING" in lines[2]
    assert lines[-1] == ("RUNNING: interrupted (no kbnas search or export holds this folder now); the same kbnas "
                         "search command trains it again")
    with search_lock.acquire(tmp_path / "run", "kbnas search"):
        assert main(["show", "--output", str(tmp_path / "run")]) == 0
        assert capsys.readouterr().out.splitlines()[-1].startswith("running: kbnas search (process ")


def test_show_claims_nothing_where_the_platform_cannot_tell(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(search_lock, "AVAILABLE", False)  # as without fcntl (Windows)
    lines = _show(tmp_path, capsys, {"00": 0.9, "01": None}, {})
    assert "RUNNING" in lines[2] and not any(line.startswith(("RUNNING:", "running:")) for line in lines)


def test_a_folder_holding_only_a_lock_file_is_a_new_search_and_a_held_one_is_refused_at_once(tmp_path, capsys):
    # A search killed before its run file was written leaves the lock file alone: no foreign folder.
    out = tmp_path / "run"
    out.mkdir()
    (out / "kbnas.lock").write_text("kbnas search (process 1 on gone, since then)\n")
    with search_lock.acquire(out, "kbnas search"):
        # Refused before the data are read (`check_free`), naming the holder.
        assert main(["search", "--data", str(tmp_path / "missing.csv"), "--output", str(out)]) == 2
        assert f"{out} is in use by kbnas search (process {os.getpid()} " in capsys.readouterr().err
    assert main(["search", "--data", str(tmp_path / "missing.csv"), "--output", str(out)]) == 2
    error = capsys.readouterr().err
    assert "missing.csv" in error and "not empty" not in error  # the data's error: the folder was accepted
    from kbnas.cli.inputs import _check_run_file
    assert _check_run_file(out, {}) is False
