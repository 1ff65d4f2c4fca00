"""Kill anywhere, lose nothing: a real ``kbnas search`` SIGKILLed at several moments,
then resumed by the same command, ends with exactly ``max_trials`` completed,
distinct trials, none of the ones finished before a kill lost or retrained, and
an export that loads."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.integration

MAX_TRIALS = 5
LINE = re.compile(r"^trial (\d+)/\d+ ")


def _command(output: pathlib.Path) -> list[str]:
    return [sys.executable, "-m", "kbnas.cli", "search", "--max-trials", str(MAX_TRIALS), "--epochs", "1",
            "--max-depth", "3", "--no-retrain", "--time-budget", "none", "--output", str(output)]


def _run_until(output: pathlib.Path, kill_when, log: list[str]) -> int:
    """Run the search; SIGKILL it when ``kill_when(lines, seconds)`` says so. Returns its exit status."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(_command(output), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout), daemon=True)
    reader.start()
    start = time.monotonic()
    try:
        while process.poll() is None:
            if kill_when(list(lines), time.monotonic() - start):
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
    log += lines
    return process.returncode


def _completed(output: pathlib.Path) -> dict[str, dict]:
    trials = {}
    for path in (output / "search").glob("trial_*/trial.json"):
        state = json.loads(path.read_text())
        if state["status"] == "COMPLETED":
            trials[state["trial_id"]] = state
    return trials


def _files(output: pathlib.Path, trial_ids) -> dict[str, dict[str, tuple]]:
    """trial id -> {file name: (sha256, mtime)} of everything in its trial folder: a
    deterministic retraining writes the same checkpoint bytes, but not at the same time.
    (trial.json by content only: a reload after a kill between a trial's end and the
    oracle's next save writes the finished trial's record again, unchanged.)"""
    import hashlib

    found = {}
    for trial_id in trial_ids:
        folder = output / "search" / f"trial_{trial_id}"
        found[trial_id] = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(),
                                    None if p.suffix == ".json" else p.stat().st_mtime_ns)
                           for p in sorted(folder.iterdir()) if p.is_file()}
    return found


def _trial_lines(lines):
    return [line for line in lines if LINE.match(line)]


def test_sigkill_at_several_moments_then_resume_loses_nothing(tmp_path):
    output = tmp_path / "run"
    log: list[str] = []
    kills = [
        lambda lines, seconds: seconds > 1.5,  # during start-up (TensorFlow import, the first trial's build)
        lambda lines, seconds: len(_trial_lines(lines)) >= 1,  # right after a trial ended (its save)
        lambda lines, seconds: bool(_trial_lines(lines)) and seconds > 0.6 + kill_after[0],  # mid-trial
    ]
    kill_after = [0.0]
    finished_before: dict[str, dict] = {}
    files_before: dict[str, dict[str, tuple]] = {}
    counts: list[int] = []
    for kill_when in kills:
        def timed(lines, seconds, kill_when=kill_when):
            if _trial_lines(lines) and not kill_after[0]:
                kill_after[0] = seconds
            return kill_when(lines, seconds)

        kill_after[0] = 0.0
        start = len(log)
        status = _run_until(output, timed, log)
        assert status == -signal.SIGKILL, "\n".join(log[-20:])  # killed before it finished
        now = _completed(output)
        counts.append(len(now))
        # A resumed run never trains a trial that had finished before it again.
        numbers_before = {int(trial_id) + 1 for trial_id in finished_before}
        again = [line for line in _trial_lines(log[start:]) if int(LINE.match(line).group(1)) in numbers_before]
        if again:  # pytest.fail prints the whole log (an assert's message is cut short)
            pytest.fail("retrained:\n" + "\n".join(again) + "\nwhole log:\n" + "\n".join(log), pytrace=False)
        # Nothing finished before a kill is lost or changed by a later run, not even
        # by a retraining killed before its progress line: no file of its folder
        # (trial.json, the checkpoint) is rewritten.
        for trial_id, state in finished_before.items():
            assert now[trial_id]["metrics"] == state["metrics"], trial_id
        assert _files(output, finished_before) == files_before, "\n".join(log)
        finished_before = now
        files_before = _files(output, now)
    assert counts[0] == 0 and 0 < counts[1] < counts[2] < MAX_TRIALS, (counts, "\n".join(log))  # kills before and between trials
    assert _run_until(output, lambda lines, seconds: False, log) == 0, "\n".join(log[-20:])

    completed = _completed(output)
    statuses = {path.parent.name: json.loads(path.read_text())["status"]
                for path in (output / "search").glob("trial_*/trial.json")}
    assert len(completed) == MAX_TRIALS, (statuses, "\n".join(log))
    architectures = [json.dumps(t["hyperparameters"]["values"], sort_keys=True) for t in completed.values()]
    assert len(set(architectures)) == MAX_TRIALS
    for trial_id, state in finished_before.items():
        assert completed[trial_id]["metrics"] == state["metrics"]
    assert _files(output, finished_before) == files_before

    import keras

    model = keras.models.load_model(output / "export" / "model.keras")
    assert model.count_params() > 0
