"""What a sweep cost: device-seconds per trial, per configuration and in total, and the Pareto plot
of kNN top-1 against cost (the DINO paper's Table 8 view: accuracy vs time for crop settings).

A trial reports ``device_seconds`` (cumulative) and ``device_kind`` every epoch: its GPU share x
wall seconds on a GPU (a quarter GPU for 100 s costs 25 GPU-seconds), its process CPU seconds on
CPU. GPU and CPU seconds are never added together.

    costs = trial_costs(epochs)                  # trial_id, device_seconds, device_kind
    sweep_total(epochs)                          # '0.42 GPU-h'
    cost_table(trials, epochs, ["teacher_temp"], "knn_top1", "max")  # one row per configuration, ranked
    time_split(epochs)                           # training, data, knn, other: trial wall seconds
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import metric_words
from reports.document import Document
from reports.ranking import failed_points, rank_points
from sweep_format.layout import PLOTS_DIR
from sweep_format.metrics import CPU, DEVICE_KINDS, GPU
from sweep_format.text import plural
from sweep_format.values import fmt_value

# Where a trial's wall time goes (``trial_split``), in the order the report and bench/sweep_profile.py
# list it.
SPLIT = {"training": "training steps (forward, backward, update)",
         "data": "waiting for augmented batches inside epochs",
         "knn": "kNN evaluation (epoch 0 and each evaluated epoch)",
         "other": "set-up, checkpoints and reporting"}


# hours from which a cost is written in powers of ten: a record's device_seconds of 1e308 (edited, or a
# clock gone wrong) printed as a 300-digit number of hours in `ablate ls` and the report's Cost table
COMPACT_HOURS = 10_000


def fmt_cost(seconds: float, kind: str) -> str:
    """'0.4 CPU-s', '45 CPU-s', '12.3 GPU-min', '1.25 GPU-h', '2.78e+304 GPU-h': the one form of a cost in
    `ablate ls` and the report."""
    if not math.isfinite(seconds):
        return "–"
    if seconds < 10:  # a tiny trial's 0.4 s is not '0 CPU-s' beside a trial that cost '1 CPU-s'
        return f"{seconds:.1f} {kind}-s"
    if seconds < 120:
        return f"{seconds:.0f} {kind}-s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} {kind}-min"
    hours = seconds / 3600
    return f"{hours:.2f} {kind}-h" if hours < COMPACT_HOURS else f"{hours:.3g} {kind}-h"


def fmt_seconds(seconds: float, short: bool = False) -> str:
    """A cell of the time split: '1,234' seconds, '0.4' where ``short`` (a sweep under 10 s: its 0.4 s is
    not 0 at 44 %), from ``COMPACT_HOURS`` in powers of ten as ``fmt_cost`` writes them ('1e+308': a
    record's epoch_time_s of 1e308 printed 309 digits), '–' past the floats (trials' sums of such values)."""
    if not math.isfinite(seconds):
        return "–"
    if abs(seconds) >= COMPACT_HOURS * 3600:
        return f"{seconds:.3g}"
    return f"{seconds:,.1f}" if short else f"{seconds:,.0f}"


def fmt_share(part: float, whole: float) -> str:
    """'42.9 %' of ``whole``; '–' where the sum of absurd record values is past the floats (inf, nan %)."""
    share = part / whole * 100  # not 100 * part: 100 * 1e308 is past the floats
    return f"{share:.1f} %" if math.isfinite(share) else "–"


def trial_costs(epochs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial that reported a cost: ``trial_id``, ``device_seconds`` (its last, i.e. total,
    value) and ``device_kind``; empty for sweeps run before cost accounting."""
    columns = ["trial_id", "device_seconds", "device_kind"]
    if "device_seconds" not in epochs.columns or epochs.empty:
        return pd.DataFrame(columns=columns)
    rows = epochs[epochs["device_seconds"].notna()]
    kinds = rows["device_kind"] if "device_kind" in rows.columns else pd.Series(GPU, index=rows.index)
    out = pd.DataFrame({"trial_id": rows["trial_id"], "device_seconds": rows["device_seconds"].astype(float),
                        "device_kind": kinds.fillna(CPU).astype(str)})
    return out.groupby("trial_id", sort=False).last().reset_index()


def totals(costs: pd.DataFrame) -> dict[str, float]:
    """Seconds per device kind, GPU first."""
    sums = costs.groupby("device_kind")["device_seconds"].sum()
    order = [*DEVICE_KINDS, *sorted(set(sums.index) - set(DEVICE_KINDS))]
    return {k: float(sums[k]) for k in order if k in sums}


