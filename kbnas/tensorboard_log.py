"""TensorBoard logs of a search: each trial's hyperparameters and final metrics
(the HParams plugin), and the best score so far.

Layout, under ``<project directory>/tensorboard`` (``kbnas search``:
``OUTPUT/search/tensorboard``), for ``tensorboard --logdir OUTPUT``:

    trial_0001/   the trial's hyperparameters (an HParams session: the
                  architecture's encoding, every other hyperparameter) and, at
                  step 0, the best value of each of its metrics, its epochs,
                  seconds, parameter count and whether it was stopped early
    search/       ``best_<objective>`` and ``<objective>`` at step = trial number

`HParamsLogger` is an oracle trial-end callback
(`BayesianNASOracle.trial_end_callbacks`), so it runs where the oracle lives
(the chief of a parallel search) once per trial. It writes protocol buffers
with TensorBoard's own event-file writer (as PyTorch's ``SummaryWriter`` does)
and never touches TensorFlow's runtime, so it can run in a chief that has not
chosen its devices yet. Cost: one small file per trial.
"""

from __future__ import annotations

import math
import os
import pathlib
import threading
import time

#: Sub-directory of the project directory that holds the logs.
TENSORBOARD_SUBDIR = "tensorboard"


def _hparam_value(value):
    """A value the HParams plugin accepts (bool, int, float or str)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class HParamsLogger:
    """Writes one HParams session per ended trial (module docstring).

    The parameter count comes from the oracle's architecture space (its
    ``search_space`` and ``architecture_hp``) when it has one. A resumed search
    continues the best-so-far curve from the trials completed before.

    Args:
        logdir: the directory of the logs.
    """

    def __init__(self, logdir: str | os.PathLike) -> None:
        self.logdir = pathlib.Path(logdir)
        self._search_writer = None
        self._best: float | None = None
        self._lock = threading.Lock()

    def __call__(self, oracle, trial) -> None:
        from tensorboard.compat.proto import event_pb2
        # (``tensorboard.plugins.hparams.api`` re-exports ``summary_v2.hparams_pb``
        # and imports TensorFlow for its Keras callback; summary_v2 does not.)
        from tensorboard.plugins.hparams import summary_v2 as hparams_summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        number = int(trial.trial_id) + 1 if str(trial.trial_id).isdigit() else 0
        values = {name: _hparam_value(v) for name, v in trial.hyperparameters.values.items()}
        metrics = self._final_metrics(oracle, trial)
        with self._lock:
            writer = EventFileWriter(str(self.logdir / f"trial_{number:04d}"))
            started = time.time() - float(metrics.get("seconds", 0.0))
            summary = hparams_summary.hparams_pb(values, trial_id=f"trial {number}", start_time_secs=started)
            writer.add_event(event_pb2.Event(wall_time=time.time(), step=0, summary=summary))
            for name, value in metrics.items():
                writer.add_event(event_pb2.Event(wall_time=time.time(), step=0, summary=_scalar(name, value)))
            writer.close()
            score = trial.score
            if trial.status == "COMPLETED" and score is not None and math.isfinite(score):
                if self._search_writer is None:
                    self._search_writer = EventFileWriter(str(self.logdir / "search"))
                direction = getattr(oracle.objective, "direction", "max")
                if self._best is None:
                    self._best = _best_before(oracle, trial.trial_id, direction)
                if self._best is None or (score > self._best if direction == "max" else score < self._best):
                    self._best = float(score)
                name = getattr(oracle.objective, "name", "score")
                for tag, value in ((f"best_{name}", self._best), (name, float(score))):
                    self._search_writer.add_event(event_pb2.Event(wall_time=time.time(), step=number,
                                                                  summary=_scalar(tag, value)))
                self._search_writer.flush()

    def _final_metrics(self, oracle, trial) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for name, history in trial.metrics.metrics.items():
            try:
                best = trial.metrics.get_best_value(name)
            except (ValueError, KeyError):
                continue
            if best is not None and math.isfinite(float(best)):
                metrics[name] = float(best)
            observations = history.get_history()
            if observations:
                metrics["epochs"] = float(max(metrics.get("epochs", 0.0), max(o.step for o in observations) + 1))
        curve = getattr(oracle, "learning_curves", {}).get(trial.trial_id)
        if curve:
            # Epochs trained (a final report keeps only the best step of a metric).
            metrics["epochs"] = float(curve["epochs"])
        seconds = getattr(oracle, "trial_seconds", {}).get(trial.trial_id)
        if seconds is not None:
            metrics["seconds"] = float(seconds)
        stopped = getattr(oracle, "stopped_early", {})
        metrics["stopped_early"] = float(trial.trial_id in stopped)
        space = getattr(oracle, "search_space", None)
        architecture = trial.hyperparameters.values.get(getattr(oracle, "architecture_hp", "architecture"))
        if space is not None and isinstance(architecture, str):
            try:
                metrics["params"] = float(space.param_count(space.from_hp_value(architecture)))
            except Exception:  # noqa: BLE001 - a foreign encoding: no count
                pass
        return metrics


def _best_before(oracle, trial_id: str, direction: str) -> float | None:
    scores = [t.score for t in dict(oracle.trials).values()
              if t.trial_id != trial_id and t.status == "COMPLETED" and t.score is not None and math.isfinite(t.score)]
    if not scores:
        return None
    return float(max(scores) if direction == "max" else min(scores))


def _scalar(tag: str, value: float):
    """A scalar summary (TensorBoard's v1 ``scalar_pb`` layout, without TensorFlow)."""
    import numpy as np
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.scalar import metadata
    from tensorboard.util import tensor_util

    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=tag, metadata=metadata.create_summary_metadata(display_name=tag, description=""),
        tensor=tensor_util.make_tensor_proto(np.float32(value)),
    )])
