"""sweep_format.records owns how an epoch's row says its kNN was carried, not measured: every reader of
``knn_evaluated`` asks ``knn_carried`` (an older row without the field was evaluated)."""

from __future__ import annotations

from pathlib import Path

from sweep_format.records import final_value, knn_carried, knn_measured

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ablate", "trainables", "reports", "sweep_format", "bench")


def test_a_carried_knn_is_never_the_final_value() -> None:
    rows = [{"epoch": 1, "knn_top1": 40.0, "loss": 3.0},
            {"epoch": 2, "knn_top1": 40.0, "knn_evaluated": False, "loss": 2.5}]
    assert [knn_carried(r) for r in rows] == [False, True]
    assert [knn_measured(r) for r in rows] == [True, False]
    assert final_value(rows, "knn_top1") == 40.0 and final_value(rows, "loss") == 2.5
    assert final_value(rows[1:], "knn_top1") is None


def test_only_records_reads_knn_evaluated_of_a_row() -> None:
    owner = ROOT / "sweep_format" / "records.py"
    copies = [str(f.relative_to(ROOT)) for p in PACKAGES for f in sorted((ROOT / p).rglob("*.py"))
              if f != owner and 'get("knn_evaluated"' in f.read_text()]
    assert not copies, f"use sweep_format.records.knn_carried in {copies}"


def test_a_knn_accuracy_outside_0_to_100_makes_the_record_damaged(tmp_path: Path) -> None:
    """A record edited by hand to knn_top1 1e308 overflowed the report's mean and interval (an
    OverflowError traceback, the report half written); 0 and 100 are accuracies like any other."""
    from sweep_format.records import read_records
    from tests.helpers import crafted_sweep, good_record

    records = []
    for tid, value in (("low", 0.0), ("high", 100), ("huge", 1e308), ("neg", -0.5), ("top5", 101.0)):
        rec = good_record(tid)
        rec["epochs"][-1]["knn_top5" if tid == "top5" else "knn_top1"] = value
        records.append(rec)
    read = {r["trial_id"]: r for r in read_records(crafted_sweep(tmp_path, records))}
    assert {t: r["status"] for t, r in read.items()} == {
        "low": "completed", "high": "completed", "huge": "damaged", "neg": "damaged", "top5": "damaged"}
    assert read["huge"]["reason"].endswith("epochs[1].knn_top1 is 1e+308, not a percentage from 0 to 100")


def test_epochs_out_of_order_repeated_or_beyond_the_plan_make_the_record_damaged(tmp_path: Path) -> None:
    """The readers take a trial's last row as its final one: a record edited with its epochs reversed
    lost its trial from the ranking, a repeated last row with another kNN changed the best, and an
    epoch 5 of a 1-epoch trial at 90 % was the sweep's best, all in silence."""
    from sweep_format.records import read_records
    from tests.helpers import crafted_sweep, good_record

    edits = {"reversed": lambda e: e.reverse(), "repeated": lambda e: e.append({**e[-1], "knn_top1": 1.0}),
             "beyond": lambda e: e.append({**e[-1], "epoch": 5, "knn_top1": 90.0}), "whole": lambda e: None}
    records = []
    for tid, edit in edits.items():
        rec = good_record(tid)
        edit(rec["epochs"])
        records.append(rec)
    read = {r["trial_id"]: r for r in read_records(crafted_sweep(tmp_path, records))}
    assert {t: r.get("reason", "").split(": ", 1)[-1] for t, r in read.items()} == {
        "reversed": "epochs[1].epoch is 0 after 1, not in increasing order, each once",
        "repeated": "epochs[2].epoch is 1 after 1, not in increasing order, each once",
        "beyond": "epochs[2].epoch is 5, beyond epochs_planned 1", "whole": ""}


def test_a_measured_epoch_field_not_finite_or_below_0_makes_the_record_damaged(tmp_path: Path) -> None:
    """ln_out_dim or device_seconds edited to Infinity ended `ablate report` in matplotlib's 'Axis limits
    cannot be NaN or Inf', a device_seconds of -1 was taken off the sweep's cost, a device_kind of a
    million characters in 'Image size ... is too large'
    (tracebacks); a diverged trial's NaN loss is a value like any other."""
    import math

    from sweep_format.records import read_records
    from tests.helpers import crafted_sweep, good_record

    values = {"ln_out_dim": math.inf, "device_seconds": -1.0, "device_kind": "x" * 1000,
              "loss": math.nan, "lr": math.nan}
    records = []
    for key, value in values.items():
        rec = good_record(key)
        rec["epochs"][-1][key] = value
        records.append(rec)
    read = {r["trial_id"]: r for r in read_records(crafted_sweep(tmp_path, records))}
    assert {t: r.get("reason", "").split(": ", 1)[-1] for t, r in read.items()} == {
        "ln_out_dim": "epochs[1].ln_out_dim is inf, not a finite number >= 0",
        "device_seconds": "epochs[1].device_seconds is -1.0, not a finite number >= 0",
        "lr": "epochs[1].lr is nan, not a finite number",
        "device_kind": f"epochs[1].device_kind is '{'x' * 39}, not one of GPU, CPU", "loss": ""}


