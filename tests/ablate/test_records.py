"""ablate's trial records: how a trial's end is recorded, points, interrupts (no Ray needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.oom_kills import KillLedger
from ablate.records import Failure, Points, ended, failure_of, mark_interrupted
from ablate.sweep_spec import load_spec
from sweep_format.files import write_json
from sweep_format.records import FORMAT, VERSION, read_records
from tests.helpers import TINY_TRAINER, crafted_sweep, good_record, write_spec


def rec(*rows: dict, planned: int = 4) -> dict:
    return {"epochs": list(rows), "epochs_planned": planned}


@pytest.mark.parametrize(("rows", "error", "status", "collapsed", "reason"), [
    ([{"epoch": 4, "trial_outcome": "completed"}], None, "completed", False, ""),
    ([{"epoch": 4, "trial_outcome": "flagged", "stop_reason": "flagged as collapsed (uniform)",
       "collapsed": True}], None, "flagged", True, "flagged as collapsed (uniform)"),
    ([{"epoch": 2, "trial_outcome": "collapsed", "stop_reason": "collapsed (one-hot)", "collapsed": True}],
     None, "collapsed", True, "collapsed (one-hot)"),
    ([{"epoch": 1, "trial_outcome": "diverged", "stop_reason": "loss is nan"}], None, "diverged", False,
     "loss is nan"),
    ([{"epoch": 1, "trial_outcome": "running"}], None, "stopped early", False,
     "stopped early by the asha scheduler after 1/4 epochs"),
    ([{"epoch": 1, "trial_outcome": "running", "collapsed": True,
       "collapse_flag": "collapse condition (uniform) holds at epoch 1, 1 epoch(s) in a row (patience 3)"}],
     None, "stopped early", True, "stopped early by the asha scheduler after 1/4 epochs; collapse condition "
     "(uniform) holds at epoch 1, 1 epoch(s) in a row (patience 3)"),
    # a row of ablate <= 0.1 carries only the flag: the same verdict
    ([{"epoch": 2, "trial_outcome": "collapsed", "stop_reason": "collapsed (uniform)"}], None, "collapsed",
     True, "collapsed (uniform)"),
    ([{"epoch": 2, "trial_outcome": "running"}], Failure("errored", "RuntimeError: boom"), "errored", False,
     "RuntimeError: boom"),
    ([{"epoch": 2, "trial_outcome": "running"}], Failure("oom", "out of host memory: killed by Ray's memory"),
     "oom", False, "out of host memory"),  # Ray's memory monitor killed it: failure_of
    ([{"epoch": 4, "trial_outcome": "oom", "stop_reason": "CUDA out of memory"}], None, "oom", False,
     "CUDA out of memory"),  # another trainable outcome passes through
])
def test_how_a_trial_ended(rows: list, error: Failure | None, status: str, collapsed: bool, reason: str
                            ) -> None:
    verdict = ended(rec(*rows), "asha", error)
    assert (verdict["status"], verdict["collapsed"]) == (status, collapsed)
    assert verdict["reason"].startswith(reason)


def test_a_trial_whose_trainer_could_not_be_built_keeps_its_epochs_and_ends_errored() -> None:
    """The trainable's errored row has no epoch (it measured nothing): the recorder takes its status and
    reason, and a resumed trial's earlier epochs (the last one `running`) do not make it `stopped early`."""
    record = {**rec({"epoch": 0, "trial_outcome": "running"}, {"epoch": 1, "trial_outcome": "running"}),
              "status": "errored", "reason": "/data/x.png: not a readable image"}
    assert ended(record, "fifo", None) == {"status": "errored", "reason": "/data/x.png: not a readable image",
                                           "collapsed": False}


def test_a_trial_out_of_memory_as_its_trainer_is_built_ends_oom_with_its_epochs() -> None:
    """The trainable's oom row without an epoch (a resumed trial whose data no longer fits its GPU
    share): the recorder takes it, and the trial ended `oom`, not `stopped early` by its old epochs."""
    from ablate.recorder import TrialRecorder

    recorder = object.__new__(TrialRecorder)
    record = {**rec({"epoch": 0, "trial_outcome": "running"}, {"epoch": 1, "trial_outcome": "running"}),
              "trial_id": "t", "status": "running"}
    recorder.records, recorder.restart_why, recorder._save = {"t": record}, {}, lambda r: None

    class Trial:
        trial_id, config = "t", {}

    row = {"trial_outcome": "oom", "stop_reason": "out of memory: peak 2.10 GB; while building the trainer"}
    recorder.on_trial_result(0, [], Trial(), row)
    assert [r["epoch"] for r in record["epochs"]] == [0, 1]
    assert ended(record, "fifo", None) == {"status": "oom", "reason": row["stop_reason"], "collapsed": False}


# Ray 2.60's error file of a trial its memory monitor killed (one section per failure; trimmed)
MEMORY_KILL = """Failure # 1 (occurred at 2026-12-05_03-38-45)
ray::ImplicitFunc.train() (pid=30406, ip=127.0.0.1)
ValueError: boom
Failure # 2 (occurred at 2026-12-05_03-38-46)
1 worker(s) were killed due to the node running low on memory. Memory on the node (IP: 10.0.0.7, \
ID: 43753e4e) was 22.81GB used / 23.54GB limit (0.968995)
OOM kill reason: Memory usage 24491051392B exceeded threshold of 24012384256B (95.0% of 25276194816B limit)
Object store memory usage: [- objects spillable: 0
Eviction Stats:
(global lru) used: 0%]
Ray killed 1 worker(s) based on the killing policy
Top 10 memory users: PID	MEM(GB)	COMMAND
30461	20.05	ray::ImplicitFunc.train
Refer to the documentation on how to address the out of memory issue: https://docs.ray.io/en/latest/ray-observ\
ability/user-guides/debug-apps/debug-memory.html. Consider provisioning more memory on this node or \
reducing task parallelism by requesting more CPUs per task.
"""


class FakeTrial:
    def __init__(self, error_file: Path | None) -> None:
        self.error_file, self.path, self.trial_id = error_file, "/runs/x/tune/trial_0", "t0"


