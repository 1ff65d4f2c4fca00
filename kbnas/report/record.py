"""What a report shows, as plain data: one search read from its files or its tuner.

`read_search` turns a search directory (``kbnas search --output DIR``, or a
KerasTuner project directory with ``oracle.json``) or a live `kbnas.BayesianNAS`
tuner into a `SearchRecord`: every trial with how it was proposed, its score,
epochs, seconds and parameters; the recommended trial; the run's settings; and
the surrogate's leave-one-out predictions (`BayesianNASOracle.surrogate_leave_one_out`).

Trials are numbered 1, 2, … as in the progress lines and ``kbnas show``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import warnings
from typing import Any

from kbnas.atomic_files import ORACLE_RECORD_SHAPE, TRIAL_RECORD_SHAPE, DamagedFileError, read_state_file
from kbnas.layout import EXPORT_DIR, PROJECT_NAME, RUN_FILE, SELECTION_FILE, cut_by_time_budget
from kbnas.space import SearchSpace

#: Proposal methods of the initial design (`BayesianNASOracle._initial_design`,
#: and the random draws that complete it).
INITIAL_METHODS = ("initial", "template", "random")


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial as the report shows it.

    Attributes:
        number: 1-based trial number (KerasTuner's id + 1).
        trial_id: KerasTuner's trial id.
        status: KerasTuner's status (COMPLETED, FAILED, RUNNING, …).
        architecture: the architecture's encoding, or None for a plain space.
        hyperparameters: the other hyperparameter values.
        score: the objective's best value (None when not completed).
        params: the model's parameter count (None without an architecture).
        epochs: epochs trained (reported steps of the objective).
        seconds: wall seconds from the trial's creation to its end.
        ended_at: search seconds at its end (None in searches made before kbnas
            recorded it; the report then adds up ``seconds`` in end order).
        method: how the oracle proposed it ("template", "random", "gp-ei", …).
        acquisition, predicted_mean, predicted_std: a GP proposal's acquisition
            value and posterior (on the oracle's warped scale) when proposed.
        stopped_at_epoch: the epoch at which early stopping stopped it, or the
            time budget cut it, or None.
        cut_by_time_budget: whether the time budget cut it (not the
            early-stopping rule).
    """

    number: int
    trial_id: str
    status: str
    architecture: str | None
    hyperparameters: dict
    score: float | None
    params: int | None
    epochs: int | None
    seconds: float | None
    ended_at: float | None
    method: str
    acquisition: float | None = None
    predicted_mean: float | None = None
    predicted_std: float | None = None
    stopped_at_epoch: int | None = None
    cut_by_time_budget: bool = False

    @property
    def initial(self) -> bool:
        """Whether the trial belongs to the initial design (not a GP proposal)."""
        return not (self.method.startswith("gp-") or self.method == "reevaluate")


@dataclasses.dataclass(frozen=True)
class SearchRecord:
    """A search as the report shows it (module docstring).

    Attributes:
        source: the directory (or the tuner's project directory) it was read from.
        objective: the objective's name; ``direction`` "max" or "min".
        trials: every trial, by number.
        recommended: trial id of the recommendation (the exported trial when
            there is an export, else the oracle's best), or None.
        recommended_by: "export", "oracle" or None.
        search_space: the architecture space (None for a plain space).
        run: the run's settings (``kbnas_run.json``; {} for a Python search).
        export: the export's ``architecture.json`` (None without an export).
        selection: the cross-validated selection (``selection.json``) or None.
        search_seconds: the search's wall seconds (all sessions).
        oracle_seconds: seconds the oracle spent proposing.
        leave_one_out: trial_id -> {"score", "z", "mean", "std"} (may be empty).
        oracle_settings: the oracle's saved settings (distance, acquisition, …).
    """

    source: pathlib.Path
    objective: str
    direction: str
    trials: tuple[TrialRecord, ...]
    recommended: str | None
    recommended_by: str | None
    search_space: SearchSpace | None
    run: dict
    export: dict | None
    selection: dict | None
    search_seconds: float
    oracle_seconds: float
    leave_one_out: dict
    oracle_settings: dict

    @property
    def completed(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.status == "COMPLETED" and t.score is not None]

    @property
    def training_seconds(self) -> float:
        return float(sum(t.seconds or 0.0 for t in self.trials))

    def trial(self, trial_id: str | None) -> TrialRecord | None:
        return next((t for t in self.trials if t.trial_id == trial_id), None)

    def end_times(self) -> dict[str, float]:
        """trial_id -> search seconds at its end: recorded, or else the running sum
        of the trials' seconds and proposal times in end order."""
        recorded = {t.trial_id: t.ended_at for t in self.trials if t.ended_at is not None}
        if len(recorded) == len([t for t in self.trials if t.seconds is not None]) and recorded:
            return recorded
        clock, times = 0.0, {}
        for t in sorted(self.trials, key=lambda t: t.number):
            if t.seconds is None:
                continue
            clock += t.seconds
            times[t.trial_id] = clock
        return times


