"""A failure in a DataLoader's worker processes, with real workers: an image file that changed after the
check before training is named with what is wrong with it; a worker that died is named with its pid and
the signal. torch's own words named neither ("image file is truncated"; "DataLoader worker (pid(s) 123)
exited unexpectedly")."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset, get_worker_info

from tests.helpers import write_image_folder
from trainables.config import DINOConfig
from trainables.data import build_datasets
from trainables.data_workers import BadImageFile, WorkerDied, worker_death
from trainables.dino.loaders import Loader


@pytest.fixture(autouse=True)
def prompt_worker_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch looks for a dead worker each time its result queue stays empty for MP_STATUS_CHECK_INTERVAL
    (5 s, bound as ``_try_get_data``'s default when torch is imported): every 0.2 s here, so a death is
    seen as in use, only sooner (the cases took 5-25 s each)."""
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    monkeypatch.setattr(_MultiProcessingDataLoaderIter._try_get_data, "__defaults__", (0.2,))


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:60])


def to_folder(file: Path) -> None:
    file.unlink()
    file.mkdir()


def to_dangling_link(file: Path) -> None:
    file.unlink()
    file.symlink_to(file.parent / "nowhere.png")


@pytest.mark.parametrize(("change", "problem"), [
    (truncate, "image file is truncated"),
    (to_folder, "a folder, not an image file"),
    (to_dangling_link, "No such file or directory"),
    (Path.unlink, "No such file or directory"),  # deleted between the check and the read
])
def test_an_image_file_that_changed_after_the_check_is_named(tmp_path: Path, change: Any,
                                                              problem: str) -> None:
    root = write_image_folder(tmp_path / "data", n=2)
    train, _ = build_datasets(DINOConfig(dataset="imagefolder", data_path=str(root)))  # checks every file
    bad = root / "train" / "b" / "1.png"
    change(bad)
    # the last image: no worker holds a batch read ahead, which torch's shutdown waits 5 s for
    loader = Loader(train, batch_size=1, num_workers=2, collate_fn=lambda items: len(items))
    with pytest.raises(BadImageFile) as raised:
        list(loader)
    text = str(raised.value)
    assert text.startswith(f"{bad}: no longer a readable image (") and problem in text
    assert "\n" not in text and "Traceback" not in text and "DataLoader worker" not in text


class DiesAt(Dataset):
    """Item 5 ends its worker process: ``how`` is a signal or an exit code."""

    def __init__(self, how: int | signal.Signals) -> None:
        self.how = how

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> int:
        if i == 5 and get_worker_info() is not None:
            if isinstance(self.how, signal.Signals):
                if self.how != signal.SIGKILL:  # as a user's worker dies of it: the process it was
                    signal.signal(self.how, signal.SIG_DFL)  # forked from (a test runner's) may handle it
                os.kill(os.getpid(), self.how)
            os._exit(self.how)
        return i


def raised_in_a_thread(work: Callable[[], object]) -> BaseException | None:
    """What ``work`` raises run as a Ray trial runs: not in the main thread, and without torch's SIGCHLD
    handler, which raises in the main thread only. An earlier test of this process that iterated a
    DataLoader with workers in the main thread installed it for good, and it then raised torch's words
    ("is killed by signal: Bus error") in the main thread, as the test waited (the clean-clone CI)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test
            raised.append(exc)

    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(120)
    finally:
        signal.signal(signal.SIGCHLD, previous)
    return raised[0] if raised else None


def iterate_in_a_thread(loader: Loader) -> BaseException | None:
    return raised_in_a_thread(lambda: list(loader))


@pytest.mark.parametrize(("how", "said"), [
    (signal.SIGKILL, "was killed by SIGKILL; not sent by ablate: a kill -9, or the kernel's OOM killer"),
    (signal.SIGUSR1, "was killed by SIGUSR1"),
    (3, "exited with code 3"),
])
def test_a_worker_that_died_is_named_with_its_pid_and_signal(how: int | signal.Signals, said: str) -> None:
    # plain lists, no tensors: no shared-memory handle whose transfer the death could break first
    # no timeout: a loaded machine starts workers late, and "timed out after 1 seconds" was read as no
    # death (flaky); torch checks its workers every 5 s (MP_STATUS_CHECK_INTERVAL) while it waits
    loader = Loader(DiesAt(how), batch_size=1, num_workers=2, collate_fn=list)
    raised = iterate_in_a_thread(loader)
    assert isinstance(raised, WorkerDied), raised
    death = worker_death(str(raised))
    assert death is not None
    assert str(raised).startswith(f"a data-loading worker (DataLoader, pid {death.pid}) ")
    assert said in str(raised)
    assert death.may_be_oom() == (how == signal.SIGKILL)  # the kernel's OOM killer sends SIGKILL only


@pytest.mark.parametrize(("line", "pid", "name"), [
    ("RuntimeError: DataLoader worker (pid(s) 27778) exited unexpectedly", 27778, ""),  # a Ray trial's thread
    ("RuntimeError: DataLoader worker (pid 24405) is killed by signal: Killed. ", 24405, "SIGKILL"),  # main
    ("trainables.data_workers.WorkerDied: a data-loading worker (DataLoader, pid 7) was killed by SIGBUS; x",
     7, "SIGBUS"),
    ("RuntimeError: CUDA error: an illegal memory access was encountered", None, None),
])
def test_a_worker_death_is_read_from_torchs_words_and_ours(line: str, pid: int | None,
                                                           name: str | None) -> None:
    death = worker_death(line)
    assert (death and (death.pid, death.signal)) == ((pid, name) if pid else None)
    if death:
        assert "WorkerDied" not in death.said and "RuntimeError" not in death.said


def test_the_main_threads_worker_death_is_worded_as_ours() -> None:
    """``ablate train`` trains in the main thread: torch raises from its SIGCHLD handler wherever the trainer
    is (a convolution), outside the loader; ``dead_worker`` words it from torch's text."""
    from trainables.data_workers import dead_worker

    exc = dead_worker(RuntimeError("DataLoader worker (pid 24405) is killed by signal: Killed. "))
    assert str(exc).startswith("a data-loading worker (DataLoader, pid 24405) was killed by SIGKILL; ")
    assert dead_worker(RuntimeError("DefaultCPUAllocator: can't allocate memory")) is None
    assert torch.utils.data.DataLoader in Loader.__mro__


