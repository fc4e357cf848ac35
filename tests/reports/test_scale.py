"""Reading a sweep of thousands of trials: the work per trial stays constant (tables, the ranking,
``ablate ls``), counted in frames built, scipy calls and folder reads, never in seconds."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

import reports.listing as listing
import reports.stats as stats
import reports.tables as tables
from reports.stats import point_summary
from reports.tables import load_trials
from sweep_format.statuses import DIVERGED
from tests.helpers import crafted_sweep, good_record


def many_records(n: int) -> list[dict]:
    records = []
    for i in range(n):
        rec = good_record(f"t{i:04d}")
        rec.update(point=i % 2, params={"teacher_temp": [0.02, 0.04][i % 2]}, repeat=i // 2, seed=i // 2,
                   created_at=1.0 + i)
        records.append(rec)
    return records


def frames_built(folder: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    built = 0
    init = pd.DataFrame.__init__

    def counting(self, *args, **kwargs) -> None:
        nonlocal built
        built += 1
        init(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pd.DataFrame, "__init__", counting)
        load_trials(folder)
    return built


def test_the_tables_build_as_many_frames_for_50_trials_as_for_4(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """One frame per trial for the epochs table took 20 s of pandas' inference on 5,000 trials."""
    (tmp_path / "few").mkdir(), (tmp_path / "many").mkdir()
    few = frames_built(crafted_sweep(tmp_path / "few", many_records(4)), monkeypatch)
    many = frames_built(crafted_sweep(tmp_path / "many", many_records(50)), monkeypatch)
    assert many == few


def test_an_integer_some_epochs_lack_is_an_integer_column(tmp_path: Path) -> None:
    """A restored trial reports ``restored_from_epoch`` in its first epochs only: typed per trial, the
    gap made it a double (reports/SCHEMA.md: int)."""
    restored, plain = good_record("a"), good_record("b")
    restored["epochs"][0]["restored_from_epoch"] = 0
    _, epochs = load_trials(crafted_sweep(tmp_path, [restored, plain]))
    assert str(epochs["restored_from_epoch"].dtype) == "Int64"
    assert epochs["restored_from_epoch"].tolist()[:2] == [0, pd.NA]


def original_point_summary(trials: pd.DataFrame, params: list[str], metric: str = "knn_top1") -> pd.DataFrame:
    """reports.stats.point_summary as it was (one pandas frame per point), pasted."""
    rows = []
    for point, group in trials.groupby("point", sort=True):
        measured = group[group[metric].notna()]
        values = [float(v) for v in measured[metric]]
        seeds = ([int(s) if pd.notna(s) else None for s in measured["seed"]]
                 if "seed" in measured else [None] * len(values))
        mean, ci, n = stats.mean_ci(values)
        first = group.iloc[0]
        rows.append({"point": int(point), **{p: first[p] for p in params}, "values": values,
                     "seeds": seeds, "mean": mean, "ci": ci, "n": n,
                     "collapsed": int(group["collapsed"].fillna(False).sum()),
                     "diverged": int((group["status"] == DIVERGED).sum()) if "status" in group else 0})
    columns = ["point", *params, "values", "seeds", "mean", "ci", "n", "collapsed", "diverged"]
    return pd.DataFrame(rows, columns=columns)


def ranked_table() -> pd.DataFrame:
    return pd.DataFrame({
        "point": pd.array([2, 0, 2, None, 0, 1, 2], dtype="Int64"),
        "teacher_temp": [0.06, 0.02, 0.06, 0.08, 0.02, 0.04, 0.06],
        "norm_last_layer": pd.array([True, False, True, None, False, None, True], dtype="boolean"),
        "seed": pd.array([0, 0, 1, 0, None, 0, 2], dtype="Int64"),
        "knn_top1": [50.0, math.nan, 52.5, 40.0, 44.0, 30.0, 49.0],
        "collapsed": pd.array([False, None, True, False, False, False, False], dtype="boolean"),
        "status": pd.array(["completed", "completed", "collapsed", "completed", "completed", DIVERGED,
                            "completed"], dtype="string")})


def test_point_summary_is_the_pandas_original_value_for_value() -> None:
    table = ranked_table()
    params = ["teacher_temp", "norm_last_layer"]
    pd.testing.assert_frame_equal(point_summary(table, params), original_point_summary(table, params),
                                  check_exact=True)
    assert point_summary(table.iloc[0:0], params).empty


def test_the_t_quantile_is_asked_once_per_number_of_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scipy call per point was a quarter of ranking a sweep of thousands of points."""
    import scipy.special

    calls = []
    stdtrit = scipy.special.stdtrit
    monkeypatch.setattr(scipy.special, "stdtrit", lambda *args: calls.append(args) or stdtrit(*args))
    stats.t_quantile.cache_clear()
    table = pd.concat([ranked_table().assign(point=ranked_table()["point"] + 10 * k) for k in range(50)])
    summary = point_summary(table, ["teacher_temp"])
    assert len(summary) == 150 and sorted(set(summary["n"])) == [1, 3]
    assert len(calls) == 1  # n = 3 (points of one value have no interval)
    stats.t_quantile.cache_clear()


def test_ls_reads_each_sweeps_records_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ablate ls`` read every record twice (the tables, then the last update's time)."""
    crafted_sweep(tmp_path, many_records(6))
    reads = []
    read = listing.read_records
    for module in (listing, tables):  # wherever a record is read
        monkeypatch.setattr(module, "read_records", lambda folder: reads.append(folder) or read(folder))
    row = listing.list_sweeps(tmp_path / "runs").iloc[0]
    assert len(reads) == 1
    assert row["trials"] == "6 completed" and row["last update"] != "–"
