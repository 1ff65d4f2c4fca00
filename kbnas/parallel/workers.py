"""The worker processes of a parallel search: their entry point (a worker
restricts its devices, then runs KerasTuner's worker loop against the chief),
the fork server that imports TensorFlow for them ahead (`WarmWorkers`), and
the pool that starts, watches, restarts and stops them (`_WorkerPool`)."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable

from kbnas.parallel.network import (
    ENV_ORACLE_IP,
    ENV_ORACLE_PORT,
    ENV_TUNER_ID,
    _bracketed,
    _connectable,
    format_address,
    wait_for_chief,
)
from kbnas.parallel.fork_server import PRELOAD, ForkServer
from kbnas.parallel.plans import WorkerPlan

logger = logging.getLogger("kbnas.parallel")

#: How often the chief looks at its workers, in seconds.
POLL_SECONDS = 0.2
#: Seconds a stopped worker gets to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE = 5.0
#: Deaths of its worker after which a trial ends as failed instead of training again
#: (a candidate that runs out of memory would otherwise kill every worker it meets).
TRIAL_DEATHS = 2


class WorkerFailedError(RuntimeError):
    """A worker kept failing; the search stopped (it can be resumed)."""


class _ChiefGone(Exception):
    """The chief's server stopped answering (raised inside a worker pool)."""


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
    chief_timeout: float | None  # seconds to wait for the chief (None: $KBNAS_CHIEF_TIMEOUT)
    environ: dict  # the chief's environment when it started this worker
    forked: bool  # a fork of the fork server (`WarmWorkers`), not a spawned process


def _exit_with_parent() -> None:
    """A daemon thread that ends this process when the process that started it
    (the chief, also for a fork of the fork server) is gone."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a multiprocessing child
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(3)

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
    fork of the fork server, which exists only on hosts without GPU devices
    (`WarmWorkers`).
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


def _become_worker(environ: dict) -> None:
    """Ctrl-C ignored (the chief stops its workers itself), an exit with the
    chief, and the chief's environment (a fork of the fork server has the
    environment of the server's start)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    os.environ.clear()
    os.environ.update(environ)


def _preload_note(tuner_id: str) -> str:
    """A forked worker's line on the fork server's TensorFlow import.

    Raises:
        RuntimeError: the server's import failed (a half-done import cannot be redone here).
    """
    preload = sys.modules.get(PRELOAD)
    if preload is None:  # its server was not started with kbnas's preload: it imports here
        return f"kbnas worker {tuner_id}: forked from a fork server that had not imported TensorFlow"
    if preload.ERROR is not None:
        raise RuntimeError(f"the workers' fork server could not import TensorFlow ({preload.ERROR})")
    return f"kbnas worker {tuner_id}: forked from the fork server, which imported TensorFlow in {preload.SECONDS:.1f} s"


def _worker_main(job: _WorkerJob) -> None:
    """Entry point of a worker process (multiprocessing target)."""
    _become_worker(job.environ)
    _redirect_output(job.log_path)
    plan = job.plan
    print(f"kbnas worker {plan.tuner_id} pid {os.getpid()}: gpus {plan.gpus}, cpus {list(plan.cpus) or 'any'}, "
          f"{plan.threads} threads, chief {format_address(job.host, job.port)}", flush=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.update({ENV_TUNER_ID: plan.tuner_id, ENV_ORACLE_IP: _bracketed(_connectable(job.host)),
                       ENV_ORACLE_PORT: str(job.port)})
    try:
        if job.forked:
            print(_preload_note(plan.tuner_id), flush=True)
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


#: Log lines that say nothing of why a worker ended: TensorFlow's and absl's
#: start-up notices (``I0000 00:00:…``), KerasTuner's "Reloading Tuner from …".
_NOISE = re.compile(r"^([IWE]\d{4} \d\d:\d\d|WARNING: All log messages before absl|Reloading Tuner from |"
                    r"To enable the following instructions)")


def _last_line(path: str) -> str:
    """The last line of a worker's log that can say why it ended."""
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip() and not _NOISE.match(line.strip())]
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


