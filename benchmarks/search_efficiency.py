"""Search efficiency on the tabular benchmark: every contender replayed side by side.

Each contender is a KerasTuner Oracle driven through KerasTuner's own protocol
(`kbnas.offline.run_oracle`, one trial at a time) against the tabular benchmark of
`benchmarks.tabular.table`: a "training" is a table lookup.

Notation:
    a ∈ A           architectures of the table (with at least one seed row)
    q_k             the k-th query's value: the final-epoch validation accuracy of ONE
                    seed of the proposed architecture, drawn uniformly among its seeds
                    with the generator ``numpy.random.default_rng([run seed, k])``
                    (k = 0, 1, ...), so every contender meets the same noise draws
                    (common random numbers)
    a⁺_k            incumbent after k queries: the architecture of the best q among
                    the first k (the first on ties)
    t*              max_a mean_test(a), the table's best mean test accuracy
    regret_k        t* − mean_test(a⁺_k)  ≥ 0; before any successful query it is the
                    regret of the table's worst architecture (nothing to report)

Rules of the replay:
    * a proposal whose architecture is invalid (possible only for the token-encoded
      KerasTuner oracles) is a FAILED trial and consumes a query, like a model that
      cannot be built;
    * a valid architecture without rows in a partial table is a FAILED trial that
      does not consume a query (the replay is restricted to the table's
      architectures); a run meeting more than `MAX_ABSENT_PER_QUERY` · budget of them
      stops early;
    * a repeated architecture (only KerasTuner's oracles repeat themselves) is
      queried again: a new noisy training;
    * seconds per query = wall time of ``oracle.create_trial`` (the proposal plus
      KerasTuner's bookkeeping) for the trials that became queries.

Contenders (`CONTENDERS`):
    kbnas               BayesianNASOracle defaults: edit distance, EI, rank warp
    kbnas-otmann        the same with the OTMANN distance
    kbnas-ucb           the same with UCB (μ + 2σ)
    kbnas-tokens        BayesianNASOracle on the token encoding, as a plain
                        hyperparameter space (no search_space: the drop-in for
                        keras_tuner.BayesianOptimization), its defaults
    kbnas-tokens-conditional  the same on the conditional token encoding
    kbnas-tokens-reads  kbnas-tokens as `kbnas.BayesianNAS` runs it: each completed
                        trial reports only the values its build read (`kbnas.reads`)
    random              uniform over the space's architectures without replacement
                        (BayesianNASOracle that never leaves its random initial design)
    keras-tuner-random  keras_tuner.oracles.RandomSearchOracle on the token encoding
    keras-tuner-bo      keras_tuner.oracles.BayesianOptimizationOracle, token encoding
    keras-tuner-bo-conditional  the same on the conditional token encoding
    evolution           aging evolution, population 20, tournament 5
    local-search        first-improvement local search with random restarts
    reference-gp        issue 12's plain small-budget GP-EI: one shared Hamming
                        lengthscale, rank-warped scores, EI maximized over every
                        1-/2-edit neighbour of the best (`ReferenceGPOracle`)
    kbnas:key=value,... BayesianNASOracle with keyword arguments (diagnostics), e.g.
                        ``kbnas:num_initial_points=20,score_warping=standardize``

The token encoding (as in tests/test_oracle.py): ``depth`` (Int in
[min_depth, max_depth]) and ``layer_0 … layer_{max_depth−1}`` (Choice over the
space's layer tokens); the architecture is the first ``depth`` tokens. The
conditional token encoding declares slot k ≥ min_depth with KerasTuner's
``parent_name="depth"``, ``parent_values=[k+1 … max_depth]``: active only when used.

Oracle seeds are ``run seed + 1`` for every contender (KerasTuner turns a seed of 0
into a random one).

Commands:
    python -m benchmarks.search_efficiency --seeds 30 --budget 200 --contenders all --workers 2
    python -m benchmarks.search_efficiency --report --budget 200 [--write-into docs/benchmarks.md]
    python -m benchmarks.search_efficiency --surrogate [--write-into docs/benchmarks.md]

Results are JSON lines, one per (contender, seed, budget, table fingerprint), with
the full trajectory; finished runs are skipped on restart.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import math
import multiprocessing
import pathlib
import re
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import scipy.stats

from benchmarks.tabular.table import DEFAULT_TABLE_PATH, TabularBenchmark
from kbnas.space import Architecture, SearchSpace

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "search_efficiency.jsonl"
DEFAULT_SUMMARY = RESULTS_DIR / "search_efficiency_summary.json"
DEFAULT_PLOT = RESULTS_DIR / "search_efficiency.png"
DEFAULT_SURROGATE = RESULTS_DIR / "search_efficiency_surrogate.json"

CONTENDERS = (
    "kbnas",
    "kbnas-otmann",
    "kbnas-ucb",
    "kbnas-tokens",
    "kbnas-tokens-conditional",
    "kbnas-tokens-reads",
    "random",
    "keras-tuner-random",
    "keras-tuner-bo",
    "keras-tuner-bo-conditional",
    "evolution",
    "local-search",
    "reference-gp",
)
#: Contenders whose completed trials report only the values they read, as
#: `kbnas.BayesianNAS` does (`kbnas.offline.run_oracle(report_reads=True)`).
REPORTS_READS = frozenset({"kbnas-tokens-reads"})
#: Budgets at which the report gives mean regret and its confidence interval.
REPORT_BUDGETS = (10, 25, 50, 100, 200)
#: The issue's target is checked from this budget on.
TARGET_FROM_BUDGET = 25
OBJECTIVE_NAME = "val_accuracy"
#: A run stops early after this many proposals absent from a partial table per query
#: of its budget.
MAX_ABSENT_PER_QUERY = 20
#: Effectively no limit: failed trials are part of the replay.
NO_FAILURE_LIMIT = 10**9
#: Floor of the log-scale regret axis of the plot.
PLOT_REGRET_FLOOR = 1e-4

GENERATED_BEGIN = "<!-- search-efficiency:{name}:begin (generated by `python -m benchmarks.search_efficiency {command}`; do not edit) -->"
GENERATED_END = "<!-- search-efficiency:{name}:end -->"


# ---------------------------------------------------------------------- encodings


def architecture_hyperparameters(space: SearchSpace, name: str = "architecture"):
    """The kbnas search space: one string hyperparameter holding an architecture."""
    from kbnas.configurations import architecture_hyperparameters as make

    return make(space, name)


def token_hyperparameters(space: SearchSpace, conditional: bool = False):
    """The same architectures as ordinary hyperparameters, for KerasTuner's own oracles
    (``conditional``: slots past ``depth`` are KerasTuner conditional hyperparameters)."""
    from kbnas.configurations import token_hyperparameters as make

    return make(space, conditional)


def architecture_from_values(values: dict, space: SearchSpace, encoding: str) -> str | None:
    """The canonical encoding of a trial's architecture, or None when it is invalid.

    Args:
        values: the trial's hyperparameter values.
        space: the search space.
        encoding: ``"architecture"`` (one string hyperparameter) or ``"tokens"``.
    """
    if encoding == "architecture":
        text = values["architecture"]
    elif encoding == "tokens":
        text = "|".join(str(values[f"layer_{slot}"]) for slot in range(int(values["depth"])))
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    try:
        architecture = Architecture.decode(text)
    except ValueError:
        return None
    return architecture.encode() if space.is_valid(architecture) else None


# ---------------------------------------------------------------------- contenders


def parse_contender(name: str) -> tuple[str, dict[str, Any]]:
    """Split ``"kbnas:key=value,key=value"`` into ("kbnas", {key: value}).

    Values are read as JSON when they parse (numbers, true/false), else as strings.

    Raises:
        ValueError: an unknown contender, or options on a contender other than kbnas.
    """
    base, _, options_text = name.partition(":")
    if base not in CONTENDERS:
        raise ValueError(f"unknown contender {name!r}; expected one of {', '.join(CONTENDERS)} or kbnas:key=value,...")
    if options_text and base != "kbnas":
        raise ValueError(f"only kbnas takes options, got {name!r}")
    return base, parse_options(options_text)


def parse_options(text: str) -> dict[str, Any]:
    """``"key=value,key=value"`` as a dict; values read as JSON when they parse
    (numbers, true/false), else as Python numbers (``.5``, ``2.``, ``+2``), else
    as strings.

    Raises:
        ValueError: an item is not key=value.
    """
    options: dict[str, Any] = {}
    for item in text.split(",") if text else ():
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"contender option {item!r} is not key=value")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = _python_number(value)
    return options


def _python_number(text: str) -> Any:
    """``text`` as an int or a float where Python reads it as one, else itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def make_oracle(contender: str, space: SearchSpace, *, seed: int, budget: int):
    """A fresh oracle for ``contender`` and the encoding it proposes in.

    Args:
        contender: a name of `CONTENDERS`, or ``kbnas:key=value,...``.
        space: the architecture space.
        seed: the oracle's seed (the harness passes run seed + 1).
        budget: number of queries of the run (the random contender's initial design
            is longer than it).

    Returns:
        ``(oracle, encoding)`` with encoding ``"architecture"`` or ``"tokens"``.
    """
    import keras_tuner

    from benchmarks.baseline_oracles import AgingEvolutionOracle, LocalSearchOracle, ReferenceGPOracle
    from kbnas.oracle import BayesianNASOracle

    base, options = parse_contender(contender)
    common = dict(
        objective=keras_tuner.Objective(OBJECTIVE_NAME, "max"),
        max_trials=None,
        seed=seed,
        max_consecutive_failed_trials=NO_FAILURE_LIMIT,
    )
    if base in ("kbnas-tokens", "kbnas-tokens-conditional", "kbnas-tokens-reads"):
        hyperparameters = token_hyperparameters(space, conditional=base.endswith("-conditional"))
        return BayesianNASOracle(hyperparameters=hyperparameters, **common), "tokens"
    if base.startswith("kbnas") or base == "random":
        kwargs = {
            "kbnas": options,
            "kbnas-otmann": {"distance": "otmann"},
            "kbnas-ucb": {"acquisition": "ucb"},
            "random": {"num_initial_points": budget + 1, "recommendation": "observed", "templates": False},
        }[base]
        oracle = BayesianNASOracle(
            hyperparameters=architecture_hyperparameters(space), search_space=space, **common, **kwargs
        )
        return oracle, "architecture"
    if base == "keras-tuner-random":
        return keras_tuner.oracles.RandomSearchOracle(hyperparameters=token_hyperparameters(space), **common), "tokens"
    if base in ("keras-tuner-bo", "keras-tuner-bo-conditional"):
        hyperparameters = token_hyperparameters(space, conditional=base.endswith("-conditional"))
        oracle = keras_tuner.oracles.BayesianOptimizationOracle(hyperparameters=hyperparameters, **common)
        return oracle, "tokens"
    if base == "evolution":
        oracle = AgingEvolutionOracle(
            hyperparameters=architecture_hyperparameters(space),
            search_space=space,
            population_size=20,
            sample_size=5,
            **common,
        )
        return oracle, "architecture"
    if base == "reference-gp":
        oracle = ReferenceGPOracle(hyperparameters=architecture_hyperparameters(space), search_space=space, **common)
        return oracle, "architecture"
    oracle = LocalSearchOracle(hyperparameters=architecture_hyperparameters(space), search_space=space, **common)
    return oracle, "architecture"