def test_a_reference_knn_outside_0_to_100_is_left_out_as_missing(tmp_path: Path) -> None:
    from reports.sweepdir import read_reference

    (tmp_path / "reference_knn.json").write_text('{"pixel_knn_top1": 1e308, "untrained_knn_top1": 29.8, '
                                                 '"dataset": "digit_scenes"}')
    assert read_reference(tmp_path) == {"untrained_knn_top1": 29.8, "dataset": "digit_scenes"}


def test_a_record_of_a_later_version_is_named_and_others_are_not(tmp_path: Path) -> None:
    """A record a newer ablate wrote is named in one line (every command refuses its folder); an
    unreadable record, one of another format or of an older or odd version is left to ``damaged``."""
    from sweep_format.files import write_json
    from sweep_format.records import FORMAT, VERSION, read_record, records_problem
    from tests.helpers import good_record

    trials = tmp_path / "trials"
    trials.mkdir()
    write_json(trials / "a.json", good_record("a"))
    (trials / "b.json").write_text("{not json")
    write_json(trials / "c.json", {"format": "other", "version": VERSION + 1})
    write_json(trials / "d.json", {**good_record("d"), "version": "2"})
    write_json(trials / "e.json", {**good_record("e"), "version": 0})
    assert records_problem(tmp_path) == ""
    newer = {"trial_id": "f", "epochs": [], "format": FORMAT, "version": VERSION + 1}  # keys reordered
    write_json(trials / "f.json", newer)
    assert records_problem(tmp_path) == (
        f"{trials / 'f.json'}: trial record version {VERSION + 1}, written by a newer ablate (this one reads "
        f"version {VERSION}); upgrade ablate to report, compare or resume the sweep")
    assert "written by a newer ablate" in read_record(trials / "f.json")["reason"]
    assert "newer" not in read_record(trials / "d.json")["reason"]


def test_a_trials_folder_this_user_may_not_list_is_named(tmp_path: Path, monkeypatch) -> None:
    """It read as a sweep with no trial: `ablate report` said 'no trial records yet' and `ablate resume`
    started every trial again."""
    from sweep_format.records import records_problem
    from tests.helpers import lock_folder

    (tmp_path / "trials").mkdir()
    lock_folder(monkeypatch, tmp_path / "trials")
    assert records_problem(tmp_path) == (
        f"{tmp_path / 'trials'}: cannot be listed (EACCES: Permission denied), so no trial record of the "
        "sweep can be read: ask its owner for access")


def test_a_hidden_file_in_trials_is_no_record_to_any_reader(tmp_path: Path) -> None:
    """Which files of trials/ are records is said once (is_record_file). `ablate ls`'s last update read the
    files' times where no record holds one from its own glob, which took the ``._a.json`` macOS leaves
    beside a copied file as a record: the sweep's last update was the copy's."""
    import datetime as dt
    import os

    from reports.listing import last_update
    from sweep_format.records import is_record_file, read_records

    (tmp_path / "trials").mkdir()
    (tmp_path / "spec.yaml").write_text("name: x\n")
    record, hidden = tmp_path / "trials" / "a.json", tmp_path / "trials" / "._a.json"
    record.write_text("not json")  # damaged: it holds no time, so the files' times are read
    hidden.write_bytes(b"\0\0")
    for file, stamp in ((tmp_path / "spec.yaml", 1.7e9), (record, 1.75e9), (hidden, 1.8e9)):
        os.utime(file, (stamp, stamp))
    error = tmp_path / "trials" / "a.error.txt"
    assert [is_record_file(f) for f in (record, hidden, error)] == [True, False, False]
    assert len(read_records(tmp_path)) == 1
    assert last_update(tmp_path) == dt.datetime.fromtimestamp(1.75e9).strftime("%Y-%m-%d %H:%M")


def test_no_module_but_records_says_which_files_of_trials_are_records() -> None:
    import re

    found = [f"{f.relative_to(ROOT)}: {line.strip()}" for package in PACKAGES
             for f in (ROOT / package).rglob("*.py") if f.name != "records.py"
             for line in f.read_text().splitlines()
             if re.search(r"(glob\(|suffix ==).*\.json", line) and "result.json" not in line]  # Ray's
    assert not found, found
