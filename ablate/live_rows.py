"""The live view's trials, and what each redraw reads of them all, kept up to date as a trial changes.

A redraw shows the trials finished, the epochs done and planned, the ETA from the mean epoch time,
the running trials and the most recently ended ones. Summed over every row at each redraw (and at
each trial's end), a sweep of n trials cost its driver n^2: 3 ms a redraw at 5,000 trials. Here
each sum changes by what one row adds to it, so a redraw costs the same at any size; the answers
are those of a scan of every row (tests/ablate/test_live_rows.py compares them).

    rows = Rows()
    row = rows.add(TrialRow("a1b2", {"teacher_temp": 0.04}, 1, planned=8))
    with rows.changing(row):           # the sums then move by what the change made of its share
        row.epoch, row.ended_at = 8, time.time()
    rows.epochs_done, rows.ended, rows.recent(6)
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections.abc import Iterator, ValuesView
from dataclasses import dataclass, field
from fractions import Fraction
from operator import attrgetter
from typing import Any

from sweep_format import statuses


@dataclass
class TrialRow:
    """What the view knows about one trial."""

    trial_id: str
    params: dict[str, Any]
    number: int  # 1-based, in the order trials started
    planned: int  # its epochs (a searched ``epochs`` gives trials different schedules)
    epoch: int = 0
    loss: float | None = None
    knn_top1: float | None = None
    outcome: str = statuses.RUNNING
    reason: str = ""
    collapsing: bool = False  # the stop rule's collapse condition holds (trainables/stop_rules.py)
    epoch_times: list[float] = field(default_factory=list)  # only ever appended to
    ended_at: float | None = None
    restore_note: str = ""  # the checkpoint its trainable could not restore from, once said
    restored_from: int | None = None  # the epoch of the checkpoint it continued from, once said
    retried: bool = False  # Ray runs it again after a failure: its next start is that retry's


class Rows:
    """The view's trials by record id, in the order they started, with the sums a redraw reads.

    ``ended``: rows with an end; ``epochs_done``: their epochs; ``epochs_planned``: each ended row's
    epochs, each other's schedule (or more, when it ran past it); ``most_running``: the most rows
    without an end at one time so far; ``mean_time()``: the mean measured
    (positive) epoch time, from their exact sum. The fields of a row that these read (``epoch``,
    ``planned``, ``ended_at``, ``epoch_times``) change inside ``changing`` only.
    """

    def __init__(self) -> None:
        self._rows: dict[str, TrialRow] = {}
        self._running: dict[int, TrialRow] = {}  # rows without an end, by number
        self._ended: list[tuple[float, int]] = []  # (ended_at, number) of rows with an end, sorted
        self._by_number: dict[int, TrialRow] = {}
        self.ended = self.epochs_done = self.epochs_planned = 0
        self.most_running = 0  # the most rows running at once so far: the trials the cluster runs together
        self._time_sum, self._time_count, self._infinite = Fraction(0), 0, False

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._rows

    def __getitem__(self, trial_id: str) -> TrialRow:
        return self._rows[trial_id]

    def __len__(self) -> int:
        return len(self._rows)

    def values(self) -> ValuesView[TrialRow]:
        return self._rows.values()

    def add(self, row: TrialRow) -> TrialRow:
        """A trial the view had not seen (its ``number`` the next one)."""
        self._rows[row.trial_id] = self._by_number[row.number] = row
        self._put(row)
        self._timed(row.epoch_times)
        return row

    @contextlib.contextmanager
    def changing(self, row: TrialRow) -> Iterator[TrialRow]:
        """Change ``row``; the sums then move by what it adds to them now less what it added before
        (the terminal's refresh thread may draw meanwhile: nothing is taken out to be put back)."""
        before = (row.epoch, self._planned(row), row.ended_at, len(row.epoch_times))
        try:
            yield row
        finally:
            self._moved(row, *before)

    def mean_time(self) -> float | None:
        """The mean measured epoch time (of every positive one), None before the first."""
        if not self._time_count:
            return None
        return math.inf if self._infinite else float(self._time_sum / self._time_count)

    def longest_left(self) -> int:
        """The most epochs a running row has left of its schedule (0: none running)."""
        return max((self._planned(row) - row.epoch for row in list(self._running.values())),
                   default=0)  # list(): one C call, safe from a thread

    def running(self) -> list[TrialRow]:
        """The rows without an end, in the order they started."""
        return sorted(self._running.values(), key=attrgetter("number"))  # one C call: safe from a thread

    def recent(self, count: int) -> list[TrialRow]:
        """The ``count`` (> 0) rows that ended last, the last first (equal ends: the later started first)."""
        return [self._by_number[n] for _, n in reversed(self._ended[-count:])]

    def _moved(self, row: TrialRow, epoch: int, planned: int, ended_at: float | None, times: int) -> None:
        self.epochs_done += row.epoch - epoch
        self.epochs_planned += self._planned(row) - planned
        if row.ended_at is not ended_at and row.ended_at != ended_at:
            if row.ended_at is not None:
                bisect.insort(self._ended, (row.ended_at, row.number))
            if ended_at is None:
                del self._running[row.number]
            else:
                self._unend(ended_at, row.number)
            if row.ended_at is None:
                self._running[row.number] = row
            self.ended += (row.ended_at is not None) - (ended_at is not None)
            self.most_running = max(self.most_running, len(self._running))
        self._timed(row.epoch_times[times:])

    def _unend(self, ended_at: float, number: int) -> None:
        key = (ended_at, number)
        at = bisect.bisect_left(self._ended, key)
        if at < len(self._ended) and self._ended[at] == key:
            del self._ended[at]
        else:  # a NaN end (a record's), which no order places
            self._ended.remove(key)

    def _put(self, row: TrialRow) -> None:
        self.epochs_done += row.epoch
        self.epochs_planned += self._planned(row)
        if row.ended_at is None:
            self._running[row.number] = row
            self.most_running = max(self.most_running, len(self._running))
        else:
            self.ended += 1
            bisect.insort(self._ended, (row.ended_at, row.number))

    def _timed(self, times: list[float]) -> None:
        for t in times:
            if t > 0:
                self._time_count += 1
                if math.isinf(t):
                    self._infinite = True
                else:
                    self._time_sum += Fraction(t)

    @staticmethod
    def _planned(row: TrialRow) -> int:
        return row.epoch if row.ended_at is not None else max(row.planned, row.epoch)
