"""Parallel trials: one candidate per GPU (or per share of the CPU cores).

NAS candidates are small: synchronous data parallelism across GPUs mostly adds
all-reduce traffic, while training several candidates at once scales with the
number of devices. kbnas runs them on KerasTuner's own chief/worker engine
(``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``):

* the **chief** is the calling process. It holds the oracle and serves it over
  gRPC from a background thread (KerasTuner's ``tuner.search`` in chief mode);
  it trains nothing, and hides the GPUs from itself before TensorFlow touches
  them;
* each **worker** is a process started with ``multiprocessing``'s "spawn"
  method. It first restricts what it may use (its GPUs through
  ``CUDA_VISIBLE_DEVICES``, its share of the CPU cores through TensorFlow's
  intra/inter-op thread counts, and the process affinity with
  ``ParallelSettings.pin_cpus``), then calls ``build_tuner()`` and runs
  KerasTuner's worker loop: ask the chief for a trial, train it, report every
  epoch (so early stopping works), repeat until the chief says stop. On hosts
  without GPU devices the worker processes start ahead (`WarmWorkers`) and
  import TensorFlow while the chief gets ready.

Faults: a worker that dies (killed, out of memory) is started again under the
same tuner id, and KerasTuner hands it back the trial it was running, which is
trained again from the start (`ParallelSettings.max_restarts` times per
worker, then the search stops with an error). Workers exit by themselves when
the chief's process disappears. A killed chief loses nothing completed: the
search directory is the state, and running the same search again resumes it
(KerasTuner retries the trials that were running). Ctrl-C in the chief stops
every worker before it returns.

Many hosts: run the chief with ``ParallelSettings(host="0.0.0.0", port=P)`` on
one machine and ``ParallelSettings(connect="chief-host:P")`` on the others; the
search directory must be shared (each trial's checkpoint is written by the
worker that trains it and read back by the chief for the export). See
docs/parallel.md.

This module imports TensorFlow only inside worker processes.
"""

from __future__ import annotations

import atexit
import dataclasses
import errno
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
#: Seconds a worker waits for the chief to accept connections before it gives up
#: with an error (KerasTuner's own client would wait an hour).
ENV_CHIEF_TIMEOUT = "KBNAS_CHIEF_TIMEOUT"
#: The host part of this host's worker ids (default: the hostname).
ENV_HOST_NAME = "KBNAS_HOST_NAME"
DEFAULT_CHIEF_TIMEOUT = 30.0
#: Seconds the chief's gRPC server may take to start listening.
SERVER_START_TIMEOUT = 60.0
#: Tries at a fresh free port when the chosen one was taken in between.
PORT_TRIES = 3
#: How often the chief looks at its workers, in seconds.
POLL_SECONDS = 0.2
#: Seconds a stopped worker gets to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE = 5.0


class ChiefUnreachableError(RuntimeError):
    """A worker could not connect to the chief's oracle server."""


class WorkerFailedError(RuntimeError):
    """A worker kept failing; the search stopped (it can be resumed)."""


class _ChiefGone(Exception):
    """The chief's server stopped answering (raised inside a worker pool)."""


class _BindError(OSError):
    """The chief's gRPC server could not listen on its address."""


class ListenError(OSError):
    """The chief cannot listen on its address (not one of this machine's, or
    its port is taken)."""


class PortInUseError(ListenError):
    """The chief's port is taken."""


