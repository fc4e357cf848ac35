"""Shared fixtures: a real two-node Ray cluster on loopback and one tiny real Optuna sweep.

The cluster is built once per test session (each pytest-xdist worker has its own), the sweeps once
per pytest run (``built_once``: the first worker to need one runs it; the others copy it). The cluster is two
`ray start --block` processes, each in its own process group, stopped by signalling exactly those
groups (never `ray stop`).
"""

from __future__ import annotations

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
from tests.helpers import HEAD_IP, OPTUNA_SPEC, WORKER_IP, built_once, write_spec

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
        from ablate.session import cluster_runtime_env, prepare

        prepare()  # as ablate joins a cluster (ablate.session.join_cluster): the switches trials read too
        ray.init(address=cluster.address, log_to_driver=False, runtime_env=cluster_runtime_env())
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
    """A finished Optuna sweep (2 configurations x 2 seed repeats x 2 epochs), run once per pytest run
    (``built_once``); treat as read-only."""
    from ablate.sweep import run_sweep
    from ablate.sweep_spec import load_spec

    def build(folder: Path) -> None:
        folder.mkdir()
        sweep = run_sweep(load_spec(write_spec(folder, OPTUNA_SPEC)), folder / "runs", address=ray_cluster)
        assert sweep == folder / "runs" / "tiny", sweep
        shutil.rmtree(sweep / "report", ignore_errors=True)  # tests build their own

    return built_once(tmp_path_factory, "real-sweep", build) / "runs" / "tiny"