class WarmWorkers:
    """Worker processes forked from a server that imported TensorFlow ahead.

    A worker's start-up is mostly ``import tensorflow`` (3.5–4.5 s on the
    2-core development machine). `WarmWorkers` starts a fork server
    (`kbnas.parallel.fork_server.ForkServer`) that imports it once, while the
    chief imports its own, loads the data and builds its tuner; the workers of
    the search (`_WorkerPool`), and any worker started again after a crash,
    are forks of it that start at once. Only on hosts without GPU device files
    (`gpu_devices_present`): a worker's ``CUDA_VISIBLE_DEVICES`` must be set
    before its TensorFlow import, and its GPUs are known only from the
    chief's. `ParallelSearch` starts it itself; `kbnas search` starts it
    before the chief's own import. Where no fork server can be used (see
    `kbnas.parallel.fork_server`: macOS, Windows, one that other code started),
    ``context`` spawns the workers, which import TensorFlow themselves.
    """

    def __init__(self) -> None:
        self._server: ForkServer | None = ForkServer.start()
        #: How the pool starts workers: forks of the server, or spawned processes.
        self.context = self._server.context if self._server is not None else multiprocessing.get_context("spawn")
        atexit.register(self.close)

    def close(self) -> None:
        """Ends the fork server; later workers are spawned. Call it once the
        workers forked from it have ended (`_WorkerPool.stop`). Twice is harmless."""
        server, self._server = self._server, None
        self.context = multiprocessing.get_context("spawn")
        if server is not None:
            server.stop()


#: The exit code multiprocessing reports for a fork whose fork server died.
_SERVER_LOST = 255


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _WorkerPool:
    """Starts, watches, restarts and stops the worker processes of one host."""

    def __init__(self, build_tuner, plans, host, port, fit_args, fit_kwargs, log_dir,
                 max_restarts, deadline: Callable[[], float | None], alive: Callable[[], bool],
                 chief_timeout: float | None = None, warm: WarmWorkers | None = None,
                 on_death: Callable[[str, str], str | None] | None = None):
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
        self._on_death = on_death
        self.processes: dict[str, Any] = {}
        self.restarts: dict[str, int] = {plan.tuner_id: 0 for plan in plans}
        #: tuner id -> deaths since it last died on another trial; the trial of its last death.
        self._in_a_row: dict[str, int] = {plan.tuner_id: 0 for plan in plans}
        self._last_trial: dict[str, str | None] = {}

    def log_path(self, plan: WorkerPlan) -> str:
        return os.path.join(self._log_dir, f"{plan.tuner_id}.log")

    def _start(self, plan: WorkerPlan) -> None:
        context = self._warm.context if self._warm is not None else self._context
        job = _WorkerJob(self._build_tuner, plan, self._host, self._port, self._fit_args, self._fit_kwargs,
                         self.log_path(plan), self._deadline(), self._chief_timeout, dict(os.environ),
                         forked=context.get_start_method() == "forkserver")
        process = context.Process(target=_worker_main, args=(job,), name=f"kbnas-{plan.tuner_id}")
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
                    if code == _SERVER_LOST and _exists(self.processes[tuner_id].pid):
                        # Its fork server died (killed, out of memory) and reported this
                        # code for a fork that still runs: not the worker's fault.
                        os.kill(self.processes[tuner_id].pid, signal.SIGKILL)
                        logger.warning("kbnas: the workers' fork server stopped; starting worker %s again", tuner_id)
                        self._start(plan)
                        continue
                    why = f"{_describe_exit(code)}: {_last_line(self.log_path(plan))}"
                    if self._count_death(tuner_id, why) > self._max_restarts:
                        raise WorkerFailedError(
                            f"worker {tuner_id} failed {self._in_a_row[tuner_id]} times in a row ({why}); "
                            f"its log is {self.log_path(plan)}; run the search again to resume it"
                        )
                    self.restarts[tuner_id] += 1
                    logger.warning("kbnas: worker %s stopped (%s); starting it again", tuner_id, why)
                    self._start(plan)
        finally:
            self.stop()

    def _count_death(self, tuner_id: str, why: str) -> int:
        """Deaths of this worker in a row: since it last died on another trial.

        ``on_death`` (the chief's) returns the trial the worker was training, and
        ends it as failed once it has killed its worker `TRIAL_DEATHS` times; a
        worker that then dies on the next trial made progress. Deaths without a
        known trial (at start-up, or on a host that is not the chief) add up.
        """
        trial_id = self._on_death(tuner_id, why) if self._on_death is not None else None
        if trial_id is not None and trial_id != self._last_trial.get(tuner_id):
            self._in_a_row[tuner_id] = 0
        if trial_id is not None:
            self._last_trial[tuner_id] = trial_id
        self._in_a_row[tuner_id] += 1
        return self._in_a_row[tuner_id]

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