def read_search(source: Any, *, surrogate: bool = True) -> SearchRecord:
    """The `SearchRecord` of a search directory or of a `kbnas.BayesianNAS` tuner.

    Args:
        source: a path (a ``kbnas search`` output directory, or a KerasTuner
            project directory holding ``oracle.json``) or a tuner whose oracle is
            a `kbnas.BayesianNASOracle`.
        surrogate: compute the surrogate's leave-one-out predictions (a directory
            is then reloaded into an oracle, which imports KerasTuner).

    Raises:
        ValueError: the path holds no search, or the tuner's oracle is not kbnas's.
    """
    if isinstance(source, (str, pathlib.Path)):
        output, project = _directories(pathlib.Path(source))
        state = _read_json(project / "oracle.json", ORACLE_RECORD_SHAPE)
        trial_states = [_read_json(f, TRIAL_RECORD_SHAPE) for f in sorted(project.glob("trial_*/trial.json"))]
        oracle = _reload_oracle(project) if surrogate else None
    else:
        from kbnas.oracle import BayesianNASOracle

        oracle = getattr(source, "oracle", None)
        if not isinstance(oracle, BayesianNASOracle):
            raise ValueError("read_search needs a path or a tuner whose oracle is a kbnas.BayesianNASOracle")
        project = pathlib.Path(source.project_dir)
        output = project.parent if (project.parent / RUN_FILE).exists() else project
        state = oracle.get_state()
        trial_states = [t.get_state() for t in oracle.trials.values()]
    return _record(output, state, trial_states, oracle if surrogate else None)