def test_a_trial_killed_for_host_memory_is_oom_with_its_node_and_threshold(tmp_path: Path) -> None:
    """The reason names the node, its memory and Ray's threshold, not the tail of Ray's advice; the last
    failure decides (an exception after a memory kill is errored, and the reverse is oom)."""
    file = tmp_path / "error.txt"
    file.write_text(MEMORY_KILL)
    status, reason = failure_of(FakeTrial(file))
    assert status == "oom"
    assert reason.startswith("out of host memory: killed by Ray's memory monitor on node 10.0.0.7 "
                             "(22.81GB of 23.54GB in use), over Ray's kill threshold of 95.0% "
                             "(RAY_memory_usage_threshold)")
    assert "search.max_concurrent_trials" in reason and "docs.ray.io" not in reason
    file.write_text(MEMORY_KILL + "Failure # 3 (occurred at 2026-12-05_03-38-47)\nTraceback ...\n"
                    "RuntimeError: CUDA error: an illegal memory access was encountered\n")
    assert failure_of(FakeTrial(file)) == (
        "errored", "RuntimeError: CUDA error: an illegal memory access was encountered")
    assert failure_of(FakeTrial(tmp_path / "absent.txt")) == (
        "errored", "Ray marked the trial as errored (see tune/trial_0)")


def test_points_of_an_ablation_and_of_optuna(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, f"""
name: abl
trainer: {dict(TINY_TRAINER, teacher_temp=0.04)}
space:
  teacher_temp: {{type: choice, values: [0.02, 0.04, 0.08]}}
search: {{algorithm: ablation}}
"""))
    points = Points(spec, [])
    assert points.of({"teacher_temp": 0.04}) == (0, "baseline", True)
    assert points.of({"teacher_temp": 0.08}) == (2, "teacher_temp=0.08", False)
    optuna = load_spec(write_spec(tmp_path, f"""
name: opt
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: float, low: 0.02, high: 0.08}}
search: {{algorithm: optuna, num_samples: 4}}
"""))
    old = [{"trial_id": "a", "point": 0, "params": {"teacher_temp": 0.05}}]  # the records, after a resume
    points = Points(optuna, old)
    assert points.of({"teacher_temp": 0.03})[0] == 1 and points.of({"teacher_temp": 0.05})[0] == 0
    # a record of a parameter since removed from spec.yaml's space is another point, as resume sees it
    # (search.same_point): it had matched any setting with the same teacher_temp
    wider = [{"trial_id": "b", "point": 0, "params": {"teacher_temp": 0.05, "student_temp": 0.2}}]
    assert Points(optuna, wider).of({"teacher_temp": 0.05})[0] == 1
    # a record whose point is null (the format allows it: hand-edited, copied) made every `ablate
    # resume` of the sweep end in a TypeError traceback; it is numbered after the others
    nulled = [{"trial_id": "c", "point": None, "params": {"teacher_temp": 0.07}}, *old]
    assert [Points(optuna, nulled).of({"teacher_temp": t})[0] for t in (0.05, 0.07)] == [0, 1]


def test_interrupt_marks_only_unfinished_records(tmp_path: Path) -> None:
    for tid, status in (("a", "completed"), ("b", "running"), ("c", "pending")):
        write_json(tmp_path / "trials" / f"{tid}.json", {
            "format": FORMAT, "version": VERSION, "trial_id": tid, "status": status, "epochs_planned": 4,
            "epochs": [{"epoch": 0}, {"epoch": 1}] if status != "pending" else []})
    marked = mark_interrupted(tmp_path)
    assert sorted(r["trial_id"] for r in marked) == ["b", "c"]
    recs = {r["trial_id"]: r for r in read_records(tmp_path)}
    assert recs["a"]["status"] == "completed" and recs["b"]["status"] == "interrupted"
    assert "after 1/4 epochs" in recs["b"]["reason"] and "ablate resume" in recs["b"]["reason"]
    assert not list((tmp_path / "trials").glob(".*.tmp"))  # atomic writes leave nothing behind
    assert json.loads((tmp_path / "trials" / "c.json").read_text())["status"] == "interrupted"


def test_an_interrupt_after_a_trials_last_result_closes_it_with_its_outcome(tmp_path: Path) -> None:
    """A trial whose teacher collapsed reports its last row, then Ray closes it on a later result: a
    Ctrl-C in between left it `interrupted` (its collapse reason lost, '0 of 2 trials finished')."""
    rows = {"c": {"epoch": 2, "trial_outcome": "collapsed", "stop_reason": "collapsed (uniform): x",
                  "collapsed": True},
            "d": {"epoch": 1, "trial_outcome": "diverged", "stop_reason": "loss is nan"},
            "r": {"epoch": 2, "trial_outcome": "running"}}
    for tid, row in rows.items():
        write_json(tmp_path / "trials" / f"{tid}.json", {
            "format": FORMAT, "version": VERSION, "trial_id": tid, "status": "running", "epochs_planned": 4,
            "epochs": [{"epoch": 0}, row]})
    assert [r["trial_id"] for r in mark_interrupted(tmp_path, cause="SIGTERM received")] == ["r"]
    recs = {r["trial_id"]: r for r in read_records(tmp_path)}
    assert (recs["c"]["status"], recs["c"]["reason"], recs["c"]["collapsed"]) == \
        ("collapsed", "collapsed (uniform): x", True)
    assert (recs["d"]["status"], recs["d"]["reason"]) == ("diverged", "loss is nan")
    assert recs["r"]["status"] == "interrupted" and "SIGTERM received" in recs["r"]["reason"]


def test_a_hidden_file_in_trials_is_not_a_record(tmp_path: Path) -> None:
    """A sweep copied from a Mac to another file system carries ._<id>.json beside each record: each
    was listed as a damaged trial, and every run and resume of the sweep exited 1."""
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    (sweep / "trials" / "._a.json").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    assert [(r["trial_id"], r["status"]) for r in read_records(sweep)] == [("a", "completed")]


def test_spec_yaml_stores_the_baseline_metric_and_mode_and_loads_back(tmp_path: Path) -> None:
    import yaml

    from ablate.folder import spec_text
    from ablate.sweep_spec import SpecError

    spec = load_spec(write_spec(tmp_path, f"""
name: abl
trainer: {dict(TINY_TRAINER, teacher_temp=0.04)}
space:
  teacher_temp: {{type: choice, values: [0.02, 0.04]}}
search: {{algorithm: ablation}}
metric: teacher_entropy
mode: min
"""))
    data = yaml.safe_load(spec_text(spec))
    assert data["resolved"]["baseline"] == {"teacher_temp": 0.04}
    assert (data["metric"], data["mode"]) == ("teacher_entropy", "min")
    (tmp_path / "written.yaml").write_text(spec_text(spec))
    assert load_spec(tmp_path / "written.yaml").as_dict() == spec.as_dict()  # a copied spec.yaml reruns
    edited = {**data, "resolved": {"baseline": {"teacher_temp": 0.5}}}
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(edited))
    with pytest.raises(SpecError, match="baseline"):
        load_spec(tmp_path / "edited.yaml")


