"""Parallel trials: one candidate per GPU (or per share of the CPU cores).

NAS candidates are small: synchronous data parallelism across GPUs mostly adds
all-reduce traffic, while training several candidates at once scales with the
number of devices. kbnas runs them on KerasTuner's own chief/worker engine
(``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``):

* the **chief** is the calling process. It holds the oracle and serves it over
  gRPC from a background thread (KerasTuner's ``tuner.search`` in chief mode);
  it trains nothing, and hides the GPUs from itself before TensorFlow touches
  them;
* each **worker** is a process forked from a server that imported TensorFlow
  while the chief got ready (`WarmWorkers`; Linux hosts without GPU devices),
  or else started with ``multiprocessing``'s "spawn" method. It first
  restricts what it may use (its GPUs through ``CUDA_VISIBLE_DEVICES``, its
  share of the CPU cores through TensorFlow's intra/inter-op thread counts,
  and the process affinity with
  ``ParallelSettings.pin_cpus``), then calls ``build_tuner()`` and runs
  KerasTuner's worker loop: ask the chief for a trial, train it, report every
  epoch (so early stopping works), repeat until the chief says stop.

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

This module imports TensorFlow only inside worker processes and their fork server.
"""

from kbnas.parallel.network import (
    DEFAULT_CHIEF_TIMEOUT,
    ENV_CHIEF_TIMEOUT,
    ENV_ORACLE_IP,
    ENV_ORACLE_PORT,
    ENV_TUNER_ID,
    ChiefUnreachableError,
    format_address,
    free_port,
    is_worker_process,
    listen_error,
    parse_address,
    port_in_use,
    wait_for_chief,
)
from kbnas.parallel.plans import (
    ENV_HOST_NAME,
    ParallelSettings,
    WorkerPlan,
    default_workers,
    gpu_devices_present,
    plan_workers,
    worker_tuner_id,
)
from kbnas.parallel.chief import ListenError, ParallelSearch, PortInUseError, search_in_parallel
from kbnas.parallel.workers import WarmWorkers, WorkerFailedError

__all__ = [
    "DEFAULT_CHIEF_TIMEOUT",
    "ENV_CHIEF_TIMEOUT",
    "ENV_HOST_NAME",
    "ENV_ORACLE_IP",
    "ENV_ORACLE_PORT",
    "ENV_TUNER_ID",
    "ChiefUnreachableError",
    "ListenError",
    "ParallelSearch",
    "ParallelSettings",
    "PortInUseError",
    "WarmWorkers",
    "WorkerFailedError",
    "WorkerPlan",
    "default_workers",
    "format_address",
    "free_port",
    "gpu_devices_present",
    "is_worker_process",
    "listen_error",
    "parse_address",
    "plan_workers",
    "port_in_use",
    "search_in_parallel",
    "wait_for_chief",
    "worker_tuner_id",
]
