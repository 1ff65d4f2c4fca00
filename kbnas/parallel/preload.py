"""Imported by the fork server of a parallel search (`kbnas.parallel.fork_server`):
TensorFlow, Keras, KerasTuner and kbnas's tuner, once, for every worker forked
from it. Quiet (TensorFlow prints start-up lines on file descriptors 1 and 2
whatever its log level), deaf to Ctrl-C (the server shares the chief's process
group; multiprocessing ignores SIGINT in it only after the preload), and never
fatal: multiprocessing's server survives only an ImportError of its preload,
so any error is kept in `ERROR`, and each worker forked from the server stops
with it (`kbnas.parallel.workers`): a half-done import cannot be redone.

Then every object so far is frozen out of the garbage collector
(``gc.freeze``): a fork's first full collection would otherwise write to every
object's header and so copy the pages it shares with the server (measured: a
collection in a fork took 0.22–0.28 s and 27,000 page faults, about 100 MB;
after the freeze, 0 s and 9).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time

#: Seconds the import took in the server; None if it failed (then `ERROR` says why).
SECONDS: float | None = None
ERROR: str | None = None


def _import_quietly() -> None:
    global SECONDS, ERROR
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.monotonic()
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import kbnas.tuner  # noqa: F401  (TensorFlow, Keras, KerasTuner)

        SECONDS = time.monotonic() - started
    except BaseException as error:  # noqa: BLE001: the server must live on (see above)
        ERROR = f"{type(error).__name__}: {error}"
    finally:
        signal.signal(signal.SIGINT, interrupt)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (devnull, *saved):
            os.close(fd)


_import_quietly()
gc.collect()
gc.freeze()