# ---------------------------------------------------------------------- one replay


def table_fingerprint(table: TabularBenchmark) -> str:
    """12 hex digits identifying the table's rows (architecture, seed, val, test)."""
    digest = hashlib.sha256()
    for encoding in table.architectures:
        for record in table.records(encoding):
            digest.update(f"{encoding}\t{record.seed}\t{record.val_accuracy!r}\t{record.test_accuracy!r}\n".encode())
    return digest.hexdigest()[:12]


def table_description(table: TabularBenchmark, path: str | pathlib.Path | None = None) -> dict[str, Any]:
    """What a run records about its table: size, seeds, t*, fingerprint."""
    seeds: dict[str, int] = {}
    for encoding in table.architectures:
        for seed in table.seeds_available(encoding):
            seeds[str(seed)] = seeds.get(str(seed), 0) + 1
    n_space = None
    if table.settings is not None:
        n_space = table.search_space().count()
    return {
        "path": None if path is None else pathlib.Path(path).name,
        "fingerprint": table_fingerprint(table),
        "n_architectures": len(table),
        "n_space": n_space,
        "n_rows": sum(seeds.values()),
        "rows_per_seed": dict(sorted(seeds.items(), key=lambda item: int(item[0]))),
        "best_mean_test": table.best_mean_test(),
        "worst_mean_test": min(table.mean_test(a) for a in table.architectures),
    }


def regret_trajectory(
    table: TabularBenchmark, queries: Sequence[tuple[str | None, float | None]]
) -> tuple[list[float], list[str | None]]:
    """regret_k and the incumbent a⁺_k after each query (failed queries keep a⁺).

    Before the first successful query the regret is that of the worst architecture.
    """
    worst = table.best_mean_test() - min(table.mean_test(a) for a in table.architectures)
    incumbents = incumbent_trajectory(queries)
    regrets = [worst if a is None else table.regret(a) for a in incumbents]
    return regrets, incumbents


def incumbent_trajectory(queries: Sequence[tuple[str | None, float | None]]) -> list[str | None]:
    """a⁺_k for k = 1..K: the architecture of the best value so far (first on ties)."""
    incumbents = []
    best_encoding, best_value = None, -math.inf
    for encoding, value in queries:
        if encoding is not None and value is not None and value > best_value:
            best_encoding, best_value = encoding, value
        incumbents.append(best_encoding)
    return incumbents