def test_resume_refuses_a_spec_whose_trainer_settings_were_edited(tmp_path: Path) -> None:
    """The trials ran with trainer.epochs 2: an edit to 3 was neither refused nor applied on resume
    (spec.yaml said 3, every trial had run 2); a device change is where a trial runs, not what it computes."""
    import yaml

    from ablate.errors import UserError
    from ablate.folder import create, load_sweep_spec

    spec = one_point_sweep(tmp_path, "edited")
    sweep = tmp_path / "runs" / "edited"
    create(spec, sweep)
    assert load_sweep_spec(sweep).as_dict() == spec.as_dict()
    data = yaml.safe_load((sweep / "spec.yaml").read_text())
    data["trainer"]["device"] = "cpu"
    (sweep / "spec.yaml").write_text(yaml.safe_dump(data))
    load_sweep_spec(sweep)
    data["trainer"]["epochs"] += 1
    (sweep / "spec.yaml").write_text(yaml.safe_dump(data))
    epochs = spec.trainer_config().epochs
    with pytest.raises(UserError, match=rf"trainer: edited since the sweep ran \(epochs: {epochs} -> "):
        load_sweep_spec(sweep)


def test_a_record_that_cannot_be_written_stops_the_sweep_with_one_clear_line(tmp_path: Path) -> None:
    from ablate.errors import StorageFull
    from ablate.recorder import TrialRecorder

    spec = load_spec(write_spec(tmp_path, f"""
name: w
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: choice, values: [0.02, 0.04]}}
search: {{algorithm: grid}}
"""))
    blocked = tmp_path / "storage-is-a-file"
    blocked.write_text("")  # no folder can be made inside it (root ignores read-only modes)
    recorder = TrialRecorder(spec, blocked)
    # the path and errno; ablate.ending.fit adds what is kept and `ablate resume` (test_faults_files.py)
    with pytest.raises(StorageFull, match=r"storage-is-a-file/trials/t1\.json: cannot write the trial record "
                                          r"\(ENOTDIR: Not a directory\)"):
        recorder._save({"trial_id": "t1", "epochs": []})


def one_point_sweep(tmp_path: Path, name: str):
    """A grid of one point (teacher_temp 0.04), for the recorder's tests."""
    return load_spec(write_spec(tmp_path, f"""
name: {name}
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: choice, values: [0.04]}}
search: {{algorithm: grid}}
"""))


@pytest.mark.parametrize("kept", [True, False])
def test_a_restart_fills_the_epochs_whose_results_never_reached_the_driver(tmp_path: Path,
                                                                           kept: bool) -> None:
    """A node lost between an epoch's checkpoint and its report: the trial restarts from a later
    checkpoint, and the record takes the missing epoch from the report kept beside its checkpoint,
    or names it as lost when that checkpoint is gone."""
    from types import SimpleNamespace

    from ablate.recorder import TrialRecorder

    spec = one_point_sweep(tmp_path, "gap")
    sweep = tmp_path / "runs" / "gap"
    trial = SimpleNamespace(trial_id="t1", config={"teacher_temp": 0.04},
                            path=str(sweep / "tune" / "trial_t1"), error_file=None)
    for epoch in (3, 4):  # epoch 3 and 4 were checkpointed; neither result arrived
        if kept or epoch == 4:
            write_json(Path(trial.path) / f"checkpoint_{epoch:06d}" / "epoch.json",
                       {"epoch": epoch, "loss": 9.0 - epoch})
    recorder = TrialRecorder(spec, sweep)
    recorder.on_trial_start(0, [], trial)
    for epoch in range(3):
        recorder.on_trial_result(0, [], trial, {"epoch": epoch, "loss": 9.0 - epoch})
    recorder.on_trial_recover(0, [], trial)
    recorder.on_trial_result(0, [], trial,
                             {"epoch": 4, "loss": 5.0, "restored_from_epoch": 4, "replayed": True})

    (record,) = read_records(sweep)
    (restart,) = record["restarts"]
    assert restart["from_epoch"] == 4
    if kept:
        assert [r["epoch"] for r in record["epochs"]] == [0, 1, 2, 3, 4] and "lost_epochs" not in restart
        assert record["epochs"][3] == {"epoch": 3, "loss": 6.0, "recovered_from": "checkpoint_000003"}
    else:
        assert [r["epoch"] for r in record["epochs"]] == [0, 1, 2, 4] and restart["lost_epochs"] == [3]


def test_a_trial_restarted_from_an_earlier_epoch_ends_with_what_its_new_run_measured(
        tmp_path: Path) -> None:
    """An interrupted trial whose checkpoints were lost (tune/ deleted, or both damaged) starts over
    on `ablate resume`; it diverged in epoch 1, and its record, still holding the earlier run's
    epochs 2-5, said 'stopped early by the fifo scheduler after 5/8 epochs' with epoch 5's kNN."""
    from types import SimpleNamespace

    from ablate.recorder import TrialRecorder

    spec = one_point_sweep(tmp_path, "over")
    sweep = tmp_path / "runs" / "over"
    earlier = {**good_record("t1"), "params": {"teacher_temp": 0.04}, "status": "interrupted",
               "epochs_planned": 8, "trial_dir": "tune/trial_t1", "trial_dirs": ["tune/trial_t1"],
               "epochs": [{"epoch": e, "knn_top1": 30.0 + e, "trial_outcome": "running"} for e in range(6)]}
    write_json(sweep / "trials" / "t1.json", earlier)
    trial = SimpleNamespace(trial_id="r2", config={"teacher_temp": 0.04, "_trial_id": "t1"},
                            path=str(sweep / "tune" / "trial_t1_r2"), error_file=None)
    recorder = TrialRecorder(spec, sweep)
    recorder.on_trial_start(0, [], trial)
    recorder.on_trial_result(0, [], trial, {"epoch": 0, "knn_top1": 29.0, "trial_outcome": "running"})
    recorder.on_trial_result(0, [], trial, {"epoch": 1, "knn_top1": 29.0, "knn_evaluated": False,
                                            "trial_outcome": "diverged", "stop_reason": "loss is nan"})
    recorder.on_trial_complete(0, [], trial)
    (record,) = read_records(sweep)
    assert (record["status"], record["reason"]) == ("diverged", "loss is nan")
    assert [(r["epoch"], r["knn_top1"]) for r in record["epochs"]] == [(0, 29.0), (1, 29.0)]
    (restart,) = record["restarts"]
    assert (restart["from_epoch"], restart["superseded_epochs"]) == (0, [1, 2, 3, 4, 5])


