"""Ray's (and Optuna's) driver log lines (INFO/WARNING about tokens, logdirs, ...) go to
``<sweep>/ray.log``.

Ray's "ray" logger writes to stderr; during a sweep that would interleave with the live view.
``RayLogFile`` buffers the lines from the moment Ray is imported, writes them to the sweep
folder once it exists (nothing is written for a sweep that fails to start) and gives Ray's
handlers back afterwards. Python warnings raised meanwhile go to the same file, and so do the
messages Ray's driver prints on stdout whatever ``log_to_driver`` says (the raylet's "A worker
died or was killed ...", in ANSI colours, when a trial's process is lost or killed for memory).

    with RayLogFile(verbose=False) as logs:
        import ray; logs.capture(); ray.init(...)   # Ray installs its stderr handler on import
        logs.attach(sweep_dir); tuner.fit()
"""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from sweep_format.layout import RAY_LOG

LOGGERS = ("ray", "optuna", "py.warnings")  # Optuna announces its study on the same stderr
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RayLogFile:
    """Context manager; a no-op with ``verbose`` (Ray's lines stay on the terminal)."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.buffer = logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
        self.buffer.setFormatter(logging.Formatter(FORMAT))
        self.file: logging.FileHandler | None = None
        self.saved: dict[str, tuple[list[logging.Handler], bool]] = {}
        self.printer: Callable[..., None] | None = None  # Ray's print_to_stdstream, while replaced

    def __enter__(self) -> RayLogFile:
        return self

    def capture(self) -> None:
        """Buffer Ray's lines from now on; call it after ``import ray``, which adds Ray's handler."""
        if self.verbose or self.saved:
            return
        logging.captureWarnings(True)
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self.saved[name] = (list(logger.handlers), logger.propagate)
            logger.handlers = [self.buffer]
            logger.propagate = False
        import ray._private.worker as ray_worker

        self.printer = getattr(ray_worker, "print_to_stdstream", None)
        if self.printer is not None:  # Ray's error listener looks it up at each message
            ray_worker.print_to_stdstream = to_ray_log

    def attach(self, sweep_dir: Path) -> None:
        """From now on write to ``sweep_dir/ray.log``, starting with what was buffered."""
        if not self.saved or self.file is not None:
            return
        self.file = logging.FileHandler(sweep_dir / RAY_LOG, encoding="utf-8")
        self.file.setFormatter(logging.Formatter(FORMAT))
        self.buffer.setTarget(self.file)
        self.buffer.flush()
        for name in LOGGERS:
            logging.getLogger(name).handlers = [self.file]

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.saved:
            return
        logging.captureWarnings(False)
        if self.printer is not None:
            import ray._private.worker as ray_worker

            ray_worker.print_to_stdstream = self.printer
        for name, (handlers, propagate) in self.saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
        if self.file is not None:
            self.file.close()
        self.buffer.setTarget(None)  # a sweep that never started leaves nothing behind
        self.buffer.close()


def to_ray_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
    """Ray's ``print_to_stdstream``, into the "ray" logger: ``data`` holds the ``lines`` a process
    (``pid``: "raylet", a worker's pid) printed."""
    for line in data.get("lines") or []:
        logging.getLogger("ray").warning("(%s) %s", data.get("pid"), line)