def validation_regret_trajectory(
    table: TabularBenchmark, queries: Sequence[tuple[str | None, float | None]]
) -> list[float]:
    """max_a mean_val(a) − mean_val(a⁺_k): how well the search optimises what it sees.

    A diagnostic next to the (test) regret: it leaves out the disagreement between
    validation and test accuracy, which no search can fix.
    """
    values = [table.mean_val(a) for a in table.architectures]
    best, worst = max(values), min(values)
    return [best - worst if a is None else best - table.mean_val(a) for a in incumbent_trajectory(queries)]


def replay(
    table: TabularBenchmark,
    oracle,
    *,
    decode: Callable[[dict], str | None],
    seed: int,
    budget: int,
    directory: str,
    recommend_at: Sequence[int] = REPORT_BUDGETS,
    report_reads: bool = False,
) -> dict[str, Any]:
    """Runs ``oracle`` against the table for ``budget`` queries.

    Args:
        table: the tabular benchmark.
        oracle: a fresh `keras_tuner.Oracle` with its search space.
        decode: trial values -> architecture encoding, or None when invalid.
        seed: the run seed: query k draws its table seed with default_rng([seed, k]).
        budget: number of queries.
        directory: where the oracle writes its files.
        recommend_at: query counts after which the oracle's own recommendation,
            ``oracle.get_best_trials(1)`` (what ``tuner.get_best_models()`` would
            return), is recorded. For an oracle that ranks trials by score it is
            the incumbent a⁺_k.

    Returns:
        ``recommended`` ({k: encoding or None}), ``ranking`` (the oracle's
        ``recommendation`` attribute, "observed" when it has none), ``queries`` ([encoding or None, value or None] per query), ``oracle_seconds``
        (per query), ``absent_proposals`` and ``absent_seconds`` (proposals outside a
        partial table), ``stopped`` (why the run ended before its budget, or None).
    """
    from kbnas.offline import run_oracle

    queries: list[tuple[str | None, float | None]] = []
    seconds: list[float] = []
    absent, absent_seconds, stopped = 0, 0.0, None
    outcome: dict[str, Any] = {}
    recommended: dict[str, str | None] = {}

    def recommend() -> str | None:
        best = oracle.get_best_trials(1)
        if not best or best[0].status != "COMPLETED":
            return None
        return decode(dict(best[0].hyperparameters.values))

    def evaluate(values: dict) -> float | None:
        encoding = decode(values)
        if encoding is None:
            outcome.update(kind="invalid", encoding=None, value=None)
            return None
        if encoding not in table:
            outcome.update(kind="absent", encoding=encoding, value=None)
            return None
        value = table.query(encoding, np.random.default_rng([seed, len(queries)]))
        outcome.update(kind="query", encoding=encoding, value=value)
        return value

    while len(queries) < budget:
        outcome.clear()
        finished = run_oracle(oracle, evaluate, 1, directory=directory, project_name="replay",
                              report_reads=report_reads)
        if not finished:
            stopped = "the oracle stopped (no new architecture)"
            break
        if outcome["kind"] == "absent":
            absent += 1
            absent_seconds += finished[0].oracle_seconds
            if absent > MAX_ABSENT_PER_QUERY * budget:
                stopped = f"more than {MAX_ABSENT_PER_QUERY * budget} proposals absent from the table"
                break
            continue
        queries.append((outcome["encoding"], outcome["value"]))
        seconds.append(finished[0].oracle_seconds)
        if len(queries) in recommend_at:
            recommended[str(len(queries))] = recommend()
    # A run that stopped early keeps its last recommendation.
    for k in recommend_at:
        if k <= budget and str(k) not in recommended:
            recommended[str(k)] = recommend()
    return {
        "recommended": recommended,
        "ranking": getattr(oracle, "recommendation", "observed"),
        "queries": [list(q) for q in queries],
        "oracle_seconds": seconds,
        "absent_proposals": absent,
        "absent_seconds": absent_seconds,
        "stopped": stopped,
    }


def run_contender(
    table: TabularBenchmark,
    contender: str,
    *,
    seed: int,
    budget: int,
    table_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One (contender, seed) run: the JSON record written as one line of the results.

    The trajectory is extended to ``budget`` with its last value when the oracle
    stops early (its reported result no longer changes).
    """
    from threadpoolctl import threadpool_limits

    space = table.search_space()
    info = table_info or table_description(table)
    start = time.perf_counter()
    directory = tempfile.mkdtemp(prefix="kbnas-search-efficiency-")
    try:
        # One BLAS thread: the matrices are small and the workers share the cores.
        with threadpool_limits(limits=1):
            oracle, encoding = make_oracle(contender, space, seed=seed + 1, budget=budget)
            result = replay(
                table,
                oracle,
                decode=lambda values: architecture_from_values(values, space, encoding),
                seed=seed,
                budget=budget,
                directory=directory,
                report_reads=contender in REPORTS_READS,
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    queries = [tuple(q) for q in result["queries"]]
    regrets, incumbents = regret_trajectory(table, queries)
    val_regrets = validation_regret_trajectory(table, queries)
    if regrets and len(regrets) < budget:
        regrets += [regrets[-1]] * (budget - len(regrets))
        val_regrets += [val_regrets[-1]] * (budget - len(val_regrets))
    valid = [encoding for encoding, _ in queries if encoding is not None]
    return {
        "contender": contender,
        "seed": seed,
        "budget": budget,
        "table": info,
        "n_queries": len(queries),
        "n_invalid": len(queries) - len(valid),
        "n_distinct": len(set(valid)),
        "final_incumbent": incumbents[-1] if incumbents else None,
        "ranking": result["ranking"],
        "recommended": result["recommended"],
        "recommended_regret": {
            k: None if a is None else table.regret(a) for k, a in result["recommended"].items()
        },
        "regret": regrets,
        "val_regret": val_regrets,
        "queries": result["queries"],
        "oracle_seconds": [round(s, 6) for s in result["oracle_seconds"]],
        "absent_proposals": result["absent_proposals"],
        "absent_seconds": round(result["absent_seconds"], 6),
        "stopped": result["stopped"],
        "wall_seconds": round(time.perf_counter() - start, 3),
    }


# ---------------------------------------------------------------------- many replays, resumable


def read_records(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """The finished runs of a results file (an unfinished last line is ignored)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]


def run_key(record: dict[str, Any]) -> tuple[str, int, int, str]:
    """(contender, seed, budget, table fingerprint): what makes a run unique."""
    return record["contender"], int(record["seed"]), int(record["budget"]), record["table"]["fingerprint"]


