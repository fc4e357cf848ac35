"""trials.parquet / epochs.parquet: schema, types, values equal to what Ray recorded, read from
ablate's own trial records (trials/*.json) only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from reports.parquet import read_metadata
from reports.tables import HEAD_COLUMNS, TAIL_COLUMNS, load_trials
from sweep_format.records import read_record
from tests.helpers import crafted_sweep, good_record

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
        assert t["repeat"] == params["repeat"] and t["seed"] == rows[-1]["seed"]
        assert t["knn_top1"] == rows[-1]["knn_top1"] and t["knn_top5"] == rows[-1]["knn_top5"]
        assert t["knn_top1_epoch0"] == rows[0]["knn_top1"] and rows[0]["epoch"] == 0
        assert t["best_knn_top1"] == max(r["knn_top1"] for r in rows if r["epoch"] > 0)
        assert t["loss"] == rows[-1]["loss"] and t["wall_time_s"] == rows[-1]["time_total_s"]
        speeds = [r["images_per_s"] for r in rows if "images_per_s" in r]
        assert math.isclose(t["images_per_s"], sum(speeds) / len(speeds))
        assert not t["collapsed"] and not t["is_baseline"] and t["label"]
        assert t["pixel_knn_top1"] == 100.0 and 0 < t["untrained_knn_top1"] <= 100  # reference_knn.json
        if t["repeat"] == 0:  # the reference's untrained network is the repeat-0 trials' epoch 0
            assert t["untrained_knn_top1"] == t["knn_top1_epoch0"]
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


def record_file(sweep: Path, trial_id: str) -> Path:
    return sweep / "trials" / f"{trial_id}.json"


def edit_record(sweep: Path, trial_id: str, **changes: object) -> dict:
    file = record_file(sweep, trial_id)
    rec = {**json.loads(file.read_text()), **changes}
    file.write_text(json.dumps(rec))
    return rec


def test_statuses_are_the_records_not_rays_files(sweep_copy: Path) -> None:
    folders = ray_trials(sweep_copy)
    errored, running, damaged, kept = sorted(folders)
    edit_record(sweep_copy, errored, status="errored", reason="RuntimeError: CUDA out of memory")
    edit_record(sweep_copy, running, status="running")
    record_file(sweep_copy, damaged).write_text('{"format": "ablate.trial", "vers')  # cut mid-write
    for folder in folders.values():  # Ray's own files may be anything: they are not read
        (folder / "result.json").write_text("garbage\n")
    for state in (sweep_copy / "tune").glob("experiment_state-*.json"):
        state.write_text("{")
    trials, epochs = load_trials(sweep_copy)
    t = trials.set_index("trial_id")
    assert t.loc[errored, "status"] == "errored"
    assert t.loc[errored, "stop_reason"] == "RuntimeError: CUDA out of memory"
    assert t.loc[running, "status"] == "running" and t.loc[kept, "status"] == "completed"
    assert t.loc[damaged, "status"] == "damaged" and "not readable as JSON" in t.loc[damaged, "stop_reason"]
    assert t.loc[kept, "epochs_done"] == 2 and len(epochs[epochs["trial_id"] == kept]) == 3


def test_a_record_of_another_version_is_damaged_not_guessed(tmp_path: Path) -> None:
    file = tmp_path / "trials" / "abc.json"
    file.parent.mkdir()
    file.write_text(json.dumps({"format": "ablate.trial", "version": 99, "trial_id": "abc", "epochs": []}))
    rec = read_record(file)
    assert rec["status"] == "damaged" and "version 99" in rec["reason"] and rec["trial_id"] == "abc"


def test_final_best_and_epoch0_knn_are_told_apart(sweep_copy: Path) -> None:
    trial_id = next(iter(ray_trials(sweep_copy)))
    rows = json.loads(record_file(sweep_copy, trial_id).read_text())["epochs"]
    for row, knn in zip(rows, [50.0, 80.0, 70.0], strict=True):  # epoch 0, 1, 2
        row["knn_top1"] = knn
    del rows[2]["knn_top5"]  # an epoch without evaluation: the final top-5 is epoch 1's
    rows.append({**rows[2], "epoch": 3, "knn_top1": 70.0, "knn_evaluated": False})  # carried forward
    edit_record(sweep_copy, trial_id, epochs=rows, epochs_planned=3)  # a row past the plan is damage
    trials, epochs = load_trials(sweep_copy)
    t = trials.set_index("trial_id").loc[trial_id]
    assert (t["knn_top1"], t["best_knn_top1"], t["knn_top1_epoch0"]) == (70.0, 80.0, 50.0)
    assert t["knn_top5"] == rows[1]["knn_top5"]
    mine = epochs[epochs["trial_id"] == trial_id]
    assert mine["knn_top1"].tolist() == [50.0, 80.0, 70.0, 70.0] and mine["knn_top5"].isna().tolist()[2]


def test_an_epoch_is_its_records_whatever_keys_it_holds(tmp_path: Path) -> None:
    """An epoch holding keys named like the epochs table's own columns (sweep, trial_id) was put in
    that table under the trial and sweep it named: another trial's curve and cost."""
    crafted = good_record("b")
    crafted["epochs"][1].update(trial_id="a", sweep="other")
    _, epochs = load_trials(crafted_sweep(tmp_path, [good_record("a"), crafted]))
    assert epochs[["sweep", "trial_id", "epoch"]].values.tolist() == [
        ["crafted", "a", 0], ["crafted", "a", 1], ["crafted", "b", 0], ["crafted", "b", 1]]


def test_a_metric_no_epoch_has_a_value_of_is_a_number_column(tmp_path: Path) -> None:
    """A record whose every epoch has kl_teacher_student null (the format allows it): the column was
    typed from no value as text, in epochs.parquet where the schema has a number, and the report's
    collapse plot, drawing it, ended 'ablate report' in a TypeError."""
    from reports.plots import collapse_plot

    rec = good_record("a")
    for row in rec["epochs"]:
        row.update(teacher_entropy=1.0, kl_teacher_student=None, knn_evaluated=None)
    trials, epochs = load_trials(crafted_sweep(tmp_path, [rec]))
    dtypes = epochs.dtypes.astype(str)
    assert (dtypes["kl_teacher_student"], dtypes["knn_evaluated"]) == ("float64", "boolean")
    assert collapse_plot(epochs, trials, tmp_path / "collapse.png") == tmp_path / "collapse.png"


def test_a_trial_whose_record_holds_no_point_is_ranked_with_its_values(tmp_path: Path) -> None:
    """A record with a null point (the format allows it; a colleague's edited copy): every ranking
    groups by point, so the trial was left out of the leaderboard, `ablate ls` and `ablate compare`
    in silence; when it was the best, another configuration was called best."""
    from reports.ranking import rank_points

    best, again = good_record("b"), good_record("c")
    best.update(point=None, params={"teacher_temp": 0.04})
    best["epochs"][1]["knn_top1"] = 60.0
    again["point"] = None
    trials, _ = load_trials(crafted_sweep(tmp_path, [good_record("a"), best, again]))
    assert trials.set_index("trial_id")["point"].to_dict() == {"a": 0, "b": 1, "c": 0}
    points, _ = rank_points(trials, ["teacher_temp"])
    assert points[["teacher_temp", "mean", "n"]].values.tolist() == [[0.04, 60.0, 1], [0.02, 40.0, 2]]
