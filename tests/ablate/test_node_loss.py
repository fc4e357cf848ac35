"""A node lost mid-sweep (issue 18, point 5): on a loopback cluster of a CPU-less head and two worker
nodes, the node running a trial is killed (SIGKILL to its process group, as a machine that dies).
The trial continues from its last checkpoint on the other node, its record says it was restarted,
from which epoch and why, and the sweep finishes with nothing lost; the same for a two-worker trial.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.helpers import TINY_TRAINER, write_spec

pytestmark = pytest.mark.slow
HEAD, NODES = "127.0.0.4", ("127.0.0.5", "127.0.0.6")
# Ray notices a dead node within seconds (its default waits for half a minute or more).
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
               "RAY_health_check_failure_threshold": "4", "RAY_health_check_initial_delay_ms": "1000"}
CLI = [sys.executable, "-m", "ablate.cli"]


@pytest.fixture(scope="module")
def lossy_cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = Cluster(tmp_path_factory.mktemp("lossy-logs"), HEAD, FAST_HEALTH)
    try:
        cluster.start_head("--num-cpus=0", "--num-gpus=0")
        for ip in NODES:
            cluster.start_node(ip, "--num-cpus=2")
        cluster.wait_alive(3)
        yield cluster
    finally:
        cluster.stop()


def record(sweep: Path) -> dict:
    files = list((sweep / "trials").glob("*.json")) if (sweep / "trials").is_dir() else []
    try:
        return json.loads(files[0].read_text()) if files else {}
    except ValueError:
        return {}


def lose_the_node_mid_trial(cluster: Cluster, tmp_path: Path, resources: str) -> tuple[dict, str]:
    """Run a one-trial sweep, kill the node its (rank-0) process runs on after epoch 2, let it finish."""
    spec = write_spec(tmp_path, f"""
name: lost
trainer: {dict(TINY_TRAINER, epochs=8, batch_size=16)}
space:
  teacher_temp: {{type: choice, values: [0.04]}}
search: {{algorithm: grid}}
resources: {resources}
""")
    sweep = tmp_path / "runs" / "lost"
    driver = subprocess.Popen([*CLI, "run", str(spec), "--storage", str(sweep.parent), "--address",
                               cluster.address], env=cluster.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and (record(sweep).get("epochs") or [{}])[-1].get("epoch", 0) < 2:
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        time.sleep(0.2)
    last = record(sweep)["epochs"][-1]
    lost = last.get("rank0_node_ip", last["node_ip"])  # a two-worker trial: rank 0's, not its driver's
    assert lost in NODES, last
    cluster.kill(lost)
    out, err = driver.communicate(timeout=400)
    assert driver.returncode == 0, err[-3000:]
    return record(sweep), lost


def assert_continued_elsewhere(rec: dict, lost: str) -> None:
    assert rec["status"] == "completed" and [e["epoch"] for e in rec["epochs"]] == list(range(9))
    (restart,) = rec["restarts"]
    assert restart["why"].startswith("retried by Ray after") and restart["from_epoch"] >= 1, restart
    node = lambda row: row.get("rank0_node_ip", row["node_ip"])
    assert restart["node_ip"] != lost and node(rec["epochs"][-1]) != lost
    after = [e for e in rec["epochs"] if e["epoch"] > restart["from_epoch"]]
    assert {node(e) for e in after} == {restart["node_ip"]}  # every later epoch on the other node


def test_a_trial_whose_node_dies_continues_on_the_other_from_its_checkpoint(lossy_cluster: Cluster,
                                                                           tmp_path: Path) -> None:
    rec, lost = lose_the_node_mid_trial(lossy_cluster, tmp_path, "{cpu: 2, gpu: 0}")
    assert_continued_elsewhere(rec, lost)
    lossy_cluster.start_node(lost, "--num-cpus=2")  # the machine is back for the next test
    lossy_cluster.wait_alive(3)


def test_a_two_worker_trial_whose_node_dies_continues_on_the_other(lossy_cluster: Cluster,
                                                                   tmp_path: Path) -> None:
    rec, lost = lose_the_node_mid_trial(lossy_cluster, tmp_path, "{workers: 2, cpu: 1, gpu: 0}")
    assert_continued_elsewhere(rec, lost)
    # the trial's driver, and Ray Train's controller beside it, stay on the head: a lost worker node
    # never takes the controller and its workers' reservation along (ablate.admission.DRIVER)
    assert {e["node_ip"] for e in rec["epochs"] if "recovered_from" not in e} == {HEAD}
    assert {e.get("workers") for e in rec["epochs"] if e["epoch"] > 0} == {2}
