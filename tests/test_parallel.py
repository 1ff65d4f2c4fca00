"""Parallel trials (`kbnas.parallel`, ``kbnas search --workers N``): the plan of
devices, and real searches in real processes: two workers complete a search, a
killed worker does not stop it, a killed chief resumes, Ctrl-C leaves no process."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from kbnas.parallel import chief, fork_server, plans
from kbnas.parallel import (
    ChiefUnreachableError,
    ParallelSearch,
    ParallelSettings,
    WarmWorkers,
    default_workers,
    free_port,
    format_address,
    gpu_devices_present,
    listen_error,
    parse_address,
    plan_workers,
    port_in_use,
    wait_for_chief,
    worker_tuner_id,
)

# ---------------------------------------------------------------------- the plan


def test_two_workers_on_two_cores_get_one_pinned_core_and_one_thread_each():
    plans = plan_workers(2, n_gpus=0, cpus=[0, 1], host="h")
    # A share of the cores each (threads), not pinned unless asked.
    assert [(p.tuner_id, p.gpus, p.cpus, p.threads) for p in plans] == [
        ("h-w1", None, (), 1),
        ("h-w2", None, (), 1),
    ]
    pinned = plan_workers(2, n_gpus=0, cpus=[0, 1], host="h", pin_cpus=True)
    assert [(p.cpus, p.threads) for p in pinned] == [((0,), 1), ((1,), 1)]


def test_cores_are_split_with_the_remainder_to_the_first_workers():
    plans = plan_workers(3, n_gpus=0, cpus=range(8), host="h", pin_cpus=True)
    assert [p.cpus for p in plans] == [(0, 1, 2), (3, 4, 5), (6, 7)]
    assert [p.threads for p in plans] == [3, 3, 2]
    assert [p.threads for p in plan_workers(3, n_gpus=0, cpus=range(8), host="h")] == [3, 3, 2]


def test_more_workers_than_cores_are_not_pinned_and_use_one_thread():
    plans = plan_workers(4, n_gpus=0, cpus=[0, 1], host="h", pin_cpus=True)
    assert all(p.cpus == () and p.threads == 1 for p in plans)
    assert len({p.tuner_id for p in plans}) == 4


@pytest.mark.parametrize(
    "workers, n_gpus, per_worker, expected",
    [
        (4, 4, 1, [(0,), (1,), (2,), (3,)]),
        (2, 4, 2, [(0, 1), (2, 3)]),
        (3, 2, 1, [(0,), (1,), (0,)]),  # two workers share GPU 0
        (1, 1, 2, [(0,)]),  # cannot own more GPUs than there are
    ],
)
def test_gpus_are_dealt_out_per_worker(workers, n_gpus, per_worker, expected):
    plans = plan_workers(workers, n_gpus=n_gpus, cpus=range(16), gpus_per_worker=per_worker, host="h")
    assert [p.gpus for p in plans] == expected


def test_default_workers_is_one_per_gpu_group_and_one_without_gpus():
    assert default_workers(0) == 1
    assert default_workers(8) == 8
    assert default_workers(8, gpus_per_worker=2) == 4
    assert default_workers(1, gpus_per_worker=2) == 1


def test_worker_ids_never_make_a_worker_the_chief():
    # KerasTuner treats any tuner id containing "chief" as the chief.
    assert "chief" not in worker_tuner_id(1, host="chief-node-3")
    assert len({worker_tuner_id(1, "a"), worker_tuner_id(2, "a"), worker_tuner_id(1, "b")}) == 3


def test_addresses_and_settings_are_checked():
    assert parse_address("10.0.0.1:8000") == ("10.0.0.1", 8000)
    assert parse_address("0.0.0.0:0", allow_zero=True) == ("0.0.0.0", 0)
    assert parse_address("[::1]:8000") == ("::1", 8000)  # IPv6 in brackets, returned without
    assert parse_address("[::]:0", allow_zero=True) == ("::", 0)
    for bad in ("8000", "host:", "host:http", ":8000", "host:70000", "host:0", "::1:8000", "[]:8000",
                "[::1:8000", "::1]:8000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)
    assert format_address("10.0.0.1", 8000) == "10.0.0.1:8000"
    assert format_address("::1", 8000) == "[::1]:8000"  # as gRPC and people read it
    assert ParallelSettings(host="[::1]").host == "::1"
    # Workers connect to the loopback of a chief listening on every address, however written.
    from kbnas.parallel.network import _connectable

    assert [_connectable(h) for h in ("0.0.0.0", "::", "[::]", "::0", "0:0:0:0:0:0:0:0", "", "10.0.0.1", "node7")] \
        == ["127.0.0.1", "::1", "::1", "::1", "::1", "127.0.0.1", "10.0.0.1", "node7"]
    assert listen_error("no-such-host.invalid", 0) is not None  # a name that does not resolve
    with pytest.raises(ValueError, match="workers"):
        ParallelSettings(workers=0)
    with pytest.raises(ValueError, match="gpus_per_worker"):
        ParallelSettings(gpus_per_worker=0)
    with pytest.raises(ValueError, match="HOST:PORT"):
        ParallelSettings(connect="nowhere")


def test_port_checks_see_a_listening_socket():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        wait_for_chief("127.0.0.1", port, timeout=1.0)  # returns at once
    assert not port_in_use("127.0.0.1", free_port())


def test_a_port_left_in_time_wait_by_a_killed_chief_is_free():
    # The server side closes first, as a killed chief's connections do: its port
    # is in TIME_WAIT for about a minute. gRPC's sockets, and the check's, have
    # SO_REUSEADDR, with which Linux lets a new listener bind past TIME_WAIT.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = server.accept()
            accepted.close()
    assert listen_error("127.0.0.1", port) is None and not port_in_use("127.0.0.1", port)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_port_checks_take_ipv6_hosts():
    if not _ipv6_loopback():  # the same checks on IPv4 are the test above
        assert port_in_use("::1", 8000)  # a host this machine cannot bind is "in use"
        return
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_in_use("::1", port)
        wait_for_chief("::1", port, timeout=1.0)
        wait_for_chief("[::1]", port, timeout=1.0)  # as gRPC and KerasTuner's variable write it
    assert not port_in_use("::1", free_port("::1"))


def test_keras_tuner_forgets_a_registered_worker_only_when_it_tells_it_to_stop(tmp_path):
    """The contract `ParallelSearch` relies on to keep KerasTuner's server up for
    workers that have not asked yet (`oracle.tuner_ids`, KerasTuner 1.4)."""
    import keras_tuner

    from kbnas import BayesianNASOracle

    hp = keras_tuner.HyperParameters()
    hp.Choice("c", [0, 1])
    oracle = BayesianNASOracle(objective=keras_tuner.Objective("score", "max"), hyperparameters=hp,
                               max_trials=1, seed=0)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.verbose = 0
    oracle.tuner_ids.update({"h-w1", "h-w2"})
    trial = oracle.create_trial("h-w1")
    oracle.update_trial(trial.trial_id, {"score": 1.0})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    assert oracle.create_trial("h-w1").status == "STOPPED"
    assert oracle.tuner_ids == {"h-w2"}  # still expected: the server keeps serving
    assert oracle.create_trial("h-w2").status == "STOPPED"
    assert oracle.tuner_ids == set() and oracle.ongoing_trials == {}


def test_an_unreachable_chief_is_a_clear_error_within_the_timeout():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ChiefUnreachableError, match=rf"127\.0\.0\.1:{port} after 1 s"):
        wait_for_chief("127.0.0.1", port, timeout=1.0)
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------------- real searches
TRIALS = 4


def _search_command(output: pathlib.Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kbnas.cli", "search", "--workers", "2", "--max-trials", str(TRIALS),
            "--max-depth", "3", "--time-budget", "none", "--no-retrain", "--output", str(output), *extra]


def _env() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _trials(output: pathlib.Path) -> list[dict]:
    trials = []
    for path in (output / "search").glob("trial_*/trial.json"):
        try:
            trials.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):  # being written
            pass
    return trials


def _worker_pids(output: pathlib.Path) -> dict[str, int]:
    pids = {}
    for log in (output / "search" / "workers").glob("*.log"):
        for match in re.finditer(r"kbnas worker (\S+) pid (\d+)", log.read_text(errors="replace")):
            pids[match.group(1)] = int(match.group(2))
    return pids


def _ongoing(output: pathlib.Path) -> dict[str, str]:
    """tuner id -> trial id it runs, from the chief's saved state."""
    try:
        return json.loads((output / "search" / "oracle.json").read_text())["ongoing_trials"]
    except (OSError, json.JSONDecodeError, KeyError):
        return {}


