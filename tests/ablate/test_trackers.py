"""Experiment trackers: what each tool's own reader finds equals what the trials reported."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.trackers import check_trackers

pytestmark = pytest.mark.slow


def reported(sweep: Path) -> dict[str, dict[int, dict]]:
    """trial_id -> epoch -> the row Ray wrote to result.json."""
    out: dict[str, dict[int, dict]] = {}
    for file in (sweep / "tune").glob("*/result.json"):
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        out[rows[0]["trial_id"]] = {r["epoch"]: r for r in rows}
    return out


def test_tensorboard_event_files(tracked_sweep: tuple[Path, str]) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    sweep, _ = tracked_sweep
    rows = reported(sweep)
    for trial_id, by_epoch in rows.items():
        folder = next((sweep / "tune").glob(f"*{trial_id}*"))
        acc = event_accumulator.EventAccumulator(str(folder))
        acc.Reload()
        knn = {e.step: e.value for e in acc.Scalars("ray/tune/knn_top1")}
        # Ray logs each report at step = training_iteration (epoch + 1)
        assert knn == pytest.approx({r["training_iteration"]: r["knn_top1"] for r in by_epoch.values()})
        cost = [e.value for e in acc.Scalars("ray/tune/device_seconds")]
        assert cost == sorted(cost) and cost[-1] > 0  # cumulative


def test_mlflow_file_store(tracked_sweep: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    sweep, _ = tracked_sweep
    client = MlflowClient(tracking_uri=(sweep / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    rows = reported(sweep)
    assert len(runs) == len(rows) == 2
    for run in runs:
        by_epoch = next(rows[t] for t in rows if run.data.tags["trial_name"].endswith(t))  # Ray names it
        history = client.get_metric_history(run.info.run_id, "knn_top1")
        expected = sorted(r["knn_top1"] for r in by_epoch.values())
        assert sorted(m.value for m in history) == pytest.approx(expected)
        assert float(run.data.params["teacher_temp"]) == by_epoch[0]["config"]["teacher_temp"]
        assert run.data.tags["ablate_sweep"] == "tracked"


def wandb_records(path: Path) -> Iterator:
    """The records of a W&B transaction log (``run-ID.wandb``), decoded with W&B's own protobuf schema.

    The file is W&B's LevelDB-style log: a 7-byte header (':W&B', magic, version), then 32 KiB blocks
    of chunks, each with a 7-byte header (CRC32, length, type: 1 full, 2 first, 3 middle, 4 last).
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, chunk = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:  # zero fill up to the next block
            pos += left
            continue
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


def test_wandb_offline_run_files(tracked_sweep: tuple[Path, str]) -> None:
    sweep, _ = tracked_sweep
    rows = reported(sweep)
    files = sorted((sweep / "wandb").glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == len(rows) == 2
    for file in files:
        records = list(wandb_records(file))
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        assert run.project == "tracked" and run.run_id in rows
        history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                   for r in records if r.WhichOneof("record_type") == "history"]
        by_epoch = rows[run.run_id]
        assert [h["epoch"] for h in history] == sorted(by_epoch)
        expected = [by_epoch[e]["knn_top1"] for e in sorted(by_epoch)]
        assert [h["knn_top1"] for h in history] == pytest.approx(expected)


def test_unknown_or_missing_tracker_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="unknown logger 'comet'; allowed: tensorboard, mlflow, wandb"):
        check_trackers(["comet"])
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(UserError, match=r"needs the mlflow package.*pip install 'ablate\[mlflow\]'"):
        check_trackers(["tensorboard", "mlflow"], "loggers")
    assert check_trackers(["tensorboard", "tensorboard"]) == ["tensorboard"]


def test_the_wandb_actor_waits_for_wandb_to_write_its_run_before_tune_kills_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tune kills the W&B logging actor (ray.kill) once its run() returns, and wandb.finish() may return
    before wandb-core has written the run's file: a CI run's offline run-ID.wandb held its 7-byte header
    alone. The actor ends in wandb.teardown(), W&B's atexit hook, which a killed process never runs."""
    import sys
    import types

    from ray.air.integrations.wandb import _QueueItem

    from ablate.trackers import wandb_callback

    calls: list[str] = []
    run = types.SimpleNamespace(config=types.SimpleNamespace())
    fake = types.SimpleNamespace(init=lambda *a, **k: calls.append("init") or run,
                                 finish=lambda: calls.append("finish"),
                                 teardown=lambda: calls.append("teardown"))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setattr("ray.air.integrations.wandb._run_wandb_process_run_info_hook", lambda run: None)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_START_METHOD", "thread")  # run() sets it; restored after the test
    monkeypatch.chdir(tmp_path)  # the actor's __init__ moves into its log folder

    class Queue:
        def get(self) -> tuple:
            return _QueueItem.END, None

    actor = wandb_callback(tmp_path, "s")._logger_actor_cls(str(tmp_path), Queue(), [], [])
    actor.run()
    assert calls == ["init", "finish", "teardown"]


