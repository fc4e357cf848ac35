"""A failed data-parallel run's texts: each worker's whole error, and the one line a record or the CLI shows.

Ray Train's own message keeps the first and last 500 characters of each worker's error; its last line
was a fragment of the middle of a long one ("word52 word53 ..."), and the rest was in no file."""

from __future__ import annotations

from typing import Any, cast

import pytest
from ray.train.v2.api.exceptions import WorkerGroupError

from sweep_format.text import LINE_MAX
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