def sweep_total(epochs: pd.DataFrame) -> str:
    """'0.42 GPU-h', '3.1 GPU-min + 40 CPU-s', or '–' when no trial reported a cost."""
    parts = totals(trial_costs(epochs))
    return " + ".join(fmt_cost(s, k) for k, s in parts.items()) or "–"


def trial_split(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds of one trial's wall time by ``SPLIT`` key, from its epoch reports (``epoch_time_s``,
    ``data_wait_s``, ``knn_eval_s``, Ray's ``time_total_s``); all zero when it reported no epoch time.

    The wall time is Ray's ``time_total_s`` at the trial's last report, added up over the runs of a
    resumed trial (each run counts from 0 again: a drop starts a new run). ``other`` is what is left:
    building the trainer, checkpoints, reports. Trials of ablate before knn_eval_s count their
    evaluations in ``other``.
    """
    rows = sorted((r for r in rows if r.get("epoch") is not None), key=lambda r: r["epoch"])
    trained = [r for r in rows if r["epoch"] > 0]
    epochs = sum(float(r.get("epoch_time_s") or 0.0) for r in trained)
    if not epochs:
        return dict.fromkeys(SPLIT, 0.0)
    # a record's data_wait_s past its epoch_time_s (someone else's file) made training -2,990 s, -14950.0 %
    wait = min(epochs, sum(float(r.get("data_wait_s") or 0.0) for r in trained))
    knn = sum(float(r.get("knn_eval_s") or 0.0) for r in rows)
    wall = run_total = 0.0
    for row in rows:
        total = float(row.get("time_total_s") or 0.0)
        if total < run_total:  # a new run of the trial (ablate resume) counts from 0
            wall += run_total
        run_total = total
    wall = max(wall + run_total, epochs + knn)
    # at an absurd epoch time (1e308 s) wall == epochs + knn loses knn to rounding: the rest was -1 s
    return {"training": epochs - wait, "data": wait, "knn": knn, "other": max(0.0, wall - epochs - knn)}


def time_split(epochs: pd.DataFrame) -> dict[str, float]:
    """``trial_split`` added up over the sweep's trials (seconds of trial wall time)."""
    out = dict.fromkeys(SPLIT, 0.0)
    if epochs.empty or "epoch_time_s" not in epochs.columns:
        return out
    by_trial: dict[Any, list[dict[str, Any]]] = {}  # one to_dict of the table: per trial, it was most of
    for r in epochs.to_dict("records"):              # the report's time on 5,000 trials
        by_trial.setdefault(r["trial_id"], []).append(
            {k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))})
    for rows in by_trial.values():
        for key, seconds in trial_split(rows).items():
            out[key] += seconds
    return out


def cost_table(trials: pd.DataFrame, epochs: pd.DataFrame, params: list[str], metric: str = "knn_top1",
               mode: str = "max") -> pd.DataFrame:
    """One row per configuration (``point``): its parameters, trials, total and per-trial cost, and
    ``value``, the mean final ``metric`` of its counted repeats, ``collapsed``, the ranking's collapse
    verdict on them (a point without a counted trial: any of its trials), ``diverged`` (a counted
    repeat diverged), and ``failed``, collapsed or diverged (ranking rule 3); in the ranking's order
    (reports.ranking: the spec's metric and mode, failures last), unranked points after."""
    costs = trial_costs(epochs)
    data = trials.merge(costs, on="trial_id", how="inner", suffixes=("_trials", ""))
    points, _ = rank_points(trials, params, metric, mode)
    ranked = {int(p): i for i, p in enumerate(points["point"])}
    means = dict(zip(points["point"].astype(int), points["mean"], strict=True))
    counts = dict(zip(points["point"].astype(int), points["n"], strict=True))
    collapsed = dict(zip(points["point"].astype(int), points["collapsed"] > 0, strict=True))  # the ranking's
    failed = dict(zip(points["point"].astype(int), failed_points(points), strict=True))  # rule 3: + diverged
    diverged = dict(zip(points["point"].astype(int), points["diverged"] > 0, strict=True))
    rows = []
    for point, group in data.groupby("point", sort=True):
        rows.append({"point": int(point), **{p: group[p].iloc[0] for p in params}, "trials": len(group),
                     "device_kind": str(group["device_kind"].iloc[-1]),
                     "total_s": float(group["device_seconds"].sum()),
                     "per_trial_s": float(group["device_seconds"].mean()),
                     "value": float(means.get(int(point), math.nan)), "n": int(counts.get(int(point), 0)),
                     "collapsed": bool(collapsed.get(int(point), group["collapsed"].fillna(False).any())),
                     "failed": bool(failed.get(int(point), group["collapsed"].fillna(False).any())),
                     "diverged": bool(diverged.get(int(point), False)),
                     "_rank": ranked.get(int(point), len(ranked))})
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).sort_values(["_rank", "point"], kind="stable")
    return table.drop(columns="_rank").reset_index(drop=True)