def _drop_unfinished_last_line(path: pathlib.Path, log: Callable[[str], None]) -> None:
    """Cut a last line without its newline (a run killed while writing) before appending."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        log(f"{path}: dropping an unfinished last line ({len(data) - keep} bytes)")
        with open(path, "r+b") as handle:
            handle.truncate(keep)


_WORKER_STATE: dict[str, Any] = {}


def _init_worker(table: TabularBenchmark, info: dict[str, Any]) -> None:
    """Process-pool initializer: every worker replays the table the main process loaded."""
    _WORKER_STATE["table"], _WORKER_STATE["info"] = table, info


def _run_job(contender: str, seed: int, budget: int) -> dict[str, Any]:
    """Process-pool entry point: one run on the worker's table."""
    return run_contender(
        _WORKER_STATE["table"], contender, seed=seed, budget=budget, table_info=_WORKER_STATE["info"]
    )


def run_search_efficiency(
    table_path: str | pathlib.Path,
    output: str | pathlib.Path,
    *,
    contenders: Sequence[str],
    seeds: Iterable[int],
    budget: int,
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Runs every missing (contender, seed) and appends each run as one JSON line.

    The table is loaded once, at the start, and handed to the worker processes: a
    table still being generated is replayed as it was then (its fingerprint goes
    into every line), and runs recorded on another fingerprint are not reused.

    Args:
        table_path: the JSON-lines table.
        output: the results file (created, or appended to).
        contenders: contender names (see `CONTENDERS`).
        seeds: run seeds.
        budget: queries per run.
        workers: processes running replays at once (1: in this process).
        log: progress callback, one line per finished run.

    Returns:
        The records of the runs made by this call.
    """
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    table_path = str(pathlib.Path(table_path).resolve())
    table = TabularBenchmark.load(table_path)
    info = table_description(table, table_path)
    for contender in contenders:
        parse_contender(contender)
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _drop_unfinished_last_line(output, log)
    done = {run_key(record) for record in read_records(output)}
    # KerasTuner's BO is by far the slowest: its runs go last, so that a partial
    # results file already compares every other contender on every seed.
    jobs = sorted(
        (
            (contender, seed)
            for seed in seeds
            for contender in contenders
            if (contender, seed, budget, info["fingerprint"]) not in done
        ),
        key=lambda job: job[0] == "keras-tuner-bo",
    )
    log(
        f"table {info['fingerprint']}: {info['n_architectures']} architectures, rows per seed "
        f"{info['rows_per_seed']}; {len(jobs)} runs to do ({len(done)} lines already in {output})"
    )
    made: list[dict[str, Any]] = []

    def write(record: dict[str, Any]) -> None:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        made.append(record)
        log(
            f"[{len(made)}/{len(jobs)}] {record['contender']} seed {record['seed']}: regret "
            f"{record['regret'][-1]:.4f} after {record['n_queries']} queries, "
            f"{np.mean(record['oracle_seconds'] or [0]):.3f} s/query, {record['wall_seconds']:.0f} s"
        )

    if workers <= 1:
        for contender, seed in jobs:
            write(run_contender(table, contender, seed=seed, budget=budget, table_info=info))
        return made
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(table, info)
    ) as pool:
        futures = [pool.submit(_run_job, contender, seed, budget) for contender, seed in jobs]
        for future in concurrent.futures.as_completed(futures):
            write(future.result())
    return made


# ---------------------------------------------------------------------- statistics


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the t confidence interval: t_{(1+c)/2, n−1} · s / √n.

    Returns ``(mean, nan)`` for a single value.
    """
    values = np.asarray(values, dtype=float)
    mean = float(np.mean(values))
    if values.size < 2:
        return mean, math.nan
    sem = float(np.std(values, ddof=1)) / math.sqrt(values.size)
    return mean, float(scipy.stats.t.ppf(0.5 + confidence / 2, values.size - 1)) * sem


def select_records(
    records: Sequence[dict[str, Any]], *, budget: int | None = None, fingerprint: str | None = None
) -> tuple[list[dict[str, Any]], int, str]:
    """The runs of one experiment: one budget and one table.

    Defaults: the largest budget present, then the table with the most rows among
    its runs (the most complete state of a table being generated).

    Raises:
        ValueError: no run matches.
    """
    if not records:
        raise ValueError("no runs recorded")
    if budget is None:
        budget = max(int(r["budget"]) for r in records)
    at_budget = [r for r in records if int(r["budget"]) == budget]
    if fingerprint is None and at_budget:
        fingerprint = max(at_budget, key=lambda r: (r["table"]["n_rows"], r["table"]["fingerprint"]))["table"]["fingerprint"]
    chosen = [r for r in at_budget if r["table"]["fingerprint"] == fingerprint]
    if not chosen:
        raise ValueError(f"no runs with budget {budget} and table {fingerprint}")
    return chosen, budget, fingerprint


def summarize(records: Sequence[dict[str, Any]], budgets: Sequence[int] = REPORT_BUDGETS) -> dict[str, Any]:
    """Per contender: mean regret and 95 % t-interval at each budget, and costs.

    Args:
        records: runs of one experiment (`select_records`).
        budgets: query counts to report (those above the runs' budget are dropped).

    Returns:
        A JSON-serialisable dict: ``budget``, ``budgets``, ``table``, ``contenders``
        (in `CONTENDERS` order, then others), each with ``n_seeds``, ``regret``
        ({k: {mean, ci, n}}), ``mean_regret_curve`` and ``ci_curve`` (k = 1..budget),
        ``seconds_per_query`` (mean, median, max over all queries), ``invalid_fraction``,
        ``distinct``, ``absent_proposals``; ``paired_vs_kbnas`` ({contender: {k:
        {mean, ci}}} of regret(kbnas) − regret(contender) over common seeds, negative
        when kbnas is better); ``target`` (the issue's criterion, see `check_target`).
    """
    budget = int(records[0]["budget"])
    budgets = [k for k in budgets if k <= budget]
    order = {name: i for i, name in enumerate(CONTENDERS)}
    names = sorted({r["contender"] for r in records}, key=lambda n: (order.get(n, len(order)), n))
    by_contender = {name: sorted((r for r in records if r["contender"] == name), key=lambda r: r["seed"]) for name in names}
    contenders: dict[str, Any] = {}
    for name, runs in by_contender.items():
        regrets = np.array([r["regret"] for r in runs], dtype=float)
        val_regrets = np.array([r.get("val_regret", [math.nan] * budget) for r in runs], dtype=float)
        curve_ci = [t_interval(regrets[:, k])[1] for k in range(budget)]
        seconds = np.concatenate([np.asarray(r["oracle_seconds"], dtype=float) for r in runs] or [np.zeros(0)])
        queries = sum(r["n_queries"] for r in runs)
        contenders[name] = {
            "n_seeds": len(runs),
            "regret": {
                str(k): dict(zip(("mean", "ci"), t_interval(regrets[:, k - 1])), n=len(runs)) for k in budgets
            },
            "val_regret": {
                str(k): dict(zip(("mean", "ci"), t_interval(val_regrets[:, k - 1])), n=len(runs)) for k in budgets
            },
            "recommended_regret": {
                str(k): dict(zip(("mean", "ci"), t_interval([recommended_regret(r, k) for r in runs])), n=len(runs))
                for k in budgets
            },
            "recommends_by_model": any(r.get("ranking", "observed") != "observed" for r in runs),
            "mean_regret_curve": regrets.mean(axis=0).tolist(),
            "ci_curve": curve_ci,
            "mean_val_regret_curve": val_regrets.mean(axis=0).tolist(),
            "val_ci_curve": [t_interval(val_regrets[:, k])[1] for k in range(budget)],
            "seconds_per_query": {
                "mean": float(seconds.mean()) if seconds.size else math.nan,
                "median": float(np.median(seconds)) if seconds.size else math.nan,
                "max": float(seconds.max()) if seconds.size else math.nan,
            },
            "invalid_fraction": sum(r["n_invalid"] for r in runs) / max(queries, 1),
            "distinct": float(np.mean([r["n_distinct"] for r in runs])),
            "absent_proposals": float(np.mean([r["absent_proposals"] for r in runs])),
            "stopped_early": sum(1 for r in runs if r["stopped"]),
        }
    paired: dict[str, Any] = {}
    if "kbnas" in by_contender:
        ours = {r["seed"]: r["regret"] for r in by_contender["kbnas"]}
        for name, runs in by_contender.items():
            if name == "kbnas":
                continue
            common = [r for r in runs if r["seed"] in ours]
            if not common:
                continue
            paired[name] = {
                str(k): dict(
                    zip(("mean", "ci"), t_interval([ours[r["seed"]][k - 1] - r["regret"][k - 1] for r in common])),
                    n=len(common),
                )
                for k in budgets
            }
    summary = {
        "budget": budget,
        "budgets": budgets,
        "table": records[0]["table"],
        "contenders": contenders,
        "paired_vs_kbnas": paired,
    }
    summary["target"] = check_target(summary)
    summary["target_recommended"] = check_target(summary, metric="recommended_regret")
    return summary


def recommended_regret(record: dict[str, Any], k: int) -> float:
    """Regret of what the oracle recommends after k queries (`replay`).

    For runs without a recorded recommendation (oracles ranking by score, and runs
    recorded before recommendations were) this is the incumbent's regret: what
    KerasTuner's ``get_best_trials`` returns for them.
    """
    recorded = record.get("recommended_regret") or {}
    value = recorded.get(str(k))
    if value is None:  # not recorded, or nothing completed yet: as the incumbent
        return float(record["regret"][k - 1])
    return float(value)


def check_target(summary: dict[str, Any], metric: str = "regret") -> dict[str, Any]:
    """The issue's target, on the means: kbnas has the lowest mean regret at every
    reported budget ≥ `TARGET_FROM_BUDGET` and is never worse than random at any
    reported budget.

    Args:
        summary: from `summarize`.
        metric: ``"regret"`` (the incumbent a⁺_k, the issue's definition) or
            ``"recommended_regret"`` (what each oracle's ``get_best_trials`` returns).

    Returns:
        ``met`` (bool, None without kbnas), ``lowest_from`` ({k: the contenders with a
        lower mean than kbnas}), ``worse_than_random`` (budgets where kbnas' mean is
        above random's).
    """
    contenders = summary["contenders"]
    if "kbnas" not in contenders:
        return {"met": None, "lowest_from": {}, "worse_than_random": []}
    ours = contenders["kbnas"][metric]
    beaten: dict[str, list[str]] = {}
    worse_than_random = []
    for k in summary["budgets"]:
        key = str(k)
        if k >= TARGET_FROM_BUDGET:
            beaten[key] = [
                name
                for name, data in contenders.items()
                if name != "kbnas" and data[metric][key]["mean"] < ours[key]["mean"]
            ]
        if "random" in contenders and ours[key]["mean"] > contenders["random"][metric][key]["mean"]:
            worse_than_random.append(k)
    met = not any(beaten.values()) and not worse_than_random
    return {"met": met, "lowest_from": beaten, "worse_than_random": worse_than_random}


# ---------------------------------------------------------------------- the table's own ceiling


def load_table_state(path: str | pathlib.Path, table_info: dict[str, Any]) -> TabularBenchmark | None:
    """The table as a run saw it: the first ``n_rows`` rows of the (append-only) file.

    Returns:
        The table, or None when those rows do not have the run's fingerprint.
    """
    from benchmarks.tabular.table import Record, read_rows, read_settings, settings_path_for

    rows = read_rows(path)[: table_info["n_rows"]]
    if len(rows) < table_info["n_rows"]:
        return None
    table = TabularBenchmark([Record.from_row(row) for row in rows], read_settings(settings_path_for(path)))
    return table if table_fingerprint(table) == table_info["fingerprint"] else None


def validation_ceiling(table: TabularBenchmark, ks: Sequence[int] = (1, 5, 20, 100)) -> dict[str, Any]:
    """What optimising validation accuracy can buy on this table.

    ``top_k``: mean over the k architectures with the highest mean validation accuracy
    of their regret t* − mean_test(a) (a search that has found one of them reports
    about this much); ``spearman_top_decile``: Spearman ρ between mean validation and
    mean test accuracy over the top 10 % by mean validation accuracy; ``seed_noise``:
    the table's `summary` seed-noise block for validation accuracy.
    """
    encodings = table.architectures
    val = np.array([table.mean_val(a) for a in encodings])
    test = np.array([table.mean_test(a) for a in encodings])
    order = np.argsort(-val, kind="stable")
    top = order[: max(3, len(order) // 10)]
    return {
        "top_k": {str(k): float(np.mean(table.best_mean_test() - test[order[:k]])) for k in ks if k <= len(order)},
        "spearman_top_decile": float(scipy.stats.spearmanr(val[top], test[top])[0]),
        "n_top_decile": int(top.size),
        "seed_noise": table.summary()["seed_noise"]["val"],
    }


# ---------------------------------------------------------------------- report


def _pp(value: float) -> str:
    """Accuracy units as percentage points, 2 decimals."""
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def format_report_markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown: regret table, costs, paired differences, target."""
    table = summary["table"]
    budgets = summary["budgets"]
    n_seeds = sorted({data["n_seeds"] for data in summary["contenders"].values()})
    lines = [
        f"Table `{table['path']}` (fingerprint `{table['fingerprint']}`): {table['n_architectures']} "
        f"architectures" + (f" of {table['n_space']}" if table.get("n_space") else "")
        + f", rows per seed {table['rows_per_seed']}; best mean test accuracy t* = "
        f"{table['best_mean_test']:.4f}. Budget {summary['budget']} queries, "
        f"{'/'.join(str(n) for n in n_seeds)} seeds per contender.",
        "",
        "Mean regret t* − mean_test(incumbent), in percentage points of test accuracy, ± the "
        "half-width of the 95 % t-interval over seeds (lower is better; **bold**: lowest mean):",
        "",
    ]
    lines += _metric_table(summary, "regret", bold_lowest=True)
    if any(data.get("recommends_by_model") for data in summary["contenders"].values()):
        lines += [
            "",
            "Mean regret of each oracle's own recommendation, `oracle.get_best_trials(1)` (what "
            "`tuner.get_best_models()` returns), percentage points ± 95 % t-interval. It differs "
            "from the incumbent only for oracles marked †, which rank trials by a model "
            "(kbnas: the GP posterior mean); for the others it is the table above:",
            "",
        ]
        lines += _metric_table(summary, "recommended_regret", bold_lowest=True, mark_model_ranked=True)
    lines += [
        "",
        "Diagnostic: mean *validation* regret max_a mean_val(a) − mean_val(incumbent), percentage "
        "points ± 95 % t-interval: how well each search optimises what it observes, leaving out "
        "the validation/test disagreement:",
        "",
    ]
    lines += _metric_table(summary, "val_regret")
    lines += [
        "",
        "| contender | s/query (mean) | s/query (median) | s/query (max) | invalid queries | distinct architectures | proposals outside the table per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, data in summary["contenders"].items():
        seconds = data["seconds_per_query"]
        lines.append(
            f"| {name} | {seconds['mean']:.3f} | {seconds['median']:.3f} | {seconds['max']:.2f} | "
            f"{100 * data['invalid_fraction']:.1f} % | {data['distinct']:.1f} | {data['absent_proposals']:.1f} |"
        )
    if summary["paired_vs_kbnas"]:
        lines += [
            "",
            "Paired difference regret(kbnas) − regret(contender) over the same seeds (same noise "
            "draws), percentage points, ± 95 % t-interval; negative: kbnas better:",
            "",
            "| vs | " + " | ".join(f"{k}" for k in budgets) + " |",
            "|---|" + "---|" * len(budgets),
        ]
        for name, cells in summary["paired_vs_kbnas"].items():
            lines.append(
                f"| {name} | "
                + " | ".join(f"{_pp(cells[str(k)]['mean'])} ± {_pp(cells[str(k)]['ci'])}" for k in budgets)
                + " |"
            )
    ceiling = summary.get("validation_ceiling")
    if ceiling:
        noise = ceiling["seed_noise"]
        lines += [
            "",
            "What optimising validation accuracy can buy on this table: the mean regret of the top-k "
            "architectures by mean validation accuracy is "
            + ", ".join(f"{_pp(v)} (k = {k})" for k, v in ceiling["top_k"].items())
            + f" percentage points; over the top 10 % by validation accuracy ({ceiling['n_top_decile']} "
            f"architectures) Spearman ρ(mean val, mean test) = {ceiling['spearman_top_decile']:.2f}; seed "
            f"noise of the validation accuracy: std {_pp(noise['within_architecture_std'])} pp within an "
            f"architecture ({noise['n']} architectures with ≥ 2 seeds).",
        ]
    target = summary["target"]
    if target["met"] is not None:
        verdict = _verdict(target)
        lines += [
            "",
            f"Target (kbnas has the lowest mean regret at every budget ≥ {TARGET_FROM_BUDGET} and is never "
            f"above random search), on the incumbent: {verdict}.",
        ]
        recommended = summary.get("target_recommended")
        if recommended and recommended["met"] is not None and any(
            data.get("recommends_by_model") for data in summary["contenders"].values()
        ):
            lines += ["", f"The same target on the oracles' recommendations: {_verdict(recommended)}."]
    return "\n".join(lines)


def _metric_table(
    summary: dict[str, Any], metric: str, *, bold_lowest: bool = False, mark_model_ranked: bool = False
) -> list[str]:
    """Markdown rows (header first) of one per-budget metric, mean ± 95 % t-interval.

    Args:
        summary: from `summarize`.
        metric: ``"regret"``, ``"recommended_regret"`` or ``"val_regret"``.
        bold_lowest: bold the lowest mean of each budget.
        mark_model_ranked: mark with † the contenders that rank trials by a model.
    """
    budgets = [str(k) for k in summary["budgets"]]
    contenders = summary["contenders"]
    lowest = {k: min(data[metric][k]["mean"] for data in contenders.values()) for k in budgets}
    rows = [
        "| contender | " + " | ".join(f"{k} queries" for k in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for name, data in contenders.items():
        cells = []
        for k in budgets:
            cell = data[metric][k]
            text = f"{_pp(cell['mean'])} ± {_pp(cell['ci'])}"
            cells.append(f"**{text}**" if bold_lowest and cell["mean"] == lowest[k] else text)
        mark = " †" if mark_model_ranked and data.get("recommends_by_model") else ""
        rows.append(f"| {name}{mark} | " + " | ".join(cells) + " |")
    return rows


def _verdict(target: dict[str, Any]) -> str:
    if target["met"]:
        return "**met**"
    beaten = "; ".join(f"at {k}: {', '.join(names)}" for k, names in target["lowest_from"].items() if names)
    parts = []
    if beaten:
        parts.append(f"lower mean regret than kbnas {beaten}")
    if target["worse_than_random"]:
        parts.append(f"kbnas above random at {', '.join(str(k) for k in target['worse_than_random'])}")
    return "**not met** (" + "; ".join(parts) + ")"


def plot_regret(summary: dict[str, Any], path: str | pathlib.Path) -> None:
    """Mean regret (log y) against queries, with 95 % t-interval bands.

    Two panels: the (test) regret of the report, and the validation regret diagnostic.
    The y axis starts at half the smallest positive mean (at least `PLOT_REGRET_FLOOR`);
    bands are cut there.

    Raises:
        ImportError: matplotlib is missing (``pip install kbnas[plot]``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("the plot needs matplotlib: pip install 'kbnas[plot]'") from error
    figure, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    queries = np.arange(1, summary["budget"] + 1)
    panels = (
        ("mean_regret_curve", "ci_curve", "mean regret of the incumbent (test accuracy)"),
        ("mean_val_regret_curve", "val_ci_curve", "mean validation regret of the incumbent (diagnostic)"),
    )
    for axis, (mean_key, ci_key, label) in zip(axes, panels):
        curves = [np.asarray(data[mean_key], dtype=float) for data in summary["contenders"].values()]
        positive = np.concatenate([c[c > 0] for c in curves] + [np.array([1.0])])
        bottom = max(PLOT_REGRET_FLOOR, 0.5 * float(positive.min()))
        for name, data in summary["contenders"].items():
            mean = np.asarray(data[mean_key], dtype=float)
            ci = np.nan_to_num(np.asarray(data[ci_key], dtype=float))
            style = "-" if name.startswith("kbnas") else "--"
            (line,) = axis.plot(queries, np.maximum(mean, bottom), style, label=name, linewidth=1.6)
            axis.fill_between(
                queries, np.maximum(mean - ci, bottom), np.maximum(mean + ci, bottom),
                color=line.get_color(), alpha=0.12,
            )
        axis.set_yscale("log")
        axis.set_ylim(bottom=bottom)
        axis.set_xlabel("queries (trainings)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    table = summary["table"]
    seeds = max(data["n_seeds"] for data in summary["contenders"].values())
    figure.suptitle(
        f"Tabular digits benchmark ({table['n_architectures']} architectures, rows per seed "
        f"{table['rows_per_seed']}; {seeds} seeds per contender; bands: 95% t-interval)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_generated_block(markdown_path: str | pathlib.Path, name: str, command: str, block: str) -> None:
    """Replace the block between the ``search-efficiency:<name>`` markers of a file.

    Raises:
        ValueError: the file lacks the markers.
    """
    markdown_path = pathlib.Path(markdown_path)
    text = markdown_path.read_text(encoding="utf-8")
    begin_prefix = f"<!-- search-efficiency:{name}:begin"
    end = GENERATED_END.format(name=name)
    pattern = re.compile(re.escape(begin_prefix) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text) is None:
        raise ValueError(f"{markdown_path} has no '{begin_prefix} ...' … '{end}' block")
    replacement = f"{GENERATED_BEGIN.format(name=name, command=command)}\n{block}\n{end}"
    markdown_path.write_text(pattern.sub(lambda _: replacement, text, count=1), encoding="utf-8")


# ---------------------------------------------------------------------- surrogate quality


@dataclasses.dataclass(frozen=True)
class SurrogateSettings:
    """The surrogate-quality experiment.

    Attributes:
        sizes: training-set sizes n.
        repeats: random training sets per size.
        distances: architecture distances of the GP.
        warpings: score warpings of the GP targets.
        neighbours: k of the k-nearest-neighbour reference predictor.
        unflipped: distances that also get a row without the spectrum flip
            (``DistanceGP(spectrum_flip=False)``, rank warp): the repair kbnas used
            before, kept to show what the flip changes.
    """

    sizes: tuple[int, ...] = (25, 50, 100, 200)
    repeats: int = 10
    distances: tuple[str, ...] = ("edit", "otmann")
    warpings: tuple[str, ...] = ("rank", "standardize")
    neighbours: int = 5
    unflipped: tuple[str, ...] = ("edit",)


def surrogate_quality(table: TabularBenchmark, settings: SurrogateSettings = SurrogateSettings()) -> dict[str, Any]:
    """How well the kbnas GP ranks held-out architectures of the table.

    For each size n and repeat r: a training set of n table architectures drawn
    uniformly without replacement (generator default_rng([r, n])), each observed
    once like a search would (`TabularBenchmark.query`: one random seed's validation
    accuracy); the rest of the table is held out. The GP is built directly with
    `kbnas.core` exactly as `BayesianNASOracle` does (`warp_scores`, one
    architecture-distance channel, `DistanceGP.fit` with 3 random restarts), and its
    posterior means at the held-out architectures are compared with their true
    mean validation accuracies:

        spearman      Spearman ρ over all held-out architectures
        spearman_top  ρ over the held-out architectures in the table's top quartile
                      of mean validation accuracy (where a search spends its queries)
        regret_of_argmax   t* − mean_test(argmax of the posterior mean over held-out)
        noise_fraction     σ_n² / (s² + σ_n²) of the fitted GP
        exploded           1 when some posterior mean exceeds 10 in magnitude (the
                           targets are warped to about N(0, 1)), else 0
        zero_variance      share of held-out architectures whose posterior variance
                           was clipped to 0

    Reference rows: ``knn`` (mean observed value of the k nearest training
    architectures in edit distance), and the ``noise ceiling`` ρ between one
    random seed's validation accuracy and the mean over seeds (all architectures).

    Returns:
        JSON-serialisable dict: ``table`` and ``rows`` ({method: {n: {metric: {mean, ci}}}}).
    """
    from kbnas.core.distances import get_architecture_distance
    from kbnas.core.gp import DistanceGP
    from kbnas.core.warping import warp_scores

    space = table.search_space()
    encodings = table.architectures
    architectures = [Architecture.decode(e) for e in encodings]
    mean_val = np.array([table.mean_val(e) for e in encodings])
    mean_test = np.array([table.mean_test(e) for e in encodings])
    top_cut = np.quantile(mean_val, 0.75)
    matrices = {name: get_architecture_distance(name, space)(architectures, architectures) for name in settings.distances}
    if "edit" not in matrices:
        matrices["edit"] = get_architecture_distance("edit", space)(architectures, architectures)
    results: dict[str, dict[int, dict[str, list[float]]]] = {}

    def record(method: str, n: int, prediction: np.ndarray, test: np.ndarray, **extra: float) -> None:
        metrics = results.setdefault(method, {}).setdefault(n, {})
        top = test[mean_val[test] >= top_cut]
        values = {
            "spearman": scipy.stats.spearmanr(prediction, mean_val[test])[0],
            "spearman_top": scipy.stats.spearmanr(prediction[np.isin(test, top)], mean_val[top])[0]
            if top.size > 2
            else math.nan,
            "regret_of_argmax": table.best_mean_test() - mean_test[test][int(np.argmax(prediction))],
            **extra,
        }
        for key, value in values.items():
            metrics.setdefault(key, []).append(float(value))

    for n in settings.sizes:
        if n >= len(encodings) - 2:
            continue
        for repeat in range(settings.repeats):
            rng = np.random.default_rng([repeat, n])
            train = np.sort(rng.choice(len(encodings), size=n, replace=False))
            test = np.setdiff1d(np.arange(len(encodings)), train)
            y = np.array([table.query(encodings[i], rng) for i in train])
            variants = [(d, w, True) for d in settings.distances for w in settings.warpings]
            variants += [(d, "rank", False) for d in settings.unflipped]
            for distance, warping, flip in variants:
                dists = matrices[distance]
                z = warp_scores(y, warping)
                gp = DistanceGP(spectrum_flip=flip).fit(
                    dists[np.ix_(train, train)][np.newaxis], z, n_restarts=3, rng=np.random.default_rng([repeat, n, 1])
                )
                mean, var = gp.predict(dists[np.ix_(test, train)][np.newaxis])
                noise = gp.noise_variance_ / (gp.signal_variance_ + gp.noise_variance_)
                name = f"gp {distance} {warping}" + ("" if flip else " without spectrum flip")
                exploded = float(np.max(np.abs(mean)) > 10.0)
                zero_variance = float(np.mean(var <= 0.0))
                record(name, n, mean, test, noise_fraction=noise, exploded=exploded, zero_variance=zero_variance)
            nearest = np.argsort(matrices["edit"][np.ix_(test, train)], axis=1, kind="stable")[:, : settings.neighbours]
            record(f"knn{settings.neighbours} edit", n, y[nearest].mean(axis=1), test)
    rows = {
        method: {
            str(n): {key: dict(zip(("mean", "ci"), t_interval(values))) for key, values in metrics.items()}
            for n, metrics in by_size.items()
        }
        for method, by_size in results.items()
    }
    rng = np.random.default_rng(0)
    single = np.array([table.query(e, rng) for e in encodings])
    has_noise = any(len(table.seeds_available(e)) > 1 for e in encodings)
    ceiling = float(scipy.stats.spearmanr(single, mean_val)[0]) if has_noise else math.nan
    return {"table": table_description(table), "settings": dataclasses.asdict(settings), "rows": rows, "noise_ceiling": ceiling}


def format_surrogate_markdown(result: dict[str, Any]) -> str:
    """The surrogate-quality result as a Markdown table."""
    sizes = result["settings"]["sizes"]
    table = result["table"]
    lines = [
        f"Table fingerprint `{table['fingerprint']}` ({table['n_architectures']} architectures, rows per "
        f"seed {table['rows_per_seed']}); {result['settings']['repeats']} random training sets per size; "
        "mean ± 95 % t-interval.",
        "",
        "| surrogate | "
        + " | ".join(f"ρ n={n}" for n in sizes)
        + " | "
        + " | ".join(f"ρ top-25 % n={n}" for n in sizes)
        + " | "
        + " | ".join(f"regret of argmax n={n} (pp)" for n in sizes)
        + " | noise fraction n="
        + str(sizes[-1])
        + " | fits with abs(μ) > 10, n="
        + "/".join(str(n) for n in sizes)
        + " | held-out with zero variance (%), n="
        + "/".join(str(n) for n in sizes)
        + " |",
        "|---|" + "---|" * (3 * len(sizes) + 3),
    ]
    repeats = result["settings"]["repeats"]

    def exploded_counts(by_size: dict[str, Any]) -> str:
        counts = [by_size.get(str(n), {}).get("exploded") for n in sizes]
        if any(c is None for c in counts):
            return "—"
        return "/".join(str(round(c["mean"] * repeats)) for c in counts) + f" of {repeats}"

    def zero_variance_shares(by_size: dict[str, Any]) -> str:
        shares = [by_size.get(str(n), {}).get("zero_variance") for n in sizes]
        if any(share is None for share in shares):
            return "—"
        return "/".join(f"{100 * share['mean']:.0f}" for share in shares)

    for method, by_size in result["rows"].items():
        def cell(n: int, key: str, scale: float = 1.0, digits: int = 2) -> str:
            metric = by_size.get(str(n), {}).get(key)
            if metric is None:
                return "n/a"
            return f"{scale * metric['mean']:.{digits}f} ± {scale * metric['ci']:.{digits}f}"

        noise = cell(sizes[-1], "noise_fraction") if "noise_fraction" in by_size.get(str(sizes[-1]), {}) else "—"
        lines.append(
            f"| {method} | "
            + " | ".join(cell(n, "spearman") for n in sizes)
            + " | "
            + " | ".join(cell(n, "spearman_top") for n in sizes)
            + " | "
            + " | ".join(cell(n, "regret_of_argmax", 100.0) for n in sizes)
            + f" | {noise} | {exploded_counts(by_size)} | {zero_variance_shares(by_size)} |"
        )
    ceiling = result["noise_ceiling"]
    lines += [
        "",
        "Noise ceiling (Spearman ρ between one random seed's validation accuracy and the mean over "
        f"seeds, all architectures): {'n/a (one seed per architecture)' if math.isnan(ceiling) else f'{ceiling:.3f}'}.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.search_efficiency",
        description="Replay search strategies on the tabular benchmark and compare their regret.",
    )
    parser.add_argument("--table", default=str(DEFAULT_TABLE_PATH), help="the JSON-lines table")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="results file (JSON lines, resumable)")
    parser.add_argument("--seeds", type=int, default=30, help="number of run seeds: 0..SEEDS-1")
    parser.add_argument("--first-seed", type=int, default=0, help="first run seed")
    parser.add_argument("--budget", type=int, default=None, help="queries per run (default 200; for --report: the largest recorded)")
    parser.add_argument(
        "--contenders", nargs="+", default=["all"], help=f"'all' or names among {', '.join(CONTENDERS)}, or kbnas:key=value,..."
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel replay processes")
    parser.add_argument("--report", action="store_true", help="only summarise the results file")
    parser.add_argument("--fingerprint", default=None, help="for --report: the table fingerprint (default: the most complete)")
    parser.add_argument("--summary-json", default=None,
                        help="where the summary JSON goes (default: the shared one for the default --output, "
                             "else <output>_summary.json beside it)")
    parser.add_argument("--plot", default=None, help="where the PNG goes ('' for none; default as --summary-json, .png)")
    parser.add_argument("--surrogate", action="store_true", help="run the surrogate-quality experiment instead")
    parser.add_argument("--surrogate-repeats", type=int, default=10)
    parser.add_argument("--surrogate-output", default=str(DEFAULT_SURROGATE))
    parser.add_argument("--write-into", metavar="MARKDOWN", help="replace the generated block of this Markdown file")
    parser.add_argument(
        "--block", default="report", help="for --report: name of the generated block to replace (default 'report')"
    )
    args = parser.parse_args(argv)
    # A run into another results file must not overwrite the shared summary and plot.
    shared = pathlib.Path(args.output).resolve() == DEFAULT_OUTPUT.resolve()
    stem = pathlib.Path(args.output).with_suffix("")
    if args.summary_json is None:
        args.summary_json = str(DEFAULT_SUMMARY if shared else f"{stem}_summary.json")
    if args.plot is None:
        args.plot = str(DEFAULT_PLOT if shared else f"{stem}.png")

    if args.surrogate:
        table = TabularBenchmark.load(args.table)
        result = surrogate_quality(table, SurrogateSettings(repeats=args.surrogate_repeats))
        result["table"]["path"] = pathlib.Path(args.table).name
        pathlib.Path(args.surrogate_output).write_text(json.dumps(result, indent=1), encoding="utf-8")
        block = format_surrogate_markdown(result)
        print(block)
        if args.write_into:
            write_generated_block(args.write_into, "surrogate", "--surrogate", block)
        return 0

    contenders = list(CONTENDERS) if args.contenders == ["all"] else args.contenders
    if not args.report:
        run_search_efficiency(
            args.table,
            args.output,
            contenders=contenders,
            seeds=range(args.first_seed, args.first_seed + args.seeds),
            budget=args.budget or 200,
            workers=args.workers,
        )
    records, budget, fingerprint = select_records(
        read_records(args.output), budget=args.budget, fingerprint=args.fingerprint
    )
    if args.contenders != ["all"]:
        records = [r for r in records if r["contender"] in contenders]
    summary = summarize(records)
    table_state = load_table_state(args.table, summary["table"])
    if table_state is not None:
        summary["validation_ceiling"] = validation_ceiling(table_state)
    pathlib.Path(args.summary_json).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    block = format_report_markdown(summary)
    print(block)
    if args.plot:
        plot_regret(summary, args.plot)
    if args.write_into:
        command = f"--report --budget {budget} --fingerprint {fingerprint}"
        if args.output != str(DEFAULT_OUTPUT):
            command += f" --output {args.output}"
        if args.block != "report":
            command += f" --block {args.block}"
        write_generated_block(args.write_into, args.block, command, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
