"""The Ray session of a sweep: a local Ray on loopback, or a running cluster joined by address.

Nothing happens at import: ``start_ray`` sets Ray's and Tune's environment switches (``prepare``)
before Ray is first imported, then starts or joins Ray.

    start_ray()                                   # a new local Ray with this machine's CPUs and GPUs
    start_ray("10.0.0.1:6379", connect_timeout=30)  # join a cluster (token auth: RAY_AUTH_MODE=token)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ablate.errors import STORAGE_ERRNOS, UserError, warn
from ablate.ray_logs import RayLogFile
from sweep_format.text import printable

# Ray's multi-node switch; "0" makes a local Ray bind to 127.0.0.1 only (bind_local_ray_to_loopback)
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
DEFAULT_CONNECT_TIMEOUT = 30.0  # seconds `--address` waits for the cluster to answer
MAX_CONNECT_TIMEOUT = 24 * 3600.0

ENVIRONMENT = {
    # Results without the metric (epoch 0 has no loss, a diverged trial has no kNN) are expected.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # Ray's legacy output engine, which `verbose=0` silences completely; ablate.live draws the progress.
    "RAY_AIR_NEW_OUTPUT": "0",
    # Tune lets a searcher keep only one trial pending by default, which starts trials one after
    # another; allow enough pending trials to fill the cluster.
    "TUNE_MAX_PENDING_TRIALS_PG": "16",
    # Ray Train: a data-parallel trial's workers must start within this time, or the trial fails
    # (and Tune retries it) instead of waiting for resources forever.
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "60",
    # Tune reuses a trial's actor for the next trial once the trial's function has returned, waiting
    # this long (Ray: 2 s) before it errors the next trial instead. A data-parallel trial's function
    # returns when its Ray Train run has shut down, 10-14 s after its last result on 2 busy CPUs: every
    # trial after the first errored. Not reusing its actor is no way out: the Train run's placement
    # group outlives the killed actor, and the next trial waited for its workers until it failed.
    "TUNE_FUNCTION_THREAD_TIMEOUT_S": "120",
}
# The switches above that the trial processes read (Tune's trial actor, Ray Train's controller), not
# the driver. A local Ray's processes inherit this process's environment; a cluster's were started by
# `ray start` elsewhere, so a driver joining one hands them over in the job's runtime_env.
TRIAL_ENVIRONMENT = ("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "TUNE_FUNCTION_THREAD_TIMEOUT_S")


def prepare() -> None:
    """Ray's and Tune's switches, before Ray is imported. Token authentication stays on: a driver
    joining a cluster presents ~/.ray/auth_token (Ray reads RAY_AUTH_MODE when it is imported)."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if (Path.home() / ".ray" / "auth_token").is_file():
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def check_for_ray() -> None:
    """What would end ``ray.init`` in a traceback or an abort, refused in one line before anything is
    written: the command line's text (``check_utf8_for_ray``) and the token (``check_ray_token``)."""
    check_utf8_for_ray()
    check_ray_token()


def check_utf8_for_ray() -> None:
    """Ray sends this process's command line and working folder to its processes as UTF-8: an argument
    or a folder name in another encoding (bytes Python keeps as lone surrogates: a Latin-1 file name)
    ended ray.init in a UnicodeEncodeError traceback. A UserError naming it, before anything is written."""
    try:
        folder = os.getcwd()
    except OSError:  # removed under this process: not this check's business
        folder = ""
    for what, text in [*(("argument", arg) for arg in sys.orig_argv), ("working folder", folder)]:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(f"{what} {printable(text)}: not UTF-8 text, and Ray passes this command's "
                            "arguments and working folder on as UTF-8; rename the file or folder (or run "
                            "from another folder)") from None