@dataclasses.dataclass(frozen=True)
class ParallelSettings:
    """How a parallel search runs.

    Args:
        workers: trials trained at once on this host. None: one per GPU group
            (visible GPUs // ``gpus_per_worker``), or 1 without GPUs.
        gpus_per_worker: GPUs each worker owns; above 1, a worker trains its
            candidate under a MirroredStrategy across them (``"auto"``
            strategy of `kbnas.BayesianNAS`), for candidates too big for one.
        host: address the chief listens on (loopback by default; ``"0.0.0.0"``
            or ``"::"`` for workers on other machines; IPv6 with or without
            brackets).
        port: the chief's port; 0 picks a free one.
        connect: ``"host:port"`` of a chief on another machine: this host then
            only runs workers for it.
        max_restarts: times a dead worker is started again before the search
            stops with `WorkerFailedError`.
        pin_cpus: pin each worker to its own share of the CPU cores (process
            affinity). Off by default: on the 2-core development machine
            unpinned workers with the same thread counts finished the same 8
            trials 0.3 to 3.1 s sooner than pinned ones in 4 of 4 paired runs
            (docs/parallel.md); pinning may still pay on large multi-socket hosts.
        log_dir: where each worker writes ``<tuner id>.log``; default the
            project's ``workers/`` folder (``./kbnas_workers`` with ``connect``).
    """

    workers: int | None = None
    gpus_per_worker: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    connect: str | None = None
    max_restarts: int = 2
    log_dir: str | None = None
    pin_cpus: bool = False

    def __post_init__(self) -> None:
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ValueError(f"workers must be a positive integer or None, got {self.workers!r}")
        if not isinstance(self.gpus_per_worker, int) or self.gpus_per_worker < 1:
            raise ValueError(f"gpus_per_worker must be a positive integer, got {self.gpus_per_worker!r}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port!r}")
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts!r}")
        if self.connect is not None:
            parse_address(self.connect)
        object.__setattr__(self, "host", _unbracketed(self.host))  # "[::1]" -> "::1", as `socket` takes it


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """What one worker may use.

    Attributes:
        tuner_id: its KerasTuner tuner id (the same after a restart, so that
            KerasTuner hands the restarted worker its unfinished trial).
        gpus: physical GPU indices it sees (``CUDA_VISIBLE_DEVICES``); None on a
            host without GPUs.
        cpus: CPU cores it is pinned to (empty: not pinned).
        threads: TensorFlow intra-op and inter-op threads.
    """

    tuner_id: str
    gpus: tuple[int, ...] | None
    cpus: tuple[int, ...]
    threads: int


def parse_address(address: str, allow_zero: bool = False) -> tuple[str, int]:
    """``"host:port"`` as ``(host, port)``; port 0 (any free port) only if ``allow_zero``.

    An IPv6 address is written in brackets, ``"[::1]:8000"``, and returned
    without them (``("::1", 8000)``), as `socket` takes it.

    Raises:
        ValueError: not of that form.
    """
    text = str(address)
    host, sep, port = text.rpartition(":")
    lowest = 0 if allow_zero else 1
    if not sep or not host or not port.isdigit() or not lowest <= int(port) <= 65535:
        raise ValueError(f"expected an address HOST:PORT such as 127.0.0.1:8000 or [::1]:8000, got {address!r}")
    if host.startswith("[") and host.endswith("]") and len(host) > 2:
        host = _unbracketed(host)
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"expected an address HOST:PORT with an IPv6 host in brackets, such as [::1]:8000, "
                         f"got {address!r}")
    return host, int(port)


