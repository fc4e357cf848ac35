"""trials.parquet / epochs.parquet: schema, types, and values equal to what Ray recorded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reports.parquet import read_metadata
from reports.tables import HEAD_COLUMNS, TAIL_COLUMNS, load_trials, read_results, trial_status

PARAMS = ["teacher_temp", "student_temp", "warmup_teacher_temp_epochs"]
ARROW = {"string": (pa.string(), pa.large_string()), "float64": (pa.float64(),), "Int64": (pa.int64(),),
         "boolean": (pa.bool_(),)}


def ray_rows(trial_dir: Path) -> list[dict]:
    """Ray's result.json read independently of reports.tables."""
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line]


def ray_trials(sweep: Path) -> dict[str, Path]:
    folders = [d for d in (sweep / "tune").iterdir() if (d / "result.json").exists()]
    return {ray_rows(d)[0]["trial_id"]: d for d in folders}


def test_trials_parquet_columns_and_types(report_dir: Path) -> None:
    schema = pq.read_schema(report_dir / "trials.parquet")
    assert schema.names == [*HEAD_COLUMNS, *PARAMS, *TAIL_COLUMNS]
    for name, dtype in {**HEAD_COLUMNS, **TAIL_COLUMNS}.items():
        assert schema.field(name).type in ARROW[dtype], name
    # typed by their space entries: float ranges -> double, an int choice -> int64
    assert schema.field("teacher_temp").type == pa.float64()
    assert schema.field("student_temp").type == pa.float64()
    assert schema.field("warmup_teacher_temp_epochs").type == pa.int64()
    meta = read_metadata(report_dir / "trials.parquet")
    assert meta["params"] == PARAMS and meta["log_params"] == ["teacher_temp"] and meta["sweep"] == "tiny"


def test_trials_equal_what_ray_recorded(report_dir: Path) -> None:
    sweep = report_dir.parent
    trials = pq.read_table(report_dir / "trials.parquet").to_pandas()
    folders = ray_trials(sweep)
    assert sorted(trials["trial_id"]) == sorted(folders) and len(trials) == 4
    for _, t in trials.iterrows():
        folder = folders[t["trial_id"]]
        rows, params = ray_rows(folder), json.loads((folder / "params.json").read_text())
        assert t["trial_dir"] == f"tune/{folder.name}"
        assert t["status"] == "completed" and t["epochs_done"] == 2 == rows[-1]["epoch"]
        for p in PARAMS:
            assert t[p] == params[p]
        assert t["repeat"] == params["__trial_index__"] and t["seed"] == rows[-1]["seed"]
        assert t["knn_top1"] == rows[-1]["knn_top1"] and t["knn_top5"] == rows[-1]["knn_top5"]
        assert t["knn_top1_epoch0"] == rows[0]["knn_top1"] and rows[0]["epoch"] == 0
        assert t["best_knn_top1"] == max(r["knn_top1"] for r in rows if r["epoch"] > 0)
        assert t["loss"] == rows[-1]["loss"] and t["wall_time_s"] == rows[-1]["time_total_s"]
        speeds = [r["images_per_s"] for r in rows if "images_per_s" in r]
        assert math.isclose(t["images_per_s"], sum(speeds) / len(speeds))
        assert not t["collapsed"]
    # repeats of one configuration share a point; two configurations
    assert trials.groupby("point")["repeat"].apply(sorted).tolist() == [[0, 1], [0, 1]]


def test_epochs_parquet_has_every_reported_metric(report_dir: Path) -> None:
    epochs = pq.read_table(report_dir / "epochs.parquet").to_pandas()
    for trial_id, folder in ray_trials(report_dir.parent).items():
        rows = ray_rows(folder)
        mine = epochs[epochs["trial_id"] == trial_id].sort_values("epoch")
        assert mine["epoch"].tolist() == [r["epoch"] for r in rows] == [0, 1, 2]
        for key in ("knn_top1", "loss", "teacher_entropy", "kl_teacher_student", "ln_out_dim",
                    "lr", "teacher_temp", "momentum_teacher", "images_per_s", "time_total_s"):
            expected = [r.get(key) for r in rows]
            got = [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in mine[key]]
            assert got == expected, key
        assert mine["trial_outcome"].tolist() == [r["trial_outcome"] for r in rows]
    schema = pq.read_schema(report_dir / "epochs.parquet")
    assert schema.names[:3] == ["sweep", "trial_id", "epoch"] and "config" not in schema.names
    assert schema.field("loss_at_ln_out_dim").type == pa.bool_()
    assert schema.field("trial_outcome").type in ARROW["string"]


def set_ray_status(sweep: Path, trial_id: str, status: str) -> None:
    """Edit Ray's experiment state as Ray would have written it."""
    for state in (sweep / "tune").glob("experiment_state-*.json"):
        data = json.loads(state.read_text())
        for pair in data["trial_data"]:
            trial = json.loads(pair[0])
            if trial["trial_id"] == trial_id:
                trial["status"] = status
                pair[0] = json.dumps(trial)
        state.write_text(json.dumps(data))