def _alive(pid: int) -> bool:
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _assert_complete_and_distinct(output: pathlib.Path) -> list[dict]:
    trials = _trials(output)
    assert len(trials) == TRIALS
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert len({t["hyperparameters"]["values"]["architecture"] for t in trials}) == TRIALS
    return trials


@pytest.mark.integration
def test_two_workers_complete_a_search_with_trials_in_flight_and_export_once(tmp_path):
    output = tmp_path / "run"
    done = subprocess.run(_search_command(output, "--epochs", "3"), capture_output=True, text=True,
                          env=_env(), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_complete_and_distinct(output)
    assert re.search(r"; 2 workers \(\d+ (CPU thread|GPU)\(s\) each\)", done.stdout)
    # One progress line per trial, numbered as `kbnas show` numbers them.
    assert sorted(re.findall(r"^trial (\d+)/4 ", done.stdout, re.M)) == ["1", "2", "3", "4"]
    assert done.stdout.count("exported to") == 1
    oracle = json.loads((output / "search" / "oracle.json").read_text())["kbnas"]
    # Proposals were made while another trial was running (two at once).
    assert max(log["running"] for log in oracle["proposal_log"].values()) == 1
    logs = sorted((output / "search" / "workers").glob("*.log"))
    assert len(logs) == 2 and all(": done" in log.read_text() for log in logs)
    # Without GPUs the workers were forks of a server that imported TensorFlow
    # while the chief imported its own (kbnas.parallel.WarmWorkers).
    if not gpu_devices_present():
        assert all("forked from the fork server, which imported TensorFlow" in log.read_text() for log in logs)


@pytest.mark.integration
def test_a_worker_killed_mid_trial_is_restarted_and_the_search_finishes(tmp_path):
    output = tmp_path / "run"
    # Full training, 6 epochs: the kill lands inside a trial.
    search = subprocess.Popen(_search_command(output, "--epochs", "6", "--no-early-stopping"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        pids = _wait_for(lambda: len(_worker_pids(output)) == 2 and _worker_pids(output), 120, "two workers")
        victim = sorted(pids)[0]
        # The trial the victim is training (the chief saves who runs what).
        running = _wait_for(lambda: _ongoing(output).get(victim), 120, "a trial on the victim")
        time.sleep(1.0)
        os.kill(pids[victim], signal.SIGKILL)
        out, err = search.communicate(timeout=400)
    finally:
        if search.poll() is None:
            search.kill()
    assert search.returncode == 0, err[-3000:]
    assert f"worker {victim} stopped (killed by SIGKILL" in err
    trials = {t["trial_id"]: t for t in _assert_complete_and_distinct(output)}
    assert _worker_pids(output)[victim] != pids[victim]  # it came back as a new process
    # Its trial was trained again from the first epoch, and only that run counts.
    observations = trials[running]["metrics"]["metrics"]["val_accuracy"]["observations"]
    assert [o["step"] for o in observations] == list(range(len(observations)))
    assert all(len(o["value"]) == 1 for o in observations)  # not averaged with the killed run


def _fork_server_of(pid: int) -> int | None:
    """The pid of the fork server that process ``pid`` started, or None."""
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"multiprocessing.forkserver" in command:
            return int(stat.parent.name)
    return None


@pytest.mark.integration
@pytest.mark.skipif(not fork_server.available() or gpu_devices_present(), reason="workers are spawned here")
def test_a_killed_fork_server_does_not_stop_the_search(tmp_path):
    output = tmp_path / "run"
    search = subprocess.Popen(_search_command(output, "--epochs", "6", "--no-early-stopping"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        pids = _wait_for(lambda: len(_worker_pids(output)) == 2 and _worker_pids(output), 120, "two workers")
        _wait_for(lambda: len(_ongoing(output)) == 2, 120, "two running trials")
        server = _wait_for(lambda: _fork_server_of(search.pid), 10, "the fork server")
        # Killed (out of memory, say): multiprocessing then reports exit code 255 for
        # its forks, which still run; the chief kills and restarts them, no death counted.
        os.kill(server, signal.SIGKILL)
        out, err = search.communicate(timeout=400)
    finally:
        if search.poll() is None:
            search.kill()
    assert search.returncode == 0, err[-3000:]
    assert "the workers' fork server stopped; starting worker" in err
    assert "failed" not in err
    _assert_complete_and_distinct(output)
    assert not any(_alive(pid) for pid in pids.values())


@pytest.mark.integration
def test_a_killed_chief_takes_its_workers_down_and_the_same_command_resumes(tmp_path):
    output = tmp_path / "run"
    # On a fixed port: the rerun listens where the killed chief's connections are
    # still in TIME_WAIT.
    command = _search_command(output, "--epochs", "4", "--listen", f"127.0.0.1:{free_port()}")
    chief = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _wait_for(lambda: any(t["status"] == "COMPLETED" for t in _trials(output)), 200, "a completed trial")
        pids = _worker_pids(output)
        chief.kill()
        chief.wait(30)
    finally:
        if chief.poll() is None:
            chief.kill()
    # The workers notice that their chief is gone, and exit.
    _wait_for(lambda: not any(_alive(pid) for pid in pids.values()), 20, "the workers to exit")
    completed = {t["trial_id"]: t["score"] for t in _trials(output) if t["status"] == "COMPLETED"}
    assert completed
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming search" in done.stdout
    # The trials that were running are counted apart: they train again.
    assert re.search(rf"resuming search .*, {len(completed)} done(, [12] interrupted \(trained again\))?[;\n]",
                     done.stdout), done.stdout[:2000]
    trials = _assert_complete_and_distinct(output)
    # Nothing completed before the kill was lost or trained again: each ended once.
    assert {t["trial_id"]: t["score"] for t in trials if t["trial_id"] in completed} == completed
    state = json.loads((output / "search" / "oracle.json").read_text())
    assert all(state["run_times"][trial_id] == 1 for trial_id in completed)
    assert sorted(state["end_order"]) == sorted(t["trial_id"] for t in trials)


@pytest.mark.integration
def test_ctrl_c_stops_the_chief_and_every_worker(tmp_path):
    output = tmp_path / "run"
    # Its own process group, as a terminal's foreground job: Ctrl-C signals the whole group.
    # And SIGINT at its default disposition, as in a terminal: a test suite started as a
    # background job of a non-interactive shell (`pytest &`) has SIGINT ignored, children
    # inherit that, and Python then installs no KeyboardInterrupt handler (this test got
    # exit 0 from a search that ran to its end in two such runs).
    search = subprocess.Popen(_search_command(output, "--epochs", "30", "--no-early-stopping"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                              start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        pids = _wait_for(lambda: len(_worker_pids(output)) == 2 and _worker_pids(output), 120, "two workers")
        _wait_for(lambda: any(t["status"] == "RUNNING" for t in _trials(output)), 120, "a running trial")
        os.killpg(search.pid, signal.SIGINT)
        out, err = search.communicate(timeout=60)
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    assert search.returncode == 130, (out[-3000:], err[-3000:])
    assert "interrupted; run the same command again to resume" in err
    assert not any(_alive(pid) for pid in pids.values())
    # Nothing else of the session is left either (multiprocessing's helpers included).
    _wait_for(lambda: not [p for p in _session_processes(search.pid)], 10, "the session's processes to exit")


def _session_processes(sid: int) -> list[int]:
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state, ppid, pgrp, session, ...
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_a_taken_port_is_a_one_line_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run(_search_command(tmp_path / "run", "--listen", f"127.0.0.1:{port}"),
                              capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"kbnas: error: port {port} on 127.0.0.1 is in use: choose another port, "
                                   "or 0 for a free one")


def test_an_address_of_another_machine_is_a_one_line_error(tmp_path):
    # 192.0.2.1 (TEST-NET-1) is nobody's own address: the chief cannot listen there.
    done = subprocess.run(_search_command(tmp_path / "run", "--listen", "192.0.2.1:0"),
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert re.fullmatch(r"kbnas: error: the chief cannot listen on 192\.0\.2\.1:0 \(.+\): give an address of "
                        r"this machine, such as 127\.0\.0\.1, 0\.0\.0\.0 or \[::\]", done.stderr.strip()), done.stderr


def test_connecting_to_no_chief_is_a_one_line_error_within_seconds(tmp_path):
    port = free_port()
    started = time.monotonic()
    done = subprocess.run(_search_command(tmp_path / "run", "--connect", f"127.0.0.1:{port}"),
                          capture_output=True, text=True, env=dict(_env(), KBNAS_CHIEF_TIMEOUT="2"), timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith(f"kbnas: error: cannot reach the kbnas/KerasTuner chief at 127.0.0.1:{port} after 2 s")
    assert len(done.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 60


PYTHON_API_SCRIPT = '''
import functools, json, os, sys, threading, time
import kbnas

def build_tuner(directory):
    # overwrite=True starts the chief's search afresh; the workers must not
    # delete the project (and the trials in it) when they build theirs.
    return kbnas.BayesianNAS(kbnas.ConvNetHyperModel(max_depth=2), max_trials=3, seed=0, overwrite=True,
                             num_initial_points=2, directory=directory, project_name="api")

if __name__ == "__main__":
    split = kbnas.load_digits_split()
    search = kbnas.ParallelSearch(functools.partial(build_tuner, sys.argv[1]), kbnas.ParallelSettings(workers=2))
    tuner = search.search(split.x_train[:300], split.y_train[:300], epochs=2, verbose=0,
                          validation_data=(split.x_val[:100], split.y_val[:100]))
    # The search is over when it returns: the oracle's clock is stopped, and
    # KerasTuner's server thread (which may sleep on for up to 20 s) no longer
    # touches the oracle while the user's code goes on.
    seconds = tuner.oracle.search_seconds()
    late_calls = []
    for name in ("stop_clock", "save", "start_clock"):
        def spy(*args, _name=name, _method=getattr(tuner.oracle, name)):
            if threading.current_thread() is not threading.main_thread():
                late_calls.append(_name)
            return _method(*args)
        setattr(tuner.oracle, name, spy)
    for thread in threading.enumerate():
        if thread.name == "kbnas-chief":
            thread.join(30)
    clock_stopped = tuner.oracle.search_seconds() == seconds
    model = tuner.get_best_models(1)[0]
    kept = [os.path.exists(path) for path in (*search.log_paths.values(), os.path.join(tuner.project_dir, "oracle.json"))]
    print(json.dumps({"late_calls": late_calls, "clock_stopped": clock_stopped, "kept": kept,
                      "statuses": sorted(t.status for t in tuner.oracle.trials.values()),
                      "workers": search.workers, "restarts": search.worker_restarts,
                      "outputs": int(model.output_shape[-1])}))
'''


def _run_script(tmp_path: pathlib.Path, text: str) -> str:
    """Runs a user's script (its own file, as multiprocessing's spawn needs) and
    returns the last line it printed."""
    script = tmp_path / "my_search.py"
    script.write_text(text)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "runs")], capture_output=True, text=True,
                          env=_env(), timeout=400, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.integration
def test_the_python_api_runs_a_users_script_on_two_workers(tmp_path):
    result = json.loads(_run_script(tmp_path, PYTHON_API_SCRIPT))
    assert result["late_calls"] == [] and result["clock_stopped"]
    assert result["kept"] == [True, True, True]  # the workers' logs and the oracle's state
    assert result["statuses"] == ["COMPLETED"] * 3
    assert result["workers"] == 2 and set(result["restarts"].values()) == {0}
    assert result["outputs"] == 10


FAILING_WORKER_SCRIPT = '''
import json, os, sys, time
import kbnas

def build_tuner(directory):
    if os.environ.get("KERASTUNER_TUNER_ID", "").endswith("-w2"):
        raise RuntimeError("this worker cannot start")
    return kbnas.BayesianNAS(kbnas.ConvNetHyperModel(max_depth=2), max_trials=3, seed=0,
                             num_initial_points=2, directory=directory, project_name="api")

if __name__ == "__main__":
    import functools
    split = kbnas.load_digits_split()
    search = kbnas.ParallelSearch(functools.partial(build_tuner, sys.argv[1]),
                                  kbnas.ParallelSettings(workers=2, max_restarts=1))
    try:
        search.search(split.x_train[:300], split.y_train[:300], epochs=2, verbose=0,
                      validation_data=(split.x_val[:100], split.y_val[:100]))
    except kbnas.parallel.WorkerFailedError as error:
        seconds = search.tuner.oracle.search_seconds()
        time.sleep(1.0)
        print(json.dumps({"failed": str(error), "clock_stopped": search.tuner.oracle.search_seconds() == seconds}))
'''


TRIAL_THAT_KILLS_SCRIPT = '''
import functools, json, os, signal, sys
import kbnas

class Tuner(kbnas.BayesianNAS):
    def run_trial(self, trial, *args, **kwargs):
        if trial.trial_id == "1":  # a candidate that takes its worker down (out of memory, say)
            os.kill(os.getpid(), signal.SIGKILL)
        return super().run_trial(trial, *args, **kwargs)

def build_tuner(directory):
    return Tuner(kbnas.ConvNetHyperModel(max_depth=2), max_trials=4, seed=0,
                 num_initial_points=2, directory=directory, project_name="api")

if __name__ == "__main__":
    split = kbnas.load_digits_split()
    search = kbnas.ParallelSearch(functools.partial(build_tuner, sys.argv[1]), kbnas.ParallelSettings(workers=2))
    tuner = search.search(split.x_train[:300], split.y_train[:300], epochs=2, verbose=0,
                          validation_data=(split.x_val[:100], split.y_val[:100]))
    print(json.dumps({"statuses": {t.trial_id: t.status for t in tuner.oracle.trials.values()},
                      "message": tuner.oracle.trials["1"].message,
                      "restarts": sum(search.worker_restarts.values())}))
'''


@pytest.mark.integration
def test_a_trial_that_kills_its_worker_twice_fails_and_the_search_goes_on(tmp_path):
    result = json.loads(_run_script(tmp_path, TRIAL_THAT_KILLS_SCRIPT))
    # Retried once (a worker may die for reasons of its own), then failed; the
    # restarted worker went on with other trials.
    assert result["statuses"] == {"0": "COMPLETED", "1": "FAILED", "2": "COMPLETED", "3": "COMPLETED"}
    assert result["message"].startswith("its worker died 2 times while training it (the last time: killed by SIGKILL")
    assert result["restarts"] == 2


@pytest.mark.integration
def test_a_worker_that_keeps_failing_stops_the_search_with_its_reason(tmp_path):
    result = json.loads(_run_script(tmp_path, FAILING_WORKER_SCRIPT))
    assert result["clock_stopped"]  # the search's clock does not run on after it failed
    line = result["failed"]
    assert re.fullmatch(r"worker \S+-w2 failed 2 times in a row \(exit status 1: RuntimeError: this worker cannot "
                        r"start\); its log is .*-w2\.log; run the search again to resume it", line), line


@pytest.mark.integration
def test_a_second_host_joins_the_chief_with_listen_and_connect(tmp_path):
    """Many hosts, played on localhost: a chief with one worker of its own
    (``--listen``) and another "host" with one worker (``--connect``)."""
    # Over IPv6 where the machine has it (the chief on every address, the other
    # "host" at the loopback's): the addresses in brackets, as users write them.
    listen, connect = ("::", "::1") if _ipv6_loopback() else ("127.0.0.1", "127.0.0.1")
    output, port = tmp_path / "run", free_port(listen)
    # Enough work (6 trials of 4 epochs) for the second host to start before the first is done.
    common = ["--max-trials", "6", "--max-depth", "3", "--time-budget", "none", "--no-retrain", "--epochs", "4",
              "--no-early-stopping", "--output", str(output)]
    chief = subprocess.Popen([sys.executable, "-m", "kbnas.cli", "search", "--workers", "1", "--listen",
                              format_address(listen, port), *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=dict(_env(), KBNAS_HOST_NAME="first"))
    try:
        other = subprocess.run([sys.executable, "-m", "kbnas.cli", "search", "--workers", "1", "--connect",
                                format_address(connect, port), *common], capture_output=True, text=True, timeout=400,
                               env=dict(_env(), KBNAS_HOST_NAME="second"))
        out, err = chief.communicate(timeout=400)
    finally:
        if chief.poll() is None:
            chief.kill()
    assert chief.returncode == 0, err[-3000:]
    assert other.returncode == 0, other.stderr[-3000:]
    assert f"1 worker(s) training trials for the chief at {format_address(connect, port)}" in other.stdout
    assert "the chief has no more trials" in other.stdout and "stopped answering" not in other.stderr
    trials = _trials(output)
    assert len(trials) == 6 and all(t["status"] == "COMPLETED" for t in trials)
    assert len({t["hyperparameters"]["values"]["architecture"] for t in trials}) == 6
    assert out.count("exported to") == 1 and "exported to" not in other.stdout
    # Both hosts trained trials.
    proposals = json.loads((output / "search" / "oracle.json").read_text())["kbnas"]["proposal_log"]
    assert {log["tuner_id"] for log in proposals.values()} == {"first-w1", "second-w1"}
    logs = {log.stem: log.read_text() for log in (output / "search" / "workers").glob("*.log")}
    assert set(logs) == {"first-w1", "second-w1"}
    assert all(": done" in text for text in logs.values())


# ---------------------------------------------------------------------- workers started ahead
def test_gpu_devices_are_seen_from_their_device_files(monkeypatch):
    monkeypatch.setattr(plans.os.path, "exists", lambda path: False)
    monkeypatch.setattr(plans, "_listdir", lambda path: ["null", "tty0"])
    assert not gpu_devices_present()
    monkeypatch.setattr(plans, "_listdir", lambda path: ["null", "nvidia0", "nvidiactl"])
    assert gpu_devices_present()
    monkeypatch.setattr(plans, "_listdir", lambda path: [])
    monkeypatch.setattr(plans.os.path, "exists", lambda path: path == "/dev/kfd")
    assert gpu_devices_present()


def _report_imports(queue):
    """A process target: what this process had imported when it started, and its parent."""
    queue.put((os.getppid(), "tensorflow" in sys.modules, "kbnas.tuner" in sys.modules))


def _report_environment(queue, environ):
    """A process target: a variable of the environment it takes as a worker does."""
    from kbnas.parallel.workers import _become_worker

    _become_worker(environ)
    queue.put(os.environ.get("KBNAS_TEST_VARIABLE"))


def _sleep_for_ever():
    while True:
        time.sleep(60)


@pytest.mark.integration
def test_workers_are_forks_of_a_server_that_imported_tensorflow_and_close_ends_it(monkeypatch):
    # This test also guards the private names of multiprocessing.forkserver that
    # kbnas.parallel.fork_server uses: it fails when they change.
    server = fork_server._stdlib_server()
    assert server._forkserver_pid is None  # no test left one running in this process
    before = list(server._preload_modules)
    warm = WarmWorkers()
    pid = server._forkserver_pid
    assert pid is not None and _alive(pid) and warm.context.get_start_method() == "forkserver"
    queue = warm.context.Queue()
    process = warm.context.Process(target=_report_imports, args=(queue,))
    process.start()
    # A fork of the server: TensorFlow and kbnas's tuner were imported before it ran.
    assert queue.get(timeout=120) == (pid, True, True)
    process.join(60)
    assert process.exitcode == 0
    # A worker runs with the chief's environment of its start, not the server's.
    monkeypatch.setenv("KBNAS_TEST_VARIABLE", "set after the server started")
    process = warm.context.Process(target=_report_environment, args=(queue, dict(os.environ)))
    process.start()
    assert queue.get(timeout=60) == "set after the server started"
    process.join(60)
    warm.close()
    assert not _alive(pid) and server._forkserver_pid is None
    assert server._preload_modules == before  # multiprocessing's own list back
    assert warm.context.get_start_method() == "spawn"  # a later search spawns its workers
    warm.close()  # twice is harmless


@pytest.mark.integration
def test_a_fork_server_that_other_code_started_is_left_to_it():
    import multiprocessing.forkserver

    server = fork_server._stdlib_server()
    multiprocessing.forkserver.ensure_running()  # theirs, without kbnas's preload
    theirs = server._forkserver_pid
    try:
        warm = WarmWorkers()
        assert warm.context.get_start_method() == "spawn"  # its forks would import TensorFlow each
        warm.close()
        assert server._forkserver_pid == theirs and _alive(theirs)
    finally:
        server._stop()


def test_no_fork_server_where_forking_is_unsafe_or_it_cannot_start(monkeypatch, caplog):
    from types import SimpleNamespace

    linux = SimpleNamespace(platform="linux", version_info=(3, 11, 7, "final", 0))
    monkeypatch.setattr(fork_server, "sys", linux)
    assert fork_server.available()
    for platform, version in [("darwin", (3, 11, 7)), ("win32", (3, 11, 7)), ("linux", (3, 11, 0)),
                              ("linux", (3, 10, 8))]:
        monkeypatch.setattr(fork_server, "sys", SimpleNamespace(platform=platform, version_info=(*version, "final", 0)))
        assert not fork_server.available()
    monkeypatch.setattr(fork_server, "sys", linux)
    # A start that fails (an AF_UNIX path too long for a deep temporary folder): spawned workers.
    import multiprocessing.forkserver

    def refuse():
        raise OSError("AF_UNIX path too long")

    monkeypatch.setattr(multiprocessing.forkserver, "ensure_running", refuse)
    before = list(fork_server._stdlib_server()._preload_modules)
    warm = WarmWorkers()
    assert warm.context.get_start_method() == "spawn"
    assert "cannot start a fork server for the workers (AF_UNIX path too long)" in caplog.text
    assert fork_server._stdlib_server()._preload_modules == before
    warm.close()


def test_a_forked_worker_says_how_its_server_imported_tensorflow(monkeypatch):
    from types import SimpleNamespace

    from kbnas.parallel.workers import _preload_note

    monkeypatch.setitem(sys.modules, fork_server.PRELOAD, SimpleNamespace(SECONDS=4.04, ERROR=None))
    assert _preload_note("h-w1") == "kbnas worker h-w1: forked from the fork server, which imported TensorFlow in 4.0 s"
    # A failed import in the server is the worker's error: half-imported modules cannot be imported again.
    monkeypatch.setitem(sys.modules, fork_server.PRELOAD, SimpleNamespace(SECONDS=None, ERROR="ImportError: no"))
    with pytest.raises(RuntimeError, match=r"fork server could not import TensorFlow \(ImportError: no\)"):
        _preload_note("h-w1")
    monkeypatch.delitem(sys.modules, fork_server.PRELOAD)
    assert "had not imported TensorFlow" in _preload_note("h-w1")


def test_a_worker_exits_when_the_process_that_started_it_is_gone(tmp_path):
    # The chief killed: its workers (forks of the fork server, whose parent is
    # not the chief) see it through multiprocessing's parent sentinel.
    script = tmp_path / "chief.py"
    script.write_text(textwrap.dedent('''
        import os, sys, time
        from kbnas.parallel import WarmWorkers
        from kbnas.parallel.workers import _exit_with_parent

        def worker():
            _exit_with_parent()
            time.sleep(120)

        if __name__ == "__main__":
            warm = WarmWorkers()
            process = warm.context.Process(target=worker)
            process.start()
            print(process.pid, flush=True)
            time.sleep(120)
    '''))
    chief_process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        worker = int(chief_process.stdout.readline())
        assert _alive(worker)
        chief_process.kill()
        chief_process.wait(30)
        _wait_for(lambda: not _alive(worker), 10, "the worker to exit")
    finally:
        if chief_process.poll() is None:
            chief_process.kill()


class _FakeWarm:
    closed = False

    def close(self):
        self.closed = True


def test_processes_started_ahead_are_dropped_when_tensorflow_sees_gpus(monkeypatch):
    # A worker hides the GPUs it does not own before its TensorFlow import; one
    # that imported TensorFlow ahead cannot, so it is not used on a GPU host.
    monkeypatch.setattr(chief, "_gpus_of_the_chief", lambda: 2)
    warm = _FakeWarm()
    search = ParallelSearch(lambda: "tuner", ParallelSettings(workers=2), warm=warm)
    assert warm.closed and search._warm is None
    assert [plan.gpus for plan in search.plans] == [(0,), (1,)]


@pytest.mark.integration
def test_a_usage_error_after_the_early_start_leaves_no_worker_process(tmp_path, monkeypatch):
    import multiprocessing
    import multiprocessing.forkserver

    from kbnas.cli import main

    started = []

    def start():
        started.append(WarmWorkers())
        return started[-1]

    monkeypatch.setattr("kbnas.cli.run.WarmWorkers", start)
    monkeypatch.setattr("kbnas.cli.run.gpu_devices_present", lambda: False)
    # (A wrong option's value is refused before the early start: a missing file, after it.)
    assert main(["search", "--workers", "2", "--data", str(tmp_path / "missing.npz"),
                 "--output", str(tmp_path / "run")]) == 2
    assert len(started) == 1 and started[0]._server is None  # started, then closed
    assert not multiprocessing.active_children()
    assert multiprocessing.forkserver._forkserver._forkserver_pid is None


def test_the_reason_of_a_dead_worker_skips_tensorflows_start_up_notices(tmp_path):
    from kbnas.parallel.workers import _last_line

    log = tmp_path / "h-w1.log"
    log.write_text("kbnas worker h-w1 pid 7: gpus None, cpus any, 1 threads, chief 127.0.0.1:1\n"
                   "RuntimeError: this worker cannot start\n"
                   "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                   "I0000 00:00:1796575495.034054   17695 port.cc:153] oneDNN custom operations are on.\n"
                   "Reloading Tuner from runs/api/tuner0.json\n\n")
    assert _last_line(str(log)) == "RuntimeError: this worker cannot start"
    assert _last_line(str(tmp_path / "missing.log")) == "no log"
