"""A failed data-parallel run's texts: each worker's whole error, and the one line a record or the CLI shows;
a rank's own out of memory, which ends the trial `oom` as in one process.

Ray Train's own message keeps the first and last 500 characters of each worker's error; its last line
was a fragment of the middle of a long one ("word52 word53 ..."), and the rest was in no file."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
import torch
from ray.train.v2.api.exceptions import WorkerGroupError

from sweep_format.text import LINE_MAX
from tests.helpers import TINY_TRAINER
from trainables import ddp_trial
from trainables.ddp_trial import last_line, one_line, whole_error

LONG = "the first sentence of a worker's error. " + " ".join(f"word{i}" for i in range(150)) + " END"


def group_error(failures: dict[int, Exception]) -> WorkerGroupError:
    """As Ray Train builds it: its message holds each worker's traceback cut to 1,000 characters; the
    failures are the workers' exceptions without their tracebacks."""
    from ray.train.v2._internal.execution.worker_group.poll import _truncate_error_string

    trace = "\n".join(f'[Rank {rank} Error Snippet]:\nTraceback (most recent call last):\n  File "loop.py", '
                      f"line 3, in loop\n{type(e).__name__}: {e}" for rank, e in sorted(failures.items()))
    return WorkerGroupError(_truncate_error_string(trace), failures)


def test_the_whole_text_of_every_worker_and_the_line_of_the_first() -> None:
    exc = group_error({1: ValueError(LONG), 0: ValueError("rank zero")})
    assert "Output truncated" in str(exc) and LONG not in str(exc)  # what Ray keeps
    whole = whole_error(exc)
    assert whole.startswith(str(exc))  # Ray's text: the tracebacks
    assert whole.index("[rank 0] ValueError: rank zero") < whole.index(f"[rank 1] ValueError: {LONG}")
    assert last_line(exc) == "rank 0: ValueError: rank zero"  # the exception's own line, with its type
    assert one_line(exc, "DIR/ray.log") == "rank 0: ValueError: rank zero (the whole error: DIR/ray.log)"


def test_a_long_line_is_cut_at_a_word_and_names_where_the_whole_text_is() -> None:
    exc = group_error({0: ValueError(LONG)})
    line = one_line(exc, "DIR/ray.log")
    shown, note = line.split("… (the whole error: ")
    full = f"rank 0: ValueError: {LONG}"
    assert note == "DIR/ray.log)" and len(shown) < LINE_MAX and full.startswith(shown)
    assert full[len(shown)] == " "  # cut after a whole word, not inside one
    assert one_line(exc) == shown + "…"  # nowhere to name: the line alone


def test_a_sweep_trials_error_holds_each_workers_whole_text_and_ends_in_its_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """What the Tune trial raises: Ray writes its text into the trial's error file, which the recorder
    keeps beside the record (trials/<id>.error.txt); the record's reason is its last line."""
    from ray import train, tune

    class Fails:
        def fit(self) -> None:
            raise group_error({1: ValueError(LONG), 0: ValueError("rank zero")})

    class Context:
        def get_trial_dir(self) -> str:
            return str(tmp_path / "tune" / "trial_1")

    assert issubclass(WorkerGroupError, train.TrainingFailedError)
    monkeypatch.setattr(ddp_trial, "torch_trainer", lambda *args, **kwargs: Fails())
    monkeypatch.setattr(tune, "get_context", lambda: Context())
    monkeypatch.setattr("ray.tune.integration.ray_train.TuneReportCallback", lambda: None)
    with pytest.raises(RuntimeError) as raised:
        ddp_trial.dino_train_trial({}, workers=2, cpu=1.0, gpu=0.0, storage_path=str(tmp_path / "tune"))
    text = str(raised.value)
    assert text.splitlines()[-1] == "the data-parallel run of 2 workers failed: rank 0: ValueError: rank zero"
    assert "[Rank 0 Error Snippet]:\nTraceback" in text and f"[rank 1] ValueError: {LONG}" in text
    assert cast(Any, raised.value).__cause__ is None  # not Ray's cut copy of the same texts again


def test_a_long_error_of_one_line_without_ranks_still_names_where_the_whole_text_is() -> None:
    """Cut to LINE_MAX, the line is not the whole text even when the error is that one line."""
    exc = RuntimeError(LONG)
    line = one_line(exc, "DIR/ray.log")
    assert line.endswith("… (the whole error: DIR/ray.log)") and LONG.startswith(line.split("…")[0])
    assert one_line(RuntimeError("short"), "DIR/ray.log") == "short"  # the whole text: nothing to name


