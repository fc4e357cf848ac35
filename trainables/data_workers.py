"""What a failure in a DataLoader's worker processes says: which image file did not read and why, or
which worker died and by what signal. torch's own words name neither.

An image folder's files are read in ``num_workers`` processes (DataLoader workers). torch raises a
worker's exception again in the trainer as ``Caught OSError in DataLoader worker process 0`` with the
worker's traceback as its text (``image file is truncated``: no file named), and a worker that died
(the kernel's OOM killer, a kill -9, a crash) as ``DataLoader worker (pid(s) 123) exited unexpectedly``
(a Ray trial, whose training thread is not the main thread) or ``... is killed by signal: Killed.``
(``ablate train``). Iterating a ``trainables.dino.loaders.Loader`` raises instead:

- ``BadImageFile`` (a ``ConfigError``): ``PATH: no longer a readable image (PROBLEM); ...``, the problem
  as the check before training words it (``trainables.image_check.image_problem``): the folder was
  checked at the start, so the file changed as the run read it.
- ``WorkerDied`` (a ``RuntimeError``): ``a data-loading worker (DataLoader, pid N) was killed by
  SIGKILL``; the driver of a sweep reads the pid back (``worker_death``) and weighs the kernel's OOM
  kills (``ablate.records.kernel_kill``): a SIGKILL the kernel's OOM killer sent is ``oom``; ``ablate
  train`` says it in the same words (``ablate.commands.train.death_reason``).

    worker_death("a data-loading worker (DataLoader, pid 123) was killed by SIGKILL")  # Death(123, ...)
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from typing import Any, NamedTuple

from trainables.errors import ConfigError

# torch's words of a worker that died: "DataLoader worker (pid(s) 123, 124) exited unexpectedly", or
# in the main thread "DataLoader worker (pid 123) is killed by signal: Killed." / "exited unexpectedly
# with exit code 1."
TORCH_DIED = re.compile(r"DataLoader worker \(pids?(?:\(s\))? (\d+)[^)]*\) (?:is killed by signal: ([^.]+)\."
                        r"|exited unexpectedly(?: with exit code (-?\d+))?)")
# ours (``WorkerDied``): "a data-loading worker (DataLoader, pid 123) was killed by SIGKILL"
OURS_DIED = re.compile(r"a data-loading worker \(DataLoader, pid (\d+)\) (?:was killed by (SIG\w+)|exited)")
# what torch says a worker's exception was: its traceback's last line is ``module.Type: text``
WORKER_RAISED = re.compile(r"^Caught \w+ in DataLoader worker process \d+")


class BadImageFile(ConfigError):
    """An image file that no longer reads (truncated, replaced by a folder, deleted since the start)."""


class WorkerDied(RuntimeError):
    """A DataLoader worker process died (a signal, or an exit code) while the trainer waited for it."""


class Death(NamedTuple):
    """A DataLoader worker's death, as ``worker_death`` reads it from a line: its pid, the signal's name
    (``SIGKILL``; "" where the line does not say), and the line from its own words on."""

    pid: int
    signal: str
    said: str

    def may_be_oom(self) -> bool:
        """The kernel's OOM killer sends SIGKILL: a worker that a signal of another name killed, or that
        exited with a code, was not its."""
        return self.signal in ("", "SIGKILL") and "exited with" not in self.said


def worker_death(line: str) -> Death | None:
    """The DataLoader worker death ``line`` tells (``WorkerDied``'s words, or torch's), None if none."""
    if found := OURS_DIED.search(line):
        return Death(int(found[1]), found[2] or "", line[found.start():])
    if found := TORCH_DIED.search(line):
        return Death(int(found[1]), signal_name(found[2] or ""), line[found.start():])
    return None


def signal_name(description: str) -> str:
    """``SIGKILL`` of torch's ``Killed`` (``strsignal``'s words), "" when none matches."""
    return next((s.name for s in signal.Signals if signal.strsignal(s) == description), "")


def died(pid: int, exitcode: int | None) -> WorkerDied:
    """The ``WorkerDied`` of worker ``pid``: killed by a signal (a negative ``exitcode``), exited with a
    code, or (unknown) died."""
    what = f"a data-loading worker (DataLoader, pid {pid})"
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.Signals._value2member_map_ else \
            f"signal {-exitcode}"
        note = ("; not sent by ablate: a kill -9, or the kernel's OOM killer (lower num_workers or "
                "batch_size where memory is short)") if name == "SIGKILL" else ""
        if name == "SIGBUS":  # torch's own advice: the batches pass through shared memory
            note = "; out of shared memory (/dev/shm) likely: enlarge it or lower num_workers"
        return WorkerDied(f"{what} was killed by {name}{note}")
    if exitcode is not None:
        return WorkerDied(f"{what} exited with code {exitcode}; its error is lost with it: num_workers 0 "
                          "reads the data in the trainer, where an error shows")
    return WorkerDied(f"{what} died unexpectedly")


# The signals of a crash that torch's worker handler words on its own ("ERROR: Unexpected segmentation
# fault encountered in worker.", written with the C string's NUL byte) before the worker dies of them.
CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE)


def start_worker(worker_id: int, then: Callable[[int], None] | None = None) -> None:
    """A DataLoader worker's ``worker_init_fn``: its crash signals die by the default action, without
    torch's handler, whose line and NUL byte reached the terminal and the log before ablate's own
    (``died``: which worker, which signal, what to do); then ``then``, the loader's own init function."""
    for crash in CRASH_SIGNALS:
        signal.signal(crash, signal.SIG_DFL)
    if then is not None:
        then(worker_id)


