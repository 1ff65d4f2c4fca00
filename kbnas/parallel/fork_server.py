"""A fork server that imported TensorFlow ahead: worker processes that start in
milliseconds.

multiprocessing's "forkserver" start method runs one server process per
Python process. `ForkServer.start` starts it with `kbnas.parallel.preload` as
its preload list, so that the server imports TensorFlow, Keras and KerasTuner
once (3.5–4.5 s on the 2-core development machine) while the chief imports its
own. Every worker is then a fork of that server: its imports are shared
copy-on-write and it starts at once, also when it is started again after a
crash. Otherwise a worker runs as a "spawn" child does: the caller's main
module, working directory and ``sys.path``, its target and arguments pickled.

Only where it is safe and ours (`available`): Linux (forking a process that
loaded Apple's frameworks is unsafe, so not macOS; Windows has no fork server),
a Python whose server listens on a file socket (3.10.9+, 3.11.1+:
CVE-2022-42919), no GPU device visible (a worker's ``CUDA_VISIBLE_DEVICES``
must be set before its TensorFlow import; `kbnas.parallel.WarmWorkers`
decides), and no server started by other code in this process (its preload
is not ours). Elsewhere the workers are spawned. The server never initializes
TensorFlow's runtime (no device, thread pool or operation): each forked worker
configures it as its job says.

multiprocessing leaves no public way to stop the server or to read its preload
list: this module uses ``multiprocessing.forkserver._forkserver``'s private
names, and only it; tests/test_parallel.py fails when they change.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time

logger = logging.getLogger("kbnas.parallel")

#: The module the server imports (TensorFlow, quietly; errors kept).
PRELOAD = "kbnas.parallel.preload"
#: Seconds `ForkServer.stop` waits for the server to exit after SIGTERM, before SIGKILL.
STOP_GRACE = 5.0


def available() -> bool:
    """Whether kbnas forks its workers from a fork server on this platform (module docstring)."""
    version = sys.version_info
    if version[:2] == (3, 10) and version < (3, 10, 9) or version[:3] == (3, 11, 0):
        return False
    return sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods()


def _stdlib_server():
    import multiprocessing.forkserver

    return multiprocessing.forkserver._forkserver


class ForkServer:
    """multiprocessing's fork server with TensorFlow preloaded (`start`).

    ``context`` starts processes as forks of it; `stop` ends it.
    """

    def __init__(self, context, previous_preload: list) -> None:
        self.context = context
        self._previous_preload = previous_preload
        self._stopped = False

    @classmethod
    def start(cls) -> "ForkServer | None":
        """Starts the server, or None where none can be used: not `available`, one
        already started by other code in this process, or a failed start (a
        temporary folder whose socket path is too long, say: logged)."""
        if not available():
            return None
        import multiprocessing.forkserver

        server = _stdlib_server()
        if server._forkserver_pid is not None:
            return None
        context = multiprocessing.get_context("forkserver")
        previous = list(server._preload_modules)
        context.set_forkserver_preload([PRELOAD])
        try:
            multiprocessing.forkserver.ensure_running()  # returns at once: the server imports on its own
        except OSError as error:
            context.set_forkserver_preload(previous)
            logger.warning("kbnas: cannot start a fork server for the workers (%s); they start as new processes",
                           error)
            return None
        return cls(context, previous)

    def stop(self) -> None:
        """Ends the server (the one running now, if it preloads kbnas's module: a
        server multiprocessing started again after this one died is ended too), and
        gives multiprocessing back its previous preload list. Twice is harmless.

        Call it once no worker forked from it runs. Where other processes of this
        one still run (other code may fork from the same server), the server is
        only told to end (its "alive" pipe closed: it exits after their end, as
        multiprocessing's own stop does); otherwise it gets SIGTERM at once (it
        reads that pipe only after its import) and is waited for.
        """
        if self._stopped:
            return
        self._stopped = True
        server = _stdlib_server()
        with server._lock:
            ours = server._preload_modules == [PRELOAD]
            self.context.set_forkserver_preload(self._previous_preload)
            pid = server._forkserver_pid
            if not ours or pid is None:
                return
            alive_fd, address = server._forkserver_alive_fd, server._forkserver_address
            server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None
            try:
                os.close(alive_fd)
                if not multiprocessing.active_children():
                    os.kill(pid, signal.SIGTERM)
                    _reap(pid, STOP_GRACE)
            except ProcessLookupError:
                pass
            finally:
                if isinstance(address, str) and not address.startswith("\0") and os.path.exists(address):
                    os.unlink(address)


def _reap(pid: int, grace: float) -> None:
    """Waits for child ``pid`` to exit, SIGKILL after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    try:
        while not os.waitpid(pid, os.WNOHANG)[0]:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.01)
    except ChildProcessError:  # reaped elsewhere
        pass
