"""Experiment trackers through Ray Tune's own logger callbacks: TensorBoard, MLflow, Weights & Biases.

Chosen in the spec (``loggers: [tensorboard, mlflow]``) or with ``ablate run --logger NAME``. Every
tracker writes inside the sweep folder unless told otherwise, and works without a network:

- ``tensorboard``: ``ray.tune.logger.TBXLoggerCallback``; event files in each trial folder under
  ``tune/`` (``tensorboard --logdir runs/NAME/tune``).
- ``mlflow``: ``ray.air.integrations.mlflow.MLflowLoggerCallback``; one MLflow run per trial in the
  experiment named after the sweep, tracking URI ``$MLFLOW_TRACKING_URI`` (any MLflow server or
  database) or by default a local file store ``runs/NAME/mlruns`` (MLflow 3 needs
  ``MLFLOW_ALLOW_FILE_STORE=true`` to read it, which ablate sets for its own runs).
- ``wandb``: ``ray.air.integrations.wandb.WandbLoggerCallback``; project = sweep name, files in
  ``runs/NAME/wandb``. Offline (``wandb sync`` later) unless ``WANDB_MODE`` or ``WANDB_API_KEY`` is set.

    callbacks = tracker_callbacks(["tensorboard", "mlflow"], Path("runs/temps"), "temps")
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ablate.errors import UserError, warn
from sweep_format.layout import MLFLOW_DIR, WANDB_DIR
from sweep_format.text import printable

# logger name -> (module it needs, pip extra that installs it)
TRACKERS = {"tensorboard": ("tensorboardX", "tensorboard"), "mlflow": ("mlflow", "mlflow"),
            "wandb": ("wandb", "wandb")}


def check_trackers(names: Iterable[str], where: str = "loggers") -> list[str]:
    """The names, deduplicated in order; UserError for an unknown name or a missing package."""
    out: list[str] = []
    for name in names:
        if name not in TRACKERS:
            raise UserError(f"{where}: unknown logger {name!r}; allowed: {', '.join(TRACKERS)}")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"{where}: logger {name!r} needs the {module} package, which is not "
                            f"installed: pip install 'ablate[{extra}]'")
        if name not in out:
            out.append(name)
    if "mlflow" in out:
        check_mlflow_server(where)
    if "wandb" in out:
        check_wandb_key(where)
    return out


def check_wandb_key(where: str) -> None:
    """A UserError, before Ray starts, when ``WANDB_MODE`` asks W&B for a mode that needs an API key and
    Ray's callback would find none (Ray's own check, ``_set_api_key``: WANDB_API_KEY, a ``wandb login``,
    WANDB_SETUP_API_KEY_HOOK): the sweep started Ray, made its folder and stopped with Ray's ValueError,
    and its `ablate resume` hint would have failed the same way. Without WANDB_MODE ablate logs offline."""
    import contextlib
    import io

    mode = os.environ.get("WANDB_MODE", "")
    if not mode:  # ablate's default: offline unless a key is set (wandb_callback)
        return
    try:
        from ray.air.integrations.wandb import _set_api_key
    except ImportError:  # another Ray: its callback says what it lacks
        return
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # W&B's deprecation notice of the call Ray makes
            _set_api_key()
    except ValueError:
        raise UserError(f"{where}: logger 'wandb' with WANDB_MODE={printable(mode)} needs a W&B API key: set "
                        "WANDB_API_KEY or run `wandb login`, or unset WANDB_MODE to log offline into "
                        "runs/NAME/wandb (`wandb sync` uploads it later)") from None
    except Exception:  # anything else is W&B's to say when the callback starts
        return


MLFLOW_ANSWER_S = 5.0  # how long the check before Ray waits for an MLflow server to accept a connection


def check_mlflow_server(where: str, timeout: float = MLFLOW_ANSWER_S) -> None:
    """A UserError, before Ray starts, when ``$MLFLOW_TRACKING_URI`` names an HTTP server that accepts
    no connection: MLflow's client retried for minutes inside the sweep's start and then stopped the
    sweep with its traceback's last line. Other stores (a file store, a database) are MLflow's to open."""
    import socket
    from urllib.parse import urlsplit

    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    named = f"MLFLOW_TRACKING_URI={printable(uri)}"
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port that is not a number
        raise UserError(f"{where}: {named} is not a URL MLflow can use ({exc})") from None
    try:
        socket.create_connection((host or "localhost", port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"{where}: logger 'mlflow' logs to {named}, where nothing answered within "
                        f"{timeout:g} s ({reason}); start the MLflow server, or unset MLFLOW_TRACKING_URI "
                        "to log to the sweep's own file store (runs/NAME/mlruns)") from None


def tracker_callbacks(names: Iterable[str], sweep_dir: Path, sweep_name: str) -> list[Any]:
    """One Ray Tune logger callback per tracker name (checked with ``check_trackers`` first), each
    ``guarded``."""
    return [guarded(BUILDERS[name](sweep_dir, sweep_name), name) for name in check_trackers(names)]


# Tune's callback hooks after ``setup``: a tracker's failure in one of them is said once and ends its
# logging for the run, never the sweep (Tune stopped the whole sweep for a callback's exception in
# on_trial_result, and failed and retried the trial for one in on_trial_complete)
GUARDED_HOOKS = ("on_step_begin", "on_step_end", "on_trial_start", "on_trial_restore", "on_trial_save",
                 "on_trial_result", "on_trial_complete", "on_trial_recover", "on_trial_error",
                 "on_checkpoint", "on_experiment_end")


def guarded(callback: Any, name: str) -> Any:
    """``callback`` (a tracker's Tune callback), its class made a subclass whose hooks after ``setup``
    (``GUARDED_HOOKS``) catch the tracker's failures: an MLflow server gone mid-sweep, a tracking
    folder removed. The first is said in one line and the tracker logs nothing more in this run; the
    trials, their records and the report are ablate's own and go on. A failure in ``setup`` (a server
    that does not answer at the start) still stops the sweep before any trial runs, in one line."""
    base = type(callback)

    def hook(method: str) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.__dict__.get("_tracker_failed"):
                return None
            try:
                return getattr(base, method)(self, *args, **kwargs)
            except Exception as exc:
                self._tracker_failed = True
                said = " ".join(str(exc).split()).rstrip(".")
                warn(f"logger {name}: {type(exc).__name__}{': ' + printable(said[:300]) if said else ''}; "
                     f"it logs nothing more in this run, and the sweep goes on (its records and report are "
                     f"ablate's own; `ablate resume` starts the logger again)")
                return None
        call.__name__ = method
        return call

    callback.__class__ = type(base.__name__, (base,), {m: hook(m) for m in GUARDED_HOOKS if hasattr(base, m)})
    return callback


def tensorboard_callback(sweep_dir: Path, sweep_name: str) -> Any:
    from ray.tune.logger import TBXLoggerCallback

    return TBXLoggerCallback()


def mlflow_callback(sweep_dir: Path, sweep_name: str) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = (sweep_dir / MLFLOW_DIR).resolve().as_uri()
        # MLflow 3 keeps its file store in "maintenance mode" behind this switch; it needs no database
        # package (mlflow-skinny suffices) and `mlflow ui --backend-store-uri` still reads it.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=sweep_name, save_artifact=False,
                                tags={"ablate_sweep": sweep_name})


def wandb_callback(sweep_dir: Path, sweep_name: str) -> Any:
    from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

    class RunWrittenActor(_WandbLoggingActor):
        """Ray's W&B logging actor, which Tune kills (``ray.kill``) as soon as ``run`` returns:
        ``wandb.finish()`` can return before wandb-core has written the run's file, and the kill
        then left it empty (an offline ``run-ID.wandb`` of its 7-byte header, seen in a CI run).
        ``wandb.teardown()`` waits for W&B to finish, as its atexit hook would, which a killed
        process never runs."""

        def run(self) -> None:
            try:
                super().run()
            finally:
                self._wandb.teardown()

    class Callback(WandbLoggerCallback):
        _logger_actor_cls = RunWrittenActor

    if not os.environ.get("WANDB_API_KEY"):
        # Ray asks for an API key unless the mode is offline; without one, offline is the only mode.
        os.environ.setdefault("WANDB_MODE", "offline")
    folder = sweep_dir / WANDB_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return Callback(project=sweep_name, dir=str(folder.resolve()),
                    mode=os.environ.get("WANDB_MODE", "online"))


BUILDERS = {"tensorboard": tensorboard_callback, "mlflow": mlflow_callback, "wandb": wandb_callback}
