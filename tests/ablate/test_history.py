"""ablate.history: history.jsonl, the log of a sweep's drivers."""

from __future__ import annotations

import json
from pathlib import Path

import ablate.history as history


def test_an_event_after_a_partial_line_starts_a_line_of_its_own(tmp_path: Path) -> None:
    """A full disk (or a kill) mid-append left a partial last line; the next event was glued onto it
    and both were lost to readers."""
    history.note(tmp_path, history.START, command="run", cpus=2.0)
    path = tmp_path / "history.jsonl"
    whole = path.read_text()
    path.write_text(whole + whole[:30])  # the second start, cut by the full disk
    history.note(tmp_path, history.END, outcome="finished")
    assert path.read_text().splitlines()[1] == whole[:30]
    assert [e["event"] for e in history.read(tmp_path)] == [history.START, history.END]


def test_lines_that_are_no_event_are_skipped(tmp_path: Path) -> None:
    """A hand-edited line with no number 'at' (or no 'event') is skipped, not handed to a reader that
    does arithmetic on it (bench/sweep_profile.py's driver_runs raised on it)."""
    lines = [{"event": "start", "at": 1.0, "cpus": "two", "started_at": "soon"}, {"event": "end", "at": "x"},
             {"at": 2.0}, [1], {"event": "end", "at": True}, {"event": "end", "at": 3.0}]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "\x00{\n")
    events = history.read(tmp_path)
    assert [e["at"] for e in events] == [1.0, 3.0]
