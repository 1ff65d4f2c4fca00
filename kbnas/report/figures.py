"""The report's figures, drawn with matplotlib (Agg) into PNG bytes.

Each function takes a `kbnas.report.record.SearchRecord` and returns the PNG of
one figure, or None when the search has nothing to show for it (no completed
trial, no architecture, fewer than three trials for the surrogate):

* `progress_figure`: every trial's score and the best so far, against the
  trial number or the search's wall time; the initial design is shaded, trials
  stopped early or cut by the time budget are hollow, the recommended trial is a star;
* `surrogate_figure`: the GP's leave-one-out prediction of each completed trial
  against its observed score, with Spearman's rank correlation ρ;
* `architecture_figure`: the recommended architecture drawn as a stack of
  layers with their output shapes and parameter counts;
* `time_figure`: each trial's training seconds and the oracle's proposal seconds.

matplotlib is imported on first use, so that the rest of kbnas works without it
(`kbnas.report` then writes a page without figures).
"""

from __future__ import annotations

import io
import math

import numpy as np

from kbnas.report.record import SearchRecord, TrialRecord

#: Marker colours of the proposal methods.
METHOD_COLOURS = {"initial": "#7b3294", "template": "#2c7bb6", "random": "#7f7f7f", "gp": "#e66101"}
#: Box colours of the layer kinds in `architecture_figure`.
LAYER_COLOURS = {"conv": "#abd9e9", "pool": "#a6dba0", "dense": "#fdae61", "relu": "#e0e0e0",
                 "batchnorm": "#c2a5cf", "dropout": "#f7f7f7", "input": "#ffffff", "head": "#fee090"}
DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _method_group(method: str) -> str:
    if method.startswith("gp-") or method == "reevaluate":
        return "gp"
    if method.startswith("random"):
        return "random"
    return method if method in METHOD_COLOURS else "random"


def _best_so_far(values: list[float], direction: str) -> np.ndarray:
    values_ = np.asarray(values, dtype=float)
    return np.maximum.accumulate(values_) if direction == "max" else np.minimum.accumulate(values_)


def progress_figure(record: SearchRecord, against: str = "trials") -> bytes | None:
    """Scores and the best so far against ``against``: "trials" or "time" (seconds)."""
    trials = [t for t in record.completed]
    if not trials:
        return None
    if against == "time":
        times = record.end_times()
        trials = sorted((t for t in trials if t.trial_id in times), key=lambda t: times[t.trial_id])
        if not trials:
            return None
        x = np.array([times[t.trial_id] for t in trials])
        xlabel = "search wall time (s)"
    else:
        x = np.array([t.number for t in trials], dtype=float)
        xlabel = "trial"
    y = [float(t.score) for t in trials]
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.4))
    # The initial design: the trials before the first GP proposal.
    first_gp = min((t.number for t in record.trials if not t.initial), default=None)
    if against == "trials":
        last_initial = (first_gp - 1) if first_gp is not None else max(t.number for t in record.trials)
        if last_initial >= 1:
            axes.axvspan(0.5, last_initial + 0.5, color="#f0f0f0", zorder=0, label="initial design")
    elif first_gp is not None:
        gp_trial = next(t for t in record.trials if t.number == first_gp)
        times = record.end_times()
        if gp_trial.trial_id in times:
            axes.axvspan(0.0, times[gp_trial.trial_id] - (gp_trial.seconds or 0.0), color="#f0f0f0", zorder=0,
                         label="initial design")
    axes.step(x, _best_so_far(y, record.direction), where="post", color="black", linewidth=1.5,
              label="best so far", zorder=2)
    for group, colour in METHOD_COLOURS.items():
        members = [i for i, t in enumerate(trials) if _method_group(t.method) == group]
        if not members:
            continue
        full = [i for i in members if trials[i].stopped_at_epoch is None]
        cut = [i for i in members if trials[i].stopped_at_epoch is not None]
        name = {"gp": "GP proposal", "initial": "your starting point"}.get(group, group)
        if full:
            axes.scatter(x[full], np.array(y)[full], color=colour, s=28, zorder=3, label=name)
        if cut:
            axes.scatter(x[cut], np.array(y)[cut], facecolors="none", edgecolors=colour, s=28, zorder=3,
                         label=f"{name}, fewer epochs")
    chosen = [i for i, t in enumerate(trials) if t.trial_id == record.recommended]
    if chosen:
        i = chosen[0]
        axes.scatter([x[i]], [y[i]], marker="*", s=260, color="#d7191c", edgecolors="black", zorder=4,
                     label=f"recommended (trial {trials[i].number})")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(record.objective)
    _zoom_to_good_scores(axes, y, record.direction)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes.set_title(f"{record.objective} of each trial and the best so far, against {'trials' if against == 'trials' else 'wall time'}",
                   fontsize=9)
    return _png(figure)