def test_statuses_from_trial_outcome_and_ray_state(sweep_copy: Path) -> None:
    folders = ray_trials(sweep_copy)
    collapsed, errored, stopped, running = sorted(folders)
    # a trial stopped for collapse reports one last row saying so (docs/CONTRACTS.md)
    last = ray_rows(folders[collapsed])[-1]
    with (folders[collapsed] / "result.json").open("a") as f:
        f.write(json.dumps({**last, "epoch": 3, "trial_outcome": "collapsed", "loss_at_ln_out_dim": True,
                            "stop_reason": "teacher entropy at ln(out_dim) for 2 epochs"}) + "\n")
    # a trial that crashed in epoch 2 (after Ray's retries)
    rows = ray_rows(folders[errored])[:2]
    (folders[errored] / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folders[errored] / "error.txt").write_text("Failure # 1\n\x1b[36mray::train()\x1b[39m\n"
                                                "RuntimeError: CUDA out of memory\n")
    set_ray_status(sweep_copy, errored, "ERROR")
    # ASHA stops a trial: Ray terminates it after epoch 1 with trial_outcome still "running"
    rows = ray_rows(folders[stopped])[:2]
    (folders[stopped] / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # an interrupted sweep: Ray still lists the trial as RUNNING, its last line half written
    text = (folders[running] / "result.json").read_text().splitlines()
    (folders[running] / "result.json").write_text("\n".join(text[:2]) + "\n" + text[2][: len(text[2]) // 2])
    set_ray_status(sweep_copy, running, "RUNNING")

    trials, epochs = load_trials(sweep_copy)
    t = trials.set_index("trial_id")
    assert t.loc[collapsed, "status"] == "collapsed" and t.loc[collapsed, "collapsed"]
    assert t.loc[collapsed, "stop_reason"] == "teacher entropy at ln(out_dim) for 2 epochs"
    assert t.loc[collapsed, "epochs_done"] == 3
    assert t.loc[errored, "status"] == "errored"
    assert t.loc[errored, "stop_reason"] == "RuntimeError: CUDA out of memory"  # colours stripped
    assert t.loc[stopped, "status"] == "stopped early" and t.loc[stopped, "epochs_done"] == 1
    assert "1/2 epochs" in t.loc[stopped, "stop_reason"]
    assert t.loc[running, "status"] == "running" and t.loc[running, "epochs_done"] == 1
    assert len(epochs[epochs["trial_id"] == running]) == 2  # the partial line is skipped


@pytest.mark.parametrize(("outcome", "ray", "error", "done", "status"), [
    ("completed", "TERMINATED", False, 4, "completed"),
    ("collapsed", "TERMINATED", False, 2, "collapsed"),
    ("diverged", "TERMINATED", False, 1, "diverged"),
    ("oom", "TERMINATED", False, 1, "oom"),  # out of GPU memory: its own outcome, not "stopped early"
    ("completed", "ERROR", True, 4, "completed"),  # a retried trial that then finished
    ("running", "ERROR", True, 2, "errored"),
    ("running", None, True, 2, "errored"),  # no experiment state yet, but error.txt
    ("running", "TERMINATED", False, 2, "stopped early"),
    ("running", "RUNNING", False, 2, "running"),
    ("running", "PENDING", False, None, "running"),
    ("", None, False, None, "running"),
])
def test_trial_status(outcome: str, ray: str | None, error: bool, done: int | None, status: str) -> None:
    assert trial_status(outcome, ray, error, done, 4) == status


def test_partial_result_lines_are_skipped(tmp_path: Path) -> None:
    file = tmp_path / "result.json"
    file.write_text('{"epoch": 0, "knn_top1": 50.0}\n{"epoch": 1, "knn_top1": 6')
    assert read_results(file) == [{"epoch": 0, "knn_top1": 50.0}]
    assert read_results(tmp_path / "missing.json") == []


def test_final_best_and_epoch0_knn_are_told_apart(sweep_copy: Path) -> None:
    folder = next(iter(ray_trials(sweep_copy).values()))
    rows = ray_rows(folder)
    for row, knn in zip(rows, [50.0, 80.0, 70.0], strict=True):  # epoch 0, 1, 2
        row["knn_top1"] = knn
    del rows[2]["knn_top5"]  # an epoch without evaluation: the final top-5 is epoch 1's
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    trials, epochs = load_trials(sweep_copy)
    t = trials.set_index("trial_id").loc[rows[0]["trial_id"]]
    assert (t["knn_top1"], t["best_knn_top1"], t["knn_top1_epoch0"]) == (70.0, 80.0, 50.0)
    assert t["knn_top5"] == rows[1]["knn_top5"]
    mine = epochs[epochs["trial_id"] == rows[0]["trial_id"]]
    assert mine["knn_top1"].tolist() == [50.0, 80.0, 70.0] and mine["knn_top5"].isna().tolist()[2]