def _directories(path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    if (path / PROJECT_NAME / "oracle.json").exists():
        return path, path / PROJECT_NAME
    if (path / "oracle.json").exists():
        return (path.parent if (path.parent / RUN_FILE).exists() else path), path
    raise ValueError(f"{path} holds no search (no {PROJECT_NAME}/oracle.json or oracle.json)")


def _read_json(path: pathlib.Path, shape: Any = None) -> Any:
    """A state file of the search, of ``shape`` (`kbnas.atomic_files.read_state_file`).

    Raises:
        ValueError: it is missing, or damaged (`kbnas.atomic_files.DamagedFileError`).
    """
    try:
        return read_state_file(path, shape=shape)
    except FileNotFoundError:
        raise ValueError(f"cannot read {path}: it is missing") from None


def _optional_json(path: pathlib.Path) -> Any:
    """`_read_json`, or None when the file does not exist (a search without export, …)."""
    return _read_json(path) if path.exists() else None


def _reload_oracle(project: pathlib.Path):
    """A `BayesianNASOracle` restored from ``project`` (None if that fails).

    Raises:
        DamagedFileError: a state file is not of the shape KerasTuner's reload reads.
    """
    from kbnas import keras_tuner_internals as kt_internals
    from kbnas.oracle import BayesianNASOracle

    try:
        with warnings.catch_warnings():
            # The saved settings replace the constructor's defaults: no need to warn.
            warnings.simplefilter("ignore")
            oracle = BayesianNASOracle(max_trials=None)
            kt_internals.set_project_dir(oracle, str(project.parent), project.name)
            oracle.reload()
    except DamagedFileError:
        raise  # a damaged search is the user's to fix, named in one line
    except Exception as error:  # noqa: BLE001 - a report without the surrogate beats none
        warnings.warn(f"kbnas: the report cannot reload the oracle ({type(error).__name__}: {error}); "
                      "it has no surrogate figure", RuntimeWarning, stacklevel=3)
        return None
    return oracle


def _record(output: pathlib.Path, state: dict, trial_states: list[dict], oracle) -> SearchRecord:
    saved = state.get("kbnas") or {}
    objective = saved.get("objective") or {}
    space = SearchSpace.from_config(saved["search_space"]) if saved.get("search_space") else None
    architecture_hp = saved.get("architecture_hp", "architecture")
    proposals = saved.get("proposal_log") or {}
    seconds = saved.get("trial_seconds") or {}
    ended_at = saved.get("trial_ended_at") or {}
    stopped = saved.get("stopped_early") or {}
    curves = saved.get("learning_curves") or {}
    objective_name = objective.get("name") or "score"

    trials = []
    for t in sorted(trial_states, key=lambda t: _number(str(t.get("trial_id")))):
        trial_id = str(t.get("trial_id"))
        values = dict((t.get("hyperparameters") or {}).get("values") or {})
        architecture = values.pop(architecture_hp, None) if space is not None else None
        proposal = proposals.get(trial_id) or {}
        trials.append(TrialRecord(
            number=_number(trial_id),
            trial_id=trial_id,
            status=str(t.get("status")),
            architecture=architecture,
            hyperparameters=values,
            score=t.get("score") if t.get("status") == "COMPLETED" else None,
            params=_params(space, architecture),
            epochs=(curves.get(trial_id) or {}).get("epochs") or _epochs(t, objective_name),
            seconds=seconds.get(trial_id),
            ended_at=ended_at.get(trial_id),
            method=str(proposal.get("method", "resumed" if proposals else "-")),
            acquisition=proposal.get("acquisition"),
            predicted_mean=proposal.get("predicted_mean"),
            predicted_std=proposal.get("predicted_std"),
            stopped_at_epoch=(stopped.get(trial_id) or {}).get("epochs"),
            cut_by_time_budget=cut_by_time_budget(stopped.get(trial_id)),
        ))

    export = _optional_json(output / EXPORT_DIR / "architecture.json")
    recommended, by = None, None
    if export is not None and any(t.trial_id == str(export.get("trial_id")) for t in trials):
        recommended, by = str(export["trial_id"]), "export"
    elif oracle is not None:
        best = oracle.get_best_trials(1)
        if best and best[0].status == "COMPLETED":
            recommended, by = best[0].trial_id, "oracle"
    leave_one_out = {}
    if oracle is not None:
        try:
            leave_one_out = oracle.surrogate_leave_one_out()
        except Exception as error:  # noqa: BLE001 - the rest of the report stands
            warnings.warn(f"kbnas: the surrogate's leave-one-out failed ({type(error).__name__}: {error})",
                          RuntimeWarning, stacklevel=3)
    settings_keys = ("distance", "acquisition", "kappa", "xi", "score_warping", "recommendation", "early_stopping",
                     "num_initial_points")
    return SearchRecord(
        source=output,
        objective=objective_name,
        direction=objective.get("direction") or "max",
        trials=tuple(trials),
        recommended=recommended,
        recommended_by=by,
        search_space=space,
        run=_optional_json(output / RUN_FILE) or {},
        export=export,
        selection=_optional_json(output / SELECTION_FILE),
        search_seconds=float(saved.get("search_seconds") or 0.0),
        oracle_seconds=float(sum(float(p.get("seconds") or 0.0) for p in proposals.values())),
        leave_one_out=leave_one_out,
        oracle_settings={k: saved.get(k) for k in settings_keys if k in saved},
    )


def _number(trial_id: str) -> int:
    return int(trial_id) + 1 if trial_id.isdigit() else 0


def _params(space: SearchSpace | None, architecture: str | None) -> int | None:
    if space is None or architecture is None:
        return None
    try:
        return int(space.param_count(space.from_hp_value(architecture)))
    except Exception:  # noqa: BLE001 - an encoding of another space: no count
        return None


def _epochs(trial_state: dict, objective: str) -> int | None:
    """Epochs from the objective's observations, for a trial without a learning curve
    (its curve counts the epochs trained; a final report keeps one observation)."""
    metric = ((trial_state.get("metrics") or {}).get("metrics") or {}).get(objective)
    if not metric:
        return None
    steps = [o.get("step", 0) for o in metric.get("observations", [])]
    return int(max(steps)) + 1 if steps else None