def _zoom_to_good_scores(axes, y: list[float], direction: str) -> None:
    """Keep the interesting range readable: a near-chance trial would squash it."""
    values = np.asarray(y, dtype=float)
    if len(values) < 4:
        return
    low, high = np.percentile(values, [10, 100]) if direction == "max" else np.percentile(values, [0, 90])
    span = max(high - low, 1e-9)
    if direction == "max" and values.min() < low - span:
        axes.set_ylim(low - 0.5 * span, high + 0.1 * span)
    elif direction == "min" and values.max() > high + span:
        axes.set_ylim(low - 0.1 * span, high + 0.5 * span)


def surrogate_figure(record: SearchRecord) -> bytes | None:
    """Leave-one-out GP predictions against observed scores (see the module docstring)."""
    loo = record.leave_one_out
    if len(loo) < 3:
        return None
    from scipy.stats import spearmanr

    ids = sorted(loo, key=lambda i: record.trial(i).number if record.trial(i) else 0)
    score = np.array([loo[i]["score"] for i in ids])
    mean = np.array([loo[i]["mean"] for i in ids])
    std = np.array([loo[i]["std"] for i in ids])
    rho = spearmanr(score, mean).statistic if np.ptp(mean) > 0 and np.ptp(score) > 0 else float("nan")
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.2, 3.8))
    colours = [METHOD_COLOURS[_method_group(record.trial(i).method)] if record.trial(i) else "#7f7f7f" for i in ids]
    axes.errorbar(score, mean, yerr=std, fmt="none", ecolor="#bbbbbb", elinewidth=1, zorder=1)
    axes.scatter(score, mean, c=colours, s=24, zorder=2)
    if record.recommended in loo:
        i = ids.index(record.recommended)
        axes.scatter([score[i]], [mean[i]], marker="*", s=220, color="#d7191c", edgecolors="black", zorder=3)
    axes.set_xlabel(f"observed {record.objective}")
    axes.set_ylabel("GP leave-one-out mean ± std\n(warped scale)")
    rho_text = "n/a" if math.isnan(rho) else f"{rho:.2f}"
    axes.set_title(f"surrogate: each completed trial predicted from the others\n"
                   f"Spearman ρ = {rho_text} over {len(ids)} trials", fontsize=9)
    axes.grid(alpha=0.3)
    return _png(figure)


def surrogate_rank_correlation(record: SearchRecord) -> float | None:
    """Spearman ρ between the leave-one-out means and the observed scores (None if undefined)."""
    loo = record.leave_one_out
    if len(loo) < 3:
        return None
    from scipy.stats import spearmanr

    score = np.array([r["score"] for r in loo.values()])
    mean = np.array([r["mean"] for r in loo.values()])
    if np.ptp(mean) == 0 or np.ptp(score) == 0:
        return None
    return float(spearmanr(score, mean).statistic)


def _layer_kind(token: str) -> str:
    for kind in ("conv", "pool", "dense", "relu", "batchnorm", "dropout"):
        if kind in token:
            return kind
    return "relu"


