"""What each worker of a parallel search may use: the settings of the search,
and the split of this host's GPUs and CPU cores between its workers."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from typing import Sequence

from kbnas.parallel.network import _unbracketed, parse_address

logger = logging.getLogger("kbnas.parallel")

#: The host part of this host's worker ids (default: the hostname).
ENV_HOST_NAME = "KBNAS_HOST_NAME"


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
        max_restarts: times in a row a dead worker is started again before the
            search stops with `WorkerFailedError`. The count starts over when it
            dies on a new trial: on the chief's host a trial whose worker died
            twice ends as failed (`kbnas.parallel.workers.TRIAL_DEATHS`), and the
            restarted worker gets another (a candidate that runs out of memory
            no longer stops the search). On a ``connect`` host every death counts.
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
