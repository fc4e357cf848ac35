"""The Ray session ablate starts: what its worker processes import from the folder ablate runs in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """\
import json, sys
from ablate.session import start_ray, stop_ray

start_ray(num_cpus=1)
import ray


@ray.remote
def probe():
    import os, sys
    import trainables  # a trial process imports it first thing
    return {"trainables": trainables.__file__, "cwd": os.getcwd(), "path": sys.path[:3]}


print(json.dumps(ray.get(probe.remote())))
stop_ray(True)
"""


@pytest.mark.slow
def test_a_local_rays_workers_import_nothing_from_the_folder_ablate_runs_in(tmp_path: Path) -> None:
    """Ray puts the driver's working folder first on every worker's sys.path: `ablate resume .` in a
    sweep folder someone else wrote imported (and ran) a `trainables/` planted there in every trial
    process. Ray is started from an empty folder of its own, removed when it stops."""
    planted = tmp_path / "sweep"
    (planted / "trainables").mkdir(parents=True)
    marker = tmp_path / "planted-module-ran"
    (planted / "trainables" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    script = tmp_path / "driver" / "probe.py"  # not in the planted folder: the script's folder is on sys.path
    script.parent.mkdir()
    script.write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], cwd=planted, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert not marker.exists()
    assert Path(seen["trainables"]).resolve() == (ROOT / "trainables" / "__init__.py").resolve()
    assert str(planted) not in seen["path"] and not seen["cwd"].startswith(str(planted))
    private = Path(seen["path"][0])  # the folder Ray was started from: removed once Ray stopped
    assert private.name.startswith("ablate-ray-") and not private.exists()


def test_another_ray_on_this_machine_is_found_and_said_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two `ablate run`s (or a `ray start` and a sweep) on one machine each hand out every CPU, so
    their trials share cores with no word. A process named `raylet` (what every Ray node runs) is
    found among the machine's processes and named in one line; none, no line."""
    from ablate.session import other_rays, warn_other_rays

    if not Path("/proc/self/comm").is_file():
        pytest.skip("reads /proc (Linux)")
    raylet = tmp_path / "raylet"
    raylet.write_bytes(Path("/bin/sleep").read_bytes())
    raylet.chmod(0o755)
    before = other_rays()
    proc = subprocess.Popen([str(raylet), "30"])
    try:
        deadline = time.monotonic() + 10  # a loaded machine may show the new name a moment after exec
        while proc.pid not in other_rays() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.pid in other_rays() and proc.pid not in before
        warn_other_rays([proc.pid])
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in other_rays()
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and f"raylet, pid {proc.pid})" in line
    assert f"this machine's {os.cpu_count()} CPUs" in line
    warn_other_rays([])
    assert capsys.readouterr().err == ""