def test_a_death_read_through_the_error_raised_as_it_was_handled() -> None:
    """A worker SIGKILLed as `ablate train` wrote its checkpoint: torch's SIGCHLD handler raised inside
    torch.save's write, which failed again as it closed the file, and the run ended in a traceback of
    "RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos 10516544 vs 10516436"."""
    from trainables.data_workers import dead_worker

    try:
        try:
            raise RuntimeError("DataLoader worker (pid 24405) is killed by signal: Killed. ")
        except RuntimeError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 768 vs 662"
                               ) from None
    except RuntimeError as exc:
        death = dead_worker(exc)
    assert str(death).startswith("a data-loading worker (DataLoader, pid 24405) was killed by SIGKILL; ")


def test_a_persistent_worker_that_died_between_epochs_is_named_as_the_next_epoch_starts() -> None:
    """A persistent worker killed between two epochs (as the checkpoint was written) was found dead as the
    next epoch started, outside the loader's words: "a data-loading worker (DataLoader, pid N) died
    unexpectedly", without the signal, from torch's "exited unexpectedly"."""
    loader = Loader(list(range(8)), batch_size=2, num_workers=2, persistent_workers=True,
                    collate_fn=list)

    def run() -> None:
        list(loader)
        worker = loader._iterator._workers[0]  # type: ignore[union-attr]
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(30)
        list(loader)

    raised = raised_in_a_thread(run)
    assert isinstance(raised, WorkerDied), raised
    assert "was killed by SIGKILL; not sent by ablate" in str(raised)


class Crashes(Dataset):
    """Item 5 crashes its worker process with ``crash``, torch's worker handlers as they are."""

    def __init__(self, crash: signal.Signals) -> None:
        self.crash = crash

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> int:
        if i == 5 and get_worker_info() is not None:
            os.kill(os.getpid(), self.crash)
        return i


@pytest.mark.parametrize("crash", [signal.SIGSEGV, signal.SIGBUS], ids=["SIGSEGV", "SIGBUS"])
def test_a_crashed_worker_is_worded_by_ablate_alone(crash: signal.Signals,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    """torch's worker handler of a crash printed its own line and a NUL byte ("ERROR: Unexpected
    segmentation fault encountered in worker.\\0") on the terminal and in the log before ablate's."""
    raised = iterate_in_a_thread(Loader(Crashes(crash), batch_size=1, num_workers=2,
                                        collate_fn=list))
    assert isinstance(raised, WorkerDied) and f"was killed by {crash.name}" in str(raised), raised
    err = capfd.readouterr().err
    assert "\0" not in err and "encountered in worker" not in err and "bus error" not in err, err


class Seeds(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        return torch.initial_seed()


def test_a_loaders_own_worker_init_still_runs() -> None:
    """``Loader`` starts its workers with ``start_worker``, then the init function it was given."""
    seeds = Loader(Seeds(), batch_size=1, num_workers=1, collate_fn=list,
                   worker_init_fn=lambda worker: torch.manual_seed(1000 + worker))
    assert [b[0] for b in seeds] == [1000, 1000]


def test_a_loader_takes_dataloaders_arguments_by_keyword_only() -> None:
    """``Loader(dataset, 4)``, DataLoader's batch_size in its place, was taken for the worker init
    function: a loader without workers (which never calls it) gave batches of 1, in silence."""
    with pytest.raises(TypeError):
        Loader(list(range(8)), 4, collate_fn=list)
    assert [len(b) for b in Loader(list(range(8)), batch_size=4, collate_fn=list)] == [4, 4]
