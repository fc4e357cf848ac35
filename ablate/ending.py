"""How a sweep's run ends when it does not finish: a signal, or a write that fails for lack of space.

- **Signals.** Ctrl-C (SIGINT), SIGTERM (``timeout``, Slurm, Kubernetes) and SIGHUP (a closed
  terminal) all end the sweep the same way: Tune stops its trials, every unfinished record becomes
  ``interrupted`` with its last epoch, the resume hint is printed, and the exit code says which
  signal it was (130, 143, 129); a signal the caller ignores stays ignored (``nohup``). A second
  signal during the shutdown ends it sooner, and still leaves no record ``running``. SIGTERM and
  SIGHUP are turned into the SIGINT that Tune handles; the handlers are installed again after
  ``ray.init``, which puts its own (aborting) SIGTERM handler in the driver.
- **Storage.** A write that fails for lack of space or permission (a trial's checkpoint, a record,
  Optuna's SQLite, Ray's own files) stops the sweep with one line naming the sweep folder and the
  error (``StorageFull``, exit 2); unfinished records become ``interrupted`` (the trial that found
  the disk full: ``storage_full``), so ``ablate resume`` continues them once there is space. The
  records are written with the space a small reserve file (``layout.RESERVE_FILE``) gives back.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ablate.errors import STORAGE_ERRNOS, StorageFull
from ablate.records import first_sentences, mark_interrupted, unstarted_trials
from sweep_format import statuses
from sweep_format.layout import RAY_LOG, RESERVE_FILE, TRIALS_DIR
from sweep_format.records import read_records
from sweep_format.text import plural, shell_word
from trainables.storage_errors import code_in, remedy, write_failure

if TYPE_CHECKING:
    from ablate.live import LiveView
    from ablate.sweep_spec import SweepSpec

EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
HANDLED = (signal.SIGTERM, signal.SIGHUP)
RESERVE_BYTES = 1 << 20


class SweepInterrupted(Exception):
    """The sweep stopped before its end (a signal); records are marked, ``ablate resume`` continues."""

    # how the driver's last line (summary.resume_hint) says the sweep ended: as its unfinished records say
    ended = statuses.INTERRUPTED

    def __init__(self, sweep_dir: Path, signum: int = signal.SIGINT) -> None:
        super().__init__(f"{self.ended}; continue with `ablate resume {shell_word(sweep_dir)}`")
        self.sweep_dir, self.signum = sweep_dir, signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 130)


class SweepStopped(SweepInterrupted):
    """Tune's loop itself raised (an error of Ray's, or of a callback; a trial's own errors end that
    trial): unfinished records are marked ``interrupted`` with it, ``ablate resume`` continues, exit 1.
    Nobody interrupted it: the words say it stopped on an error (the record status stays ``interrupted``)."""

    ended = "stopped on an error"

    def __init__(self, sweep_dir: Path, reason: str) -> None:
        super().__init__(sweep_dir)
        self.reason = reason

    @property
    def exit_code(self) -> int:
        return 1


class SignalInterrupt(KeyboardInterrupt):
    """SIGTERM or SIGHUP outside Tune's loop (before the sweep started, or while it is torn down)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_of(exc: KeyboardInterrupt) -> int:
    """The signal behind an interrupt: SIGINT for Ctrl-C, else the SignalInterrupt's."""
    return int(getattr(exc, "signum", signal.SIGINT))


def interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C, SIGTERM or SIGHUP behind ``exc``: itself, or the direct cause of an error it became.
    One that lands in a class body being imported (``from ray import tune`` as a sweep starts) is
    re-raised by Python 3.11 as ``RuntimeError: Error calling __set_name__ ...``: a traceback where
    the user had pressed Ctrl-C."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return None


