"""The chief of a parallel search (`ParallelSearch`): KerasTuner's oracle
server in a thread of this process, the worker processes of this host, and
the end of the search (the oracle's clock and state) once they are done."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from typing import Any, Callable

from kbnas.parallel.network import (
    ENV_ORACLE_IP,
    ENV_ORACLE_PORT,
    ENV_TUNER_ID,
    _bracketed,
    _connection_error,
    format_address,
    free_port,
    listen_error,
    parse_address,
    wait_for_chief,
)
from kbnas.parallel.plans import (
    ParallelSettings,
    _available_cpus,
    _count_gpus,
    _gpus_of_the_chief,
    default_workers,
    gpu_devices_present,
    plan_workers,
)
from kbnas.parallel.workers import POLL_SECONDS, TRIAL_DEATHS, WarmWorkers, WorkerFailedError, _ChiefGone, _WorkerPool

logger = logging.getLogger("kbnas.parallel")

#: Seconds the chief's gRPC server may take to start listening.
SERVER_START_TIMEOUT = 60.0
#: Tries at a fresh free port when the chosen one was taken in between.
PORT_TRIES = 3


class _BindError(OSError):
    """The chief's gRPC server could not listen on its address."""


class ListenError(OSError):
    """The chief cannot listen on its address (not one of this machine's, or
    its port is taken)."""


class PortInUseError(ListenError):
    """The chief's port is taken."""


class _ChiefServer:
    """KerasTuner's chief in a daemon thread: ``tuner.search`` in chief mode, or
    `kbnas.BayesianNAS.serve_as_chief` (the same without the search's end)."""

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

    On a host without GPU devices a fork server starts at once and imports
    TensorFlow while the chief builds its tuner (`WarmWorkers`); the workers
    are forks of it, which start at once when `search` begins.

    Args:
        build_tuner: ``() -> keras_tuner.Tuner`` (a `kbnas.BayesianNAS` or any
            KerasTuner tuner).
        settings: `ParallelSettings`.
        warm: the fork server of the workers, started earlier (`kbnas search`
            starts it before its own TensorFlow import); default: started here
            when the host has no GPU devices. `search` ends it.
    """

    def __init__(self, build_tuner: Callable[[], Any], settings: ParallelSettings = ParallelSettings(),
                 warm: WarmWorkers | None = None):
        self.build_tuner = build_tuner
        self.settings = settings
        if warm is None and not gpu_devices_present():
            warm = WarmWorkers()
        self._warm = warm
        try:
            n_gpus = _gpus_of_the_chief() if settings.connect is None else _count_gpus()
            if n_gpus:
                # TensorFlow sees GPUs after all: a worker must hide the others before
                # its import, so forks of a server that imported it cannot be used.
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
        #: trial id -> deaths of the workers that trained it.
        self._trial_deaths: dict[str, int] = {}
        #: ``connect``: whether the search ended because the chief stopped answering
        #: (not because it told the workers to stop).
        self.chief_went_silent = False

    @property
    def workers(self) -> int:
        return len(self.plans)

    @property
    def devices_per_trial(self) -> int:
        """The devices a worker trains each trial on: its GPUs (``gpus_per_worker``,
        under a MirroredStrategy when several), 1 on workers without GPUs."""
        return max((len(plan.gpus or ()) for plan in self.plans), default=0) or 1

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> Any:
        """Runs the search (arguments of ``tuner.search``); returns the chief's tuner.

        The chief returns once its own workers are done and no trial is running
        anywhere (workers of other hosts finish theirs first). On a host that only
        runs workers (``connect``) it returns None once they are told to stop, or
        once the chief stops answering (then ``chief_went_silent`` is True).

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
        """Ends the fork server of the workers (`search` does it)."""
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
        if hasattr(tuner, "_record_trial_devices"):
            # The chief's retrain_best trains on one device at the global batch of the trials;
            # a tuner built with distribution_strategy=None trains on one device of its worker.
            tuner._record_trial_devices(1 if tuner.distribution_strategy is None else self.devices_per_trial)
        if hasattr(oracle, "start_clock"):
            oracle.finished = False  # a search of this tuner again: trials are proposed again
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
                              chief_timeout=SERVER_START_TIMEOUT, on_death=self._worker_died)
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
            try:
                self._wait(pool)
            except _ChiefGone:
                raise WorkerFailedError(f"the chief's oracle server stopped ({server.error}); "
                                        "run the search again to resume it") from None
            if hasattr(oracle, "finished"):
                oracle.finished = True  # workers of other hosts start no new trial meanwhile
            self._wait_for_other_hosts(oracle, server)
        finally:
            pool.stop()  # (done already, unless something failed between start and wait)
            # What `BayesianNAS.search` does at its end, here and now (KerasTuner's
            # server thread may go on sleeping for up to 20 s), also after a
            # failure or Ctrl-C: idle time after it is not search time.
            if hasattr(oracle, "finish_search"):
                oracle.finish_search()
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
            self.chief_went_silent = True
            logger.warning("kbnas: the chief at %s:%d stopped answering: its search is over, or it was "
                           "stopped (rerun it, then this command, to resume)", host, port)
        return None

    def _pool(self, host, port, fit_args, fit_kwargs, log_dir, deadline, alive, chief_timeout=None,
              on_death=None) -> _WorkerPool:
        return _WorkerPool(self.build_tuner, self.plans, host, port, fit_args, fit_kwargs, log_dir,
                           self.settings.max_restarts, deadline, alive, chief_timeout, warm=self._warm,
                           on_death=on_death)

    def _worker_died(self, tuner_id: str, why: str) -> str | None:
        """The trial a dead worker was training (None: none); at its `TRIAL_DEATHS`-th
        death that trial ends as failed, so the restarted worker gets another."""
        trial = self.tuner.oracle.ongoing_trials.get(tuner_id)
        if trial is None:
            return None
        deaths = self._trial_deaths[trial.trial_id] = self._trial_deaths.get(trial.trial_id, 0) + 1
        if deaths >= TRIAL_DEATHS:
            message = f"its worker died {deaths} times while training it (the last time: {why})"
            if _fail_ongoing_trial(self.tuner.oracle, tuner_id, trial.trial_id, message):
                logger.warning("kbnas: trial %s failed: %s", trial.trial_id, message)
        return trial.trial_id

    def _wait(self, pool: _WorkerPool) -> None:
        try:
            pool.wait()
        finally:
            self.worker_restarts = dict(pool.restarts)
            self.log_paths = {plan.tuner_id: pool.log_path(plan) for plan in self.plans}


def _fail_ongoing_trial(oracle: Any, tuner_id: str, trial_id: str, message: str) -> bool:
    """Ends ``trial_id`` as FAILED if ``tuner_id`` still runs it, under the oracle's
    lock (the server thread may be ending it right now); whether it did."""
    import keras_tuner

    @keras_tuner.synchronized
    def fail(oracle: Any) -> bool:
        trial = oracle.ongoing_trials.get(tuner_id)
        if trial is None or trial.trial_id != trial_id:
            return False
        trial.status = "FAILED"
        trial.message = message
        oracle.end_trial(trial)
        return True

    return fail(oracle)


def search_in_parallel(build_tuner: Callable[[], Any], *fit_args: Any, workers: int | None = None,
                       **fit_kwargs: Any) -> Any:
    """``ParallelSearch(build_tuner, ParallelSettings(workers=workers)).search(*fit_args, **fit_kwargs)``."""
    return ParallelSearch(build_tuner, ParallelSettings(workers=workers)).search(*fit_args, **fit_kwargs)
