"""``kbnas search``: the tuner, the progress lines, one process or parallel
trials (``--workers``, ``--listen``, ``--connect``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import pathlib
import time

from kbnas import search_lock
from kbnas.atomic_files import write_json_atomic
from kbnas.layout import PROJECT_NAME, RUN_FILE, cut_by_time_budget
from kbnas.parallel import ParallelSearch, ParallelSettings, default_workers, is_worker_process, parse_address
from kbnas.space.layers import Architecture
from kbnas.cli import common
from kbnas.cli.best import _best_observed_trial, _check_ensemble, _export_best
from kbnas.cli.budget import (
    _ensemble_note,
    _search_budget,
    _selection_note,
    _selects_by_cross_validation,
    _short_budget_note,
)
from kbnas.cli.common import (
    LEGACY_LEARNING_RATE,
    MAX_DEPTH_LIMIT,
    UsageError,
    _format_seconds,
    _quiet_tensorflow,
    _read_json,
    _trial_number,
)
from kbnas.cli.inputs import (
    _check_image_size,
    _check_label_column,
    _check_output,
    _check_run_file,
    _default_epochs,
    _load_split,
    _reading_options,
    _run_settings,
)


class _ProgressLines:
    """``callback(oracle, trial)`` of the oracle: one line per finished trial.

    The trial's number (1-based, as ``kbnas show``), architecture, score, the
    best score of a fully trained trial so far, and times. It runs where the
    oracle lives, so a parallel search's lines come from every worker.
    """

    def __init__(self, oracle, architecture_hp: str) -> None:
        self._started = time.perf_counter()
        self._ended_at_start = oracle.ended_trials()
        self._architecture_hp = architecture_hp

    def __call__(self, oracle, finished) -> None:
        if finished.status not in ("COMPLETED", "FAILED"):
            return  # sent back for a retry: its line comes when it ends
        elapsed = time.perf_counter() - self._started
        ended = oracle.ended_trials()
        remaining = elapsed / max(1, ended - self._ended_at_start) * max(0, oracle.max_trials - ended)
        budget_left = oracle.remaining_time()
        if budget_left is not None:
            remaining = min(remaining, budget_left)
        top = _best_observed_trial(oracle)
        best_score = top.score if top is not None else float("nan")
        arch = finished.hyperparameters.values.get(self._architecture_hp, "?")
        if finished.status == "COMPLETED":
            result = f"{oracle.objective.name}={finished.score:.4f}"
            stop = oracle.stopped_early.get(finished.trial_id)
            if stop is not None:
                why = "cut by the time budget" if cut_by_time_budget(stop) else "stopped"
                result += f" ({why} at epoch {stop['epochs']})"
        else:
            reason = (finished.message or "").strip().splitlines()
            result = f"{finished.status}: {reason[-1] if reason else 'no message'}"
        method = oracle.proposal_log.get(finished.trial_id, {}).get("method", "resumed")
        budget = "" if oracle.max_time is None else f" of a {_format_seconds(oracle.max_time)} budget"
        print(
            f"trial {_trial_number(finished.trial_id)}/{oracle.max_trials} [{method}] {arch}  {result}  "
            f"best={best_score:.4f}  elapsed {_format_seconds(elapsed)}, "
            f"~{_format_seconds(remaining)} left{budget}",
            flush=True,
        )


def _make_tuner(args, hypermodel):
    from kbnas.tuner import BayesianNAS

    # KerasTuner prints "Reloading Tuner from …" when it resumes: not under --quiet.
    with contextlib.redirect_stdout(io.StringIO()) if getattr(args, "quiet", False) else contextlib.nullcontext():
        return BayesianNAS(
            hypermodel,
            max_trials=args.max_trials,
            seed=args.seed,
            acquisition=args.acquisition,
            distance=args.distance,
            directory=args.output,
            project_name=PROJECT_NAME,
            overwrite=False,
            max_consecutive_failed_trials=max(3, args.max_trials),
            max_time=getattr(args, "search_budget", args.time_budget),
            initial_points=list(getattr(args, "start", None) or ()),
            early_stopping=common.EARLY_STOPPING if getattr(args, "early_stopping", True) else None,
        )


def _build_tuner(args):
    """The search's tuner, from the command's arguments: also what each worker
    process of ``--workers N`` calls (it is pickled into them)."""
    if is_worker_process():  # mixed precision is set where the GPU is
        _enable_mixed_precision(args, announce=False)
    return _make_tuner(args, _hypermodel(args))


def _hypermodel(args):
    from kbnas.hypermodel import ConvNetHyperModel

    rate = getattr(args, "learning_rate", None)
    task = getattr(args, "class_task", None) or getattr(args, "task", "auto")  # named classes are classes
    return ConvNetHyperModel(max_depth=args.max_depth, seed=args.seed, task=task,
                             scale_targets=getattr(args, "scale_targets", True),
                             learning_rates=None if rate is None else (rate,))


def check_search_options(args) -> None:
    """The options of ``kbnas search`` that can be checked without the data.

    `main` runs this before it imports TensorFlow or starts workers, so that a
    wrong value is one line within a second, not after a 4-second import.

    Raises:
        UsageError: naming the option and its value.
    """
    if args.max_trials < 1:
        raise UsageError(f"--max-trials must be at least 1, got {args.max_trials}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.learning_rate is not None and not (0 < args.learning_rate < math.inf):
        raise UsageError(f"--learning-rate must be a positive number, got {args.learning_rate}")
    if not 1 <= args.max_depth <= MAX_DEPTH_LIMIT:
        raise UsageError(f"--max-depth must be between 1 and {MAX_DEPTH_LIMIT}, got {args.max_depth}")
    if args.gpus_per_worker < 1:
        raise UsageError(f"--gpus-per-worker must be at least 1, got {args.gpus_per_worker}")
    for number, text in enumerate(getattr(args, "start", None) or (), start=1):
        try:  # the encoding here; validity for the data's shape when the data are read
            Architecture.decode(text)
        except ValueError as error:
            raise UsageError(f"--start {number}: {error}") from None
    _check_ensemble(args)
    _check_image_size(args)
    _check_label_column(args)
    if args.listen:
        _address(args.listen, "--listen", allow_zero=True)
    if args.connect:
        _address(args.connect, "--connect", allow_zero=False)
    else:
        _check_output(pathlib.Path(args.output))


def cmd_search(args) -> int:
    # Started by `main` before TensorFlow's import (not pickled into the workers with args).
    warm = vars(args).pop("warm_workers", None)
    check_search_options(args)
    output = pathlib.Path(args.output) if args.connect else _check_output(pathlib.Path(args.output))
    if not args.connect:
        search_lock.check_free(output)  # at once, not after the data are read (the lock is taken below)
    saved = _read_json(output / RUN_FILE) if (output / RUN_FILE).exists() else None
    _reading_options(args, saved)  # a resumed search reads its data as it began
    # A search begun before the split checks existed resumes as it began.
    arrays, source = _load_split(args, check_split=saved is None, saved=saved)
    args.class_names = source["class_names"]  # recorded in the export's architecture.json
    args.feature_columns = source["feature_columns"]  # likewise
    if args.batch_size is None:
        from kbnas.training import auto_batch_size

        # A resumed search keeps the batch size it began with.
        args.batch_size = (saved or {}).get("batch_size") or auto_batch_size(len(arrays["train"][0]))
    if args.epochs is None:
        args.epochs = _default_epochs(saved, arrays["train"][0].shape[1:])
    if args.learning_rate is None:
        from kbnas.training import default_learning_rate

        # A resumed search keeps its learning rate (searches from before it was recorded: 1e-3).
        args.learning_rate = (
            saved.get("learning_rate", LEGACY_LEARNING_RATE) if saved is not None
            else default_learning_rate(arrays["train"][0].shape[1:])
        )
    if saved is not None:
        # A search from before regression models had the target's scale resumes without it.
        args.scale_targets = bool(saved.get("scale_targets", False))
    _selects_by_cross_validation(args, arrays)  # a choice the data cannot make: refused before anything is written
    args.search_budget = _search_budget(args, arrays)
    settings = _run_settings(args, source)
    if args.connect:
        return _run_remote_workers(args, arrays, output, settings, warm)
    resuming = _check_run_file(output, settings)
    _quiet_tensorflow(args.debug)
    output.mkdir(parents=True, exist_ok=True)
    with search_lock.acquire(output, "kbnas search"):  # one search or export per folder at a time
        recorded = {"trial_devices": saved["trial_devices"]} if saved and "trial_devices" in saved else {}
        write_json_atomic(output / RUN_FILE, {**settings, **recorded})

        workers = _number_of_workers(args)
        parallel = workers > 1 or args.listen is not None
        if parallel:
            search = ParallelSearch(functools.partial(_build_tuner, args), _parallel_settings(args, workers), warm=warm)
            tuner = search.tuner
        else:
            tuner = _build_tuner(args)
        # The chief's cross-validation and retraining train on one device at the trials' global batch;
        # a resumed search keeps the count it began with (the tuner warns when its trials now differ).
        args.trial_devices = recorded.get("trial_devices") or _trial_devices(search if parallel else None, tuner)
        write_json_atomic(output / RUN_FILE, {**settings, "trial_devices": args.trial_devices})
        # (A parallel search's chief keeps one GPU for the retraining and the export.)
        _enable_mixed_precision(args, announce=not args.quiet)
        hypermodel = tuner.hypermodel
        if not args.quiet:
            tuner.oracle.trial_end_callbacks.append(_ProgressLines(tuner.oracle, hypermodel.architecture_hp))
        x_train, x_val = arrays["train"][0], arrays["val"][0]
        if not args.quiet:
            ended = tuner.oracle.ended_trials()
            # A trial that was running when the search was stopped trains again
            # (unless --max-trials trials have ended: `BayesianNASOracle.create_trial`).
            interrupted = sum(t.status == "RUNNING" for t in tuner.oracle.trials.values())
            done = f"{ended} done"
            if interrupted:
                again = min(interrupted, max(0, args.max_trials - ended))
                if tuner.oracle.remaining_time() == 0:
                    done += f", {interrupted} interrupted (not trained: the time budget is spent)"
                elif again == interrupted:
                    done += f", {interrupted} interrupted (trained again)"
                else:
                    done += (f", {interrupted} interrupted ({again} trained again: --max-trials {args.max_trials}, "
                             f"{ended} done)")
            print(
                f"kbnas: {'resuming' if resuming else 'starting'} search in {output} on {source['data']} "
                f"({source['task']}; {len(x_train)} train / {len(x_val)} validation / {len(arrays['test'][0])} "
                f"test examples), "
                f"up to {args.max_trials} trial{'s' if args.max_trials != 1 else ''}"
                f"{f' in {_format_seconds(args.time_budget)}' if args.time_budget else ''}"
                f"{_selection_note(args, arrays)}"
                f"{_ensemble_note(args)}"
                f"{f', {done}' if resuming else ''}"
                f"{_workers_note(search) if parallel else ''}",
                flush=True,
            )
        (search if parallel else tuner).search(*arrays["train"], **_fit_keywords(args, arrays))
        status = _export_best(tuner, hypermodel, arrays, output, args)
        note = _short_budget_note(tuner.oracle)
        if note is not None and not args.quiet:
            print(note, flush=True)
        return status


def _number_of_workers(args) -> int:
    """``--workers``, or with ``auto`` one per visible GPU (1 without GPUs)."""
    if args.workers is not None:
        return args.workers
    import tensorflow as tf

    return default_workers(len(tf.config.list_physical_devices("GPU")), args.gpus_per_worker)


def _trial_devices(search, tuner) -> int:
    """The devices each trial trains on: its worker's GPUs in a parallel search
    (``search``, a `kbnas.parallel.ParallelSearch`), else the replicas of the
    tuner's distribution strategy (a MirroredStrategy over several GPUs).
    The GPUs of this host's workers: hosts joining with ``--connect`` are
    expected to give theirs as many (docs/parallel.md).

    ``--batch-size`` is per device: a trial's global batch is ``--batch-size``
    times this (`kbnas.training`). The chief's cross-validation and retraining
    train on one device and take that global batch, so that an epoch has the
    search's number of steps (`kbnas.cli.best._global_batch_size`).
    """
    return search.devices_per_trial if search is not None else tuner._strategy_replicas()


def _fit_keywords(args, arrays) -> dict:
    """What every trial's ``fit`` gets besides the training arrays."""
    return dict(validation_data=arrays["val"], epochs=args.epochs, batch_size=args.batch_size, verbose=0)


