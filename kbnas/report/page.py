"""The report's HTML page: one self-contained file, figures embedded as data URIs,
styles and the table-sorting script inline, no network resource of any kind.
"""

from __future__ import annotations

import base64
import datetime
import html
import importlib.metadata
import json
from typing import Callable

from kbnas.report import figures
from kbnas.report.record import SearchRecord, TrialRecord

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #222; padding: 0 16px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.summary { color: #444; } .figures { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.8em; color: #555; max-width: 640px; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 0.82em; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.arch { font-family: monospace; font-size: 0.95em; }
tr.recommended { background: #fff3cd; font-weight: 600; } tr.stopped td { color: #777; }
tr.failed td { color: #b00; } .note { font-size: 0.85em; color: #666; }
dl.run { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; font-size: 0.88em; }
dl.run dt { font-weight: 600; } dl.run dd { margin: 0; font-family: monospace; word-break: break-all; }
"""

# Click a header to sort by it; numbers (data-value) sort numerically, empty cells last.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = !th.classList.contains("sorted-asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column], value = cell.getAttribute("data-value");
        if (value !== null) { return value === "" ? null : parseFloat(value); }
        return cell.textContent.trim() || null;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null) { return y === null ? 0 : 1; } if (y === null) { return -1; }
        var order = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _image(png: bytes | None, alt: str, caption: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _number_cell(value, text: str | None = None) -> str:
    if value is None:
        return '<td class="num" data-value="">-</td>'
    return f'<td class="num" data-value="{float(value)!r}">{_e(text if text is not None else value)}</td>'


def _trial_rows(record: SearchRecord) -> str:
    rows = []
    for t in record.trials:
        classes = []
        if t.trial_id == record.recommended:
            classes.append("recommended")
        if t.stopped_at_epoch is not None:
            classes.append("stopped")
        if t.status in ("FAILED", "INVALID"):
            classes.append("failed")
        how = _e(t.method)
        if t.acquisition is not None:
            how += f" <span class='note'>(acq. {t.acquisition:.3g})</span>"
        predicted = (f"{t.predicted_mean:.3f} ± {t.predicted_std:.3f}"
                     if t.predicted_mean is not None and t.predicted_std is not None else None)
        others = ", ".join(f"{k}={v}" for k, v in t.hyperparameters.items())
        rows.append(
            f'<tr class="{" ".join(classes)}">'
            + _number_cell(t.number, f"{t.number}{' *' if t.trial_id == record.recommended else ''}")
            + f"<td>{_e(t.status)}</td>"
            + f'<td class="arch">{_e(t.architecture or "")}</td>'
            + f"<td>{_e(others)}</td>"
            + _number_cell(t.params, f"{t.params:,}" if t.params is not None else None)
            + _number_cell(t.score, f"{t.score:.4f}" if t.score is not None else None)
            + _number_cell(t.epochs)
            + _number_cell(t.stopped_at_epoch, f"{t.stopped_at_epoch} (time budget)" if t.cut_by_time_budget else None)
            + _number_cell(t.seconds, f"{t.seconds:.1f}" if t.seconds is not None else None)
            + f"<td>{how}</td>"
            + _number_cell(t.predicted_mean, predicted)
            + "</tr>"
        )
    return "\n".join(rows)


def _summary(record: SearchRecord) -> str:
    completed = record.completed
    stopped = [t for t in completed if t.stopped_at_epoch is not None and not t.cut_by_time_budget]
    cut = [t for t in completed if t.cut_by_time_budget]
    failed = [t for t in record.trials if t.status in ("FAILED", "INVALID")]
    best = record.trial(record.recommended)
    parts = [f"{len(record.trials)} trials: {len(completed)} completed ({len(stopped)} of them stopped early"
             + (f", {len(cut)} cut by the time budget" if cut else "") + ")"
             + (f", {len(failed)} failed" if failed else "")]
    if record.search_seconds:
        parts.append(f"search time {record.search_seconds:.0f} s")
    if best is not None:
        by = "exported" if record.recommended_by == "export" else "the oracle's recommendation"
        score = f"{record.objective} {best.score:.4f}" if best.score is not None else ""
        parts.append(f"recommended: trial {best.number} ({by}; {score})")
    test = ((record.export or {}).get("search_settings") or {}).get("test_metrics")  # null: a Python export
    if test:
        members = ((record.export or {}).get("ensemble") or {}).get("members")
        of = f" (the exported mean of {members} retrainings of it)" if members else ""
        parts.append(f"test{of} " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
    return "; ".join(parts) + "."


def _versions(record: SearchRecord) -> dict:
    versions = dict((record.export or {}).get("versions") or {})
    report = {}
    for name in ("kbnas", "keras", "keras-tuner", "tensorflow", "tensorflow-cpu", "numpy", "scipy", "matplotlib"):
        try:
            report[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"the export was made with": versions, "this report was written with": report} if versions \
        else {"this report was written with": report}


def _run_section(record: SearchRecord) -> str:
    items = []
    run = record.run
    if run:
        items.append(("data", run.get("data")))
        items.append(("task", run.get("task")))
        items.append(("seed", run.get("seed")))
        items.append(("recipe", {k: run.get(k) for k in ("epochs", "batch_size", "early_stopping", "selection")
                                 if k in run}))
        items.append(("all run settings", run))
    if record.export and record.export.get("search_settings"):
        settings = record.export["search_settings"]
        split = {k: settings[k] for k in ("retrained", "selection") if k in settings}
        if split:
            items.append(("final model", split))
    items.append(("objective", f"{record.objective} ({record.direction})"))
    items.append(("oracle", record.oracle_settings))
    if record.search_space is not None:
        items.append(("search space", record.search_space.to_config()))
    items.append(("time", f"{record.search_seconds:.1f} s of search: {record.training_seconds:.1f} s in trials, "
                          f"{record.oracle_seconds:.2f} s in the oracle's proposals"))
    items.append(("versions", _versions(record)))
    items.append(("source", str(record.source)))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v if isinstance(v, str) else json.dumps(v, default=str))}</dd>"
                   for k, v in items if v not in (None, {}, ""))
    return f'<dl class="run">{body}</dl>'


def _architecture_section(record: SearchRecord, draw: Callable) -> str:
    trial = record.trial(record.recommended)
    if trial is None:
        return "<p class='note'>No completed trial to recommend.</p>"
    rows = figures.architecture_rows(record, trial)
    if rows is None:
        values = ", ".join(f"{k}={v}" for k, v in trial.hyperparameters.items())
        return f"<p>Trial {trial.number}: {_e(values)}</p>"
    picture = draw(lambda: figures.architecture_figure(record, trial), "the recommended architecture",
                   f"Trial {trial.number}, <code>{_e(trial.architecture)}</code>: each box a layer, its output "
                   "shape and its parameters (the head maps the last shape to the outputs).")
    table = "".join(f"<tr><td class='arch'>{_e(n)}</td><td class='arch'>{_e(s)}</td>"
                    f"<td class='num'>{p:,}</td></tr>" for n, s, p in rows)
    total = sum(p for _, _, p in rows)
    listing = (f"<table><thead><tr><th>layer</th><th>output shape</th><th>params</th></tr></thead>"
               f"<tbody>{table}<tr><td><b>total</b></td><td></td><td class='num'><b>{total:,}</b></td></tr>"
               "</tbody></table>")
    return f'<div class="figures">{picture}<div>{listing}</div></div>'


def render(record: SearchRecord) -> str:
    """The report page of ``record`` (an HTML document as a string)."""
    missing: list[str] = []

    def draw(make: Callable, alt: str, caption: str) -> str:
        try:
            return _image(make(), alt, caption)
        except ImportError:
            if not missing:
                missing.append("matplotlib")
            return ""

    rho = figures.surrogate_rank_correlation(record)
    progress = "".join([
        draw(lambda: figures.progress_figure(record, "trials"), "score against trials",
             "Each completed trial's score (colour: how it was proposed; hollow: stopped early or cut by the "
             "time budget, so scored at fewer epochs) and the best so far. Shaded: the initial design. "
             "Star: the recommended trial."),
        draw(lambda: figures.progress_figure(record, "time"), "score against wall time",
             "The same against the search's wall time at each trial's end."),
    ])
    surrogate = draw(lambda: figures.surrogate_figure(record), "surrogate leave-one-out",
                     "The GP (the search's last kernel hyperparameters) predicts each completed trial from all the "
                     "others. Its mean is on the oracle's warped scale, which is monotone in the score, so the "
                     "rank correlation ρ measures how well it orders the trials"
                     + (f": ρ = {rho:.2f}." if rho is not None else "."))
    timing = draw(lambda: figures.time_figure(record), "time per trial",
                  "Wall seconds of each trial (colour: how it was proposed) and the oracle's share.")
    note = ("<p class='note'>The figures need matplotlib: <code>pip install matplotlib</code> "
            "(or <code>pip install kbnas[plot]</code>), then <code>kbnas report</code>.</p>") if missing else ""
    architecture = _architecture_section(record, draw)
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kbnas search report: {_e(record.source.name)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>kbnas search report</h1>
<p class="summary">{_e(_summary(record))}</p>
<p class="note">{_e(record.source)}, written {created}.</p>
{note}
<h2>Progress</h2>
<div class="figures">{progress}</div>
<h2>The recommended architecture</h2>
{architecture}
<h2>The surrogate</h2>
<div class="figures">{surrogate or "<p class='note'>Fewer than three completed trials: no surrogate to judge.</p>"}</div>
<h2>Every trial</h2>
<p class="note">Click a column to sort. * marks the recommended trial. The predicted mean ± std of a GP
proposal is the posterior when it was proposed, on the oracle's warped scale.</p>
<table class="sortable"><thead><tr><th>trial</th><th>status</th><th>architecture</th><th>other hyperparameters</th>
<th>params</th><th>{_e(record.objective)}</th><th>epochs</th><th>stopped at epoch</th><th>seconds</th>
<th>how proposed</th><th>predicted (GP)</th></tr></thead>
<tbody>
{_trial_rows(record)}
</tbody></table>
<h2>Time</h2>
<div class="figures">{timing}</div>
<h2>The run</h2>
{_run_section(record)}
<script>{_SCRIPT}</script>
</body></html>
"""
