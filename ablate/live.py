"""The live sweep view: what ``ablate run`` prints while Ray Tune works, as a ``ray.tune.Callback``.

On a terminal, one in-place view (rich): a progress bar (trials finished / total, epochs done /
planned, elapsed, ETA from the measured epoch times), the running and most recent trials
(parameters, epoch, loss, kNN top-1, outcome) and the best configuration so far. A trial that
collapses, diverges, runs out of memory or errors is printed once above the view with its reason.

Anywhere else (CI, ``| tee``, nohup, a notebook): one line per event - trial started, every
``every``-th epoch, trial ended with its outcome - so a log reads top to bottom.

The view covers the whole sweep (after ``ablate resume`` too): it reads the records the
``TrialRecorder`` keeps, and names the best configuration by the one ranking rule
(reports.ranking: the spec's metric and mode, finished trials only), in the summary's words.

    recorder = TrialRecorder(spec, sweep_dir)
    view = LiveView(recorder)
    tune.RunConfig(callbacks=[recorder, view], verbose=0)   # the recorder first; Ray's table silenced
    ablate.ending.fit(tuner, sweep_dir, spec, signals, view)  # its last line: done, or stopped
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

from ray.tune import Callback

from ablate.live_rows import Rows, TrialRow
from ablate.recorder import TrialRecorder, record_id
from ablate.records import unrecorded_checkpoint, unrecorded_note
from sweep_format import statuses
from sweep_format.records import read_records
from sweep_format.values import fmt_value

RECENT = 6  # finished trials kept in the terminal table
# Ranking reads every trial's record: ranked at each trial's end, a sweep of n trials costs its driver
# n^2 (5,000 trials: 2.8 s a trial end). The terminal's best line is ranked again at most this often
# (seconds) once a trial has ended, and at the view's last draw; off a terminal only end() prints it.
BEST_EVERY = 5.0
# ... and never more often than this many times its own last duration, so that ranking keeps at most
# about a tenth of the driver however large the sweep (0.2-0.7 s at 5,000 trials).
BEST_SHARE = 10.0


def fmt_duration(seconds: float | None) -> str:
    """'1:02:03', '2:03', or '?' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class LiveView(Callback):
    """Ray Tune callback that draws the sweep's progress (see the module docstring)."""

    def __init__(self, recorder: TrialRecorder, stream: IO[str] | None = None,
                 interactive: bool | None = None, every: int | None = None) -> None:
        spec = recorder.spec
        self.recorder, self.params = recorder, list(spec.space)
        self.num_trials, self.epochs = spec.num_trials, spec.trainer_config().epochs  # the baseline's
        self.metric, self.mode = spec.metric, spec.mode
        self.stream = stream
        self.interactive = interactive
        self.every = every or max(1, math.ceil(spec.longest_epochs() / 3))  # ~3 epoch lines per trial
        self.rows = Rows()  # by record id, with the sums each redraw reads kept up to date
        self.started = time.time()
        self._live: Any = None
        for rec in sorted(recorder.records.values(), key=lambda r: r.get("created_at") or 0.0):
            self._from_record(rec)  # an earlier run's trials: the view covers the whole sweep
        self.best_line, self.best_stale, self.best_at = "", True, -math.inf  # ranked when first drawn
        self.best_cost = 0.0  # seconds the last ranking took

    # --- pickling: Tune saves its callbacks with the experiment; a stream is not picklable -------
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None, "_live": None, "interactive": None}

    @property
    def out(self) -> IO[str]:
        return self.stream or sys.stderr

    @property
    def is_terminal(self) -> bool:
        if self.interactive is None:
            self.interactive = bool(getattr(self.out, "isatty", lambda: False)())
        return self.interactive

    # --- Tune's hooks ------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:  # type: ignore[override]  # Ray passes keywords only
        self.started = time.time()
        if self.is_terminal:
            self._start_live()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        with self.rows.changing(row):
            row.outcome, row.ended_at = statuses.RUNNING, None
        retried, row.retried = row.retried, False
        if not self.is_terminal:
            # where it continues is its newest usable checkpoint's epoch, which its first result says
            how = "Ray's retry" if retried else "resumed"  # this run's retry, or an earlier run's trial
            again = f"  ({how}; recorded up to epoch {row.epoch})" if row.epoch else ""
            self._line(f"trial {row.number}/{self.num_trials} started  {row.trial_id}  "
                       f"{self._params(row)}{again}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed and Ray runs it again from its last checkpoint: said once, with why, on a
        terminal too (else its next "started" line would look like a new trial). One that failed before
        its first epoch ended has none (epoch 0, the untrained network's kNN, writes none): it starts over.
        A checkpoint kept ahead of its last report (the process died as that result was on its way) is
        where it continues (``unrecorded_checkpoint``)."""
        row = self._row(trial)
        tries = f"retry {getattr(trial, 'num_failures', '?')} of {getattr(trial, 'max_failures', '?')}"
        rec = self.recorder.records.get(row.trial_id)
        kept = unrecorded_checkpoint(self.recorder.sweep_dir, rec) if rec else 0
        done = max(row.epoch, kept)  # its last report, or the checkpoint after it
        when = f"after epoch {done}" if done else "before its first epoch ended"
        whence = "from its last checkpoint" if done else "from the start"
        row.retried = True
        self._line(f"trial {row.number}/{self.num_trials} {row.trial_id}  failed {when}: "
                   f"{self.recorder.failure(trial).reason}{unrecorded_note(kept)}; Ray runs it again "
                   f"{whence} ({tries})")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        row = self._row(trial)
        epoch = result.get("epoch")
        new = isinstance(epoch, (int, float)) and epoch > row.epoch and epoch >= 1
        restored = result.get("restored_from_epoch")
        if isinstance(restored, int) and restored != row.restored_from and not self.is_terminal:
            self._line(f"trial {row.number}/{self.num_trials} {row.trial_id}  continues from epoch "
                       f"{restored} (its newest usable checkpoint)")
        row.restored_from = restored if isinstance(restored, int) else row.restored_from
        with self.rows.changing(row):
            if new and not result.get("replayed"):  # a replayed epoch's time is the trial's start
                row.epoch_times.append(float(result.get("time_this_iter_s") or 0.0))
            row.epoch = int(epoch) if isinstance(epoch, (int, float)) else row.epoch
        row.loss = _number(result.get("loss"), row.loss)
        row.knn_top1 = _number(result.get("knn_top1"), row.knn_top1)
        row.collapsing = bool(result.get("collapsed", row.collapsing))  # the trainable's verdict
        note = str(result.get("restore_note") or "")
        if note and note != row.restore_note:  # a damaged checkpoint: it restarted from an earlier epoch
            row.restore_note = note
            self._line(f"trial {row.number}/{self.num_trials} {row.trial_id}  {note}")
        every_nth = row.epoch >= 1 and row.epoch % self.every == 0
        running = result.get("trial_outcome", statuses.RUNNING) == statuses.RUNNING
        if not self.is_terminal and every_nth and running:
            self._line(f"trial {row.trial_id}  epoch {row.epoch}/{row.planned}  {self._metrics(row)}")
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(self._row(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(self._row(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial in self.recorder.closed_late:  # errored without on_trial_error: named with their reason
            self._ended(self._row(trial))
        self.close()  # the last line waits for ``end``: Tune ends its loop alike when it is interrupted

    def end(self, finished: bool) -> None:
        """The view's last line, once ``ablate.ending.fit`` has decided how the sweep ended: done, or
        stopped (a signal, a failed write, an error of Tune's loop) with the trials it left unfinished.
        It counts the records as the summary below it does: as ``fit`` left them (a stopped sweep's
        ``interrupted`` and ``storage_full`` ones, a trial whose last result had ended it closed with
        that outcome), damaged ones included; the view's own rows knew none of that, and said
        "2 unfinished" above the summary's "2 interrupted"."""
        self.close()
        took = fmt_duration(time.time() - self.started)
        what = f"sweep done in {took}" if finished else f"sweep stopped after {took}"
        records = read_records(self.recorder.sweep_dir)
        self._line(f"{what}: {self._counts(records, finished)}; "
                   f"{self.best_text(finished_only=not finished, records=records)}")

    def close(self) -> None:
        """Draw the view a last time and give the terminal back (cursor shown); safe to repeat."""
        if self._live is not None:
            self._live.update(self._render(final=True), refresh=True)
            self._live.stop()
            self._live = None

    # --- state ---------------------------------------------------------------------------------
    def _row(self, trial: Any) -> TrialRow:
        tid = record_id(trial)
        if tid not in self.rows:
            config = getattr(trial, "config", {}) or {}
            self.rows.add(TrialRow(tid, {p: config.get(p) for p in self.params}, len(self.rows) + 1,
                                   self._planned(self.recorder.records.get(tid))))
        return self.rows[tid]

    def _planned(self, rec: dict[str, Any] | None) -> int:
        """A trial's epochs, from its record (the recorder writes it before the view hears of it)."""
        planned = (rec or {}).get("epochs_planned")
        return planned if isinstance(planned, int) and planned > 0 else self.epochs

    def _from_record(self, rec: dict[str, Any]) -> None:
        rows = rec.get("epochs") or []
        row = TrialRow(rec["trial_id"], dict(rec.get("params") or {}), len(self.rows) + 1, self._planned(rec))
        row.epoch = max((r.get("epoch", 0) for r in rows), default=0)
        row.loss = _number(rows[-1].get("loss") if rows else None, None)
        row.knn_top1 = _number(rows[-1].get("knn_top1") if rows else None, None)
        row.outcome, row.reason = str(rec.get("status")), str(rec.get("reason") or "")
        if statuses.is_final(rec.get("status")):
            row.ended_at = float(rec.get("updated_at") or 0.0)
        self.rows.add(row)

    def _ended(self, row: TrialRow) -> None:
        rec = self.recorder.records.get(row.trial_id, {})  # the recorder has written the trial's end
        row.outcome, row.reason = str(rec.get("status") or statuses.COMPLETED), str(rec.get("reason") or "")
        row.collapsing = bool(rec.get("collapsed"))
        with self.rows.changing(row):
            row.ended_at = time.time()
        done = self.rows.ended
        text = (f"trial {row.trial_id}  {row.outcome}  {self._metrics(row)}  epochs {row.epoch}/{row.planned}"
                + (f"  reason: {row.reason}" if row.reason and row.outcome != statuses.COMPLETED else "")
                + f"  [{done}/{self.num_trials} done, ETA {fmt_duration(self.eta())}]")
        if not self.is_terminal or row.outcome in statuses.FAILURES:
            self._line(text)  # on a terminal, only the trials one must look at, once
        self.best_stale = True  # ranked again when next drawn (BEST_EVERY)
        self._refresh()

    def epochs_done(self) -> int:
        return self.rows.epochs_done

    def epochs_planned(self) -> int:
        """Every trial's schedule, less what ended trials will never run."""
        return self.unseen() * self.epochs + self.rows.epochs_planned

    def unseen(self) -> int:
        """Trials not started yet (each planned at the baseline's schedule)."""
        return max(0, self.num_trials - len(self.rows))

    def eta(self) -> float | None:
        """Seconds left: epochs left x measured seconds per epoch, shared among as many trials as
        have run at once, and never less than the longest one trial has left (a trial not started:
        its whole schedule). Shared among the trials running at that moment, the ETA printed as a
        trial ended, before the next one started, was that of one trial at a time: the main job on 2
        CPUs said "ETA 20:41" after its first trial, and took 8:47 in all."""
        left = self.epochs_planned() - self.epochs_done()
        if left <= 0:
            return 0.0
        mean = self.rows.mean_time()
        if mean is None:
            return None
        longest = max(self.rows.longest_left(), self.epochs if self.unseen() else 0)
        return max(left / max(1, self.rows.most_running), longest) * mean

    def best_text(self, finished_only: bool = False, records: list[dict[str, Any]] | None = None) -> str:
        """The best configuration by the one ranking rule, as the summary words it; while no trial
        has finished, the best so far of the running ones (never once the sweep has stopped: then
        that none has finished, not that none has a value, which ``ablate ls`` and the report show
        marked partial). ``records``: those to rank (default: the recorder's)."""
        from reports.ranking import best_point, best_text
        from reports.sweepdir import SweepDir
        from reports.tables import trials_table

        sweep = SweepDir(self.recorder.sweep_dir, self.recorder.spec.as_dict())
        records = list(self.recorder.records.values()) if records is None else records
        best, partial = best_point(trials_table(sweep, records), self.params, self.metric, self.mode)
        if best is None:
            return f"no best: no trial that counts has a {self.metric} measured after training"
        if partial and finished_only:
            return (f"no best yet: no trial that counts has ended with a {self.metric} measured after "
                    "training (unfinished ones are ranked only as partial, in `ablate ls` and the report)")
        return best_text(best, partial, self.params, self.metric, self.mode)

    def drawn_best(self, final: bool = False) -> str:
        """The terminal's best line: ranked again once a trial has ended, at most every BEST_EVERY
        seconds, and at the last draw (``final``)."""
        due = time.monotonic() - self.best_at >= max(BEST_EVERY, BEST_SHARE * self.best_cost)
        if self.best_stale and (final or due):
            start = time.monotonic()
            self.best_line, self.best_stale = self.best_text(), False
            self.best_at = time.monotonic()
            self.best_cost = self.best_at - start
        return self.best_line

    # --- text ------------------------------------------------------------------------------------
    def _params(self, row: TrialRow) -> str:
        return " ".join(f"{k}={fmt_value(v)}" for k, v in row.params.items())

    @staticmethod
    def _metrics(row: TrialRow) -> str:
        loss = f"loss {row.loss:.4f}" if row.loss is not None else "loss –"
        knn = f"kNN top-1 {row.knn_top1:.2f}%" if row.knn_top1 is not None else "kNN top-1 –"
        return f"{loss}  {knn}"

    @staticmethod
    def _counts(records: list[dict[str, Any]], finished: bool) -> str:
        """``2 completed, 1 interrupted``; a stopped sweep's record still ``running`` (one its driver could
        not mark: a full disk) is counted ``unfinished``."""
        counts: dict[str, int] = {}
        for rec in records:
            status = str(rec.get("status"))
            if not finished and status in (statuses.RUNNING, statuses.PENDING):
                status = "unfinished"
            counts[status] = counts.get(status, 0) + 1
        return statuses.describe_counts(counts) or "no trial started"

    def _line(self, text: str) -> None:
        stamp = fmt_duration(time.time() - self.started)
        if self._live is not None:
            self._live.console.print(f"[{stamp}] {text}", markup=False, highlight=False)
        else:
            print(f"[{stamp}] {text}", file=self.out, flush=True)

    # --- the terminal view -----------------------------------------------------------------------
    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.out, force_terminal=True)
        self._live = Live(self._render(), console=console, refresh_per_second=2,
                          get_renderable=self._render, transient=False)
        self._live.start()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _render(self, final: bool = False) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        done = self.rows.ended
        planned = max(1, self.epochs_planned())
        head = Table.grid(padding=(0, 1))
        head.add_row(ProgressBar(total=planned, completed=self.epochs_done(), width=30),
                     Text(f"trials {done}/{self.num_trials}  epochs {self.epochs_done()}/{planned}  "
                          f"elapsed {fmt_duration(time.time() - self.started)}  "
                          f"ETA {fmt_duration(self.eta())}"))
        table = Table(box=None, padding=(0, 1), header_style="bold")
        for name in ["trial", *self.params, "epoch", "loss", "kNN top-1", "outcome"]:
            table.add_column(name, justify="left" if name in ("trial", "outcome") else "right")
        for row in self._shown():
            table.add_row(row.trial_id, *(fmt_value(row.params[p]) for p in self.params),
                          f"{row.epoch}/{row.planned}", _fmt(row.loss, ".4f"), _fmt(row.knn_top1, ".2f"),
                          row.outcome)
        return Group(head, table, Text(self.drawn_best(final)))

    def _shown(self) -> list[TrialRow]:
        return self.rows.running() + self.rows.recent(RECENT)


def _number(value: Any, default: float | None) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)
