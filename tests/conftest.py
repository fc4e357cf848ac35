"""Shared fixtures: a real two-node Ray cluster on loopback and one tiny real Optuna sweep.

The cluster is built once per test session (each pytest-xdist worker has its own), the sweep once
per pytest run (the first worker to need it runs it; the others copy it). The cluster is two
`ray start --block` processes, each in its own process group, stopped by signalling exactly those
groups (never `ray stop`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import torch

# Ray reads its auth mode when it is imported: auth stays on, nodes and drivers share
# ~/.ray/auth_token.
os.environ["RAY_AUTH_MODE"] = "token"
# Image-folder verdicts (trainables/image_check.py) in a folder of this session's, not ~/.cache: set
# before the test clusters start, so their trial processes inherit it.
os.environ["ABLATE_CACHE_DIR"] = tempfile.mkdtemp(prefix="ablate-cache-")

from tests.cluster import Cluster
from tests.helpers import HEAD_IP, OPTUNA_SPEC, WORKER_IP, write_spec

# Tests run tiny models; one thread each avoids oversubscribing a 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """Address of a running two-node cluster: head (2 CPUs, 1 declared GPU) + worker (2 CPUs)."""
    import ray

    cluster = Cluster(tmp_path_factory.mktemp("ray-logs"), HEAD_IP)
    try:
        cluster.start_head("--num-cpus=2", "--num-gpus=1")
        cluster.start_node(WORKER_IP, "--num-cpus=2")
        ray.init(address=cluster.address, log_to_driver=False)
        deadline = time.time() + 120
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.time() < deadline, "the worker node never joined the test cluster"
            time.sleep(1)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.stop()


@pytest.fixture(scope="session")
def real_sweep(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished Optuna sweep (2 configurations x 2 seed repeats x 2 epochs); treat as read-only.

    Run once per pytest run: under pytest-xdist the first worker to ask runs it on its cluster, in the
    run's shared temporary folder, and every worker gets its own copy of it."""
    from ablate.sweep import run_sweep
    from ablate.sweep_spec import load_spec

    root = tmp_path_factory.mktemp("storage")
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: nothing to share
        sweep = run_sweep(load_spec(write_spec(root, OPTUNA_SPEC)), root / "runs", address=ray_cluster)
        shutil.rmtree(sweep / "report", ignore_errors=True)  # tests build their own
        return sweep
    shared = tmp_path_factory.getbasetemp().parent / "real-sweep"  # this run's, beside popen-gw0, ...
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait while the first one runs it
        done = shared / "runs" / "tiny"
        if not (shared / "done").is_file():
            shutil.rmtree(shared / "runs", ignore_errors=True)  # a worker that failed left it half-made
            spec = load_spec(write_spec(shared, OPTUNA_SPEC))
            sweep = run_sweep(spec, shared / "runs", address=ray_cluster)
            assert sweep == done, sweep
            shutil.rmtree(sweep / "report", ignore_errors=True)  # tests build their own
            (shared / "done").touch()
        shutil.copytree(done, root / "runs" / "tiny", symlinks=True)
    return root / "runs" / "tiny"