def raised_text(exc: BaseException) -> str:
    """The text of the exception a worker raised (the last line of the traceback torch's message quotes,
    without its type), or ``exc``'s own text."""
    text = str(exc).strip()
    if not WORKER_RAISED.match(text):
        return text
    last = text.splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last


def dead_worker(exc: RuntimeError, batches: Any = None) -> WorkerDied | None:
    """``WorkerDied`` for torch's error of a worker that died, with its signal (its process's exit code,
    where ``batches``, torch's iterator, holds it; else torch's words), ``exc`` itself when it is a
    ``WorkerDied`` already (the ``Loader``'s), None for any other error. In the main thread torch raises
    it from its SIGCHLD handler, wherever the trainer is (a convolution), or the loader as it waits for
    a batch. An error raised as torch's was handled is read through to it: torch.save, interrupted in
    its write by the handler, fails again as it closes the file ("[enforce fail at
    inline_container.cc:672] . unexpected pos"), the worker's death its context."""
    chain: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    if ours := next((e for e in chain if isinstance(e, WorkerDied)), None):
        return ours
    found = next((f for e in chain if (f := TORCH_DIED.search(str(e)))), None)
    if found is None:
        return None
    pid = int(found[1])
    codes = {w.pid: w.exitcode for w in getattr(batches, "_workers", [])}  # torch's worker processes
    code = codes.get(pid)
    if code is None and found[2]:
        code = -signal.Signals[name].value if (name := signal_name(found[2])) else None
    if code is None and found[3]:
        code = int(found[3])
    return died(pid, code)


def bad_image(path: str, exc: BaseException) -> BadImageFile:
    """The ``BadImageFile`` of ``path``, which a worker could not read (``exc``) though it decoded when
    the run started (``checked_image_folder``)."""
    from trainables.image_check import image_problem  # PIL: not for the driver's reading of failures
    problem = image_problem(path)[0] or str(exc).split("\n", 1)[0] or type(exc).__name__
    return BadImageFile(f"{path}: no longer a readable image ({problem}); it decoded when the run started, "
                        "so the image folder changed as the run read it: restore the file (a resumed run "
                        "checks that it reads the same images)")