def exit_code(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return EXIT_CODES.get(signal_of(exc), 130)


class Signals:
    """SIGTERM and SIGHUP as Ctrl-C, for as long as the ``with`` block runs; ``received`` says which
    signal came first (None: none, or only Ctrl-C, which Tune handles itself)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)

    def install(self) -> None:
        """(Again) after ``ray.init``: Ray's driver installs a SIGTERM handler that aborts. A signal
        the caller ignores stays ignored: ``nohup ablate run ... &`` survives a closed terminal."""
        for signum in HANDLED:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue
            previous = signal.signal(signum, self._handle)
            self.saved.setdefault(signum, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signum
        sigint = signal.getsignal(signal.SIGINT)
        # Tune's loop is not running: Python's own Ctrl-C handler, or none at all (a shell starts a
        # script's background job, `ablate run ... &`, with SIGINT ignored, and SIGTERM did nothing)
        if not callable(sigint) or sigint is signal.default_int_handler:
            raise SignalInterrupt(signum)
        signal.raise_signal(signal.SIGINT)  # Tune's own handler: it stops the trials

    @property
    def signum(self) -> int:
        return self.received or signal.SIGINT


def keep_interrupts() -> None:
    """An interrupt (Ctrl-C, or SIGTERM and SIGHUP as one) that Python raises inside a callback whose
    errors it ignores is delivered again, without a traceback. Python raises a signal's exception
    wherever the main thread is, and inside a weakref's callback or an object's ``__del__`` (matplotlib
    runs thousands while the report is drawn) it printed "Exception ignored in ... KeyboardInterrupt"
    with a traceback, and ablate went on as if no signal had come (1 in 4 Ctrl-Cs during the report).
    Other exceptions there are printed as before. For the whole process: ``ablate.cli.main``."""
    previous = sys.unraisablehook
    if getattr(previous, "keeps_interrupts", False):  # installed already
        return

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        if not isinstance(exc, KeyboardInterrupt):
            previous(unraisable)
            return
        # from another thread, once the hook has returned: raised in the hook, it is ignored again
        # (threading.Thread's start() waits for the thread, so its raise landed there)
        _thread.start_new_thread(interrupt_again, (signal_of(exc),))

    hook.keeps_interrupts = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def interrupt_again(signum: int, after: float = 0.05) -> None:
    time.sleep(after)
    _thread.interrupt_main(signal.Signals(signum))


def release_logging_locks() -> int:
    """Give back the logging locks an interrupt left held by this thread; how many it gave back.

    Python 3.11's logging takes its locks as ``_acquireLock()`` (or ``handler.acquire()``) and only
    then enters the ``try`` whose ``finally`` releases them: a Ctrl-C (or SIGTERM, SIGHUP as one)
    raised between the two leaves the lock held by the main thread for good (7 % of interrupts of a
    loop creating loggers, as imports and ``ray.init`` do in a sweep's first seconds). The main thread
    takes it again freely (it is re-entrant), but any other thread that logs waits for ever: Ray's
    stop thread did, and the exit waited on it. Called where an interrupt has unwound the main thread
    to code that is not inside logging, so whatever lock it still holds there is one left behind.
    """
    if threading.current_thread() is not threading.main_thread():
        return 0
    handlers = (ref() for ref in list(getattr(logging, "_handlerList", [])))
    locks = [getattr(logging, "_lock", None), *(getattr(h, "lock", None) for h in handlers if h is not None)]
    released = 0
    for lock in locks:
        owned = getattr(lock, "_is_owned", None)  # an RLock's: whether this thread holds it
        if lock is None or owned is None or not owned():
            continue
        while owned():
            lock.release()
        released += 1
    return released


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No signal interrupts what runs inside (writing the records of an interrupted sweep)."""
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, *HANDLED)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal that comes while what runs inside runs is delivered as it ends, not lost (``quiet``
    drops it): a line printed and the note that it was printed happen both, or neither. For the main
    thread, where Python runs its signal handlers."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *HANDLED})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class _TuneInterrupt(logging.Filter):
    """Ray handles SIGINT inside ``tuner.fit()`` and only logs it: this filter notices that log line
    (the sweep was interrupted) and drops Ray's ``Tuner.restore(...)`` hint (ablate says
    ``ablate resume DIR`` instead)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Stop signal received" in message:
            self.seen = True
        return "Tuner.restore" not in message and "Resume experiment with" not in message


def fit(tuner: Any, sweep_dir: Path, spec: SweepSpec, signals: Signals, view: LiveView | None = None) -> None:
    """``tuner.fit()`` and how it ended: normally; interrupted by a signal (records marked,
    ``SweepInterrupted``); stopped by a failed write (records marked, ``StorageFull``); stopped by
    an error Tune's loop raised (records marked, ``SweepStopped``: its one line on stderr, its
    traceback with Ray's own log lines); or ended with planned trials that have no record (also
    ``SweepStopped``: Tune ended without them). The one place that decides it: the live ``view`` says
    "done" only when it returns (Tune ends its loop the same way when a Ctrl-C stops it)."""
    finished = False
    try:
        run_to_end(tuner, sweep_dir, spec, signals)
        finished = True
    finally:
        if view is not None:
            with quiet():  # the decided ending stays the one raised
                view.end(finished)


def run_to_end(tuner: Any, sweep_dir: Path, spec: SweepSpec, signals: Signals) -> None:
    total = spec.num_trials
    watcher = _TuneInterrupt()
    logger = logging.getLogger("ray.tune.tune")
    logger.addFilter(watcher)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        tuner.fit()
    except BaseException as exc:
        failure = failed_write(exc)
        if failure is not None:
            raise stopped_for_storage(sweep_dir, total, failure) from None
        # a second signal, or Ray torn down by the first (Tune logged that it stops)
        if isinstance(exc, KeyboardInterrupt) or signals.received or watcher.seen:
            with quiet():
                mark_interrupted(sweep_dir, cause=signal_cause(signals))
            raise SweepInterrupted(sweep_dir, signals.signum) from None
        if not isinstance(exc, Exception):
            raise
        raise stopped_by_error(sweep_dir, exc) from None
    finally:
        logger.removeFilter(watcher)
        # Tune leaves its SIGINT handler in place when the fit ends: a Ctrl-C in Ray's shutdown or the
        # report, and a SIGTERM or SIGHUP (Signals hands them to it), only set Tune's flag, and the
        # driver wrote its report and exited 0
        signal.signal(signal.SIGINT, sigint)
    # Ray's log line, or (should a Ray version word it differently) trials left unfinished.
    unfinished = [r for r in read_records(sweep_dir) if statuses.is_unfinished(r.get("status"))]
    if watcher.seen or unfinished or signals.received:
        with quiet():
            mark_interrupted(sweep_dir, cause=signal_cause(signals))
        raise SweepInterrupted(sweep_dir, signals.signum)
    # a grid's or an ablation's plan is exact; an Optuna sweep's is its asks, and a setting asked for
    # again is not run again (ablate.study), so fewer records than num_samples is no sign of a loss
    if spec.search.algorithm != "optuna" and (never := unstarted_trials(spec, read_records(sweep_dir))):
        raise never_started(sweep_dir, never, total)


def never_started(sweep_dir: Path, never: int, total: int) -> SweepStopped:
    """Tune's loop ended normally, yet ``never`` of the ``total`` planned trials have no record: Tune
    ended them before they started without telling the callbacks (the recorder closes the errored ones
    it can see, ``recorder.errored_unheard``). Never "sweep done" with a trial that did not run."""
    reason = (f"{never} of its {total} planned {plural(total, 'trial')} never started (Ray ended "
              f"{'it' if never == 1 else 'them'} without a word to ablate; {RAY_LOG} may say why)")
    print(f"ablate: the sweep stopped: {reason}", file=sys.stderr)
    return SweepStopped(sweep_dir, reason)


def stopped_by_error(sweep_dir: Path, exc: Exception) -> SweepStopped:
    """Tune's loop raised ``exc`` (Ray's memory monitor killing a trial's actor as Tune set it up
    ended ``tuner.fit()`` in a RuntimeError): the records it left ``running`` would say so for good."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    reason = f"{type(exc).__name__}: {first_sentences(text)}" if text else type(exc).__name__
    logging.getLogger("ray.tune").error("ablate: the sweep stopped", exc_info=exc)  # ray.log, or --verbose
    with quiet():
        mark_interrupted(sweep_dir, cause=f"the sweep stopped: {reason}")
    print(f"ablate: the sweep stopped: Ray's loop raised {reason}", file=sys.stderr)
    return SweepStopped(sweep_dir, reason)