def check_ray_token() -> None:
    """The token Ray will present (``RAY_AUTH_TOKEN``, else the file ``RAY_AUTH_TOKEN_PATH`` names, else
    ~/.ray/auth_token) goes into a gRPC header, which takes printable ASCII only: a token saved with a
    byte-order mark (Windows' Notepad) or any other byte aborted the process inside ``ray.init`` (exit
    134, gRPC's 'Illegal header value' and 'ASSERTION FAILED'). A UserError naming the source and the
    byte, before anything is written. Whitespace around the token is Ray's to trim, and no token is read
    where authentication is off (RAY_AUTH_MODE=disabled)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return
    if value := os.environ.get("RAY_AUTH_TOKEN"):  # empty: unset, and the file is read
        where, data, redo = "RAY_AUTH_TOKEN", value.encode("utf-8", "surrogateescape"), "set it again"
    else:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
        where = f"{path} (RAY_AUTH_TOKEN_PATH)" if os.environ.get("RAY_AUTH_TOKEN_PATH") else str(path)
        redo = "write it again"
        try:
            data = path.read_bytes()
        except OSError:  # none: Ray makes one for a local run, and says what it needs to join a cluster
            return
    token = data.strip(b" \t\r\n\v\f")
    if bad := next(((i, b) for i, b in enumerate(token) if not 0x20 <= b <= 0x7E), None):
        at, byte = bad
        bom = " (a UTF-8 byte-order mark: save it without one)" if token.startswith(b"\xef\xbb\xbf") else ""
        raise UserError(f"{where}: Ray's authentication token holds the byte 0x{byte:02x} at {at + 1}{bom}, "
                        "and Ray sends it in a header that takes printable ASCII only (it would abort); "
                        f"{redo} as plain text (`ray get-auth-token` prints the token on the machine that "
                        "made it; a local Ray makes a new ~/.ray/auth_token where there is none)")


def check_connect_timeout(timeout: float) -> float:
    """A finite number of seconds in (0, one day]; a UserError otherwise (checked before Ray starts)."""
    number = isinstance(timeout, (int, float)) and math.isfinite(timeout)
    if not number or not 0 < timeout <= MAX_CONNECT_TIMEOUT:
        raise UserError(f"--connect-timeout {timeout}: expected a number of seconds in (0, "
                        f"{MAX_CONNECT_TIMEOUT:g}]")
    return float(timeout)


class ClusterAddress(str):
    """A cluster's HOST:PORT that remembers where the user gave it (``--address`` or ``RAY_ADDRESS``), so
    that a line about it names what the user set: ``named`` is ``--address X`` or ``RAY_ADDRESS=X``."""

    origin: str = "--address"

    def __new__(cls, address: str, origin: str = "--address") -> ClusterAddress:
        made = super().__new__(cls, address)
        made.origin = origin
        return made

    @property
    def named(self) -> str:
        return f"RAY_ADDRESS={self}" if self.origin == "RAY_ADDRESS" else f"--address {self}"


def named_address(address: str) -> str:
    """``address`` as the user set it, for an error: ``--address X`` unless it came from RAY_ADDRESS."""
    return address.named if isinstance(address, ClusterAddress) else f"--address {address}"


def cluster_address(option: str | None, say: bool = True) -> ClusterAddress | None:
    """The cluster to join: ``--address``, else ``RAY_ADDRESS`` (what ``ray job submit`` sets for its
    entrypoint and ``ray.init`` reads) unless it is empty or ``local``; None: a local Ray for this run
    (also ``--address local``, as Ray reads it: else ray.init would start one that listens on every
    interface and has no ``--num-cpus``). ``say``: one line when RAY_ADDRESS chose the cluster (``ablate
    run`` and ``ablate resume`` say it in their opening lines instead, through ``what_start_ray_does``)."""
    if option is not None:
        if not option.strip():  # an unset shell variable: not a wish for a local Ray
            raise UserError(f"--address {option!r}: give HOST:PORT of a running Ray cluster, or leave "
                            "--address out for a local Ray")
        return None if option.strip() == "local" else ClusterAddress(option)
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if not env or env == "local":
        return None
    if env.startswith(("http://", "https://")):  # the dashboard, for `ray job submit`: not a cluster to join
        print(f"ablate: RAY_ADDRESS={env} is a dashboard's URL (for `ray job submit`), not a cluster to "
              "join: starting a local Ray (--address HOST:PORT joins a cluster)", file=sys.stderr)
        return None
    address = ClusterAddress(env, "RAY_ADDRESS")
    if say:
        print(f"ablate: {joining(address)}", file=sys.stderr)
    return address


def what_start_ray_does(address: str | None) -> str:
    """What ``start_ray(address)`` is about to do, in words for the line before it (Ray not imported)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return "using the Ray this process runs"
    return joining(address) if address else "starting a local Ray"


def joining(address: str) -> str:
    """"joining the Ray cluster at X", and where X came from when it was RAY_ADDRESS."""
    if isinstance(address, ClusterAddress) and address.origin == "RAY_ADDRESS":
        return f"joining the Ray cluster at {address} (from RAY_ADDRESS; unset it to start a local Ray)"
    return f"joining the Ray cluster at {address}"