def pareto_front(table: pd.DataFrame, mode: str = "max") -> list[int]:
    """Indices of the configurations no other one beats on both the metric and cost per trial; a
    failed one (collapsed or diverged: ``failed``) is not a working DINO and is left out (as the report
    ranks it last)."""
    scored = table[table["value"].notna()]
    if (~scored["failed"]).any():
        scored = scored[~scored["failed"]]
    sign = 1.0 if mode == "max" else -1.0
    scored = scored.assign(_better=sign * scored["value"]).sort_values(["per_trial_s", "_better"],
                                                                        ascending=[True, False])
    front, best = [], -math.inf
    for index, row in scored.iterrows():
        if row["_better"] > best:
            front.append(index)
            best = row["_better"]
    return front


def add_cost(doc: Document, trials: pd.DataFrame, epochs: pd.DataFrame, params: list[str], out: Path,
             metric: str = "knn_top1", mode: str = "max") -> None:
    """The report's "Cost" section."""
    doc.heading("Cost")
    table = cost_table(trials, epochs, params, metric, mode)
    if table.empty:
        doc.paragraph("No trial reported `device_seconds` (sweeps run before cost accounting).")
        return
    n = int(table["trials"].sum())
    doc.paragraph(f"Sweep total: **{sweep_total(epochs)}** over {n} {plural(n, 'trial')}. "
                  "GPU trials count their GPU share x wall time, CPU trials their process CPU time.")
    front = set(pareto_front(table, mode))
    doc.table(pd.DataFrame({
        **{p: table[p].map(fmt_value) for p in params},
        "trials": table["trials"],
        "cost per trial": [fmt_cost(s, k) for s, k in zip(table["per_trial_s"], table["device_kind"])],
        "total cost": [fmt_cost(s, k) for s, k in zip(table["total_s"], table["device_kind"])],
        metric_words.label(metric):
            table["value"].map(lambda v: "–" if not np.isfinite(v) else
                               f"{v:.2f}" if metric_words.is_percent(metric) else f"{v:.4g}"),
        "collapsed": table["collapsed"].map(lambda c: "yes" if c else ""),
        # ranked last and off the front as a collapse is (rule 3): said where one diverged, not left blank
        **({"diverged": table["diverged"].map(lambda d: "yes" if d else "")}
           if table["diverged"].any() else {}),
        "Pareto": ["yes" if i in front else "" for i in table.index]}))
    if not np.isfinite(table["value"].to_numpy(dtype=float)).all():  # a bare '–' read as a value lost
        doc.note("–: no trial of the configuration counts for the ranking (one that ASHA stopped early, or "
                 "that was interrupted, errored or ran out of memory): its cost is counted, its "
                 f"{metric_words.name(metric)} is under Trials.")
    # matplotlib: not for `ablate ls`, which reads the totals
    from reports.plots import PARETO_FILE, pareto_plot

    path = pareto_plot(table, out / PLOTS_DIR / PARETO_FILE, metric, mode)
    if path:
        doc.image(path, f"{metric} vs device-seconds per trial")
    add_time_split(doc, epochs)


def add_time_split(doc: Document, epochs: pd.DataFrame) -> None:
    """Where the trials' wall time went (``time_split``), with the setting that moves a large share."""
    split = time_split(epochs)
    wall = sum(split.values())
    if not wall:
        return
    labels = dict(SPLIT)
    if "knn_eval_s" not in epochs.columns or epochs["knn_eval_s"].isna().all():  # before knn_eval_s
        del labels["knn"]
        labels["other"] = "set-up, kNN evaluation, checkpoints and reporting"
    doc.paragraph("Where the trials' wall time went (all trials together; the rest of the machine's "
                  "time is Ray's start, slots left idle and this report):")
    doc.table(pd.DataFrame({"where": list(labels.values()),
                            "seconds": [fmt_seconds(split[k], wall < 10) for k in labels],
                            "share": [fmt_share(split[k], wall) for k in labels]}))
    hints = []
    if split["data"] / wall > 0.1:
        hints.append("the training loop waited for augmented batches: with an image folder, raise "
                     "`num_workers` (and the trial's `resources.cpu`); in-memory data is augmented on "
                     "the training device, on a CPU in the training thread")
    if split["knn"] / wall > 0.1:
        hints.append("the kNN evaluation is a forward pass of the memory and test images each "
                     "evaluated epoch: `eval_every: N` evaluates every N epochs (the last epoch "
                     "always), `knn_memory_size` caps the memory set")
    if hints:
        doc.paragraph("Over 10 %: " + "; ".join(hints) + ".")


