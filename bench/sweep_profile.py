"""Where a finished sweep's core-seconds went, from its own folder: training, data, trial overhead, the rest.

    python bench/sweep_profile.py runs/temps            # the table, in Markdown
    python bench/sweep_profile.py runs/temps --json     # the same figures as one JSON line

Reads only the sweep folder: the trial records (``trials/*.json``: each epoch's ``epoch_time_s`` and
``data_wait_s``, each trial's Ray ``time_total_s``) and ``history.jsonl`` (when each driver ran and on
how many CPUs). The rows:

- **training steps**: the epochs' time less their wait for batches (model forward, backward, update);
- **waiting for augmented batches** inside the epochs (``data_wait_s``: the multi-crop augmentation,
  which on CPU runs in the training thread);
- **per-trial set-up, kNN evaluation, checkpoints**: each trial's wall time (Ray's ``time_total_s``)
  less its epochs; the trials' ``knn_eval_s`` (each evaluation's seconds, epoch 0's included; trials
  of ablate before 2026-12 did not report it) splits out the kNN evaluations;
- **outside the trials**: the drivers' core-seconds (wall time x CPUs) not spent in a trial: Ray's
  start, the reference kNN, slots left idle (a trial starting, the last trial running alone), the
  report.

A trial's time counts once per CPU it holds (``resources.cpu``); with ``workers`` > 1, per worker.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def profile(sweep_dir: Path) -> dict[str, Any]:
    from ablate import history
    from reports.cost import SPLIT, trial_split
    from sweep_format.layout import SPEC_FILE
    from sweep_format.records import is_damaged, read_records
    from sweep_format.yamltext import load

    spec = load((sweep_dir / SPEC_FILE).read_text())
    resources = spec.get("resources") or {}
    per_trial = float(resources.get("cpu", 1.0)) * int(resources.get("workers", 1))
    split = dict.fromkeys(SPLIT, 0.0)
    trials = 0
    for rec in read_records(sweep_dir):
        if is_damaged(rec) or not rec.get("epochs"):
            continue
        for key, seconds in trial_split(rec["epochs"]).items():
            split[key] += seconds
        trials += 1
    runs = driver_runs(history.read(sweep_dir))
    cores = sum(r["cpus"] * r["wall_s"] for r in runs)
    in_trials = sum(split.values()) * per_trial
    knn = split["knn"]
    rows_out = [(SPLIT["training"], split["training"] * per_trial),
                (SPLIT["data"], split["data"] * per_trial),
                ("per-trial set-up, kNN evaluation, checkpoints (trial wall - epoch times)",
                 (split["knn"] + split["other"]) * per_trial),
                ("outside the trials: Ray start, reference kNN, idle slots, the tail, the report",
                 max(cores - in_trials, 0.0))]
    return {"sweep": str(sweep_dir), "trials": trials, "driver_runs": runs, "core_seconds": cores,
            "wall_s": sum(r["wall_s"] for r in runs), "knn_eval_core_s": knn * per_trial,
            "rows": [{"where": w, "core_s": s, "share": s / cores if cores else None} for w, s in rows_out]}


def driver_runs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per driver run: its command, CPUs and wall time (start to its last event). Events
    come from ``history.read`` (each has a number ``at``); a ``started_at`` or ``cpus`` that is no
    number (a hand-edited line) counts as absent."""
    from ablate import history

    runs: list[dict[str, Any]] = []
    for event in events:
        if event.get("event") == history.START:
            start = _number(event.get("started_at"), float(event["at"]))
            runs.append({"command": event.get("command"), "cpus": _number(event.get("cpus"), 0.0),
                         "start": start, "last": float(event["at"])})
        elif runs:
            runs[-1]["last"] = float(event["at"])
    return [{"command": r["command"], "cpus": r["cpus"], "wall_s": r["last"] - r["start"]} for r in runs]


def _number(value: Any, default: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value
    return float(value) if ok else default


def table(result: dict[str, Any]) -> str:
    cores, wall = result["core_seconds"], result["wall_s"]
    cpus = ", ".join(f"{r['command']} {r['wall_s']:.0f} s x {r['cpus']:g} CPUs"
                     for r in result["driver_runs"])
    lines = [f"{result['sweep']}: {result['trials']} trials; drivers: {cpus or 'none recorded'}", "",
             f"| where the cores' time went ({cores:,.0f} core-seconds, {wall:.0f} s wall) | seconds "
             "| share |",
             "|---|---|---|"]
    for row in result["rows"]:
        share = f"{100 * row['share']:.1f} %" if row["share"] is not None else "–"
        lines.append(f"| {row['where']} | {row['core_s']:,.0f} | {share} |")
    if result["knn_eval_core_s"] and cores:
        knn = result["knn_eval_core_s"]
        lines.append(f"\nof which kNN evaluation: {knn:,.0f} core-seconds ({100 * knn / cores:.1f} %)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("sweep", type=Path, help="a finished sweep folder, e.g. runs/temps")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args()
    from sweep_format.layout import is_sweep, not_a_sweep

    if not is_sweep(args.sweep):
        print(f"sweep_profile: {not_a_sweep(args.sweep)}", file=sys.stderr)
        return 2
    result = profile(args.sweep)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