def architecture_rows(record: SearchRecord, trial: TrialRecord) -> list[tuple[str, str, int]] | None:
    """(layer, output shape, parameters) of the trial's architecture, input and head included."""
    space = record.search_space
    if space is None or trial.architecture is None:
        return None
    try:
        architecture = space.from_hp_value(trial.architecture)
        shapes, params = space.output_shapes(architecture), space.param_counts(architecture)
        head = space.head_param_count(architecture)
    except Exception:  # noqa: BLE001 - an encoding of another space
        return None
    rows = [("input", str(tuple(space.input_shape)), 0)]
    rows += [(layer.encode(), str(tuple(shape)), int(p)) for layer, shape, p in zip(architecture, shapes, params)]
    rows.append((f"head-{space.num_outputs}", str((space.num_outputs,)), int(head)))
    return rows


def architecture_figure(record: SearchRecord, trial: TrialRecord | None) -> bytes | None:
    """The trial's layers as a vertical stack of boxes (kind by colour), with the
    output shape and parameter count of each."""
    if trial is None:
        return None
    rows = architecture_rows(record, trial)
    if rows is None:
        return None
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    plt = _pyplot()
    height = 0.42 * len(rows) + 0.6
    figure, axes = plt.subplots(figsize=(5.6, height))
    axes.set_xlim(0, 10)
    axes.set_ylim(-len(rows) + 0.3, 1.0)
    axes.axis("off")
    total = sum(p for _, _, p in rows)
    for i, (name, shape, params) in enumerate(rows):
        kind = "input" if i == 0 else "head" if i == len(rows) - 1 else _layer_kind(name)
        top = -i
        axes.add_patch(FancyBboxPatch((0.3, top - 0.32), 4.0, 0.64, boxstyle="round,pad=0.02,rounding_size=0.12",
                                      facecolor=LAYER_COLOURS[kind], edgecolor="#444444", linewidth=0.8))
        axes.text(2.3, top, name, ha="center", va="center", fontsize=9, family="monospace")
        axes.text(4.7, top, shape, ha="left", va="center", fontsize=8, family="monospace", color="#333333")
        axes.text(9.7, top, f"{params:,}", ha="right", va="center", fontsize=8, family="monospace",
                  color="#333333")
        if i < len(rows) - 1:
            axes.add_patch(FancyArrowPatch((2.3, top - 0.33), (2.3, top - 0.67), arrowstyle="-|>",
                                           mutation_scale=8, color="#666666", linewidth=0.8))
    axes.text(4.7, 0.75, "output shape", fontsize=8, weight="bold")
    axes.text(9.7, 0.75, "params", fontsize=8, weight="bold", ha="right")
    axes.set_title(f"trial {trial.number}: {total:,} parameters", fontsize=9, loc="left")
    return _png(figure)


def time_figure(record: SearchRecord) -> bytes | None:
    """Each trial's wall seconds (training) beside the oracle's seconds to propose it."""
    trials = [t for t in record.trials if t.seconds is not None]
    if not trials:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.0, 2.8))
    numbers = np.array([t.number for t in trials])
    training = np.array([t.seconds for t in trials])
    axes.bar(numbers, training, color=[METHOD_COLOURS[_method_group(t.method)] for t in trials], width=0.8,
             label="trial (training)")
    axes.set_xlabel("trial")
    axes.set_ylabel("seconds")
    stopped = [t for t in trials if t.stopped_at_epoch is not None]
    if stopped:
        axes.scatter([t.number for t in stopped], [t.seconds for t in stopped], marker="v", color="black", s=14,
                     zorder=3, label="stopped early or cut by the time budget")
    axes.set_title(f"where the time went: {record.training_seconds:.0f} s in trials, "
                   f"{record.oracle_seconds:.1f} s in the oracle's proposals", fontsize=9)
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize=7)
    return _png(figure)
