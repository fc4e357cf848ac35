"""The statuses of a trial: every name, which are final, which count, which are collapses.

One vocabulary for the trainable's outcomes (``trial_outcome`` in each result), ablate's trial
records, the live view, ``ablate ls``, the end-of-sweep summary and the reports. Everything that
asks "did this trial end?", "does it count?" or "is it a collapse?" imports the answer from here.

    from sweep_format.statuses import FINAL, RANKED, COLLAPSES
    record["status"] in FINAL          # ended for good: a resume keeps it
"""

from __future__ import annotations

# --- what a trainable ends a trial with (``trial_outcome``; ``running`` while it trains) ------------
RUNNING = "running"
COMPLETED = "completed"  # ran its schedule
FLAGGED = "flagged"  # ran its schedule; the collapse condition held at the last epoch, < patience epochs
COLLAPSED = "collapsed"  # stopped by the collapse rule (paper Fig. 7) after ``stop.patience`` epochs
DIVERGED = "diverged"  # stopped: the loss went non-finite
OOM = "oom"  # stopped: out of memory (peak and cap in the reason)
STORAGE_FULL = "storage_full"  # its checkpoint could not be written (disk full, read-only): the sweep stops
ERRORED = "errored"  # its inputs unusable (a ConfigError: at once), or an exception after Ray's retries
# --- what the sweep adds -----------------------------------------------------------------------------
PENDING = "pending"  # created, not started
STOPPED_EARLY = "stopped early"  # a scheduler (ASHA) ended it before its last epoch
INTERRUPTED = "interrupted"  # the sweep stopped (Ctrl-C, SIGTERM, a full disk) while it was unfinished
DAMAGED = "damaged"  # its record cannot be read

OUTCOMES = (COMPLETED, FLAGGED, COLLAPSED, DIVERGED, OOM, STORAGE_FULL, ERRORED)
# Every status, in the order listings and reports show them.
ORDER = (COMPLETED, FLAGGED, STOPPED_EARLY, COLLAPSED, DIVERGED, OOM, ERRORED, STORAGE_FULL, INTERRUPTED,
         RUNNING, PENDING, DAMAGED)
# Ended for good: the run never rewrites these, and `ablate resume` keeps them (errored ones, and
# with --retry oom or diverged ones, are run again).
FINAL = (COMPLETED, FLAGGED, COLLAPSED, DIVERGED, OOM, STOPPED_EARLY, ERRORED)
# Resumed by default besides every status that is not final; RETRYABLE only when asked.
RESUMED = (ERRORED,)
RETRYABLE = (OOM, DIVERGED)
# Ran their schedule or were stopped for cause: the trials whose metric counts (reports/ranking.py).
RANKED = (COMPLETED, FLAGGED, COLLAPSED, DIVERGED)
# While no trial is RANKED, the trials a partial ranking counts: those on their way (running, or stopped
# by a signal) and those a scheduler stopped. A trial that failed (out of memory, errored, a full disk)
# is never a configuration's best, however far it trained.
PROVISIONAL = (STOPPED_EARLY, INTERRUPTED, RUNNING)
# Ended with a value that says something of the trial's setting: the search (the Optuna study) is told
# it. The ranked ones, and a trial a scheduler stopped at a rung (measured there). Out of memory,
# errored or a full disk say nothing of the setting's quality (Optuna: a failed trial).
INFORMATIVE = (*RANKED, STOPPED_EARLY)
# How a trainable ends a trial before it trained (its inputs unusable; out of memory while its data or
# models were built): one row with no epoch (trainables/trial.py, ``ended_at_start``), which the
# driver's record takes as the trial's status (ablate/recorder.py, ablate/records.py).
AT_START = (ERRORED, OOM)
# The collapse verdict of the stop rule (trainables/stop_rules.py), decided in the trainable.
COLLAPSES = (COLLAPSED, FLAGGED)
# Trials that failed to train: each is named once, with its reason, in the live view and the summary.
FAILURES = (COLLAPSED, DIVERGED, OOM, ERRORED, STORAGE_FULL)
# Listed by the report's Trials table however many trials it leaves out: the failures and the records
# that cannot be read, each with its reason (reports/render.py).
LISTED_ALWAYS = (*FAILURES, DAMAGED)


def is_final(status: str | None) -> bool:
    return status in FINAL


def is_unfinished(status: str | None) -> bool:
    """Neither ended for good nor unreadable: running, pending, interrupted (a record ``mark_interrupted``
    and ``ablate resume`` act on)."""
    return status not in FINAL and status != DAMAGED


def resumed(status: str | None, retry: tuple[str, ...] = ()) -> bool:
    """Whether `ablate resume` runs a trial of this status (again): every unfinished one, the
    errored ones, and the ``retry`` statuses (a subset of RETRYABLE). Never a damaged record: nothing
    is read from it (its setting runs as a new trial where no other record holds it)."""
    return is_unfinished(status) or status in RESUMED or status in retry


def describe_counts(counts: dict[str, int]) -> str:
    """``3 completed, 2 collapsed`` in ``ORDER`` (statuses it does not know last), "" when empty."""
    order = [*ORDER, *sorted(s for s in counts if s not in ORDER)]
    return ", ".join(f"{int(counts[s])} {s}" for s in order if counts.get(s))