def start_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
              connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, logs: RayLogFile | None = None) -> bool:
    """Join the cluster at ``address``, or start a local Ray with this machine's resources; True
    when this call did (``stop_ray`` then ends it), False when the process already had Ray.

    The local Ray binds to 127.0.0.1 with the dashboard off; token authentication stays on
    (Ray writes ``~/.ray/auth_token``; a driver joining a cluster needs RAY_AUTH_MODE=token).
    """
    ray_stopped()  # a previous run's Ray first: its processes and ray.is_initialized() are gone then
    prepare()
    previous = os.environ.get(LOOPBACK_SWITCH)  # the caller's own value, restored once Ray runs
    if not address:
        bind_local_ray_to_loopback()
    import ray

    if logs is not None:
        logs.capture()
    if ray.is_initialized():
        return False
    if address:
        join_cluster(address, connect_timeout)
        return True
    # address="local": always a new Ray for this run, never a cluster that `ray start` left behind.
    warn_other_rays(other_rays())
    try:
        with own_session():
            init_ray(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                     log_to_driver=False)
    except Exception as exc:  # Ray's start failed: a fault of this machine, said in one line
        from ablate.ending import interrupt_in

        if interrupt_in(exc) is not None or (isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS):
            raise  # an interrupt's ending, a full disk's words: the command line's
        raise UserError(local_start_failed(exc)) from None
    finally:  # Ray's processes have read the switch; a `ray start` this process runs later must not
        if previous is None:
            os.environ.pop(LOOPBACK_SWITCH, None)
        else:
            os.environ[LOOPBACK_SWITCH] = previous
    return True


def local_start_failed(exc: Exception) -> str:
    """Why the local Ray did not start, in one line with where Ray's own logs are: it was a traceback
    from ray.init (a GCS that did not come up, a /tmp/ray another user owns, ...)."""
    try:  # Ray's own rule (RAY_TMPDIR, TMPDIR, /tmp), where this Ray has it
        from ray._common.utils import get_default_ray_temp_dir

        temp = Path(get_default_ray_temp_dir())
    except Exception:  # another Ray's layout: its documented default
        temp = Path("/tmp/ray")
    words = " ".join(str(exc).split())[:400]
    said = f"{type(exc).__name__}: {words}" if words else type(exc).__name__
    logs = temp / "session_latest" / "logs"
    return f"the local Ray did not start ({said}); Ray's own logs, where it got that far: {logs}"


RAYLET = "raylet"  # the process every Ray node runs, one per local Ray or `ray start`


def other_rays(proc: Path = Path("/proc")) -> list[int]:
    """The pids of the Ray nodes already running on this machine (their ``raylet``), any user's,
    read from ``/proc`` (Linux; elsewhere none are seen). Called before this run's own Ray starts."""
    if not proc.is_dir():
        return []
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:  # gone, or not ours to read
            continue
        if name == RAYLET:
            pids.append(int(entry.name))
    return sorted(pids)


def warn_other_rays(pids: list[int]) -> None:
    """One line when another Ray runs here (another `ablate run`, a `ray start`, anyone's): each Ray
    hands out every CPU it was given, so two on one machine put two trials on a core, silently."""
    if not pids:
        return
    cpus = os.cpu_count()
    which = f"pid {pids[0]}" + (f" and {len(pids) - 1} more" if len(pids) > 1 else "")
    warn(f"another Ray is running on this machine (its raylet, {which}): its work shares this machine's "
         f"{cpus} CPUs with this sweep's trials, so epochs take longer than on an idle machine (the results "
         "do not change)")


def stop_ray(started: bool) -> None:
    """Stop the local Ray that ``start_ray`` started, or leave the cluster it joined, once the sweep's
    trials are over: left to Ray's exit handler, the shutdown held the terminal 3-5 s after the
    summary's last line. A Ray the caller had started stays.

    The stop runs in a thread of its own while the caller goes on to the summary and the report: Ray
    sends each of its processes SIGTERM and waits for it in turn (1.4-2.3 s here, two cores idle).
    ``ray_stopped`` waits for it; ``start_ray`` does, and so does the interpreter's exit
    (``ray_stopped_at_exit``)."""
    if not started:
        return
    from ablate.ending import release_logging_locks

    release_logging_locks()  # an early Ctrl-C may have left one held: the stop thread logs
    ray = sys.modules.get("ray")

    def stop() -> None:
        try:
            if ray is not None and ray.is_initialized():
                ray.shutdown()
        except Exception as exc:  # Ray's processes die with this one anyway (their parent-death signal)
            warn(f"stopping the local Ray: {printable(str(exc))}")
        finally:
            remove_ray_folder()

    thread = threading.Thread(target=stop, name="ablate-ray-stop", daemon=True)
    if not _STOPPING_AT_EXIT:  # after `import ray`: runs before Ray's own exit handler (last in, first out)
        atexit.register(ray_stopped_at_exit)
        _STOPPING_AT_EXIT.append(True)
    _STOPPING.append(thread)
    thread.start()


