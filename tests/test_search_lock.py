"""One writing process per search folder (`kbnas.search_lock`): flock semantics, no TensorFlow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from kbnas import search_lock
from kbnas.layout import LOCK_FILE


def test_a_held_lock_stops_a_second_holder_with_the_first_ones_description(tmp_path, monkeypatch):
    monkeypatch.setattr(search_lock, "RETRY_SECONDS", 0.2)
    assert search_lock.holder(tmp_path) is None  # no lock file yet
    with search_lock.acquire(tmp_path, "kbnas search"):
        described = (tmp_path / LOCK_FILE).read_text().strip()
        assert described.startswith(f"kbnas search (process {os.getpid()} on ") and "UTC)" in described
        assert search_lock.holder(tmp_path) == described
        start = time.monotonic()
        with pytest.raises(search_lock.DirectoryInUseError) as error:
            search_lock.acquire(tmp_path, "kbnas export")  # another open file: flock conflicts in one process too
        assert time.monotonic() - start >= 0.2  # retried for RETRY_SECONDS
        assert str(error.value).startswith(f"{tmp_path} is in use by {described}: one kbnas search or export")
        assert (tmp_path / LOCK_FILE).read_text().strip() == described  # the loser does not overwrite it
    assert search_lock.holder(tmp_path) is None
    with search_lock.acquire(tmp_path, "kbnas export"):
        assert search_lock.holder(tmp_path).startswith("kbnas export (process ")


def test_a_probe_held_for_an_instant_does_not_stop_a_search_from_starting(tmp_path):
    import fcntl

    (tmp_path / LOCK_FILE).touch()
    descriptor = os.open(tmp_path / LOCK_FILE, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)  # as `holder` takes it
    threading.Timer(0.3, lambda: (fcntl.flock(descriptor, fcntl.LOCK_UN), os.close(descriptor))).start()
    with search_lock.acquire(tmp_path, "kbnas search"):
        assert search_lock.holder(tmp_path).startswith("kbnas search")


def test_the_lock_of_a_killed_process_is_free_at_once(tmp_path):
    code = ("import sys, time; from kbnas import search_lock; "
            "search_lock.acquire(sys.argv[1], 'kbnas search'); print('held', flush=True); time.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        assert search_lock.holder(tmp_path).startswith(f"kbnas search (process {process.pid} ")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert search_lock.holder(tmp_path) is None  # no stale lock: the kernel dropped it with the process
    with search_lock.acquire(tmp_path, "kbnas search"):
        pass


def test_a_file_system_without_flock_goes_on_unlocked_with_a_warning(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(descriptor, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(RuntimeWarning, match=r"kbnas\.lock cannot be locked \(No locks available\); nothing stops"):
        lock = search_lock.acquire(tmp_path, "kbnas search")
    lock.release()


def test_without_fcntl_no_lock_is_taken_and_none_is_known(tmp_path, monkeypatch):
    monkeypatch.setattr(search_lock, "AVAILABLE", False)
    with search_lock.acquire(tmp_path, "kbnas search"):
        assert search_lock.holder(tmp_path) is None
        search_lock.check_free(tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()


def test_check_free_refuses_a_held_folder_at_once(tmp_path):
    with search_lock.acquire(tmp_path, "kbnas search"):
        start = time.monotonic()
        with pytest.raises(search_lock.DirectoryInUseError, match=r"is in use by kbnas search \(process "):
            search_lock.check_free(tmp_path)
        assert time.monotonic() - start < 0.5  # no retry: the probe is shared, the answer immediate
    search_lock.check_free(tmp_path)


def test_a_folder_where_no_lock_file_can_be_made_gets_no_lock(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(search_lock.os, "open", refuse)
    lock = search_lock.acquire(tmp_path, "kbnas export")
    lock.release()
    assert search_lock.holder(tmp_path) is None
