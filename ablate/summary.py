"""The end of ``ablate run`` / ``ablate resume``: report, best configuration, per-trial table, exit code.

The best configuration is named by the one ranking rule (reports.ranking) in the words the live
view uses; a sweep in which no trial has a value measured after training names none, says so and exits 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import ablate.history as history
from sweep_format import statuses
from sweep_format.layout import EPOCHS_TABLE, REPORT_HTML, REPORT_MD, TRIALS_DIR, TRIALS_TABLE
from sweep_format.text import plural, shell_word
from trainables.storage_errors import write_failure

if TYPE_CHECKING:
    import pandas as pd

    from reports.sweepdir import SweepDir


def finish(sweep_dir: Path, total: int | None = None, interrupted: bool = False, exit_code: int = 130,
           ended: str = statuses.INTERRUPTED) -> int:
    """Build the report (and the attention panel where the backbone is a ViT) and print a summary.

    Exit code: 0 when every trial finished and one has a trained value of the metric; ``exit_code``
    (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP) after an interrupt; 1 when a trial errored or none trained
    (the errored ones are named). ``ended``: how the resume hint says the sweep ended
    (``SweepInterrupted.ended``: interrupted, or stopped on an error of Tune's own loop)."""
    from ablate.errors import report_advice, warn
    from ablate.folder import planned_trials
    from reports.ranking import (
        all_diverged_text,
        best_point,
        best_text,
        measured_before_end,
        no_best_text,
        only_failures_trained,
    )
    from reports.render import build_report
    from reports.sweepdir import open_sweep
    from reports.tables import sweep_tables

    sweep = open_sweep(sweep_dir)
    trials, _ = sweep_tables(sweep)
    metric = sweep.metric
    report_dir = None
    if len(trials):
        attention_panel(sweep, trials)
        try:
            report_dir = build_report(sweep_dir, planned_trials(sweep_dir))
        except OSError as exc:  # an unwritable report must not hide the summary (the records are kept)
            warn(f"{write_failure(exc, 'the report')}; the records are kept{report_advice(exc, sweep_dir)}")
    params = [p for p in sweep.params if p in trials.columns]
    cols = ["trial_id", "status", *params, "repeat", "epochs_done", "knn_top1_epoch0", "knn_top1",
            "knn_epoch", metric, "loss"]
    table = trials[[c for c in dict.fromkeys(cols) if c in trials.columns]]
    if len(table):
        print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    best, partial = best_point(trials, params, metric, sweep.mode)
    if best is not None and not (interrupted and partial):  # never a running trial called best
        print("\n" + best_text(best, partial, params, metric, sweep.mode,
                               measured_before_end(trials, best["point"], metric)))
    elif not interrupted and len(trials):  # every trial diverged: that, and what to try, as the report says
        print("\n" + (all_diverged_text(trials) or no_best_text(metric)))
    print(f"trials: {statuses.describe_counts(trials['status'].value_counts().to_dict()) or 'none'}")
    if report_dir:
        print(f"report: {report_dir / REPORT_HTML} (and {REPORT_MD}, {TRIALS_TABLE}, {EPOCHS_TABLE})")
        history.note(sweep_dir, history.REPORT)
    return exit_status(sweep_dir, trials, total, interrupted, exit_code, best is not None,
                       only_failures_trained(trials, metric), reported=report_dir is not None, ended=ended)


def exit_status(sweep_dir: Path, trials: pd.DataFrame, total: int | None, interrupted: bool, exit_code: int,
                scored: bool, failed_only: bool = False, reported: bool = False,
                ended: str = statuses.INTERRUPTED) -> int:
    if interrupted:
        done = int(trials["status"].isin(statuses.FINAL).sum())
        total = total if total is not None else len(trials)
        print(resume_hint(sweep_dir, done, total, reported, ended), file=sys.stderr)
        return exit_code
    errored = trials[trials["status"].isin((statuses.ERRORED, statuses.DAMAGED))]
    resume = f"ablate resume {shell_word(sweep_dir)}"  # as the user pastes it
    for _, t in errored.iterrows():
        print(f"ablate: trial {t['trial_id']} {t['status']}: {t['stop_reason']}", file=sys.stderr)
    oom = int((trials["status"] == statuses.OOM).sum())
    if oom:  # final, as the trainable or Ray's memory monitor ended them: run again only when asked
        print(f"ablate: {oom} {plural(oom, 'trial')} ran out of memory (each trial's reason says which and "
              f"what to lower); `{resume} --retry {statuses.OOM}` runs them again (with "
              "--num-cpus N, fewer at once)", file=sys.stderr)
    damaged = int((errored["status"] == statuses.DAMAGED).sum())
    if damaged:  # never read again: `ablate resume` cannot retry them, only run their setting anew
        print(f"ablate: {damaged} trial {plural(damaged, 'record')} damaged: ablate reads nothing from "
              f"{'it' if damaged == 1 else 'them'}, and `{resume}` runs a damaged trial's "
              "setting again as a new trial only where no other record holds it; restore each file from "
              f"a copy of the sweep folder, or move it out of {sweep_dir / TRIALS_DIR}", file=sys.stderr)
    if (retried := len(errored) - damaged):
        print(f"ablate: {retried} {plural(retried, 'trial')} errored; `{resume}` retries them",
              file=sys.stderr)
    if len(errored):
        return 1
    if not scored:
        why = "every trial that trained failed" if failed_only else \
            "no trial has a value measured after training"
        print(f"ablate: {why}: nothing to call best in {sweep_dir}", file=sys.stderr)
        return 1
    return 0


def resume_hint(sweep_dir: Path, done: int | None, total: int | None, reported: bool = False,
                ended: str = statuses.INTERRUPTED) -> str:
    """What an interrupted driver says last: how the sweep ended (``ended``: interrupted, or stopped on an
    error), how far it got, and the command that goes on (with every trial finished, only the report is
    left to write; ``reported``: it has been written)."""
    counted = f"{done} of {total} trials finished; " if done is not None else ""
    if done is not None and done == total:
        if reported:  # the interrupt came as the last trial ended: the summary and report above are whole
            return f"ablate: {ended}: {counted}nothing is left to run"
        return f"ablate: {ended}: {counted}`ablate report {shell_word(sweep_dir)}` writes the report"
    return f"ablate: {ended}: {counted}continue with `ablate resume {shell_word(sweep_dir)}`"


def conclude(sweep_dir: Path, total: int, interrupted: bool = False, exit_code: int = 130,
             ended: str = statuses.INTERRUPTED) -> int:
    """``finish``, and the resume hint even when a signal cuts the report short. SIGTERM and SIGHUP
    stop it as Ctrl-C does: past the sweep's own handlers, they killed the driver in the report
    without a word (exit 143, no report, no hint), where Ctrl-C printed the hint."""
    from ablate.ending import Signals
    from ablate.ending import exit_code as signal_exit

    try:
        with Signals():
            return finish(sweep_dir, total, interrupted, exit_code, ended)
    except KeyboardInterrupt as exc:
        from sweep_format.records import read_records

        done = sum(statuses.is_final(r.get("status")) for r in read_records(sweep_dir))
        print(resume_hint(sweep_dir, done, total, ended=ended), file=sys.stderr)
        return exit_code if interrupted else signal_exit(exc)


def attention_panel(sweep: SweepDir, trials: pd.DataFrame) -> None:
    """The attention maps (ViT backbones only) of the best trial of the best, the baseline and the
    worst configuration by the ranking rule (reports.ranking, as ``ablate.load(...).best``)."""
    try:
        from ablate.attention_plot import render_comparison_panel
    except ImportError:
        return
    from reports.analysis import recorded_baseline
    from reports.ranking import best_trial, rank_points
    from sweep_format.layout import ATTENTION_FILE, trial_folder

    if not _is_vit(sweep.spec) or "trial_dir" not in trials.columns:
        return  # a CNN has no [CLS] attention to draw
    params = [p for p in sweep.params if p in trials.columns]
    points, _ = rank_points(trials, params, sweep.metric, sweep.mode)
    points = points[points["n"] > 0].set_index("point", drop=False)
    if points.empty:
        return
    chosen = {"best": points.index[0], "baseline": recorded_baseline(trials), "worst": points.index[-1]}
    picks = {}
    for name, point in chosen.items():
        row = best_trial(trials, params, sweep.metric, sweep.mode, point) if point in points.index else None
        if row is not None and (folder := trial_folder(sweep.path, row["trial_dir"])) is not None:
            picks[f"{name} ({points.loc[point, 'mean']:.1f})"] = folder
    out = sweep.report_dir / ATTENTION_FILE
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        render_comparison_panel(picks, out)
    except Exception as exc:  # any failure: a missing picture must not lose the sweep's report
        print(f"ablate: attention panel skipped: {exc}", file=sys.stderr)


def _is_vit(spec: dict) -> bool:
    from trainables.config import DINOConfig
    from trainables.dino.backbone import build_backbone, is_vit

    try:
        cfg = DINOConfig(**(spec.get("trainer") or {}))
    except Exception:
        return False
    return is_vit(build_backbone(cfg.arch, cfg.global_crops_size, cfg.patch_size, 0.0))
