"""One writing process per search directory: an advisory lock on ``DIR/kbnas.lock``.

Two ``kbnas search`` processes on one ``--output`` (a second terminal, a
forgotten background job) would each take the other's running trial for an
interrupted one and train it again, write the same ``trial_<id>`` folders and
``oracle.json``, and export into the same folder at once; a ``kbnas export``
beside a running search would retrain and export while the search writes. So
``kbnas search`` and ``kbnas export`` hold an exclusive ``flock`` on
``DIR/kbnas.lock`` while they run, and a second one stops at once with one line
naming the holder (`DirectoryInUseError`).

The kernel drops the lock when its process ends, however it ends (``SIGKILL``
too): there is never a stale lock to delete. The file stays, holding the last
holder's description (the command, its process id, host and start time),
which only the messages read. ``kbnas show`` asks `holder` whether a search
is running, to tell a trial in progress from an interrupted one. A probe takes
a shared lock for an instant; `acquire` retries for `RETRY_SECONDS` so that a
probe never makes a search fail to start.

Workers of a parallel search (``--connect``) do not take it: they are the
chief's, and may share its directory. Where ``fcntl`` is missing (Windows) no
lock is taken and `holder` knows of none (`AVAILABLE`); on a file system
without ``flock`` the search goes on unlocked, with a warning. A lock file of
another user is locked through a read-only descriptor.

Stdlib only.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import socket
import time
import warnings

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from kbnas.layout import LOCK_FILE

#: How long `acquire` retries a lock held for an instant (a `holder` probe).
RETRY_SECONDS = 1.0
#: Whether this platform can tell (``fcntl``): without it `holder` knows of no search.
AVAILABLE = fcntl is not None


class DirectoryInUseError(Exception):
    """Another process holds the search directory's lock (its description in the message)."""


class SearchLock:
    """The held lock of one directory; `release` (or the end of the process) frees it."""

    def __init__(self, descriptor: int | None) -> None:
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is None:
            return
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        finally:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> SearchLock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def acquire(directory: str | os.PathLike, command: str, *, clock=time.monotonic) -> SearchLock:
    """Take ``directory``'s lock for ``command`` (words for the messages, e.g. ``"kbnas search"``).

    The directory must exist. The lock file is created when missing and, once
    held, holds ``"<command> (process <pid> on <host>, since <UTC time>)"``. A
    folder where it cannot be created gets no lock (what needs writing there
    fails on its own, with its own message).

    Raises:
        DirectoryInUseError: another process holds it (after `RETRY_SECONDS`).
    """
    if not AVAILABLE:
        return SearchLock(None)
    path = pathlib.Path(directory) / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        try:  # another user's lock file: flock locks a read-only descriptor too
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            return SearchLock(None)
    except OSError:  # a folder this process cannot write: nor can it write the search there
        return SearchLock(None)
    try:
        deadline = clock() + RETRY_SECONDS
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    raise _in_use(directory, _description(path) or "another process") from None
                time.sleep(0.05)
            except OSError as error:  # a file system without flock (ENOLCK, EINVAL): go on unlocked
                warnings.warn(f"kbnas: {path} cannot be locked ({error.strerror or error}); nothing stops "
                              "a second search in this folder", RuntimeWarning, stacklevel=2)
                os.close(descriptor)
                return SearchLock(None)
    except BaseException:
        os.close(descriptor)
        raise
    since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = f"{command} (process {os.getpid()} on {socket.gethostname()}, since {since})\n".encode()
    try:  # only the messages read it: a full disk must not leave the lock held
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, text, 0)
    except OSError:
        pass
    return SearchLock(descriptor)


def check_free(directory: str | os.PathLike) -> None:
    """Refuse at once, before the data are read, when another process holds ``directory``.

    Raises:
        DirectoryInUseError: it is held (as `acquire` would raise, without waiting).
    """
    who = holder(directory)
    if who is not None:
        raise _in_use(directory, who)


def _in_use(directory: str | os.PathLike, who: str) -> DirectoryInUseError:
    return DirectoryInUseError(f"{directory} is in use by {who}: one kbnas search or export at a time per folder; "
                               "wait for it to end, or choose another --output")


def holder(directory: str | os.PathLike) -> str | None:
    """The description of the process holding ``directory``'s lock, or None when none does."""
    path = pathlib.Path(directory) / LOCK_FILE
    if not AVAILABLE or not path.exists():
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _description(path) or "another process"
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def _description(path: pathlib.Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