@pytest.mark.parametrize(("name", "inside"), [
    ("tune/trial_ab12", True), ("tune/trial_ab12_cd34", True), ("../../home/user/work", False),
    ("/home/user/work", False), ("tune/../../x", False), ("tune", False), ("tune/..", False),
    ("trials", False), ("tune\\..\\x", False), (None, False), (7, False)])
def test_a_record_names_trial_folders_only_inside_the_sweeps_tune_folder(tmp_path: Path, name: object,
                                                                       inside: bool) -> None:
    from sweep_format.layout import trial_folder

    folder = trial_folder(tmp_path, name)
    assert (folder is not None) == inside, folder
    if folder is not None:
        assert folder.parent == tmp_path / "tune" and folder.name == str(name).split("/")[1]


def test_a_continued_trial_retires_its_earlier_checkpoints_not_any_outside_the_sweep(tmp_path: Path) -> None:
    """ablate resume continues a trial in a new folder: once that folder holds two checkpoints the
    earlier run's are deleted; folders a hand-edited record names outside the sweep are never touched."""
    from types import SimpleNamespace

    from ablate.recorder import TrialRecorder

    spec = one_point_sweep(tmp_path, "again")
    sweep = tmp_path / "runs" / "again"
    outside = tmp_path / "elsewhere"
    for folder, epoch in ((outside, 0), (sweep / "tune" / "trial_t1", 1), (sweep / "tune" / "trial_t1", 2)):
        write_json(folder / f"checkpoint_{epoch:06d}" / "epoch.json", {"epoch": epoch})
    write_json(sweep / "trials" / "t1.json", {
        "format": FORMAT, "version": VERSION, "trial_id": "t1", "status": "interrupted", "epochs_planned": 4,
        "params": {"teacher_temp": 0.04}, "epochs": [{"epoch": e} for e in range(3)],
        "trial_dirs": [str(outside), "../../elsewhere", "tune/trial_t1"], "trial_dir": "tune/trial_t1"})
    trial = SimpleNamespace(trial_id="t2", config={"teacher_temp": 0.04, "_trial_id": "t1"},
                            path=str(sweep / "tune" / "trial_t1_t2"), error_file=None)
    recorder = TrialRecorder(spec, sweep)
    recorder.on_trial_start(0, [], trial)
    earlier = sweep / "tune" / "trial_t1"
    for epoch in (3, 4):  # the result reaches the driver once its checkpoint is in storage
        write_json(Path(trial.path) / f"checkpoint_{epoch:06d}" / "epoch.json", {"epoch": epoch})
        recorder.on_trial_result(0, [], trial, {"epoch": epoch, "restored_from_epoch": 2})
        left = sorted(c.name for c in earlier.iterdir())
        assert left == (["checkpoint_000002"] if epoch == 3 else []), left
    assert (outside / "checkpoint_000000").is_dir()  # named by the record, outside the sweep: kept
    (record,) = read_records(sweep)
    assert record["trial_dirs"][-2:] == ["tune/trial_t1", "tune/trial_t1_t2"]
    assert [r["epoch"] for r in record["epochs"]] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("ending", "error", "kept"), [
    ({"trial_outcome": "completed"}, None, [2]), ({"trial_outcome": "collapsed"}, None, [2]),
    ({"trial_outcome": "running"}, None, [2]),  # stopped early by ASHA: never continued
    ({"trial_outcome": "oom"}, None, [1, 2]), ({"trial_outcome": "diverged"}, None, [1, 2]),  # --retry
    ({"trial_outcome": "running"}, "boom", [1, 2])])  # errored: ablate resume runs it again
def test_a_trial_that_never_runs_again_keeps_only_its_last_checkpoint(tmp_path: Path, ending: dict,
                                                                      error: str | None, kept: list) -> None:
    from types import SimpleNamespace

    from ablate.recorder import TrialRecorder
    from trainables.trial import reported_epochs

    spec = one_point_sweep(tmp_path, "ends")
    sweep = tmp_path / "runs" / "ends"
    trial = SimpleNamespace(trial_id="t1", config={"teacher_temp": 0.04},
                            path=str(sweep / "tune" / "trial_t1"), error_file=None)
    recorder = TrialRecorder(spec, sweep)
    recorder.on_trial_start(0, [], trial)
    for epoch in (1, 2):
        write_json(Path(trial.path) / f"checkpoint_{epoch - 1:06d}" / "epoch.json", {"epoch": epoch})
        recorder.on_trial_result(0, [], trial, {"epoch": epoch, "epochs_planned": 4, **ending})
    if error:
        error_file = Path(trial.path) / "error.txt"
        error_file.write_text(f"RuntimeError: {error}\n")
        trial.error_file = str(error_file)
        recorder.on_trial_error(0, [], trial)
    else:
        recorder.on_trial_complete(0, [], trial)
    assert sorted(reported_epochs([Path(trial.path)])) == kept


def test_a_value_is_written_one_way_in_labels_tables_and_plots() -> None:
    """Six near-copies had written a bool True in a report where the record's label said true, and
    a numpy float as 0.123456 in one place and 0.1235 in another."""
    import numpy as np

    from reports.analysis import fmt_value as report_value
    from sweep_format.values import fmt_value

    assert [fmt_value(v) for v in (True, np.bool_(False), 0.123456, np.float32(0.5), [0.4, 1], "s=0.24")] == \
        ["true", "false", "0.1235", "0.5", "[0.4, 1]", "s=0.24"]
    assert fmt_value(0.123456, digits=6) == "0.123456" and report_value(float("nan")) == "–"
    # a searched null as YAML writes it, in labels as in error messages (trainables.config.short)
    from trainables.config import short

    assert [fmt_value(None), fmt_value([0.4, None]), short(None), short([0.4, None, True])] == \
        ["null", "[0.4, null]", "null", "[0.4, null, true]"]


