"""``main``: parses, starts parallel workers early, runs the command, and
turns bad input into one line and exit status 2.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import warnings
from typing import Sequence

from kbnas.data_inference import InferredRegressionWarning
from kbnas.layout import EXPORT_STAGING_PREFIX
from kbnas.search_lock import DirectoryInUseError
from kbnas.parallel import (
    ChiefUnreachableError,
    ListenError,
    WarmWorkers,
    WorkerFailedError,
    gpu_devices_present,
)
from kbnas.cli.common import EXIT_USAGE, UsageError, _quiet_tensorflow
from kbnas.cli.options import build_parser
from kbnas.cli.search import cmd_search


def _start_workers_early(args):
    """The fork server of the workers of ``kbnas search --workers N`` (N >= 2),
    started before this process imports TensorFlow so that its import overlaps
    with this one (`kbnas.parallel.WarmWorkers`; hosts without GPU devices
    only), or None."""
    if getattr(args, "func", None) is not cmd_search or args.workers is None:  # None: auto
        return None
    if args.workers < 2 and args.listen is None and args.connect is None:  # a single-process search
        return None
    return None if gpu_devices_present() else WarmWorkers()


def _as_command_line(message: str) -> str:
    """The Python API's advice in the command's words: ``pass task='multiclass'``
    (`kbnas.data_inference`) becomes ``pass --task multiclass``."""
    return re.sub(r"\btask='(\w+)'", r"--task \1", message)


#: Errors of an `OSError` that say the path given is unusable (bad input); others (a full disk,
#: an I/O error) keep their traceback.
PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR,
                         errno.ELOOP, errno.ENOENT, errno.EEXIST})


def _file_error(error: BaseException) -> str | None:
    """``runs/ro: permission denied`` for an `OSError` that says a path is unusable (a
    temporary file kbnas made is named by its folder); None for any other error."""
    path = getattr(error, "filename", None)
    if not isinstance(error, OSError) or path is None or error.errno not in PATH_ERRNOS:
        return None
    path = os.fsdecode(path)
    reason = (error.strerror or type(error).__name__).lower()
    name = os.path.basename(path.rstrip(os.sep))
    temporary = name.startswith(".") and (name.endswith(".tmp") or name.startswith(EXPORT_STAGING_PREFIX))
    return f"{(os.path.dirname(path) or '.') if temporary else path}: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    warm = None
    try:
        args = build_parser().parse_args(argv)
        args.debug = debug
        if getattr(args, "check", None) is not None:
            args.check(args)  # the options' values, before TensorFlow's import and the workers
        warm = args.warm_workers = _start_workers_early(args)
        _quiet_tensorflow()  # before anything else imports TensorFlow
        with warnings.catch_warnings():  # (this command only: main may run in a user's process)
            # The start line says "regression, inferred: pass --task to change" itself.
            warnings.filterwarnings("ignore", category=InferredRegressionWarning)
            return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, NotADirectoryError, ChiefUnreachableError,
            ListenError, DirectoryInUseError) as error:
        if debug:
            raise
        message = _file_error(error) or (str(error).strip().splitlines()[0] if str(error).strip()
                                         else type(error).__name__)
        print(f"kbnas: error: {_as_command_line(message)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        # A folder the user cannot write (a colleague's search, a read-only mount), a path too
        # long: what the system said, about which path, in one line.
        if debug or _file_error(error) is None:
            raise
        print(f"kbnas: error: {_file_error(error)}", file=sys.stderr)
        return EXIT_USAGE
    except WorkerFailedError as error:
        if debug:
            raise
        print(f"kbnas: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kbnas: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        if warm is not None:
            warm.close()  # also when no search took it (a usage error, say)
