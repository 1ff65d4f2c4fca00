"""Atomic writes of the search state: a kill during a save never leaves a damaged file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras_tuner
import pytest

from kbnas import BayesianNASOracle
from kbnas.atomic_files import is_local_path, write_json_atomic, write_text_atomic


def test_write_replaces_the_content_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failure_during_the_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    write_text_atomic(path, "old")

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_local_paths():
    assert is_local_path("/tmp/x/oracle.json") and is_local_path("rel/oracle.json")
    assert not is_local_path("gs://bucket/oracle.json")


_WRITER = textwrap.dedent(
    """
    import sys
    from kbnas.atomic_files import write_json_atomic
    path = sys.argv[1]
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        write_json_atomic(path, {"i": i, "payload": "x" * 200_000})
    """
)


def test_sigkill_at_random_moments_never_leaves_a_damaged_file(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"i": 0, "payload": ""})
    seen = []
    for delay in (0.05, 0.13, 0.21, 0.3, 0.37):
        process = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
        seen.append(json.loads(path.read_text())["i"])  # always whole JSON
    assert max(seen) > 0  # the writer did replace the file before each kill


def _protocol_oracle(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Int("u", 0, 9)
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), hyperparameters=hp, seed=3,
                               max_trials=4)
    oracle._set_project_dir(str(tmp_path), "p")
    return oracle


def test_kerastuner_state_files_go_through_the_atomic_writer(tmp_path, monkeypatch):
    """Fails when KerasTuner changes how the oracle, its trials and the tuner are saved
    (the overrides in kbnas.resumable_oracle and kbnas.tuner assume KerasTuner 1.4's methods)."""
    from keras_tuner.src import utils as kt_utils

    def in_place_write(path, obj):
        raise AssertionError(f"KerasTuner wrote {path} in place")

    monkeypatch.setattr(kt_utils, "save_json", in_place_write)
    # KerasTuner's own oracle writes through utils.save_json, the writer replaced here.
    plain = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("score", "max"), max_trials=1)
    plain._set_project_dir(str(tmp_path / "plain"), "p")
    with pytest.raises(AssertionError, match="in place"):
        plain.save()
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(os.path.basename(b)), real_replace(a, b)))

    oracle = _protocol_oracle(tmp_path)
    for _ in range(2):
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id, {"score": trial.hyperparameters.get("u") / 10}, step=0)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert {"oracle.json", "trial.json"} <= set(replaced)

    # The reloaded oracle reads what was written.
    reloaded = _protocol_oracle(tmp_path)
    reloaded.reload()
    assert {t.status for t in reloaded.trials.values()} == {"COMPLETED"}
    assert len(reloaded.trials) == 2


def test_the_tuner_file_is_written_atomically(tmp_path, monkeypatch):
    from keras_tuner.src import utils as kt_utils

    from kbnas import BayesianNAS

    monkeypatch.setattr(kt_utils, "save_json", lambda path, obj: pytest.fail(f"{path} written in place"))
    hp = keras_tuner.HyperParameters()
    hp.Int("u", 0, 9)
    tuner = BayesianNAS(lambda hp: None, hyperparameters=hp, objective="val_loss", max_trials=2,
                        directory=str(tmp_path), project_name="p")
    tuner.save()
    assert json.loads((tmp_path / "p" / f"{tuner.tuner_id}.json").read_text()) is not None
    assert "seed" in json.loads((tmp_path / "p" / "oracle.json").read_text())


def test_the_file_keeps_its_mode_or_gets_the_umask_default(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(path, 0o640)
    write_json_atomic(path, {"a": 2})
    assert path.stat().st_mode & 0o777 == 0o640