def signal_cause(signals: Signals) -> str:
    return f"{signal.Signals(signals.received).name} received" if signals.received else ""


def failed_write(exc: BaseException | None) -> str | None:
    """The write for lack of space or permission behind ``exc``, if any: ablate's ``StorageFull``
    (a record, Optuna's study, a trial's ``storage_full`` outcome) or Ray's own ``OSError``. Ray
    re-raises an exception of a callback as a ``TuneError`` holding only its text, so the chain
    is followed, and the text is searched for ablate's own line."""
    while exc is not None:
        if isinstance(exc, StorageFull):
            return str(exc)
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return write_failure(exc)
        for line in str(exc).splitlines():  # a StorageFull raised in a callback, as Ray's text
            if "StorageFull: " in line:
                return line.split("StorageFull: ", 1)[1]
        exc = exc.__cause__ or exc.__context__
    return None


def stopped_for_storage(sweep_dir: Path, total: int, failure: str) -> StorageFull:
    """The one line of a sweep stopped by a failed write: the path and errno, what is kept, how to go on."""
    free_reserve(sweep_dir)
    with contextlib.suppress(OSError), quiet():  # with no space at all, the records stay as last written
        mark_interrupted(sweep_dir, cause=f"stopped: {failure}")
    done = sum(statuses.is_final(r.get("status")) for r in read_records(sweep_dir))
    return StorageFull(f"{failure}; the sweep stopped: {done} of {total} trials finished; the sweep folder "
                       f"{sweep_dir} keeps the trial records and each unfinished trial's last checkpoint; "
                       f"{remedy(code_in(failure))}, then `ablate resume {shell_word(sweep_dir)}`")


def keep_reserve(sweep_dir: Path) -> None:
    """A small file in ``trials/`` whose space ``free_reserve`` gives back to write the final records."""
    with contextlib.suppress(OSError):
        (sweep_dir / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        reserve = sweep_dir / TRIALS_DIR / RESERVE_FILE
        if not reserve.is_file() or reserve.stat().st_size < RESERVE_BYTES:
            with open(reserve, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
                f.flush()
                os.fsync(f.fileno())


def free_reserve(sweep_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (sweep_dir / TRIALS_DIR / RESERVE_FILE).unlink()