# a field of the wrong kind, as copied from elsewhere or edited by hand; (field, value or None to
# drop it, why the record is damaged)
CRAFTED = [
    ("created_at", "yesterday", "created_at is 'yesterday', not a number"),
    ("epochs", [{"epoch": 0}, 7], "epochs[1] is 7, not an object with an integer epoch >= 0"),
    ("epochs", [{"loss": 1.0}], "epochs[0] is {'loss': 1.0}, not an object with an integer epoch >= 0"),
    ("params", [0.02], "params is [0.02], not an object"),
    ("epochs_planned", 10**30,
     "epochs_planned is 1000000000000000000000000000000, not an integer >= 1 or null"),
    ("epochs_planned", 0, "epochs_planned is 0, not an integer >= 1 or null"),
    ("status", None, "record without status"),
    # an unknown status was listed as its own and resumed as unfinished; a text metric was read as
    # missing, silently dropping the trial's value from the ranking
    ("status", "Completed", "status is 'Completed', not one of completed, flagged, stopped early, "
     "collapsed, diverged, oom, errored, storage_full, interrupted, running, pending, damaged"),
    ("epochs", [{"epoch": 0}, {"epoch": 1, "knn_top1": "38.2"}],
     "epochs[1].knn_top1 is '38.2', not a percentage from 0 to 100"),
    ("epochs", [{"epoch": 0, "my_count": 10**30}],
     "epochs[0].my_count is 1000000000000000000000000000000..., beyond a 64-bit integer"),
    # the other fields the readers compute with: a text or a list there ended ablate report (a sum of
    # epoch times, the collapse plot's ln(out_dim) line) and ablate ls (the cost) in a ValueError;
    # a text flag was read as true
    ("epochs", [{"epoch": 0}, {"epoch": 1, "epoch_time_s": "0.7"}],
     "epochs[1].epoch_time_s is '0.7', not a finite number >= 0"),
    ("epochs", [{"epoch": 1, "device_seconds": [1]}],
     "epochs[0].device_seconds is [1], not a finite number >= 0"),
    ("epochs", [{"epoch": 1, "ln_out_dim": True}], "epochs[0].ln_out_dim is True, not a finite number >= 0"),
    ("epochs", [{"epoch": 1, "knn_evaluated": "no"}], "epochs[0].knn_evaluated is 'no', not true or false"),
]


