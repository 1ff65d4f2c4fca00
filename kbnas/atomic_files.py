"""Atomic file writes: a kill during a save leaves the old file or the new one, never half of either.

KerasTuner writes ``oracle.json``, ``tuner0.json`` and every ``trial.json`` in
place (``open(path, "w")`` then ``write``). A process killed between the two
leaves an empty or truncated file, and the next run cannot resume: its
``json.loads`` fails on the file. kbnas writes these files, and its own
``kbnas_run.json``, by writing a temporary file in the same folder, flushing and
``fsync``-ing it, then ``os.replace``-ing it over the target, which POSIX and
Windows make atomic within one file system.

Paths with a scheme (``gs://…``, ``s3://…``: KerasTuner's ``tf.io.gfile``
back ends) are not local files: for them the caller keeps KerasTuner's writer.

This module imports only the standard library.
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
from typing import Any


class DamagedFileError(ValueError):
    """A state file that is not valid JSON (written by something else, or cut short)."""


def check_json_files(paths) -> None:
    """Raise `DamagedFileError` naming the first local file of ``paths`` that is not valid JSON.

    Used before KerasTuner's reload, whose own error (``json.loads``'s) does not
    say which file is damaged.
    """
    for path in paths:
        if not is_local_path(path) or not os.path.exists(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
        except (ValueError, UnicodeDecodeError) as error:
            remedy = "restore it or remove its trial folder" if os.path.basename(path) == "trial.json" else "restore it"
            raise DamagedFileError(f"{path} is damaged ({error}); {remedy}, or start over in another directory") from None


def is_local_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a local file path (not ``scheme://…``)."""
    return "://" not in os.fspath(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace ``path``'s content by ``text`` atomically (module docstring).

    Raises:
        OSError: the folder cannot be written; ``path`` is then unchanged.
    """
    target = pathlib.Path(path)
    temporary = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # Created 0666 less the umask, as open() would; an existing target's mode is kept.
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            os.chmod(temporary, target.stat().st_mode & 0o7777)
        except FileNotFoundError:
            pass
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> str:
    """``json.dumps(obj)`` written atomically to ``path``; returns the text."""
    text = json.dumps(obj, indent=indent)
    write_text_atomic(path, text)
    return text