# --- out of memory on one rank ------------------------------------------------------------------------
class HostOutOfMemoryTrainer:
    """Stands in for DINOTrainer: the host cannot give a tensor of its first epoch its memory."""

    is_main_process = False  # rank 1

    def __init__(self, cfg: Any) -> None:
        self.cfg, self.epoch, self.device = cfg, 0, torch.device("cpu")

    def run(self) -> Any:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 274877906944 bytes. Error code 12")
        yield  # a generator, like the real run()


class BuildOutOfMemoryTrainer:
    """Stands in for DINOTrainer: NumPy cannot allocate its in-memory dataset as it is built."""

    def __init__(self, cfg: Any) -> None:
        raise MemoryError("Unable to allocate 3.00 GiB for an array with shape (50000, 3, 96, 96)")


def one_process_row(monkeypatch: pytest.MonkeyPatch, trainer: type) -> dict[str, Any]:
    """The row a one-process trial with ``trainer`` reports (trainables.tune_trial)."""
    import ray
    from ray import tune

    from trainables import tune_trial

    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    monkeypatch.setattr(ray, "get_runtime_context", lambda: SimpleNamespace(get_assigned_resources=dict))
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda metrics, checkpoint=None: reports.append(metrics))
    monkeypatch.setattr(tune_trial, "placement", dict)
    monkeypatch.setattr(tune_trial, "DINOTrainer", trainer)
    tune_trial.dino_trainable(dict(TINY_TRAINER))
    [row] = reports
    return row


@pytest.mark.parametrize("trainer", [HostOutOfMemoryTrainer, BuildOutOfMemoryTrainer])
def test_a_rank_out_of_memory_raises_the_one_process_row_instead_of_reporting(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any, trainer: type) -> None:
    """In its epochs or as its trainer is built, a rank that runs out of memory alone raises its oom row:
    it reported it (a barrier) and stopped, while its peers waited in the step's all-reduce for gloo's
    timeout; or it raised the allocation error, and Ray retried the trial to `errored`."""
    from ray import train

    expected = one_process_row(monkeypatch, trainer)
    reported: list[dict[str, Any]] = []
    monkeypatch.setattr(train, "report", lambda metrics, **kwargs: reported.append(metrics))
    monkeypatch.setattr(ddp_trial, "DINOTrainer", trainer)
    monkeypatch.setattr(ddp_trial, "placement", lambda: {"node_ip": "10.0.0.2", "pid": 7, "gpu_ids": ""})
    with pytest.raises(ddp_trial.RankEnded) as raised:
        ddp_trial.dino_worker_loop({**TINY_TRAINER, ddp_trial.TRAIN_DIR: str(tmp_path)})
    row = raised.value.row
    assert reported == []  # nothing a peer would wait for
    assert row["trial_outcome"] == "oom" and row["stop_reason"] == expected["stop_reason"]
    assert row.get("epoch") == expected.get("epoch")  # epoch 0 of a fresh trial; none as it is built
    assert row["workers"] == 1 and row["pid"] == 7  # this rank's (the test's world of one)


def test_the_trial_reports_the_oom_row_a_rank_raised_and_not_its_peers_errors(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Ray Train ends the group on rank 1's raise; rank 0's collective fails with it. The trial reports
    rank 1's row (Ray hands it over pickled) and ends: no exception, so Ray does not retry it."""
    import pickle

    from ray import tune

    row = {"trial_outcome": "oom", "stop_reason": "out of host memory (MemoryError); lower batch_size",
           "epoch": 2}
    peer = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer")
    ended = pickle.loads(pickle.dumps(ddp_trial.RankEnded(row)))

    class Fails:
        def fit(self) -> None:
            raise group_error({0: peer, 1: ended})

    class Context:
        def get_trial_dir(self) -> str:
            return str(tmp_path / "tune" / "trial_1")

    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(ddp_trial, "torch_trainer", lambda *args, **kwargs: Fails())
    monkeypatch.setattr(tune, "get_context", lambda: Context())
    monkeypatch.setattr(tune, "report", lambda metrics, checkpoint=None: reports.append(metrics))
    monkeypatch.setattr("ray.tune.integration.ray_train.TuneReportCallback", lambda: None)
    ddp_trial.dino_train_trial({}, workers=2, cpu=1.0, gpu=0.0, storage_path=str(tmp_path / "tune"))
    assert reports == [row]


def test_only_rank_0_names_its_node_and_pid_as_rank_0s() -> None:
    """Rank 0's rows are what Tune gets (it overwrites node_ip and pid with its trial's), so they keep
    rank 0's own; a row another rank raises to end the trial names that rank, not its pid as rank 0's."""
    where = {"node_ip": "10.0.0.2", "pid": 7, "gpu_ids": ""}
    assert ddp_trial.rank_keys(0, where) == {"rank0_node_ip": "10.0.0.2", "rank0_pid": 7}
    assert ddp_trial.rank_keys(1, where) == {"rank": 1}