def format_address(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets (``[::1]:8000``): what gRPC and users read."""
    return f"{_bracketed(host)}:{port}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _unbracketed(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def default_workers(n_gpus: int, gpus_per_worker: int = 1) -> int:
    """One worker per ``gpus_per_worker`` visible GPUs, at least 1 (a CPU-only host: 1)."""
    return max(1, n_gpus // gpus_per_worker)


def worker_tuner_id(index: int, host: str | None = None) -> str:
    """``"<host>-w<index>"``: unique across the hosts of a search, and never
    containing "chief" (KerasTuner treats any such id as the chief).

    ``host`` defaults to ``$KBNAS_HOST_NAME``, else the hostname: hosts that share
    a hostname (containers, or two commands on one machine) set the variable.
    """
    host = (host or os.environ.get(ENV_HOST_NAME) or socket.gethostname()).replace("chief", "c-h-i-e-f")
    return f"{host}-w{index}"


def plan_workers(
    workers: int,
    n_gpus: int,
    cpus: Sequence[int],
    gpus_per_worker: int = 1,
    host: str | None = None,
    pin_cpus: bool = False,
) -> list[WorkerPlan]:
    """Splits this host's GPUs and CPU cores between ``workers`` workers.

    GPUs: worker i owns GPUs ``[i·g, (i+1)·g)`` (g = ``gpus_per_worker``), taken
    modulo the GPU count when there are more workers than GPU groups (several
    workers then share a GPU, and grow their memory as needed). CPU cores: with at
    least as many cores as workers, each worker gets a share of
    ``len(cpus) // workers`` cores (the remainder goes to the first ones) and
    uses that many TensorFlow threads (intra-op and inter-op); with
    ``pin_cpus`` it is also pinned to those cores. With fewer cores than
    workers nobody is pinned and every worker gets one thread.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    cpus = tuple(cpus)
    plans = []
    share, extra = divmod(len(cpus), workers)
    start = 0
    for i in range(workers):
        if n_gpus > 0:
            gpus = tuple((i * gpus_per_worker + j) % n_gpus for j in range(min(gpus_per_worker, n_gpus)))
        else:
            gpus = None
        if share >= 1:
            size = share + (1 if i < extra else 0)
            mine, start = cpus[start : start + size], start + size
        else:
            mine = ()
        plans.append(WorkerPlan(worker_tuner_id(i + 1, host), gpus, mine if pin_cpus else (), max(1, len(mine))))
    return plans


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(_family(host)) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listen_error(host: str, port: int) -> OSError | None:
    """Why a server could not listen on ``host:port`` right now; None if it could."""
    try:
        with socket.socket(_family(host)) as s:
            s.bind((host, port))
    except OSError as error:
        return error
    return None


def port_in_use(host: str, port: int) -> bool:
    """Whether ``port`` cannot be bound on ``host`` because something holds it."""
    error = listen_error(host, port)
    return error is not None and error.errno == errno.EADDRINUSE


def wait_for_chief(host: str, port: int, timeout: float | None = None) -> None:
    """Returns once the chief at ``host:port`` accepts TCP connections.

    Args:
        timeout: seconds to keep trying; default ``$KBNAS_CHIEF_TIMEOUT`` or
            `DEFAULT_CHIEF_TIMEOUT`.

    Raises:
        ChiefUnreachableError: nothing accepted a connection in time.
    """
    if timeout is None:
        timeout = float(os.environ.get(ENV_CHIEF_TIMEOUT, DEFAULT_CHIEF_TIMEOUT))
    deadline = time.monotonic() + timeout
    while True:
        error = _connection_error(host, port, timeout=2.0)
        if error is None:
            return
        if time.monotonic() >= deadline:
            raise ChiefUnreachableError(
                f"cannot reach the kbnas/KerasTuner chief at {format_address(host, port)} after {timeout:g} s "
                f"({error}): is the chief running, and is that port open to this machine? "
                f"(set {ENV_CHIEF_TIMEOUT} to wait longer)"
            )
        time.sleep(0.5)


def _connection_error(host: str, port: int, timeout: float) -> OSError | None:
    """None when a server listening on ``host:port`` accepts a TCP connection, else why not."""
    try:
        with socket.create_connection((_connectable(host), port), timeout=timeout):
            return None
    except OSError as error:
        return error


def is_worker_process() -> bool:
    """Whether KerasTuner's distributed-tuning variables make this process a worker
    (KerasTuner treats a tuner id containing "chief" as the chief)."""
    return ENV_ORACLE_IP in os.environ and "chief" not in os.environ.get(ENV_TUNER_ID, "")


def _connectable(host: str) -> str:
    """The address to connect to for a server listening on ``host`` (brackets
    of an IPv6 host dropped: KerasTuner's variable holds gRPC's ``[::1]``)."""
    host = _unbracketed(host)
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _available_cpus() -> tuple[int, ...]:
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux: no affinity, one share per core
        return tuple(range(os.cpu_count() or 1))


def _count_gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def _gpus_of_the_chief() -> int:
    """The number of GPUs of this host; the chief process keeps only the first one.

    The chief trains no trial. It keeps GPU 0, with memory growth (it allocates
    nothing until it builds a model), for what it does after the search: the
    retraining and the export of the best model. A TensorFlow runtime that
    initialized every GPU would hold memory on each of them, next to their workers.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            tf.config.set_visible_devices(gpus[:1], "GPU")
            tf.config.experimental.set_memory_growth(gpus[0], True)
        except RuntimeError:
            logger.warning(
                "kbnas: TensorFlow's GPUs were initialized in the chief before the parallel search; "
                "the chief keeps memory on them (build models inside build_tuner to avoid it)"
            )
    return len(gpus)


# ---------------------------------------------------------------------- worker side
@dataclasses.dataclass
class _WorkerJob:
    """Everything a worker process needs, pickled into it."""

    build_tuner: Callable[[], Any]
    plan: WorkerPlan
    host: str
    port: int
    fit_args: tuple
    fit_kwargs: dict
    log_path: str
    deadline: float | None  # time.time() at which training must stop, or None
    parent_pid: int
    chief_timeout: float | None  # seconds to wait for the chief (None: $KBNAS_CHIEF_TIMEOUT)


def _exit_with_parent(parent_pid: int) -> None:
    """A daemon thread that ends this process when its parent is gone."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(3)
            time.sleep(1.0)

    threading.Thread(target=watch, name="kbnas-parent-watch", daemon=True).start()


def _redirect_output(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _restrict_devices(plan: WorkerPlan) -> None:
    """GPUs, cores and threads of this worker: before TensorFlow initializes them.

    ``CUDA_VISIBLE_DEVICES`` is set before TensorFlow is imported, except in a
    warm worker, which exists only on hosts without GPU devices (`WarmWorkers`).
    """
    if plan.gpus is not None:
        # Plan indices count the GPUs this process inherited: map them through an
        # inherited CUDA_VISIBLE_DEVICES (indices or UUIDs) when there is one.
        inherited = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(
            inherited[g] if g < len(inherited) else str(g) for g in plan.gpus
        )
    if plan.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, plan.cpus)
    os.environ["OMP_NUM_THREADS"] = str(plan.threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(plan.threads)
        tf.config.threading.set_inter_op_parallelism_threads(plan.threads)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:  # the script's top level initialized TensorFlow already
        print(f"kbnas worker: could not restrict TensorFlow ({error})", flush=True)


def _import_quietly() -> float:
    """Imports TensorFlow, Keras, KerasTuner and kbnas's tuner with file
    descriptors 1 and 2 on /dev/null (TensorFlow prints start-up lines there
    whatever its log level); returns the seconds it took."""
    started = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import kbnas.tuner  # noqa: F401  (TensorFlow, Keras, KerasTuner)
    finally:
        # An error (of this import or of the job's unpickling) stays visible.
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (devnull, *saved):
            os.close(fd)
    return time.monotonic() - started


def _warm_worker_main(connection: Any, parent_pid: int) -> None:
    """Entry point of a worker started before its job was known (`WarmWorkers`).

    It imports TensorFlow first, without touching any device (thread counts,
    affinity and memory are set once the job comes: TensorFlow reads them when
    it initializes), then waits for its `_WorkerJob` and runs it. A closed pipe
    without a job ends it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the chief stops its workers itself
    _exit_with_parent(parent_pid)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    seconds = _import_quietly()
    try:
        job = connection.recv()
    except (EOFError, OSError):
        os._exit(0)
    connection.close()
    _worker_main(job, warm_import_seconds=seconds)


def _worker_main(job: _WorkerJob, warm_import_seconds: float | None = None) -> None:
    """Entry point of a worker process (multiprocessing target)."""
    if warm_import_seconds is None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the chief stops its workers itself
        _exit_with_parent(job.parent_pid)
    _redirect_output(job.log_path)
    plan = job.plan
    print(f"kbnas worker {plan.tuner_id} pid {os.getpid()}: gpus {plan.gpus}, cpus {list(plan.cpus) or 'any'}, "
          f"{plan.threads} threads, chief {format_address(job.host, job.port)}", flush=True)
    if warm_import_seconds is not None:
        print(f"kbnas worker {plan.tuner_id}: started before its job, TensorFlow imported in "
              f"{warm_import_seconds:.1f} s meanwhile", flush=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.update({ENV_TUNER_ID: plan.tuner_id, ENV_ORACLE_IP: _bracketed(_connectable(job.host)),
                       ENV_ORACLE_PORT: str(job.port)})
    try:
        _restrict_devices(plan)
        wait_for_chief(job.host, job.port, job.chief_timeout)
        tuner = job.build_tuner()
        fit_kwargs = dict(job.fit_kwargs)
        if job.deadline is not None:
            from kbnas.tuner import StopAtDeadline

            fit_kwargs["callbacks"] = [*fit_kwargs.get("callbacks", []),
                                       StopAtDeadline(max(0.0, job.deadline - time.time()))]
        tuner.search(*job.fit_args, **fit_kwargs)
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    print(f"kbnas worker {plan.tuner_id}: done", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skips interpreter teardown: TensorFlow's and gRPC's threads can hang it.
    os._exit(0)


# ---------------------------------------------------------------------- chief side
def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def gpu_devices_present() -> bool:
    """Whether this host shows GPU device files (NVIDIA /dev/nvidia*, AMD /dev/kfd,
    WSL /dev/dxg), without importing TensorFlow."""
    return (os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg")
            or any(name.startswith("nvidia") for name in _listdir("/dev")))


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


class WarmWorkers:
    """Worker processes started before their search is ready.

    A worker's start-up is mostly ``import tensorflow`` (3.5 s on the 2-core
    development machine): started at once, the workers import it while the
    chief imports its own, loads the data and builds its tuner, and take their
    job when the search begins (`_WorkerPool`). Only on hosts without GPU device
    files (`gpu_devices_present`): a worker's ``CUDA_VISIBLE_DEVICES`` must be
    set before its TensorFlow import, and its GPUs are known only from the
    chief's. `ParallelSearch` starts them itself; `kbnas search` starts them
    before the chief's own import. Processes no search took are ended by
    `close` (also at the chief's exit). They inherit the environment of the
    moment they start: variables set later do not reach them.
    """

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._idle: list[tuple[Any, Any]] = []
        try:
            for _ in range(count):
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_warm_worker_main, args=(receiver, os.getpid()),
                                          name="kbnas-worker")
                process.start()
                receiver.close()
                self._idle.append((process, sender))
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    def __len__(self) -> int:
        return len(self._idle)

    def take(self) -> tuple[Any, Any] | None:
        """A started process and the pipe its job goes through, or None when none is left."""
        return self._idle.pop(0) if self._idle else None

    def close(self) -> None:
        """Ends the processes no search took, at once: they hold no state (one whose
        pipe closes also ends by itself, but only after its TensorFlow import)."""
        idle, self._idle = self._idle, []
        for process, sender in idle:
            sender.close()
            if process.exitcode is None:
                process.terminate()
        deadline = time.monotonic() + TERMINATE_GRACE
        for process, _ in idle:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join(5.0)


class _WorkerPool:
    """Starts, watches, restarts and stops the worker processes of one host."""

    def __init__(self, build_tuner, plans, host, port, fit_args, fit_kwargs, log_dir,
                 max_restarts, deadline: Callable[[], float | None], alive: Callable[[], bool],
                 chief_timeout: float | None = None, warm: WarmWorkers | None = None):
        self._context = multiprocessing.get_context("spawn")
        self._build_tuner = build_tuner
        self._plans = plans
        self._host, self._port = host, port
        self._fit_args, self._fit_kwargs = tuple(fit_args), dict(fit_kwargs)
        self._log_dir = log_dir
        self._max_restarts = max_restarts
        self._deadline = deadline
        self._alive = alive
        self._chief_timeout = chief_timeout
        self._warm = warm
        self.processes: dict[str, Any] = {}
        self.restarts: dict[str, int] = {plan.tuner_id: 0 for plan in plans}

    def log_path(self, plan: WorkerPlan) -> str:
        return os.path.join(self._log_dir, f"{plan.tuner_id}.log")

    def _start(self, plan: WorkerPlan) -> None:
        job = _WorkerJob(self._build_tuner, plan, self._host, self._port, self._fit_args, self._fit_kwargs,
                         self.log_path(plan), self._deadline(), os.getpid(), self._chief_timeout)
        warm = self._warm.take() if self._warm is not None else None
        if warm is not None:
            process, sender = warm
            try:
                sender.send(job)
            except OSError:
                pass  # it died before its job came: `wait` sees its exit and starts another
            finally:
                sender.close()
        else:
            process = self._context.Process(target=_worker_main, args=(job,), name=f"kbnas-{plan.tuner_id}")
            process.start()
        self.processes[plan.tuner_id] = process

    def start(self) -> None:
        """Starts every worker (they wait for the chief to listen)."""
        try:
            for plan in self._plans:
                self._start(plan)
        except BaseException:
            self.stop()
            raise

    def wait(self) -> None:
        """Runs every worker to its end; restarts dead ones; stops all on any exit."""
        try:
            running = {plan.tuner_id: plan for plan in self._plans}
            while running:
                time.sleep(POLL_SECONDS)
                if not self._alive():
                    raise _ChiefGone()
                for tuner_id, plan in list(running.items()):
                    code = self.processes[tuner_id].exitcode
                    if code is None:
                        continue
                    if code == 0:
                        del running[tuner_id]
                        continue
                    why = f"{_describe_exit(code)}: {_last_line(self.log_path(plan))}"
                    if self.restarts[tuner_id] >= self._max_restarts:
                        raise WorkerFailedError(
                            f"worker {tuner_id} failed {self.restarts[tuner_id] + 1} times ({why}); "
                            f"its log is {self.log_path(plan)}; run the search again to resume it"
                        )
                    self.restarts[tuner_id] += 1
                    logger.warning("kbnas: worker %s stopped (%s); starting it again, its trial restarts",
                                   tuner_id, why)
                    self._start(plan)
        finally:
            self.stop()

    def stop(self) -> None:
        """SIGTERM to every live worker, SIGKILL after `TERMINATE_GRACE` seconds."""
        live = [p for p in self.processes.values() if p.exitcode is None]
        for process in live:
            process.terminate()
        deadline = time.monotonic() + TERMINATE_GRACE
        for process in live:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join(5.0)


class _ChiefServer:
    """KerasTuner's chief: ``tuner.search`` in chief mode, in a daemon thread."""

    def __init__(self, tuner: Any, host: str, port: int, fit_args: tuple, fit_kwargs: dict):
        self.host, self.port = host, port
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._serve, args=(tuner, fit_args, fit_kwargs), name="kbnas-chief", daemon=True
        )

    def _serve(self, tuner, fit_args, fit_kwargs) -> None:
        # A kbnas tuner serves and nothing more: the chief's main thread stops the
        # clock and saves the oracle (`BayesianNAS.serve_as_chief`).
        serve = getattr(tuner, "serve_as_chief", tuner.search)
        try:
            serve(*fit_args, **fit_kwargs)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            self.error = error

    def start(self) -> None:
        """Starts serving; returns once the server accepts connections.

        Raises:
            OSError: the server did not start (e.g. the port was taken).
        """
        chief_env = {ENV_TUNER_ID: "chief", ENV_ORACLE_IP: _bracketed(self.host), ENV_ORACLE_PORT: str(self.port)}
        saved = {name: os.environ.get(name) for name in chief_env}
        os.environ.update(chief_env)
        try:
            self._thread.start()
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            while True:
                if not self._thread.is_alive():
                    if isinstance(self.error, RuntimeError) and "bind" in str(self.error).lower():
                        raise _BindError(f"the chief's oracle server could not listen on "
                                         f"{format_address(self.host, self.port)} "
                                         f"({self.error})")
                    if self.error is not None:
                        raise self.error  # e.g. a ValueError from the hypermodel
                    raise RuntimeError("the chief's oracle server stopped before it listened")
                if _connection_error(self.host, self.port, timeout=1.0) is None:
                    break
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"the chief's oracle server did not listen on "
                                       f"{format_address(self.host, self.port)} "
                                       f"within {SERVER_START_TIMEOUT:g} s")
                time.sleep(0.05)
        finally:
            # KerasTuner read them when the server started; the rest of this
            # process (the export, the user's code) is not a KerasTuner worker.
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def alive(self) -> bool:
        # KerasTuner's server returns once every worker was told to stop: a
        # finished thread without an error is a finished search.
        return self.error is None


