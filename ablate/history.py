"""``history.jsonl``: when each driver of a sweep ran, on what, and how it ended.

One JSON line per event, appended: ``start`` (command, host, pid, the cluster's CPUs and GPUs),
``end`` (how the run ended) and ``report`` (the report is written). ``bench/sweep_profile.py`` reads
it to tell where a sweep's core-seconds went; it also answers "when was this sweep resumed, and
where?". A write that fails (a full disk) is left out: the history is a log, not a record.

    note(sweep_dir, START, command="run", cpus=2.0, gpus=0.0)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from sweep_format.files import loads
from sweep_format.layout import HISTORY_FILE

START, END, REPORT = "start", "end", "report"  # the events


def note(sweep_dir: Path, event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "at": time.time(), "host": socket.gethostname(), "pid": os.getpid(),
                       **fields})
    with contextlib.suppress(OSError), open(Path(sweep_dir) / HISTORY_FILE, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def read(sweep_dir: Path) -> list[dict[str, Any]]:
    """The events, oldest first; a line that does not parse is skipped."""
    out = []
    try:
        lines = (Path(sweep_dir) / HISTORY_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        with contextlib.suppress(ValueError):
            event = loads(line)
            if isinstance(event, dict):
                out.append(event)
    return out
