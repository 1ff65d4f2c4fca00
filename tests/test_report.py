"""The search report (`kbnas.report`) and the TensorBoard logs (`kbnas.tensorboard_log`)."""

from __future__ import annotations

import base64
import glob
import json
import pathlib
import re

import keras_tuner
import numpy as np
import pytest

from kbnas import BayesianNASOracle
from kbnas import keras_tuner_internals as kt_internals
from kbnas.cli import main
from kbnas.configurations import architecture_hyperparameters
from kbnas.report import figures, read_search, write_report
from kbnas.space import SearchSpace
from kbnas.tensorboard_log import HParamsLogger

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_tensorboard(logdir) -> dict[str, dict]:
    """run name -> {"hparams": {name: value}, "scalars": {tag: [(step, value)]}} of a log directory."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    runs: dict[str, dict] = {}
    for path in sorted(glob.glob(str(pathlib.Path(logdir) / "*" / "events.out.tfevents.*"))):
        run = runs.setdefault(pathlib.Path(path).parent.name, {"hparams": {}, "scalars": {}})
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    for name, v in data.session_start_info.hparams.items():
                        run["hparams"][name] = v.string_value if v.HasField("string_value") else v.number_value
                elif value.HasField("tensor"):
                    run["scalars"].setdefault(value.tag, []).append(
                        (event.step, float(tensor_util.make_ndarray(value.tensor))))
    return runs


def network_references(page: str) -> list[str]:
    """Every src/href/url()/@import in the page that is not an embedded data URI."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page, flags=re.IGNORECASE)
    found += re.findall(r"url\(\s*['\"]?([^)'\"]*)", page, flags=re.IGNORECASE)
    found = [f for f in found if not f.startswith("data:")]
    found += re.findall(r"@import", page) + re.findall(r"https?://", page)
    return found


@pytest.mark.integration
def test_kbnas_search_writes_a_self_contained_report_and_tensorboard_logs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--max-trials", "4", "--epochs", "2", "--max-depth", "4", "--ensemble", "2",
                 "--output", str(out)]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    page = (out / "report.html").read_text()
    trials = [json.loads(f.read_text()) for f in sorted((out / "search").glob("trial_*/trial.json"))]
    assert len(trials) == 4
    for trial in trials:
        assert trial["hyperparameters"]["values"]["architecture"] in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 3
    for image in images:
        png = base64.b64decode(image)
        assert png.startswith(PNG_SIGNATURE)
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width >= 300 and height >= 150
    assert network_references(page) == []
    exported = json.loads((out / "export" / "architecture.json").read_text())
    members = exported["search_settings"]["retrained"]["members"]
    assert members == 2 and f"test (the exported mean of {members} retrainings of it) accuracy" in page
    assert re.search(rf'<tr class="recommended[^"]*"><td class="num" data-value="{int(exported["trial_id"]) + 1}.0"',
                     page)

    # TensorBoard: every trial's hyperparameters and metrics, and the best so far.
    runs = read_tensorboard(out / "search" / "tensorboard")
    for trial in trials:
        run = runs[f"trial_{int(trial['trial_id']) + 1:04d}"]
        assert run["hparams"] == {"architecture": trial["hyperparameters"]["values"]["architecture"]}
        assert run["scalars"]["val_accuracy"][0][1] == pytest.approx(trial["score"], abs=1e-6)
        assert {"val_loss", "epochs", "seconds", "params"} <= set(run["scalars"])
    best = [v for _, v in sorted(runs["search"]["scalars"]["best_val_accuracy"])]
    assert best == sorted(best) and best[-1] == pytest.approx(max(t["score"] for t in trials), abs=1e-6)

    # `kbnas report` rewrites it from the directory alone.
    (out / "report.html").unlink()
    assert main(["report", "--output", str(out), "--to", str(tmp_path / "elsewhere.html")]) == 0
    again = (tmp_path / "elsewhere.html").read_text()
    assert len(re.findall(r'src="data:image/png', again)) >= 3 and not (out / "report.html").exists()


def _oracle_search(tmp_path, n=9, stop=()):
    """A search through KerasTuner's protocol, no training: convolutions help, other layers cost."""
    space = SearchSpace(input_shape=(8, 8, 1), num_outputs=10, max_depth=4)
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=n, seed=3,
                               hyperparameters=architecture_hyperparameters(space), search_space=space,
                               early_stopping=None)
    kt_internals.set_project_dir(oracle, str(tmp_path), "search")
    logger = HParamsLogger(tmp_path / "search" / "tensorboard")
    oracle.trial_end_callbacks.append(logger)
    for _ in range(n):
        trial = oracle.create_trial("tuner0")
        architecture = space.from_hp_value(trial.hyperparameters.values["architecture"])
        for epoch in range(3):
            convolutions = sum(layer.encode().startswith("conv") for layer in architecture)
            score = 0.5 + 0.1 * convolutions - 0.04 * len(architecture) + 0.01 * epoch
            oracle.update_trial(trial.trial_id, {"val_accuracy": score, "val_loss": 1 - score}, step=epoch)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return oracle


