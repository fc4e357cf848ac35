"""What a sweep cost: device-seconds per trial, per configuration and in total, and the Pareto plot
of kNN top-1 against cost (the DINO paper's Table 8 view: accuracy vs time for crop settings).

A trial reports ``device_seconds`` (cumulative) and ``device_kind`` every epoch: its GPU share x
wall seconds on a GPU (a quarter GPU for 100 s costs 25 GPU-seconds), its process CPU seconds on
CPU. GPU and CPU seconds are never added together.

    costs = trial_costs(epochs)                  # trial_id, device_seconds, device_kind
    sweep_total(trials, epochs)                  # '0.42 GPU-h'
    cost_table(trials, epochs, ["teacher_temp"]) # one row per configuration
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reports.document import Document
from reports.plots import COLLAPSE_COLOR, KNN_LABEL, TRIAL_COLOR, save
from reports.ranking import counted_trials
from reports.stats import mean_ci

KINDS = ("GPU", "CPU")


def fmt_cost(seconds: float, kind: str) -> str:
    """'45 CPU-s', '12.3 GPU-min', '1.25 GPU-h'."""
    if not math.isfinite(seconds):
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} {kind}-s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} {kind}-min"
    return f"{seconds / 3600:.2f} {kind}-h"


def trial_costs(epochs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial that reported a cost: ``trial_id``, ``device_seconds`` (its last, i.e. total,
    value) and ``device_kind``; empty for sweeps run before cost accounting."""
    columns = ["trial_id", "device_seconds", "device_kind"]
    if "device_seconds" not in epochs.columns or epochs.empty:
        return pd.DataFrame(columns=columns)
    rows = epochs[epochs["device_seconds"].notna()]
    kinds = rows["device_kind"] if "device_kind" in rows.columns else pd.Series("GPU", index=rows.index)
    out = pd.DataFrame({"trial_id": rows["trial_id"], "device_seconds": rows["device_seconds"].astype(float),
                        "device_kind": kinds.fillna("CPU").astype(str)})
    return out.groupby("trial_id", sort=False).last().reset_index()


def totals(costs: pd.DataFrame) -> dict[str, float]:
    """Seconds per device kind, GPU first."""
    sums = costs.groupby("device_kind")["device_seconds"].sum()
    return {k: float(sums[k]) for k in [*KINDS, *sorted(set(sums.index) - set(KINDS))] if k in sums}


def sweep_total(epochs: pd.DataFrame) -> str:
    """'0.42 GPU-h', '3.1 GPU-min + 40 CPU-s', or '–' when no trial reported a cost."""
    parts = totals(trial_costs(epochs))
    return " + ".join(fmt_cost(s, k) for k, s in parts.items()) or "–"


def cost_table(trials: pd.DataFrame, epochs: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """One row per configuration (``point``): its parameters, trials, total and per-trial cost, and
    final kNN top-1 (mean over its finished repeats); sorted by kNN top-1, best first."""
    costs = trial_costs(epochs)
    data = trials.merge(costs, on="trial_id", how="inner", suffixes=("_trials", ""))
    counted, _ = counted_trials(trials)
    finished = set(counted["trial_id"])
    rows = []
    for point, group in data.groupby("point", sort=True):
        kind = str(group["device_kind"].iloc[-1])
        done = group[group["trial_id"].isin(finished)]
        mean, _, n = mean_ci(done["knn_top1"].tolist())
        rows.append({"point": int(point), **{p: group[p].iloc[0] for p in params}, "trials": len(group),
                     "device_kind": kind, "total_s": float(group["device_seconds"].sum()),
                     "per_trial_s": float(group["device_seconds"].mean()), "knn_top1": mean, "n": n,
                     "collapsed": bool(group["collapsed"].fillna(False).any())})
    table = pd.DataFrame(rows)
    return table.sort_values("knn_top1", ascending=False, na_position="last").reset_index(drop=True) \
        if len(table) else table


def pareto_front(table: pd.DataFrame) -> list[int]:
    """Indices of the configurations no other one beats on both kNN top-1 and cost per trial; a
    collapsed configuration is not a working DINO and is left out (as the report ranks it last)."""
    scored = table[table["knn_top1"].notna()]
    if (~scored["collapsed"]).any():
        scored = scored[~scored["collapsed"]]
    scored = scored.sort_values(["per_trial_s", "knn_top1"], ascending=[True, False])
    front, best = [], -math.inf
    for index, row in scored.iterrows():
        if row["knn_top1"] > best:
            front.append(index)
            best = row["knn_top1"]
    return front


def pareto_plot(table: pd.DataFrame, out: Path) -> Path | None:
    """kNN top-1 (mean over repeats) against device-seconds per trial, the Pareto front joined."""
    scored = table[table["knn_top1"].notna()]
    if scored.empty:
        return None
    kind = str(scored["device_kind"].iloc[0])
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    collapsed = scored["collapsed"].to_numpy(dtype=bool)
    xs, ys = scored["per_trial_s"].to_numpy(dtype=float), scored["knn_top1"].to_numpy(dtype=float)
    ax.scatter(xs[~collapsed], ys[~collapsed], s=30, color=TRIAL_COLOR, alpha=0.7, label="configuration")
    ax.scatter(xs[collapsed], ys[collapsed], s=40, marker="x", color=COLLAPSE_COLOR, label="collapsed")
    front = table.loc[pareto_front(table)]
    ax.plot(front["per_trial_s"], front["knn_top1"], "-", color="black", lw=1, label="Pareto front")
    ax.set_xlabel(f"{kind}-seconds per trial")
    ax.set_ylabel(KNN_LABEL)
    ax.set_title("Accuracy vs cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save(fig, out)


def add_cost(doc: Document, trials: pd.DataFrame, epochs: pd.DataFrame, params: list[str], out: Path) -> None:
    """The report's "Cost" section."""
    doc.heading("Cost")
    table = cost_table(trials, epochs, params)
    if table.empty:
        doc.paragraph("No trial reported `device_seconds` (sweeps run before cost accounting).")
        return
    doc.paragraph(f"Sweep total: **{sweep_total(epochs)}** over {int(table['trials'].sum())} trials. "
                  "GPU trials count their GPU share x wall time, CPU trials their process CPU time.")
    front = set(pareto_front(table))
    doc.table(pd.DataFrame({
        **{p: table[p].map(_fmt) for p in params},
        "trials": table["trials"],
        "cost per trial": [fmt_cost(s, k) for s, k in zip(table["per_trial_s"], table["device_kind"])],
        "total cost": [fmt_cost(s, k) for s, k in zip(table["total_s"], table["device_kind"])],
        "kNN top-1 (%)": table["knn_top1"].map(lambda v: f"{v:.2f}" if np.isfinite(v) else "–"),
        "collapsed": table["collapsed"].map(lambda c: "yes" if c else ""),
        "Pareto": ["yes" if i in front else "" for i in table.index]}))
    path = pareto_plot(table, out / "plots" / "pareto_cost.png")
    if path:
        doc.image(path, "kNN top-1 vs device-seconds per trial")


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