_STOPPING: list[threading.Thread] = []  # the stops stop_ray has begun
_STOPPING_AT_EXIT: list[bool] = []  # whether ray_stopped_at_exit is registered


# How long the interpreter's exit waits for Ray's stop (1.4-2.3 s here; a stop stuck for good, as on
# logging's lock a Ctrl-C left taken while Ray started before release_logging_locks, would hold the exit
# for ever, deaf to Ctrl-C and SIGTERM)
EXIT_STOP_WAIT = 60.0


def ray_stopped_at_exit() -> None:
    """At the interpreter's exit, the stop ``stop_ray`` began ends first, with Ctrl-C, SIGTERM and
    SIGHUP ignored meanwhile: a Ctrl-C pressed again while the interpreter waited for the stop ended in
    a traceback from its shutdown. Ray's stop is bounded (a process that has not exited a second after
    its SIGTERM is killed), but its thread may not be: after ``EXIT_STOP_WAIT`` the exit goes on with a
    line saying so (Ray's processes end with this one, by their parent-death signal)."""
    if not _STOPPING:
        return
    from ablate.ending import HANDLED

    for signum in (signal.SIGINT, *HANDLED):
        signal.signal(signum, signal.SIG_IGN)
    if not ray_stopped(EXIT_STOP_WAIT):
        warn(f"the local Ray did not stop within {EXIT_STOP_WAIT:g} s; exiting without waiting for it "
             "(its processes end with this one)")
        # Ray's own exit handler, next, would wait for ever on the lock the stuck stop holds
        worker = sys.modules.get("ray._private.worker")
        if worker is not None:
            atexit.unregister(worker.shutdown)


def ray_stopped(timeout: float | None = None) -> bool:
    """Wait until the Ray that ``stop_ray`` is stopping has stopped (at most ``timeout`` seconds in all);
    whether it has."""
    end = None if timeout is None else time.monotonic() + timeout
    while _STOPPING:
        _STOPPING[0].join(None if end is None else max(0.0, end - time.monotonic()))
        if _STOPPING[0].is_alive():
            return False
        _STOPPING.pop(0)
    return True


# The empty folder the running Ray was started from (init_ray), removed once it stops.
_RAY_FOLDER: list[str] = []


def init_ray(**kwargs: Any) -> None:
    """``ray.init(**kwargs)`` from an empty folder of this user's own (0700), back in the working
    folder once it returns; ``stop_ray`` removes it.

    Ray puts the driver's working folder first on every worker's ``sys.path`` (and a local Ray's
    processes start in it), so from a sweep folder someone else wrote (``cd runs/x && ablate resume
    .``) a ``trainables/`` or ``torch.py`` in it was imported, and run, by every trial process."""
    import ray

    ray_stopped()
    folder = tempfile.mkdtemp(prefix="ablate-ray-")
    here = os.getcwd()
    os.chdir(folder)
    try:
        with deferred_signals(ray.shutdown) if kwargs.get("address") == "local" else contextlib.nullcontext():
            ray.init(**kwargs)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    else:
        _RAY_FOLDER.append(folder)
    finally:
        os.chdir(here)


