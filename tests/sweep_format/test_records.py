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