def test_the_record_of_a_search_read_from_its_files_equals_the_one_from_the_oracle(tmp_path):
    oracle = _oracle_search(tmp_path)

    class Tuner:  # what read_search needs of a tuner
        project_dir = str(tmp_path / "search")

    Tuner.oracle = oracle
    from_files = read_search(tmp_path)
    from_tuner = read_search(Tuner())
    assert [t.trial_id for t in from_files.trials] == [t.trial_id for t in from_tuner.trials] == \
        [str(i) for i in range(9)]
    assert [t.number for t in from_files.trials] == list(range(1, 10))
    assert from_files.trials == from_tuner.trials
    assert from_files.recommended == from_tuner.recommended == oracle.get_best_trials(1)[0].trial_id
    assert from_files.recommended_by == "oracle"
    first = from_files.trials[0]
    assert first.epochs == 3 and first.method in ("template", "random") and first.params > 0
    assert first.params == oracle.search_space.param_count(oracle.search_space.from_hp_value(first.architecture))
    gp = [t for t in from_files.trials if not t.initial]
    assert gp and all(t.method == "gp-ei" and t.predicted_std is not None for t in gp)
    ends = from_files.end_times()
    assert [ends[t.trial_id] for t in from_files.trials] == sorted(ends.values())
    assert set(from_files.leave_one_out) == {t.trial_id for t in from_files.trials}
    # A smooth function of the layers: the surrogate orders the trials.
    assert figures.surrogate_rank_correlation(from_files) > 0.5


def test_the_page_without_matplotlib_still_lists_every_trial(tmp_path, monkeypatch):
    _oracle_search(tmp_path, n=5)

    def no_matplotlib():
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(figures, "_pyplot", no_matplotlib)
    page = write_report(tmp_path).read_text()
    assert "<img" not in page and "need matplotlib" in page
    for trial in read_search(tmp_path, surrogate=False).trials:
        assert trial.architecture in page
    assert network_references(page) == []


def test_the_page_escapes_what_it_shows(tmp_path):
    import dataclasses

    from kbnas.report.page import render

    _oracle_search(tmp_path, n=5)
    record = dataclasses.replace(read_search(tmp_path), run={"data": "<script>alert(1)</script>.csv"})
    page = render(record)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.csv" in page


def test_progress_and_time_without_recorded_end_times_add_up_the_trials(tmp_path):
    _oracle_search(tmp_path, n=5)
    state_file = tmp_path / "search" / "oracle.json"
    state = json.loads(state_file.read_text())
    del state["kbnas"]["trial_ended_at"]  # a search made before kbnas recorded it
    state_file.write_text(json.dumps(state))
    record = read_search(tmp_path, surrogate=False)
    seconds = [t.seconds for t in record.trials]
    assert list(record.end_times().values()) == pytest.approx(np.cumsum(seconds))
    assert figures.progress_figure(record, "time").startswith(PNG_SIGNATURE)
    assert figures.surrogate_figure(record) is None  # no leave-one-out without the surrogate


def test_the_tensorboard_best_so_far_continues_after_a_resume(tmp_path):
    oracle = _oracle_search(tmp_path, n=5)
    best = max(t.score for t in oracle.trials.values())
    # A resumed search: a new logger (a new process), whose first trial is the worst.
    resumed = HParamsLogger(tmp_path / "search" / "tensorboard")
    worst = min(oracle.trials.values(), key=lambda t: t.score)
    resumed(oracle, worst)
    runs = read_tensorboard(tmp_path / "search" / "tensorboard")
    curve = runs["search"]["scalars"]["best_val_accuracy"]
    assert len(curve) == 6
    assert curve[-1][1] == pytest.approx(best)  # not the worst trial's score


def test_kbnas_report_of_a_directory_without_a_search_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["report", "--output", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kbnas: error:") and "holds no kbnas search" in err[0]


def test_the_page_tells_trials_the_time_budget_cut_from_trials_stopped_early(tmp_path):
    from kbnas.report.page import render

    _oracle_search(tmp_path, n=5)
    ids = [t.trial_id for t in read_search(tmp_path, surrogate=False).completed]
    state_file = tmp_path / "search" / "oracle.json"
    state = json.loads(state_file.read_text())
    state["kbnas"]["stopped_early"] = {ids[1]: {"epochs": 3, "rung": 3, "value": 0.5, "peers": 6},
                                       ids[2]: {"epochs": 1, "rung": None, "value": 0.4, "reason": "time budget"}}
    state_file.write_text(json.dumps(state))
    record = read_search(tmp_path, surrogate=False)
    assert [t.cut_by_time_budget for t in record.trials[:3]] == [False, False, True]
    page = render(record)
    assert "5 completed (1 of them stopped early, 1 cut by the time budget)" in page
    assert ">1 (time budget)</td>" in page and ">3</td>" in page