def _parallel_settings(args, workers: int | None):
    host, port = _address(args.listen, "--listen", allow_zero=True) if args.listen else ("127.0.0.1", 0)
    if args.connect:
        _address(args.connect, "--connect", allow_zero=False)
    return ParallelSettings(workers=workers, gpus_per_worker=args.gpus_per_worker, host=host, port=port,
                            connect=args.connect, log_dir=str(pathlib.Path(args.output) / PROJECT_NAME / "workers"))


def _address(text: str, option: str, allow_zero: bool) -> tuple[str, int]:
    try:
        return parse_address(text, allow_zero=allow_zero)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def _workers_note(search) -> str:
    plan = search.plans[0]
    devices = f"{len(plan.gpus)} GPU(s) each" if plan.gpus else f"{plan.threads} CPU thread(s) each"
    return f"; {search.workers} workers ({devices})"


def _enable_mixed_precision(args, announce: bool) -> None:
    if not getattr(args, "mixed_precision", False):
        return
    from kbnas.distribute import enable_mixed_precision_if_gpu

    enabled = enable_mixed_precision_if_gpu(True)
    if announce:
        print(f"kbnas: mixed precision {'on (GPU)' if enabled else 'off: no GPU'}", flush=True)


def _run_remote_workers(args, arrays, output, settings, warm=None) -> int:
    """``--connect``: this host trains trials for a chief on another machine."""
    if (output / RUN_FILE).exists():
        _check_run_file(output, settings)
    _quiet_tensorflow(args.debug)
    search = ParallelSearch(functools.partial(_build_tuner, args),
                            _parallel_settings(args, _number_of_workers(args)), warm=warm)
    if not args.quiet:
        print(f"kbnas: {search.workers} worker(s) training trials for the chief at {args.connect}", flush=True)
    search.search(*arrays["train"], **_fit_keywords(args, arrays))
    if not args.quiet and not search.chief_went_silent:  # (silent: its warning said so)
        print("kbnas: the chief has no more trials; the chief exports the best model", flush=True)
    return 0
