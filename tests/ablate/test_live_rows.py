"""The live view's rows keep each sum a redraw reads as a row changes: the same answers as a scan of
every row (the view's code before the sums were kept), whatever order trials start, end, start again
and report in."""

from __future__ import annotations

import math
import random
from fractions import Fraction

from ablate.live_rows import Rows, TrialRow


def scanned(rows: list[TrialRow], recent: int) -> dict[str, object]:
    """What the view computed from every row at each redraw (ablate/live.py before Rows)."""
    times = [t for r in rows for t in r.epoch_times if t > 0]
    ended = sorted((r for r in rows if r.ended_at is not None), key=lambda r: r.ended_at or 0.0)[-recent:]
    mean = None
    if times:  # exact, as Rows sums them (the view's float sum of before differed in the last bits)
        mean = math.inf if math.inf in times else float(sum(map(Fraction, times)) / len(times))
    planned = sum(r.epoch if r.ended_at is not None else max(r.planned, r.epoch) for r in rows)
    return {"ended": sum(r.ended_at is not None for r in rows), "epochs_done": sum(r.epoch for r in rows),
            "epochs_planned": planned, "mean_time": mean,
            "shown": [r.trial_id for r in rows if r.ended_at is None] + [r.trial_id for r in ended[::-1]]}


def kept(rows: Rows, recent: int) -> dict[str, object]:
    return {"ended": rows.ended, "epochs_done": rows.epochs_done, "epochs_planned": rows.epochs_planned,
            "mean_time": rows.mean_time(),
            "shown": [r.trial_id for r in rows.running() + rows.recent(recent)]}


def test_the_rows_sums_are_a_scan_of_every_row() -> None:
    rng = random.Random(0)
    rows = Rows()
    ends = [0.0, -0.0, 5.0, 5.0, 7.25, 1e9]  # equal ends: the row that started first is older
    for step in range(2000):
        if not len(rows) or rng.random() < 0.1:  # a trial the view had not seen; some from records, ended
            row = TrialRow(f"t{len(rows)}", {}, len(rows) + 1, planned=rng.choice([1, 4, 8]),
                           epoch=rng.choice([0, 0, 3]), epoch_times=[rng.choice([0.0, 1.3, 2.7])])
            row.ended_at = rng.choice([None, *ends])
            rows.add(row)
        else:
            row = rng.choice(list(rows.values()))
            with rows.changing(row):
                what = rng.random()
                if what < 0.5:  # a result
                    row.epoch = max(0, row.epoch + rng.choice([1, 1, 0, -1]))
                    row.epoch_times.append(rng.choice([1.3, 2.7, 0.1, 0.0, -1.0, 3.1415, 1e-3]))
                elif what < 0.8:  # its end
                    row.ended_at = rng.choice([*ends, step + rng.random()])
                else:  # started again
                    row.ended_at = None
        recent = rng.choice([1, 2, 6])
        assert kept(rows, recent) == scanned(list(rows.values()), recent), step
    with rows.changing(row):
        row.epoch_times.append(math.inf)
    assert rows.mean_time() == math.inf == scanned(list(rows.values()), 6)["mean_time"]


def test_a_row_whose_change_raised_is_counted_as_it_is() -> None:
    rows = Rows()
    row = rows.add(TrialRow("t0", {}, 1, planned=4))
    try:
        with rows.changing(row):
            row.epoch, row.ended_at = 2, 3.0
            raise OSError("the terminal went away")
    except OSError:
        pass
    assert kept(rows, 6) == scanned([row], 6) and rows.ended == 1
