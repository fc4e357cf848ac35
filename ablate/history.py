"""``history.jsonl``: when each driver of a sweep ran, on what, and how it ended.

One JSON line per event, appended: ``start`` (command, host, pid, the cluster's CPUs and GPUs),
``end`` (how the run ended) and ``report`` (the report is written). ``bench/sweep_profile.py`` reads
it to tell where a sweep's core-seconds went; it also answers "when was this sweep resumed, and
where?". A write that fails (a full disk) is left out: the history is a log, not a record. A line
left partial by such a write (or by a kill) stays as it is: the next event starts on a line of its
own, and readers skip the damaged one.

    note(sweep_dir, START, command="run", cpus=2.0, gpus=0.0)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, BinaryIO

from sweep_format.files import loads
from sweep_format.layout import HISTORY_FILE

START, END, REPORT = "start", "end", "report"  # the events


def note(sweep_dir: Path, event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "at": time.time(), "host": socket.gethostname(), "pid": os.getpid(),
                       **fields})
    with contextlib.suppress(OSError), open(Path(sweep_dir) / HISTORY_FILE, "a+b") as f:
        f.write(_after_partial_line(f) + line.encode() + b"\n")


def _after_partial_line(f: BinaryIO) -> bytes:
    """A newline when the file ends in a partial line: appended to it, the event would be lost with it."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return b""
    f.seek(end - 1)
    return b"" if f.read(1) == b"\n" else b"\n"


def read(sweep_dir: Path) -> list[dict[str, Any]]:
    """The events, oldest first; a line that is not an event (no JSON object, or one without a
    string ``event`` and a number ``at``: a partial or hand-edited line) is skipped."""
    out = []
    try:
        lines = (Path(sweep_dir) / HISTORY_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        with contextlib.suppress(ValueError):
            event = loads(line)
            if is_event(event):
                out.append(event)
    return out


def is_event(event: Any) -> bool:
    at = event.get("at") if isinstance(event, dict) else None
    return (isinstance(event, dict) and isinstance(event.get("event"), str)
            and isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at))
