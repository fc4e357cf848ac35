"""What a sweep exposes on the network: a local Ray listens on loopback only; a dead --address fails fast.

Both run the real `ablate` command line in a subprocess: Ray reads its bind switch when it is
imported, and the test process has imported Ray already.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.errors import UserError
from ablate.session import cluster_address, wait_for_address
from tests.helpers import OPTUNA_SPEC, write_spec

CLI = [sys.executable, "-m", "ablate.cli"]


def closed_port() -> int:
    with socket.socket() as s:  # bound, never listening, then closed: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.isdigit():
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def listening_sockets(pids: list[int]) -> set[tuple[str, str]]:
    """(process name, local address) of every TCP socket in LISTEN state held by ``pids``."""
    listening = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                listening[fields[9]] = _address(fields[1].split(":")[0], width)
    found = set()
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # the process ended meanwhile
            continue
        found |= {(name, listening[link[8:-1]]) for link in links if link[8:-1] in listening}
    return found


def _address(hex_ip: str, width: int) -> str:
    raw = bytes.fromhex(hex_ip)  # /proc/net lists each 32-bit word in host (little-endian) order
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
    return str(ipaddress.ip_address(raw))


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


@pytest.mark.slow
def test_a_local_sweep_listens_on_loopback_only(tmp_path: Path):
    spec = write_spec(tmp_path, OPTUNA_SPEC.replace("num_samples: 2", "num_samples: 1")
                      .replace("repeats: 2", "repeats: 1").replace("'epochs': 2", "'epochs': 3"))
    log = tmp_path / "run.log"
    run = [*CLI, "run", str(spec), "--storage", str(tmp_path / "runs"), "--num-cpus", "1"]
    driver = subprocess.Popen(run, start_new_session=True, stdout=log.open("w"), stderr=subprocess.STDOUT)
    seen: set[tuple[str, str]] = set()
    try:
        while driver.poll() is None:
            seen |= listening_sockets(descendants(driver.pid))
            time.sleep(0.3)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.wait() == 0, log.read_text()[-3000:]
    # the sweep folder is named once made (test_run_with_a_dead_address...: a join that fails makes none)
    # (a warning may come between: another Ray on this machine, e.g. a test worker's beside this one)
    lines = [line for line in log.read_text().splitlines() if not line.startswith("ablate: warning:")]
    assert lines[:2] == ["ablate: sweep 'tiny': 1 trial (optuna); starting a local Ray",
                         f"ablate: sweep 'tiny': results in {tmp_path / 'runs' / 'tiny'}"]
    names = {name for name, _ in seen}
    assert {"gcs_server", "raylet"} <= names, seen  # the sockets of this Ray were found
    assert all(is_loopback(address) for _, address in seen), sorted(seen)


def test_wait_for_address_gives_up_after_the_timeout():
    start = time.monotonic()
    with pytest.raises(UserError, match=r"nothing answered within 2 s \(Connection refused\)"):
        wait_for_address(f"127.0.0.1:{closed_port()}", 2)
    assert time.monotonic() - start < 4


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"])
def test_run_with_a_dead_address_exits_2_and_honours_sigterm(tmp_path: Path, sigint: signal.Handlers):
    """SIG_IGN: a shell starts a script's background job (`ablate run ... &`) with SIGINT ignored; SIGTERM,
    turned into that SIGINT, did nothing: the run waited its 600 s."""
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    address = f"127.0.0.1:{closed_port()}"
    run = [*CLI, "run", str(spec), "--storage", str(tmp_path / "runs"), "--address", address]
    short = subprocess.Popen([*run, "--connect-timeout", "2"], stderr=subprocess.PIPE, text=True)
    long = subprocess.Popen([*run, "--connect-timeout", "600"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT prints its stacks
                            preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))
    opening = long.stderr.readline()  # the spec is read: the join is next
    assert opening == f"ablate: sweep 'tiny': 4 trials (optuna); joining the Ray cluster at {address}\n"
    time.sleep(2)
    long.send_signal(signal.SIGTERM)
    try:
        # SIGTERM ends it at once, as Ctrl-C would, not after its 600 s: 1.3-1.6 s on an idle 2-core
        # machine (most of it the interpreter's exit with torch and Ray loaded); 90 s allows for the
        # full suite's load beside it (one run took over 30 s)
        try:
            assert long.wait(timeout=90) == 143
        except subprocess.TimeoutExpired:
            long.send_signal(signal.SIGABRT)
            long.wait(timeout=30)
            raise AssertionError(f"no exit 90 s after SIGTERM:\n{long.stderr.read()[-5000:]}") from None
        assert short.wait(timeout=120) == 2
    finally:
        for proc in (short, long):
            proc.kill()
    err = short.stderr.read()
    assert f"ablate run: error: --address {address}: nothing answered within 2 s" in err, err
    # it said "results in STORAGE/tiny" first, a folder never made: named once the sweep writes there
    assert "Traceback" not in err and "results in" not in err and not (tmp_path / "runs").exists()


def test_ray_address_in_the_environment_is_the_cluster_to_join(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """`ray job submit` runs its entrypoint with RAY_ADDRESS set (and ray.init reads it): `ablate run` joins
    that cluster, saying so, instead of starting a one-machine Ray beside it; --address wins; an empty or
    `local` RAY_ADDRESS means a local Ray."""
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert cluster_address(None) == "10.0.0.5:6379"
    assert "joining the Ray cluster at 10.0.0.5:6379 (from RAY_ADDRESS" in capsys.readouterr().err
    assert cluster_address("10.0.0.6:6379") == "10.0.0.6:6379"
    # --address local is a local Ray, as Ray reads it (ray.init started one on every interface); an empty
    # --address (an unset shell variable) is refused, not taken for a local Ray
    assert cluster_address("local") is None
    with pytest.raises(UserError, match=r"--address '': give HOST:PORT of a running Ray cluster"):
        cluster_address("")
    for local in ("", "local", "http://10.0.0.5:8265"):  # the last: the dashboard, for `ray job submit`
        monkeypatch.setenv("RAY_ADDRESS", local)
        assert cluster_address(None) is None
    assert "RAY_ADDRESS=http://10.0.0.5:8265 is a dashboard's URL" in capsys.readouterr().err
    joined = []

    def start_ray(address: str | None, *args: object, **kwargs: object) -> None:
        joined.append(address)
        raise UserError("stop here")

    monkeypatch.setattr("ablate.sweep.start_ray", start_ray)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    for command in (["run", str(spec), "--storage", str(tmp_path / "runs")], ["resume", str(tmp_path)]):
        if command[0] == "resume":  # a sweep folder to resume: the spec as `ablate run` writes it
            (tmp_path / "trials").mkdir()
        assert main(command) == 2
    assert joined == ["10.0.0.5:6379", "10.0.0.5:6379"]


def test_a_cluster_from_ray_address_is_said_once_and_named_as_ray_address_in_its_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """`ablate run` said "joining the Ray cluster at X (from RAY_ADDRESS ...)" and then its opening line said
    it again; a dead cluster's error then named `--address X`, an option the user never gave."""
    import ray

    address = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # an earlier test's Ray: "using the Ray ..."

    def start_ray(address: str | None, *args: object, **kwargs: object) -> None:
        wait_for_address(address or "", 0.1)  # what join_cluster does first, with the address run passes on

    monkeypatch.setattr("ablate.sweep.start_ray", start_ray)
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (f"ablate: sweep 'tiny': 4 trials (optuna); joining the Ray cluster at {address} "
                        "(from RAY_ADDRESS; unset it to start a local Ray)")
    assert lines[1].startswith(f"ablate run: error: RAY_ADDRESS={address}: nothing answered"), lines
    assert len(lines) == 2 and "--address" not in lines[1]
    # a cluster the user named with --address is still named so
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs"), "--address", address]) == 2
    err = capsys.readouterr().err
    assert "RAY_ADDRESS" not in err and f"error: --address {address}: nothing answered" in err, err
    (tmp_path / "trials").mkdir()  # a sweep folder to resume: it prints no opening line, so says it here
    assert main(["resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("(from RAY_ADDRESS") == 1 and f"RAY_ADDRESS={address}: nothing answered" in err, err
    assert "--address" not in err


@pytest.mark.parametrize("own", [None, "1"])
def test_the_loopback_switch_is_gone_from_the_environment_once_the_local_ray_runs(
        monkeypatch: pytest.MonkeyPatch, own: str | None) -> None:
    """The local Ray's processes read the switch when ray.init starts them; left in the environment, it
    would make every later `ray start --address` of this process refuse to join (a library call
    in a notebook, then a cluster)."""
    import ray
    import ray._private.ray_constants as constants

    from ablate import session

    monkeypatch.setattr(constants, "ENABLE_RAY_CLUSTER", constants.ENABLE_RAY_CLUSTER)  # restored after
    monkeypatch.delenv(session.LOOPBACK_SWITCH, raising=False)
    if own is not None:  # a macOS user's own multi-node switch comes back as it was
        monkeypatch.setenv(session.LOOPBACK_SWITCH, own)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    seen: dict[str, str | None] = {}
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(during=os.environ.get(session.LOOPBACK_SWITCH)))
    session.start_ray(None, num_cpus=1, num_gpus=0)
    assert seen == {"during": "0"} and os.environ.get(session.LOOPBACK_SWITCH) == own


def test_a_sweep_stops_the_ray_it_started_and_leaves_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver run stops the local Ray it started once its trials are over, also when they end in an
    error (left to Ray's exit handler, the shutdown held the terminal seconds after the summary);
    a Ray the caller had started (a notebook's, this test session's) keeps running."""
    import ray
    import ray._private.ray_constants as constants

    from ablate import session
    from ablate.sweep import ray_session

    monkeypatch.setattr(constants, "ENABLE_RAY_CLUSTER", constants.ENABLE_RAY_CLUSTER)  # restored after
    monkeypatch.delenv(session.LOOPBACK_SWITCH, raising=False)
    up = {"ray": False}
    stopped: list[str] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: up["ray"])
    monkeypatch.setattr(ray, "init", lambda **kw: up.update(ray=True))
    monkeypatch.setattr(ray, "shutdown", lambda: (stopped.append("local"), up.update(ray=False)))
    with ray_session(None, 1, 0, 30.0):
        assert up["ray"] and not stopped
    assert stopped == ["local"] and not up["ray"]
    with pytest.raises(RuntimeError), ray_session(None, 1, 0, 30.0):
        raise RuntimeError("a trial's fault")
    assert stopped == ["local", "local"] and not up["ray"]
    up["ray"] = True  # the caller's Ray
    with ray_session(None, 1, 0, 30.0):
        pass
    assert stopped == ["local", "local"] and up["ray"]