def test_a_signal_while_a_local_ray_starts_waits_for_the_start_then_stops_it() -> None:
    """Ctrl-C or SIGTERM raised inside ray.init left Ray half started, and the driver then exited with
    a segmentation fault now and then (139): held until the start is done, Ray is stopped (``undo``),
    then the caller's own handler runs. A second Ctrl-C is not held."""
    import signal

    from ablate.session import deferred_signals

    events: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals(lambda: events.append("undo")):
            signal.raise_signal(signal.SIGINT)
            events.append("started")
    assert events == ["started", "undo"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler

    events.clear()
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals(lambda: events.append("undo")):
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # pressed again: now
            events.append("started")
    assert events == [] and signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def caller(signum: int, frame: object) -> None:
        events.append(f"caller {signum}")

    def rays(signum: int, frame: object) -> None:
        events.append("ray's")

    previous = signal.signal(signal.SIGTERM, caller)
    try:
        with deferred_signals(lambda: events.append("undo")):
            signal.raise_signal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, rays)  # ray.init puts in a SIGTERM handler of its own
        assert events == ["undo", f"caller {signal.SIGTERM}"]
        events.clear()
        with deferred_signals(lambda: events.append("undo")):
            signal.signal(signal.SIGTERM, rays)
        assert signal.getsignal(signal.SIGTERM) is rays and events == []  # no signal: Ray's stays
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_exit_waits_for_a_stuck_ray_stop_only_so_long(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    """A Ctrl-C as the local Ray started (2 s into `ablate run`, on a loaded machine) left Ray's stop
    thread waiting for good on a lock (logging's, taken when the interrupt came), and the interpreter's
    exit joined it for ever with Ctrl-C and SIGTERM ignored: only SIGKILL ended ablate. The exit now
    waits EXIT_STOP_WAIT, says so in one line, and goes on; Ray's own exit handler, which would wait
    for ever on Ray's shutdown lock that the stuck stop holds (reproduced with a real Ray: the exit hung
    after the line), is taken off."""
    import atexit
    import signal
    import threading
    import types

    from ablate import session

    stuck = threading.Event()
    thread = threading.Thread(target=stuck.wait, daemon=True)
    thread.start()
    monkeypatch.setattr(session, "_STOPPING", [thread])
    monkeypatch.setattr(session, "EXIT_STOP_WAIT", 0.2)
    worker = types.SimpleNamespace(shutdown=lambda: None)  # Ray's module, whose shutdown Ray registers
    monkeypatch.setitem(sys.modules, "ray._private.worker", worker)
    unregistered: list[object] = []
    monkeypatch.setattr(atexit, "unregister", unregistered.append)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    exited = threading.Event()

    def at_exit() -> None:
        session.ray_stopped_at_exit()
        exited.set()

    try:
        waiter = threading.Thread(target=at_exit, daemon=True)
        with monkeypatch.context() as m:
            m.setattr(signal, "signal", lambda *args: None)  # from this thread it would refuse
            waiter.start()
            assert exited.wait(10), "the exit waited for ever"
    finally:
        stuck.set()
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert capsys.readouterr().err == ("ablate: warning: the local Ray did not stop within 0.2 s; exiting "
                                       "without waiting for it (its processes end with this one)\n")
    assert unregistered == [worker.shutdown]


def test_a_logging_lock_an_interrupt_left_held_is_given_back_before_rays_stop_thread_logs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cause of the stuck stop above: logging takes its module lock (and a handler's) and only
    then enters the `try` that releases it, so a Ctrl-C raised between the two, as imports and
    ray.init create loggers in a sweep's first seconds, leaves the lock held by the main thread for
    good (7 % of interrupts of a loop creating loggers). Ray's stop thread logs: it waited for ever.
    stop_ray gives such locks back first (here the lock is taken as the interrupt leaves it)."""
    import logging
    import threading
    import types

    from ablate import session

    logged = threading.Event()

    def shutdown() -> None:  # as Ray's does: a logger, i.e. logging's module lock, from the stop thread
        logging.getLogger("ray.stop-under-test")
        logged.set()

    fake_ray = types.SimpleNamespace(is_initialized=lambda: True, shutdown=shutdown)
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    monkeypatch.setattr(session, "_STOPPING", [])
    monkeypatch.setattr(session, "_STOPPING_AT_EXIT", [True])  # no exit handler from a test
    handler = logging.StreamHandler()
    logging._lock.acquire()  # type: ignore[attr-defined]  # held twice, as nested loggers leave it
    logging._lock.acquire()  # type: ignore[attr-defined]
    handler.acquire()
    try:
        session.stop_ray(True)
        assert session.ray_stopped(10), "Ray's stop thread waited on a logging lock left held"
        assert logged.is_set()
        assert not logging._lock._is_owned() and not handler.lock._is_owned()  # type: ignore[attr-defined]
    finally:
        for lock in (logging._lock, handler.lock):  # type: ignore[attr-defined]
            while lock._is_owned():
                lock.release()


def test_only_the_main_threads_leftover_logging_locks_are_given_back() -> None:
    """A lock another thread holds is that thread's, in the middle of its logging: left alone."""
    import logging
    import threading

    from ablate.ending import release_logging_locks

    assert release_logging_locks() == 0  # none held
    taken, go = threading.Event(), threading.Event()

    def hold() -> None:
        with logging._lock:  # type: ignore[attr-defined]
            taken.set()
            go.wait(10)

    other = threading.Thread(target=hold, daemon=True)
    other.start()
    assert taken.wait(10)
    try:
        assert release_logging_locks() == 0
    finally:
        go.set()
        other.join(10)
    logging._lock.acquire()  # type: ignore[attr-defined]
    assert release_logging_locks() == 1 and not logging._lock._is_owned()  # type: ignore[attr-defined]


def test_tune_waits_for_a_data_parallel_trials_train_run_before_reusing_its_actor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tune reuses a trial's actor once the trial's function has returned, within
    TUNE_FUNCTION_THREAD_TIMEOUT_S (Ray: 2 s). A data-parallel trial's function returns once its Ray
    Train run has shut down, 10-14 s after its last result (measured: a 2-point grid, resources.workers
    2, 2 CPUs): with Ray's 2 s, the second trial errored ("Could not re-use actor")."""
    from ablate.session import prepare

    monkeypatch.delenv("TUNE_FUNCTION_THREAD_TIMEOUT_S", raising=False)
    prepare()
    assert float(os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"]) >= 60
    monkeypatch.setenv("TUNE_FUNCTION_THREAD_TIMEOUT_S", "5")  # the user's own setting stays
    prepare()
    assert os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"] == "5"


JOINED = """\
import json, os, sys
from ablate.session import TRIAL_ENVIRONMENT, start_ray
import ray

start_ray(sys.argv[1])


@ray.remote(num_cpus=0)
def switches():
    return {key: os.environ.get(key) for key in TRIAL_ENVIRONMENT}


print(json.dumps(ray.get(switches.remote())))
"""


@pytest.mark.slow
def test_a_joined_clusters_trial_processes_get_the_switches_trials_read(ray_cluster: str) -> None:
    """A local Ray's processes inherit the driver's environment; a cluster's were started by `ray start`
    elsewhere. Without the job's runtime_env, a data-parallel sweep on a cluster had Tune's 2 s to reuse
    a trial's actor (every trial after the first errored) and Ray Train's own start timeout: the user's
    own value (here 7 and 33) and ablate's default both reach the cluster's workers."""
    from ablate.session import ENVIRONMENT, TRIAL_ENVIRONMENT

    env = {k: v for k, v in os.environ.items() if k not in TRIAL_ENVIRONMENT}
    run = lambda extra: json.loads(subprocess.run(
        [sys.executable, "-c", JOINED, ray_cluster], env={**env, **extra}, cwd=ROOT, capture_output=True,
        text=True, timeout=180, check=True).stdout.strip().splitlines()[-1])
    mine = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "7", "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "33"}
    assert run(mine) == mine
    assert run({}) == {key: ENVIRONMENT[key] for key in TRIAL_ENVIRONMENT}


def test_a_submitted_jobs_own_variables_are_not_set_again() -> None:
    """Under `ray job submit`, ray.init merges its runtime_env with the job's and refuses one that sets a
    variable the job sets: the job's value is left to the job (it reaches the workers by the job)."""
    from ablate.session import JOB_CONFIG_VARIABLE, cluster_runtime_env

    environ = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "120", "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "60"}
    assert cluster_runtime_env(environ) == {"env_vars": environ}
    job = {"runtime_env": {"env_vars": {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "9"}, "pip": ["x"]}}
    assert cluster_runtime_env({**environ, JOB_CONFIG_VARIABLE: json.dumps(job)}) == {
        "env_vars": {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "60"}}
    job["runtime_env"]["env_vars"] = dict(environ)
    assert cluster_runtime_env({**environ, JOB_CONFIG_VARIABLE: json.dumps(job)}) is None
    assert cluster_runtime_env({**environ, JOB_CONFIG_VARIABLE: "{not json"}) == {"env_vars": environ}
    assert cluster_runtime_env({JOB_CONFIG_VARIABLE: json.dumps({"runtime_env": None})}) is None