def test_a_crafted_record_is_damaged_naming_its_field_and_the_sweep_still_lists_and_reports(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Each of CRAFTED made ablate ls and ablate report end in a traceback (TypeError, AttributeError,
    pandas' OverflowError, ...); now the record is damaged, named with its field, beside a good one."""
    from ablate.cli import main

    records = [good_record("a")]
    for i, (field, value, _) in enumerate(CRAFTED):
        records.append(good_record(f"b{i}"))
        records[-1].pop(field) if value is None else records[-1].update({field: value})
    sweep = crafted_sweep(tmp_path, records)
    recs = {r["trial_id"]: r for r in read_records(sweep)}
    assert recs["a"]["status"] == "completed"
    for i, (_, _, why) in enumerate(CRAFTED):
        assert (recs[f"b{i}"]["status"], recs[f"b{i}"]["reason"]) == ("damaged", f"trials/b{i}.json: {why}")
    assert main(["ls", str(sweep.parent)]) == 0
    assert f"1 completed, {len(CRAFTED)} damaged" in capsys.readouterr().out
    assert main(["report", str(sweep)]) == 0
    assert CRAFTED[0][2] in (sweep / "report" / "report.md").read_text()



# Ray 2.60's error file of a trial whose worker was killed (SIGKILL), and of one whose node was lost
WORKER_KILLED = """Failure # 1 (occurred at 2026-12-05_23-26-28)
The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
\tactor_id: 5e1854c6bc7a5a6b5a3ce3ef01000000
\tpid: 21785
\tnamespace: 60caae11-3f08-4c8b-b016-bce427f81428
\tip: 127.0.0.1
The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: \
Worker unexpectedly exits with a connection error code 2. End of file. Some common causes include: (1) the \
process was killed by the OOM killer due to high memory usage, (2) ray stop --force was called, or (3) the \
worker crashed unexpectedly due to SIGSEGV or another unexpected error. If the process was killed by the \
kernel OOM killer (verifiable by checking for OOM in dmesg of the OOMing node), consider enabling resource \
isolation via --enable-resource-isolation to prevent node deaths by resource contention and significant \
loss of progress by uninformed kernel OOM killing.
"""
NODE_LOST = """Failure # 1 (occurred at 2026-12-05_23-30-00)
The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
\tactor_id: 5e1854c6bc7a5a6b5a3ce3ef01000000
The actor died because its node has died. Node Id: 8d1c0a
\tthe actor's node was terminated unexpectedly: received SIGTERM
"""


def test_a_dead_worker_or_node_is_named_in_whole_sentences_without_ray_advice(tmp_path: Path) -> None:
    """The reason says what happened, in complete sentences (not Ray's text cut at a length)."""
    file = tmp_path / "error.txt"
    file.write_text(WORKER_KILLED)
    assert failure_of(FakeTrial(file)) == (
        "errored", "The actor is dead because its worker process has died. Worker exit type: "
                   "SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error "
                   "code 2. End of file.")
    file.write_text(NODE_LOST)
    assert failure_of(FakeTrial(file)) == (
        "errored", "The actor died because its node has died. Node Id: 8d1c0a the actor's node was "
                   "terminated unexpectedly: received SIGTERM")
    file.write_text("Failure # 1 (occurred at 2026-12-05_23-30-00)\nValueError: " + "word " * 100 + "\n")
    status, reason = failure_of(FakeTrial(file))
    assert reason.startswith("ValueError: word word") and reason.endswith("word…") and len(reason) <= 300


def test_text_is_cut_after_a_whole_word_and_marked() -> None:
    """The one cutting rule (sweep_format.text.cut_at_word) of a reason and of a failed worker's line."""
    from sweep_format.text import cut_at_word

    text = "Set max_restarts and max_task_retries"
    assert cut_at_word(text, len(text)) == text
    assert cut_at_word(text, 30) == "Set max_restarts and…"  # not "... and max_task_"
    assert cut_at_word(text, 21) == "Set max_restarts and…"  # the word that ends at the cut is whole
    assert cut_at_word(text, 20) == "Set max_restarts…"
    assert cut_at_word("x" * 50, 10) == "x" * 9 + "…"  # one word longer than the line: cut inside it
    assert all(len(cut_at_word(text, n)) <= n for n in range(1, 40))


def test_a_record_file_named_in_other_bytes_is_a_printable_damaged_stub(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The stub of a record file named b"caf\\xe9.json" or with a terminal escape held its name as it is:
    Arrow holds no lone surrogate, so ablate ls of the whole storage and ablate report ended in a
    UnicodeEncodeError traceback."""
    from ablate.cli import main

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    text = (sweep / "trials" / "a.json").read_text()
    for name in ("caf\udce9", "\x1b[2Jx"):
        (sweep / "trials" / f"{name}.json").write_text(text)
    stubs = [r for r in read_records(sweep) if r["status"] == "damaged"]
    assert sorted(r["trial_id"] for r in stubs) == ["[2Jx", "caf\\xe9"]
    assert all("\x1b" not in r["reason"] and "\udce9" not in r["reason"] for r in stubs)
    assert main(["ls", str(sweep.parent)]) == 0
    assert "1 completed, 2 damaged" in capsys.readouterr().out


def test_an_errored_trial_keeps_its_whole_error_beside_its_record(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason is one line; the error file's whole text (every failure's traceback) is written to
    trials/<id>.error.txt and named. A disk that cannot take it leaves the reason without the note; a
    memory kill's reason is its own summary and keeps no file."""
    import errno
    from shutil import disk_usage as shutil_usage

    from ablate import recorder as recorder_module
    from ablate.recorder import TrialRecorder

    (tmp_path / "trials").mkdir()
    rec = object.__new__(TrialRecorder)
    rec.sweep_dir, rec.kills, rec.failures = tmp_path, KillLedger(set()), {}
    file = tmp_path / "error.txt"
    file.write_text("Failure # 1 (occurred at x)\n\x1b[36mray::ImplicitFunc.train()\x1b[39m\n"
                    '  File "a.py", line 1\nValueError: boom\n')
    failure = rec._failure(FakeTrial(file), {"trial_id": "t1"})
    assert failure == ("errored", "ValueError: boom (the whole error: trials/t1.error.txt)")
    assert (tmp_path / "trials" / "t1.error.txt").read_text() == (
        'Failure # 1 (occurred at x)\nray::ImplicitFunc.train()\n  File "a.py", line 1\nValueError: boom\n')
    assert [r["trial_id"] for r in read_records(tmp_path)] == []  # never read as a record

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recorder_module.shutil, "disk_usage", lambda p: shutil_usage(p)._replace(free=2**20))
    assert rec._failure(FakeTrial(file), {"trial_id": "t4"}) == ("errored", "ValueError: boom")
    assert not (tmp_path / "trials" / "t4.error.txt").exists()  # the records' last MiB is not taken
    monkeypatch.setattr(recorder_module.shutil, "disk_usage", shutil_usage)
    monkeypatch.setattr(recorder_module, "write_text", full)
    assert rec._failure(FakeTrial(file), {"trial_id": "t2"}) == ("errored", "ValueError: boom")
    file.write_text(MEMORY_KILL)
    assert rec._failure(FakeTrial(file), {"trial_id": "t3"}).status == "oom"
    assert not (tmp_path / "trials" / "t3.error.txt").exists()


def test_a_trial_run_again_drops_the_error_its_record_no_longer_names(tmp_path: Path) -> None:
    """`ablate resume` runs an errored trial again: its record's reason is cleared as it starts, and the
    error file of the earlier run goes with it (a trial that then completes kept one beside it)."""
    from ablate.recorder import TrialRecorder

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    (sweep / "trials" / "a.error.txt").write_text("Failure # 1\nValueError: boom\n")

    class Trial:
        trial_id, config, path = "a", {"teacher_temp": 0.02}, str(sweep / "tune" / "trial_a")

    TrialRecorder(load_spec(sweep / "spec.yaml"), sweep).on_trial_start(0, [], Trial())
    assert not (sweep / "trials" / "a.error.txt").exists()
    assert [(r["trial_id"], r["status"], r["reason"]) for r in read_records(sweep)] == [("a", "running", "")]


@pytest.mark.parametrize("where", ["mkstemp", "write", "replace"])
def test_a_failed_write_names_the_file_not_its_temporary_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             where: str) -> None:
    """'cannot write runs/x/report/.0arxw4oh-trials.parquet.tmp (EROFS ...)': the user was shown a name
    ablate made up; the file it was writing is the one to name, and nothing is left behind."""
    import errno
    import os
    import tempfile

    from sweep_format import files

    target = tmp_path / "trials" / "a.json"
    real_mkstemp, real_replace = tempfile.mkstemp, os.replace

    def refused(name: str) -> OSError:
        return OSError(errno.EROFS, os.strerror(errno.EROFS), name)

    def mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        if where == "mkstemp":
            os.close(fd)
            os.unlink(name)
            raise refused(name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(refused(str(src)))
                        if where == "replace" else real_replace(src, dst))
    with pytest.raises(OSError) as failed, files.atomic_path(target) as tmp:
        if where == "write":
            raise refused(str(tmp))
        tmp.write_text("{}")
    assert (failed.value.errno, failed.value.filename) == (errno.EROFS, str(target))
    assert not target.exists() and not list(target.parent.iterdir())


def test_the_point_index_finds_what_a_scan_with_same_point_finds() -> None:
    """PointIndex files points under rounded keys: every value values_equal takes for another (0.1 and
    0.1000000001, 1 and 1.0 and True, a list and a tuple, values at a key's edge or near 0) is found, in
    the order added, and nothing same_point would not find."""
    import random

    from sweep_format.values import PointIndex, same_point

    rng = random.Random(0)
    edge = [0.1234565, 1.5e-5, 1e-5, 9.999995e-6, 0.0, -0.0, 1e-13, -2e-12, 1.0, 123456.5]
    bases: list[object] = [*edge, *(rng.uniform(-1, 1) * 10 ** rng.randint(-8, 4) for _ in range(40)),
                           1, 2, True, False, "a", None, [0.4, 1.0], (0.05, 0.4), float("inf")]

    def near(value: object) -> object:  # a value values_equal may take for it, or one it may not
        if isinstance(value, float) and not isinstance(value, bool):
            scale = 1 + rng.choice([0, 1e-10, -1e-10, 9e-10, -9e-10, 2e-9])
            return value * scale + rng.choice([0, 5e-13, 0])
        if isinstance(value, list):
            return tuple(near(v) for v in value)
        return value

    items = [({"a": near(v), "b": near(w)}, i) for i, (v, w) in
             enumerate((rng.choice(bases), rng.choice(bases)) for _ in range(2000))]
    index = PointIndex(items)
    for _ in range(500):
        asked = {"a": near(rng.choice(bases)), "b": near(rng.choice(bases))}
        assert index.all(asked) == [i for params, i in items if same_point(params, asked)]
    assert index.all({"a": 0.1}) == [] and index.first({"a": 0.1, "b": 0.2, "c": 1}) is None
    assert PointIndex([({"x": 1}, "one")]).all({"x": True}) == ["one"]


# The last failure of a trial whose worker the kernel's OOM killer killed (a cgroup of 3.5 GiB, a trial
# of out_dim 2^20), from Ray 2.60's error file; `dmesg`: "Memory cgroup out of memory: Killed process
# 20041 (ray::ImplicitFu) ... oom_score_adj:1000", the cgroup's oom_kill count 3 -> 6 for its 3 runs.
KERNEL_KILLED = """Failure # 3 (occurred at 2026-12-07_10-53-38)
The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
\tactor_id: 00539dc048ae90d148f2c70201000000
\tpid: 20041
\tnamespace: 5b69a1be-efdb-47e7-99c3-391269cf23d8
\tip: 127.0.0.1
The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: \
Worker unexpectedly exits with a connection error code 2. End of file. Some common causes include: (1) the \
process was killed by the OOM killer due to high memory usage, (2) ray stop --force was called, or (3) the \
worker crashed unexpectedly due to SIGSEGV or another unexpected error. If the process was killed by the \
kernel OOM killer (verifiable by checking for OOM in dmesg of the OOMing node), consider enabling resource \
isolation via --enable-resource-isolation to prevent node deaths by resource contention and significant \
loss of progress by uninformed kernel OOM killing.
"""
RAY_WORDS = ("The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker "
             "exit detail: Worker unexpectedly exits with a connection error code 2. End of file.")
ADVICE = "lower batch_size or num_workers, or run fewer trials at once (search.max_concurrent_trials)"


def kernel_ledger(scope: str, before: int, after: int):
    """A ledger whose trial t0 started at ``before`` kills and died at ``after``."""
    from ablate.oom_kills import Count, KillLedger

    counts = iter([Count(scope, before), Count(scope, after)])
    ledger = KillLedger(set(), read=lambda: next(counts))
    ledger.start("t0")
    return ledger


@pytest.mark.parametrize(("scope", "after", "log", "status", "reason"), [
    ("cgroup", 4, None, "oom", "out of host memory, likely: its worker (pid 20041) on node 127.0.0.1 died "
     f"unexpectedly as the kernel's OOM killer killed a process in this sweep's memory cgroup (its oom_kill "
     f"count rose); {ADVICE}"),
    ("cgroup", 4, "Killed process 20041 (ray::ImplicitFu)", "oom", "out of host memory: its worker "
     "(pid 20041) on node 127.0.0.1 was killed by the kernel's OOM killer (the kernel log names it); "
     f"{ADVICE}"),
    ("cgroup", 4, "Killed process 777 (python)", "errored", RAY_WORDS),  # the kernel killed another one
    ("cgroup", 3, None, "errored", RAY_WORDS),  # no kill while it ran: Ray's words, as before
    ("machine", 5, None, "errored", "The actor is dead because its worker process has died. Likely out of "
     "host memory: the kernel's OOM killer killed 2 processes on this machine as it ran (/proc/vmstat "
     f"oom_kill); {ADVICE}"),  # maybe another user's: not called oom
])
def test_a_worker_the_kernels_oom_killer_killed_ends_oom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         scope: str, after: int, log: str | None,
                                                         status: str, reason: str) -> None:
    """Ray says only that the worker "unexpectedly exits"; the kernel's counts read by the driver as the
    trial started and died (the cgroup's: this sweep's processes) make it `oom` with the memory advice,
    so that `ablate resume --retry oom` runs it again; "likely" unless the kernel log names its pid."""
    from ablate import oom_kills

    file = tmp_path / "error.txt"
    file.write_text(KERNEL_KILLED)
    monkeypatch.setattr(oom_kills, "KERNEL_LOG", tmp_path / "kmsg")  # absent: unreadable
    if log:
        (tmp_path / "kmsg").write_text(f"6,3170,51318638901,-;Memory cgroup out of memory: {log} x\n")
    assert failure_of(FakeTrial(file), kernel_ledger(scope, 3, after)) == (status, reason)
    assert failure_of(FakeTrial(file)) == ("errored", RAY_WORDS)  # no counts (a reader of old records)


