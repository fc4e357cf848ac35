"""Shared fixtures: a real two-node Ray cluster on loopback and one tiny real Optuna sweep.

Both are built once per test session. The cluster is two `ray start --block` processes, each in
its own process group, stopped by signalling exactly those groups (never `ray stop`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# Ray reads its auth mode when it is imported: auth stays on, nodes and drivers share
# ~/.ray/auth_token.
os.environ["RAY_AUTH_MODE"] = "token"

from tests.helpers import HEAD_IP, OPTUNA_SPEC, WORKER_IP, write_spec

# Tests run tiny models; one thread each avoids oversubscribing a 2-core machine.
torch.set_num_threads(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """Address of a running two-node cluster: head (2 CPUs, 1 declared GPU) + worker (2 CPUs)."""
    import ray

    logs = tmp_path_factory.mktemp("ray-logs")
    ray_bin = str(Path(sys.executable).parent / "ray")
    port = _free_port()
    address = f"{HEAD_IP}:{port}"
    common = ["--block", "--disable-usage-stats"]
    head = subprocess.Popen(
        [ray_bin, "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", "--num-cpus=2",
         "--num-gpus=1", "--include-dashboard=false", *common],
        start_new_session=True, stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT)
    procs = [head]
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection((HEAD_IP, port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        procs.append(subprocess.Popen(
            [ray_bin, "start", f"--address={address}", f"--node-ip-address={WORKER_IP}", "--num-cpus=2",
             *common], start_new_session=True, stdout=open(logs / "worker.log", "w"),
            stderr=subprocess.STDOUT))
        ray.init(address=address, log_to_driver=False)
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.time() < deadline, (logs / "worker.log").read_text()[-2000:]
            time.sleep(1)
        yield address
    finally:
        ray.shutdown()
        for proc in reversed(procs):
            _stop_group(proc)


@pytest.fixture(scope="session")
def real_sweep(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished Optuna sweep (2 configurations x 2 seed repeats x 2 epochs); treat as read-only."""
    from ablate.sweep import run_sweep
    from ablate.sweep_spec import load_spec

    root = tmp_path_factory.mktemp("storage")
    sweep = run_sweep(load_spec(write_spec(root, OPTUNA_SPEC)), root / "runs", address=ray_cluster)
    shutil.rmtree(sweep / "report", ignore_errors=True)  # tests build their own
    return sweep
