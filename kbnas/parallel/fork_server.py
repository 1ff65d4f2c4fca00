"""A fork server that imported TensorFlow ahead: worker processes that start in
milliseconds.

multiprocessing's "forkserver" start method runs one server process per
Python process. `ForkServer` starts it with `kbnas.parallel.preload` in its
preload list, so that the server imports TensorFlow, Keras and KerasTuner once
(3.5–4.5 s on the 2-core development machine), while the chief imports its
own. Every worker is then a fork of that server: its imports are shared
copy-on-write and it starts at once, also when it is started again after a
crash. Otherwise a worker runs as a "spawn" child does: the caller's main
module and ``sys.path``, its target and arguments pickled.

Only where no GPU device is visible (`kbnas.parallel.plans.gpu_devices_present`):
a worker's ``CUDA_VISIBLE_DEVICES`` must be set before its TensorFlow import,
so on GPU hosts workers are spawned. The server never initializes
TensorFlow's runtime (no device, thread pool or operation), which the
forked workers then configure as their job says.

multiprocessing leaves no public way to stop the server or to read its preload
list; `ForkServer.stop` uses ``multiprocessing.forkserver._forkserver``'s
private names, in this module only, and tests/test_parallel.py fails when
they change. A server already running when `ForkServer` starts (another
library's) is used as it is and left alone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

#: The module the server imports (TensorFlow, quietly; errors kept).
PRELOAD = "kbnas.parallel.preload"
#: Seconds `stop` waits for the server to exit before SIGKILL.
STOP_GRACE = 5.0


class ForkServer:
    """multiprocessing's fork server with TensorFlow preloaded, started at construction.

    ``context`` starts processes as forks of it; `stop` ends it if this object
    started it (call it once no process started through it still runs).
    """

    def __init__(self) -> None:
        import multiprocessing.forkserver

        self.context = multiprocessing.get_context("forkserver")
        server = multiprocessing.forkserver._forkserver
        self._previous_preload = list(server._preload_modules)
        # Started before (by an earlier search, or another library): used as it is.
        self._started = server._forkserver_pid is None
        if self._started:
            self.context.set_forkserver_preload([PRELOAD])
        multiprocessing.forkserver.ensure_running()  # returns at once: the server imports on its own
        self._pid = server._forkserver_pid if self._started else None

    def stop(self) -> None:
        """Ends the server if this object started it (and it is still that one),
        and gives multiprocessing back its previous preload list. Twice is harmless."""
        if not self._started:
            return
        self._started = False
        import multiprocessing.forkserver

        server = multiprocessing.forkserver._forkserver
        self.context.set_forkserver_preload(self._previous_preload)
        with server._lock:
            if server._forkserver_pid is None or server._forkserver_pid != self._pid:
                return
            # What ForkServer._stop does, with SIGTERM: the server reads its
            # "alive" pipe only after its import, and a surviving child would keep
            # that pipe open (children hold it). It holds no state: its forks live on.
            os.close(server._forkserver_alive_fd)
            server._forkserver_alive_fd = None
            os.kill(self._pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            while not os.waitpid(self._pid, os.WNOHANG)[0]:
                if time.monotonic() > deadline:
                    os.kill(self._pid, signal.SIGKILL)
                    os.waitpid(self._pid, 0)
                    break
                time.sleep(0.01)
            address = server._forkserver_address
            server._forkserver_pid = None
            server._forkserver_address = None
            if address and not address.startswith("\0") and os.path.exists(address):
                os.unlink(address)



def available() -> bool:
    """Whether this platform has multiprocessing's fork server (not on Windows)."""
    return "forkserver" in multiprocessing.get_all_start_methods()