def test_a_kernel_kill_is_said_by_the_retry_line_and_the_record(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder reads the counts as the trial starts and as Ray reports each death; the live view's
    retry line says what the record says (one reading: a kill explains one death, not two)."""
    import io
    from types import SimpleNamespace

    from ablate import oom_kills
    from ablate.live import LiveView
    from ablate.oom_kills import Count, KillLedger
    from ablate.recorder import TrialRecorder

    monkeypatch.setattr(oom_kills, "KERNEL_LOG", tmp_path / "kmsg")  # unreadable
    spec = one_point_sweep(tmp_path, "kernel")
    sweep = tmp_path / "runs" / "kernel"
    error = tmp_path / "error.txt"
    error.write_text(KERNEL_KILLED)
    trial = SimpleNamespace(trial_id="t0", config={"teacher_temp": 0.04}, error_file=str(error),
                            path=str(sweep / "tune" / "trial_t0"), num_failures=1, max_failures=2)
    recorder, stream = TrialRecorder(spec, sweep), io.StringIO()
    counts = iter(Count("cgroup", n) for n in (0, 1, 1, 2))
    recorder.kills = KillLedger(set(), read=lambda: next(counts))
    view = LiveView(recorder, stream=stream, interactive=False)
    for callback in (recorder, view):
        callback.on_trial_start(0, [], trial)
    for callback in (recorder, view):
        callback.on_trial_recover(0, [], trial)
    for callback in (recorder, view):
        callback.on_trial_start(0, [], trial)
    for callback in (recorder, view):
        callback.on_trial_error(0, [], trial)
    likely = "out of host memory, likely: its worker (pid 20041) on node 127.0.0.1 died unexpectedly"
    retried = [ln for ln in stream.getvalue().splitlines() if "Ray runs it again" in ln]
    assert len(retried) == 1 and f"failed before its first epoch ended: {likely}" in retried[0]
    (record,) = read_records(sweep)
    assert record["status"] == "oom" and record["reason"].startswith(likely)
    assert not (sweep / "trials" / "t0.error.txt").exists()  # an oom's reason is its own summary


def test_an_interrupted_trial_names_the_checkpoint_its_result_never_reached_the_record_from(
        tmp_path: Path) -> None:
    """The sweep stopped (a signal, a lost node) between epoch 1's checkpoint and its result reaching the
    driver: the record said "interrupted after 0/4 epochs", though `ablate resume` continues from
    epoch 1's checkpoint (and fills the record's epoch 1 from the report kept beside it)."""
    sweep = tmp_path
    write_json(sweep / "trials" / "b.json", {
        "format": FORMAT, "version": VERSION, "trial_id": "b", "status": "running", "epochs_planned": 4,
        "trial_dir": "tune/trial_b", "epochs": [{"epoch": 0}]})
    write_json(sweep / "tune" / "trial_b" / "checkpoint_000000" / "epoch.json", {"epoch": 1, "loss": 3.0})
    (marked,) = mark_interrupted(sweep, cause="SIGTERM received")
    assert marked["reason"] == ("interrupted after 0/4 epochs; its checkpoint of epoch 1 is kept, its "
                                "result unrecorded; SIGTERM received; "
                                f"`ablate resume {sweep}` continues it from epoch 1")


# The last failure of a trial whose DataLoader worker (num_workers 2, an image folder) was killed, as the
# trial's error file ends after ablate words torch's "DataLoader worker (pid(s) 8822) exited unexpectedly".
LOADER_KILLED = """Failure # 3 (occurred at 2026-12-07_13-40-08)
\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=8976, ip=127.0.0.1, actor_id=c35d54, repr=dino_trainable)
  File "/work/h59/trainables/dino/loaders.py", line 160, in __iter__
    raise death from None