class FakeTrial:
    """What a logger callback reads of a Tune trial."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id, self.config, self.local_path = trial_id, {"teacher_temp": 0.04}, None

    def __str__(self) -> str:
        return f"trial_{self.trial_id}"


def test_a_tracker_that_fails_mid_sweep_is_said_once_and_the_sweep_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Tune stopped the whole sweep when a callback raised in on_trial_result ("the sweep stopped: Ray's
    loop raised TuneError", every trial interrupted: measured with the MLflow folder replaced by a file
    mid-sweep), and failed and retried a trial for a raise in on_trial_complete. A tracker's failure after
    its setup is one warning, then its logging stops; a failure in setup still stops the sweep at once."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    from ablate.trackers import tracker_callbacks

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    [callback] = tracker_callbacks(["mlflow"], tmp_path, "s")
    assert isinstance(callback, MLflowLoggerCallback)  # Tune's default-logger checks see the same class
    callback.setup()
    trial = FakeTrial("a1")
    callback.on_trial_start(iteration=1, trials=[trial], trial=trial)
    result = {"training_iteration": 1, "knn_top1": 40.0}
    callback.on_trial_result(iteration=1, trials=[trial], trial=trial, result=result)
    metric = [*(tmp_path / "mlruns").glob("*/*/metrics/knn_top1")]
    assert len(metric) == 1 and metric[0].read_text().split()[1] == "40.0"
    assert capsys.readouterr().err == ""

    shutil.rmtree(tmp_path / "mlruns")
    (tmp_path / "mlruns").write_text("not a folder")  # the tracking store gone mid-sweep
    later = {**result, "training_iteration": 2}
    callback.on_trial_result(iteration=2, trials=[trial], trial=trial, result=later)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ablate: warning: logger mlflow: ")
    assert "mlruns" in err and "it logs nothing more in this run, and the sweep goes on" in err
    callback.on_trial_result(iteration=3, trials=[trial], trial=trial, result=later)
    callback.on_trial_complete(iteration=3, trials=[trial], trial=trial)
    callback.on_experiment_end(trials=[trial])
    assert capsys.readouterr().err == ""  # said once

    [broken] = tracker_callbacks(["mlflow"], tmp_path, "s")  # its store cannot be made at all
    with pytest.raises(Exception, match="not a directory"):
        broken.setup()


def test_an_mlflow_server_that_does_not_answer_is_refused_before_ray_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's client retried for minutes inside the sweep's start (measured: MLFLOW_TRACKING_URI at a
    port nothing listens on), then stopped the sweep with 'Ray's loop raised MlflowException'. Now one line
    before Ray starts; a server that accepts the connection, and any store but HTTP, pass."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        assert check_trackers(["mlflow"]) == ["mlflow"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}/")  # closed now
    said = (rf"^loggers: logger 'mlflow' logs to MLFLOW_TRACKING_URI=http://127.0.0.1:{port}/, where nothing "
            r"answered within 5 s \(Connection refused\); start the MLflow server, or unset MLFLOW_")
    with pytest.raises(UserError, match=said):
        check_trackers(["tensorboard", "mlflow"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:port/")
    with pytest.raises(UserError, match="is not a URL MLflow can use"):
        check_trackers(["mlflow"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///nowhere/mlflow.db")  # MLflow's to open
    assert check_trackers(["mlflow"]) == ["mlflow"]


def test_online_wandb_without_an_api_key_is_refused_before_ray_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WANDB_MODE=online without a key: the sweep started Ray, made its folder and stopped with Ray's
    'No WandB API key found' (20 s), naming an `ablate resume` that would fail the same way."""
    for name in ("WANDB_API_KEY", "WANDB_SETUP_API_KEY_HOOK", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("WANDB_MODE", "online")
    said = (r"^loggers: logger 'wandb' with WANDB_MODE=online needs a W&B API key: set WANDB_API_KEY or run "
            r"`wandb login`, or unset WANDB_MODE")
    with pytest.raises(UserError, match=said):
        check_trackers(["wandb"])
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password k\n")  # `wandb login`
    (tmp_path / ".netrc").chmod(0o600)
    assert check_trackers(["wandb"]) == ["wandb"]
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert check_trackers(["wandb"]) == ["wandb"]
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.delenv("WANDB_MODE")  # ablate's default: offline, no key needed
    assert check_trackers(["wandb"]) == ["wandb"]
