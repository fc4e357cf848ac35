"""A real Ray cluster on loopback for tests: ``ray start --block`` processes, one per node, each in
its own process group, stopped by signalling exactly that group (never ``ray stop``).

Ray gives a starting raylet a fixed 30 s to register with the head; on a loaded 2-core machine a
start can miss that and the node exits. Nodes are therefore started one at a time, each awaited
until it reports itself up, and a node that died while starting is started again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ablate.session import LOOPBACK_SWITCH

UP = "Ray runtime started"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen) -> None:
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


class Cluster:
    """A head on ``head_ip`` and worker nodes added by ``start_node``; ``env`` is for drivers too."""

    def __init__(self, logs: Path, head_ip: str, env: dict[str, str] | None = None) -> None:
        self.logs, self.head_ip = logs, head_ip
        # A head signalled SIGTERM first asks its GCS to drain it, for up to 30 s; the GCS, in the
        # same process group, is gone by then, so each stop sat out that wait. Nothing drains here.
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
                    **(env or {})}
        self.env.pop(LOOPBACK_SWITCH, None)  # a multi-node cluster, whatever a local sweep set before
        self.ray = str(Path(sys.executable).parent / "ray")
        self.port = free_port()
        self.address = f"{head_ip}:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}

    def _launch(self, ip: str, args: tuple[str, ...], tries: int = 3) -> None:
        log = self.logs / f"{ip}.log"
        for _ in range(tries):
            seen = log.stat().st_size if log.exists() else 0
            with open(log, "a") as out:
                self.procs[ip] = subprocess.Popen(
                    [self.ray, "start", f"--node-ip-address={ip}", "--block", "--disable-usage-stats", *args],
                    env=self.env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.time() + 120
            while time.time() < deadline and self.procs[ip].poll() is None:
                with open(log, errors="replace") as text:
                    text.seek(seen)
                    if UP in text.read():
                        return
                time.sleep(0.5)
            stop_group(self.procs.pop(ip))
        raise AssertionError(f"Ray node {ip} did not start:\n" + log.read_text(errors="replace")[-2000:])

    def start_head(self, *args: str) -> None:
        # A head started with token auth needs ~/.ray/auth_token; on a fresh machine only a local
        # ray.init() would have written it. Ray makes one only where none exists.
        subprocess.run([self.ray, "get-auth-token", "--generate"], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        self._launch(self.head_ip, ("--head", f"--port={self.port}", "--include-dashboard=false", *args))

    def start_node(self, ip: str, *args: str) -> None:
        self._launch(ip, (f"--address={self.address}", *args))

    def wait_alive(self, nodes: int) -> None:
        """Wait (from a separate driver) until the head counts ``nodes`` live nodes."""
        alive = "len([n for n in ray.nodes() if n['Alive']])"
        script = (f"import ray, time; ray.init(address='{self.address}', log_to_driver=False)\n"
                  f"t = time.time() + 120\nwhile {alive} < {nodes} and time.time() < t: time.sleep(0.5)\n"
                  f"print({alive})")
        out = subprocess.run([sys.executable, "-c", script], env=self.env, capture_output=True, text=True,
                             timeout=180)
        assert out.stdout.strip().endswith(str(nodes)), out.stderr[-2000:]

    def kill(self, ip: str) -> None:
        """SIGKILL the node's whole process group: its raylet and every worker on it die at once."""
        proc = self.procs.pop(ip)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            stop_group(proc)
        self.procs.clear()