trainables.data_workers.WorkerDied: a data-loading worker (DataLoader, pid 9012) was killed by SIGKILL; not \
sent by ablate: a kill -9, or the kernel's OOM killer (lower num_workers or batch_size where memory is short)
"""
LOADER_WORDS = ("a data-loading worker (DataLoader, pid 9012) was killed by SIGKILL; not sent by ablate: "
                "a kill -9, or the kernel's OOM killer (lower num_workers or batch_size where memory is "
                "short)")


@pytest.mark.parametrize(("text", "after", "log", "status", "reason"), [
    (LOADER_KILLED, 4, None, "oom", "out of host memory, likely: its data-loading worker (pid 9012) on node "
     "127.0.0.1 died unexpectedly as the kernel's OOM killer killed a process in this sweep's memory cgroup"),
    (LOADER_KILLED, 4, "Killed process 9012 (ray::ImplicitFu)", "oom", "out of host memory: its data-loading "
     "worker (pid 9012) on node 127.0.0.1 was killed by the kernel's OOM killer (the kernel log names it)"),
    (LOADER_KILLED, 4, "Killed process 777 (python)", "errored", LOADER_WORDS),  # another process's kill
    (LOADER_KILLED, 3, None, "errored", LOADER_WORDS),  # no kill while it ran: a kill -9
    (LOADER_KILLED.replace("SIGKILL; not", "SIGBUS; not"), 4, None, "errored",  # not the OOM killer's signal
     LOADER_WORDS.replace("SIGKILL", "SIGBUS")),
    (LOADER_KILLED.split("trainables.data_workers")[0]  # torch's own words
     + "RuntimeError: DataLoader worker (pid(s) 9012) exited unexpectedly\n", 4, None, "oom",
     "out of host memory, likely: its data-loading worker (pid 9012)"),
    (LOADER_KILLED.replace("(pid=8976, ip=127.0.0.1, actor_id=c35d54, repr=dino_trainable)", ""), 4, None,
     "errored", LOADER_WORDS),  # no node named: the driver's node's count cannot be its
])
def test_a_data_loading_worker_the_kernels_oom_killer_killed_ends_oom(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, after: int, log: str | None, status: str,
        reason: str) -> None:
    """torch's words of a DataLoader worker's death name its pid: the kernel's counts and log weigh it as
    they weigh a Ray worker's (``kernel_kill``), so that `ablate resume --retry oom` runs it again; any other
    death is errored, saying which worker died and by what signal (not torch's "exited unexpectedly")."""
    from ablate import oom_kills

    file = tmp_path / "error.txt"
    file.write_text(text)
    monkeypatch.setattr(oom_kills, "KERNEL_LOG", tmp_path / "kmsg")  # absent: unreadable
    if log:
        (tmp_path / "kmsg").write_text(f"6,3170,51318638901,-;Memory cgroup out of memory: {log} x\n")
    got = failure_of(FakeTrial(file), kernel_ledger("cgroup", 3, after))
    assert got.status == status and got.reason.startswith(reason)
    if status == "oom":
        assert got.reason.endswith(ADVICE)


def test_a_trial_killed_between_its_checkpoint_and_its_result_names_the_checkpoint(tmp_path: Path) -> None:
    """A trial's process SIGKILLed after Ray stored its epoch-1 checkpoint, before the result reached the
    driver (a real sweep, every retry so): the record said errored with epoch 0 alone and nothing of the
    checkpoint that `ablate resume` continues from ("continues from epoch 1")."""
    from types import SimpleNamespace

    from ablate.recorder import TrialRecorder

    spec = one_point_sweep(tmp_path, "killed")
    sweep = tmp_path / "runs" / "killed"
    error = tmp_path / "error.txt"
    error.write_text(KERNEL_KILLED)
    trial = SimpleNamespace(trial_id="t0", config={"teacher_temp": 0.04}, error_file=str(error),
                            path=str(sweep / "tune" / "trial_t0"))
    recorder = TrialRecorder(spec, sweep)
    recorder.on_trial_start(0, [], trial)
    recorder.on_trial_result(0, [], trial, {"epoch": 0, "knn_top1": 10.0})
    write_json(sweep / "tune" / "trial_t0" / "checkpoint_000000" / "epoch.json", {"epoch": 1, "loss": 3.0})
    recorder.on_trial_error(0, [], trial)
    (record,) = read_records(sweep)
    assert record["status"] == "errored" and [e["epoch"] for e in record["epochs"]] == [0]
    assert record["reason"].startswith(f"{RAY_WORDS}; its checkpoint of epoch 1 is kept, its result "
                                       "unrecorded: a resume that runs it again continues from epoch 1 "
                                       "(the whole error: trials/t0.error.txt)"), record["reason"]