@contextlib.contextmanager
def deferred_signals(undo: Callable[[], Any]) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP held back while a local Ray starts (a few seconds): raised inside
    ``ray.init``, they left its processes half started, and the driver's exit then ended in a
    segmentation fault now and then (exit 139 for a Ctrl-C). Once it has started, ``undo`` (stop it)
    and the first one held goes to the caller's own handler. A second one is not held: the start
    itself may hang, so it stops it at once. A signal the caller ignores stays ignored; a handler
    Ray puts in meanwhile (its SIGTERM's) stays when none came."""
    from ablate.ending import HANDLED  # what ablate.ending.Signals treats as a Ctrl-C

    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if received:
            restore()
            signal.raise_signal(signum)
        else:
            received.append(signum)

    def restore() -> None:
        for s, handler in saved.items():
            if signal.getsignal(s) is hold:
                signal.signal(s, handler)

    saved: dict[int, Any] = {s: signal.signal(s, hold) for s in (signal.SIGINT, *HANDLED)
                             if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        restore()
    if received:
        undo()
        signal.signal(received[0], saved[received[0]])
        signal.raise_signal(received[0])


def session_logs() -> str:
    """Where the running Ray's own logs are on this machine (Ray Train's controller writes a failed
    run's whole error under ``train/``): Ray keeps them after it stops."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    return str(Path(node.get_logs_dir_path()) / "train") if node is not None else "Ray's session logs"


def remove_ray_folder() -> None:
    while _RAY_FOLDER:
        shutil.rmtree(_RAY_FOLDER.pop(), ignore_errors=True)


@contextlib.contextmanager
def own_session() -> Iterator[None]:
    """The processes a local Ray starts (GCS, raylet and, through it, the workers) in a session of
    their own. A signal to the driver's process group (``timeout``, ``kill -TERM -PGID``, a closed
    terminal) then reaches the driver alone, which stops the trials and marks the records as for a
    SIGTERM to its pid. Without it Ray's processes died first, and the driver hung 60 s on the lost
    GCS, then exited 1 with the records still ``running``. They still die with the driver: Ray
    starts them with kernel fate-sharing (the parent-death signal), which is checked first."""
    from ray._private import services, utils

    popen = getattr(services, "ConsolePopen", None)
    fate_sharing = getattr(utils, "detect_fate_sharing_support", lambda: False)
    if popen is None or not sys.platform.startswith("linux") or not fate_sharing():
        yield
        return
    original = popen.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("start_new_session", True)
        original(self, *args, **kwargs)

    popen.__init__ = init
    try:
        yield
    finally:
        popen.__init__ = original


def bind_local_ray_to_loopback() -> None:
    """Make the local Ray (gcs_server, raylet, workers) listen on 127.0.0.1 only.

    Ray binds its servers to the node address of ``ray._private.services.get_node_ip_address``,
    which is 127.0.0.1 only while Ray's multi-node switch (``LOOPBACK_SWITCH``) is
    off (``ray.init(_node_ip_address="127.0.0.1")`` does not help: Ray swaps a loopback address
    for the external one). Ray reads the switch once, when it is imported, so it is set in the
    environment (read by the processes ``ray.init`` starts and by a later import; removed again once
    they run) and, if Ray was imported already (``ray.tune`` by the caller), in Ray's constants too.
    """
    os.environ[LOOPBACK_SWITCH] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]


def join_cluster(address: str, connect_timeout: float) -> None:
    """``ray.init(address)``, failing within ``connect_timeout`` seconds when nothing answers."""
    wait_for_address(address, connect_timeout)
    # Ray retries its GCS connection for minutes by default; give it the same budget.
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(max(1, round(connect_timeout))))
    try:
        init_ray(address=str(address), log_to_driver=False, runtime_env=cluster_runtime_env())
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"{named_address(address)}: cannot join the Ray cluster ({exc}). Start one with "
                        "`ray start --head`, and set RAY_AUTH_MODE=token with its token") from None


def cluster_runtime_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """The job's runtime_env for a joined cluster: the TRIAL_ENVIRONMENT switches as this process has
    them (``prepare``'s value, or the user's own), bar any a ``ray job submit`` runtime env sets already
    (Ray refuses a ray.init that sets a job's variable again); None when nothing is left to hand over."""
    submitted: dict[str, Any] = {}
    if text := environ.get(JOB_CONFIG_VARIABLE):
        try:
            submitted = (json.loads(text).get("runtime_env") or {}).get("env_vars") or {}
        except (ValueError, AttributeError):  # not ours to judge: ray.init says what is wrong with it
            submitted = {}
    env_vars = {key: environ[key] for key in TRIAL_ENVIRONMENT if key in environ and key not in submitted}
    return {"env_vars": env_vars} if env_vars else None


# Where `ray job submit` passes the job's config (and its runtime_env) to the entrypoint's ray.init
# (Ray: ray._private.runtime_env.constants.RAY_JOB_CONFIG_JSON_ENV_VAR, read here without importing Ray)
JOB_CONFIG_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def wait_for_address(address: str, timeout: float) -> None:
    """Return once something accepts TCP connections at HOST:PORT; a UserError after ``timeout`` s.

    Only HOST:PORT forms are probed (``auto`` and addresses without a port are left to Ray).
    Each attempt is a plain socket connect of at most a few seconds, so SIGTERM and Ctrl-C act
    at once.
    """
    timeout = check_connect_timeout(timeout)
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    deadline = time.monotonic() + timeout
    while True:
        attempt = min(5.0, max(deadline - time.monotonic(), 0.1))
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=attempt).close()
            return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        if time.monotonic() + 1 > deadline:
            break
        time.sleep(1)
    raise UserError(f"{named_address(address)}: nothing answered within {timeout:g} s ({reason}); start "
                    f"the cluster with `ray start --head --port={port}`, check HOST:PORT, or wait "
                    "longer with --connect-timeout SECONDS")