class ParallelSearch:
    """A search that trains several trials at once, on KerasTuner's chief/worker engine.

    ``build_tuner`` is called in this process (the chief's tuner, `tuner`) and
    once in every worker process; it must build the same tuner each time (same
    directory, project and settings). It is pickled into the workers, so it
    must be importable: a module-level function (or a `functools.partial` of
    one), with the script's own work under ``if __name__ == "__main__":``.

    Example::

        def build_tuner():
            return kbnas.BayesianNAS(kbnas.ConvNetHyperModel(), max_trials=40,
                                     directory="runs", project_name="digits")

        if __name__ == "__main__":
            search = kbnas.ParallelSearch(build_tuner, kbnas.ParallelSettings(workers=2))
            tuner = search.search(x, y, epochs=30, validation_data=(x_val, y_val))
            model = tuner.get_best_models(1)[0]

    On a host without GPU devices the worker processes start at once, before
    the chief builds its tuner (`WarmWorkers`: they import TensorFlow
    meanwhile), and take their jobs when `search` begins.

    Args:
        build_tuner: ``() -> keras_tuner.Tuner`` (a `kbnas.BayesianNAS` or any
            KerasTuner tuner).
        settings: `ParallelSettings`.
        warm: processes started earlier for the workers (`kbnas search` starts
            them before its own TensorFlow import); default: started here when
            the host has no GPU devices.
    """

    def __init__(self, build_tuner: Callable[[], Any], settings: ParallelSettings = ParallelSettings(),
                 warm: WarmWorkers | None = None):
        self.build_tuner = build_tuner
        self.settings = settings
        if warm is None and not gpu_devices_present():
            warm = WarmWorkers(settings.workers or 1)
        self._warm = warm
        try:
            n_gpus = _gpus_of_the_chief() if settings.connect is None else _count_gpus()
            if n_gpus:
                # TensorFlow sees GPUs after all: a worker must hide the others before
                # its import, so the processes started ahead cannot be used.
                self.close()
                self._warm = None
            workers = settings.workers or default_workers(n_gpus, settings.gpus_per_worker)
            self.plans = plan_workers(workers, n_gpus, _available_cpus(), settings.gpus_per_worker,
                                      pin_cpus=settings.pin_cpus)
            #: The chief's tuner: None on a host that only runs workers (``connect``).
            self.tuner = None if settings.connect else build_tuner()
        except BaseException:
            self.close()
            raise
        #: tuner id -> times its worker was started again; tuner id -> its log file.
        self.worker_restarts: dict[str, int] = {}
        self.log_paths: dict[str, str] = {}

    @property
    def workers(self) -> int:
        return len(self.plans)

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> Any:
        """Runs the search (arguments of ``tuner.search``); returns the chief's tuner.

        The chief returns once its own workers are done and no trial is running
        anywhere (workers of other hosts finish theirs first). On a host that only
        runs workers (``connect``) it returns None once they are told to stop, or
        once the chief stops answering.

        Raises:
            WorkerFailedError: a worker kept failing, or the chief's server stopped.
            PortInUseError: the chief's port is taken.
            ListenError: the chief cannot listen on ``host`` (not this machine's).
            ChiefUnreachableError: ``connect``: no chief answers at that address.
            RuntimeError: ``max_consecutive_failed_trials`` trials failed in a row.
            KeyboardInterrupt: after every worker was stopped.
        """
        try:
            if self.settings.connect:
                return self._serve_a_remote_chief(fit_args, fit_kwargs)
            return self._search_as_chief(fit_args, fit_kwargs)
        finally:
            self.close()

    def close(self) -> None:
        """Ends the worker processes started ahead that no search took (`search` does it)."""
        if self._warm is not None:
            self._warm.close()

    def _search_as_chief(self, fit_args: tuple, fit_kwargs: dict) -> Any:
        settings = self.settings
        error = listen_error(settings.host, settings.port)
        if error is not None and error.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {settings.port} on {_bracketed(settings.host)} is in use: choose another port, "
                                 "or 0 for a free one")
        if error is not None:
            raise ListenError(f"the chief cannot listen on {format_address(settings.host, settings.port)} "
                              f"({error.strerror or error}): give an address of this machine, such as 127.0.0.1, "
                              "0.0.0.0 or [::]")
        tuner, oracle = self.tuner, self.tuner.oracle
        if hasattr(tuner, "prepare_search"):
            # Configured here, so that the server thread reaches KerasTuner's
            # chief check at once (it reads the environment set around it).
            fit_args, fit_kwargs = tuner.prepare_search(*fit_args, **fit_kwargs)
        if hasattr(oracle, "start_clock"):
            oracle.start_clock()  # the workers' deadlines count from now

        def deadline() -> float | None:
            remaining = oracle.remaining_time() if hasattr(oracle, "remaining_time") else None
            return None if remaining is None else time.time() + remaining

        # KerasTuner's server stops once every worker it knows of was told to stop
        # and no trial is running; a worker it does not know of yet (still starting)
        # would then find no chief. Registered up front, each keeps it up until it
        # has asked and been told to stop.
        from kbnas import keras_tuner_internals as kt_internals

        kt_internals.register_tuner_ids(oracle, (plan.tuner_id for plan in self.plans))
        log_dir = settings.log_dir or os.path.join(tuner.project_dir, "workers")
        for attempt in range(PORT_TRIES):
            port = settings.port or free_port(settings.host)
            server = _ChiefServer(tuner, settings.host, port, fit_args, fit_kwargs)
            pool = self._pool(settings.host, port, fit_args, fit_kwargs, log_dir, deadline, server.alive,
                              chief_timeout=SERVER_START_TIMEOUT)
            # The workers import TensorFlow while the chief starts serving.
            pool.start()
            try:
                server.start()
                break
            except _BindError as error:
                pool.stop()
                if settings.port or attempt == PORT_TRIES - 1:
                    raise PortInUseError(str(error)) from None
            except BaseException:
                pool.stop()
                raise
        try:
            self._wait(pool)
        except _ChiefGone:
            raise WorkerFailedError(f"the chief's oracle server stopped ({server.error}); "
                                    "run the search again to resume it") from None
        self._wait_for_other_hosts(oracle, server)
        # What `BayesianNAS.search` does at its end, here and now: KerasTuner's
        # server thread may go on sleeping for up to 20 s.
        if hasattr(oracle, "stop_clock"):
            oracle.stop_clock()
            oracle.save()
        if getattr(oracle, "failure_limit", None):
            raise RuntimeError(oracle.failure_limit)
        return tuner

    @staticmethod
    def _wait_for_other_hosts(oracle: Any, server: "_ChiefServer") -> None:
        """Until no trial runs anywhere: workers of other hosts finish theirs."""
        waiting = False
        while oracle.ongoing_trials and server.alive():
            if not waiting:
                logger.warning("kbnas: waiting for %d trial(s) running on other hosts", len(oracle.ongoing_trials))
                waiting = True
            time.sleep(POLL_SECONDS)

    def _serve_a_remote_chief(self, fit_args, fit_kwargs) -> None:
        host, port = parse_address(self.settings.connect)
        wait_for_chief(host, port)  # a clear error here, not one per worker
        checks = {"last": 0.0, "failures": 0}

        def chief_answers() -> bool:
            # Checked every 2 s; 5 failures in a row (10 s) mean it is gone.
            now = time.monotonic()
            if now - checks["last"] >= 2.0:
                checks["last"] = now
                reachable = _connection_error(host, port, timeout=2.0) is None
                checks["failures"] = 0 if reachable else checks["failures"] + 1
            return checks["failures"] < 5

        log_dir = self.settings.log_dir or os.path.join(os.getcwd(), "kbnas_workers")
        pool = self._pool(host, port, fit_args, fit_kwargs, log_dir, lambda: None, chief_answers)
        pool.start()
        try:
            self._wait(pool)
        except _ChiefGone:
            logger.warning("kbnas: the chief at %s:%d stopped answering: its search is over, or it was "
                           "stopped (rerun it, then this command, to resume)", host, port)
        return None

    def _pool(self, host, port, fit_args, fit_kwargs, log_dir, deadline, alive, chief_timeout=None) -> _WorkerPool:
        return _WorkerPool(self.build_tuner, self.plans, host, port, fit_args, fit_kwargs, log_dir,
                           self.settings.max_restarts, deadline, alive, chief_timeout, warm=self._warm)

    def _wait(self, pool: _WorkerPool) -> None:
        try:
            pool.wait()
        finally:
            self.worker_restarts = dict(pool.restarts)
            self.log_paths = {plan.tuner_id: pool.log_path(plan) for plan in self.plans}


def search_in_parallel(build_tuner: Callable[[], Any], *fit_args: Any, workers: int | None = None,
                       **fit_kwargs: Any) -> Any:
    """``ParallelSearch(build_tuner, ParallelSettings(workers=workers)).search(*fit_args, **fit_kwargs)``."""
    return ParallelSearch(build_tuner, ParallelSettings(workers=workers)).search(*fit_args, **fit_kwargs)
