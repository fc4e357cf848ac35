"""bench/gpu_check.sh and its verdicts (bench/gpu_check.py), on CPU: each device call of the plan
fits 8 minutes, the preflight stops a machine without CUDA in one line, and each verdict reads
public outputs right."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CHECK_SH = ROOT / "bench" / "gpu_check.sh"
CHECK_PY = ROOT / "bench" / "gpu_check.py"


def verdict(*args: str | Path, ignore_sigint: bool = False, **env: str) -> tuple[int, str]:
    """The checker's exit code and verdict line; ``ignore_sigint``: started as ``nohup cmd &`` in a
    script starts it, SIGINT ignored (children inherit that)."""
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    done = subprocess.run([sys.executable, str(CHECK_PY), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, **env}, preexec_fn=ignore)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-2000:]
    assert lines[-1].startswith(("PASS ", "FAIL ")), lines
    return done.returncode, lines[-1]


# --- the script ---------------------------------------------------------------------------------
def test_each_device_call_of_the_plan_fits_eight_minutes_and_together_they_check_every_target():
    done = subprocess.run(["bash", str(CHECK_SH), "--plan"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    calls = re.findall(r"^call \d+: --only (\S+)\n((?:  .*\n)+)", done.stdout, re.M)
    assert len(calls) == 2, done.stdout
    targets = set()
    for only, body in calls:
        rows = dict(re.findall(r"^  (\S+)\s+(\d+)s", body, re.M))
        total = int(rows.pop("total"))
        assert list(rows)[:2] == ["preflight-import", "preflight-step"]  # preflight first in each call
        assert sum(map(int, rows.values())) == total <= 480 - 25
        targets |= set(only.split(","))
    assert targets == {"step", "resume", "oom", "e2e", "packed", "temps"}  # memory comes with packed
    assert "GPU_CHECK_SECONDS=480 - 25" in done.stdout  # the deadline that bounds every stage
    one = subprocess.run(["bash", str(CHECK_SH), "--only", "temps", "--plan"], capture_output=True, text=True,
                         timeout=30)
    stages = re.findall(r"^  (\S+)", one.stdout, re.M)
    assert stages == ["preflight-import", "preflight-step", "temps", "total"]


def test_at_most_eight_files_come_back():
    names = set(re.findall(r"\$OUT/([A-Za-z0-9_.-]+)", CHECK_SH.read_text()))
    assert names == {"summary.txt", "check.log", "step.jsonl", "e2e.json", "resume.json", "packed.json",
                     "temps_trials.csv", "temps_report.md"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine passes the preflight")
@pytest.mark.parametrize(("only", "targets"), [
    ([], ["step", "resume", "e2e", "packed", "memory", "oom", "temps"]),
    (["--only", "step,packed"], ["step", "packed", "memory"])])
def test_preflight_stops_a_machine_without_cuda_in_one_line(tmp_path: Path, only: list[str],
                                                            targets: list[str]):
    done = subprocess.run(["bash", str(CHECK_SH), *only], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
                               "PREFLIGHT_IMPORT_LIMIT": "120"})  # the suite's load slows the imports
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert done.returncode == 1 + len(targets), done.stdout + done.stderr
    assert re.search(r"^FAIL preflight: torch sees no CUDA device \(torch .*\)$", summary, re.M), summary
    assert re.findall(r"^FAIL (\w+): not run \(preflight failed\)$", summary, re.M) == targets
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["check.log", "summary.txt"]


# --- verdicts ------------------------------------------------------------------------------------
def write_lines(path: Path, *rows: dict) -> Path:
    path.write_text("some log line\n" + "".join(json.dumps(r) + "\n" for r in rows))
    return path


STEP = {"img": 224, "locals": 8, "local_img": 96, "out_dim": 65536, "batch": 64, "mfu": 0.3,
        "flops_per_step": 3.7e12}


@pytest.mark.parametrize(("lightly", "ok"), [(100.0, True), (110.0, False)])
def test_step_needs_ablate_at_least_125x_lightly(tmp_path: Path, lightly: float, ok: bool):
    a = write_lines(tmp_path / "a.log", {**STEP, "img_per_s": 130.0})
    b = write_lines(tmp_path / "b.log", {**STEP, "img_per_s": lightly})
    rc, line = verdict("step", a, b, "--target", "1.25")
    assert (rc == 0) == ok and line.startswith("PASS" if ok else "FAIL")
    assert f"{130 / lightly:.2f}x (target >= 1.25x)" in line


def test_step_without_a_result_line_fails(tmp_path: Path):
    a = write_lines(tmp_path / "a.log", {**STEP, "img_per_s": 130.0})
    (tmp_path / "b.log").write_text("Traceback ...\nRuntimeError: CUDA out of memory\n")
    rc, line = verdict("step", a, tmp_path / "b.log")
    assert rc == 1 and "b.log: no JSON result line" in line


@pytest.mark.parametrize(("e2e", "wait", "ok"), [(9700.0, 0.01, True), (9000.0, 0.01, False),
                                                 (9700.0, 0.08, False)])
def test_e2e_needs_wait_and_data_share_under_5_percent(tmp_path: Path, e2e: float, wait: float, ok: bool):
    run = write_lines(tmp_path / "e2e.log", {"img_per_s": e2e, "data_wait_share": [wait]})
    step = write_lines(tmp_path / "step.log", {"img_per_s": 10000.0})
    rc, line = verdict("e2e", run, step)
    assert (rc == 0) == ok, line


def sweep(root: Path, name: str, table: str, frame: pd.DataFrame) -> Path:
    (root / name / "report").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(root / name / "report" / f"{table}.parquet")
    return root / name


def epochs_table(starts: list[float], epoch_s: float, peak: float = 1.2, epochs: int = 12) -> pd.DataFrame:
    """Ray-like reports: whole-second timestamps, exact time_total_s, 3 s of start-up and kNN first."""
    rows = []
    for i, t0 in enumerate(starts):
        for e in range(epochs + 1):
            total = 3.0 + e * epoch_s
            rows.append({"trial_id": f"t{i}", "epoch": e, "timestamp": int(t0 + total),
                         "time_total_s": total, "epoch_time_s": epoch_s if e else None,
                         "images_per_s": 4311 / epoch_s if e else None,
                         "gpu_mem_peak_gb": peak if e else None})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("starts", "epoch_s", "ok"), [
    ([1000.3, 1000.5, 1000.7, 1000.9], 1.3, True),      # overlapping, 3x one trial
    ([1000.3, 1016.0, 1032.0, 1048.0], 1.0, False),     # one after the other: no packing
    ([1000.3, 1000.5, 1000.7, 1000.9], 2.0, False),     # overlapping but 2x only
])
def test_packed_needs_four_overlapping_trials_at_25x(tmp_path: Path, starts: list[float], epoch_s: float,
                                                      ok: bool):
    one = sweep(tmp_path, "packed-1", "epochs", epochs_table([1000.25], 1.0))
    four = sweep(tmp_path, "packed-4", "epochs", epochs_table(starts, epoch_s))
    (tmp_path / "gpu.json").write_text(json.dumps({"memory_gb": 140.0}))
    rc, line = verdict("packed", one, four, "--gpu-json", tmp_path / "gpu.json", "--out", tmp_path / "p.json")
    assert (rc == 0) == ok, line
    figures = json.loads((tmp_path / "p.json").read_text())
    assert figures["one_img_per_s"] == pytest.approx(4311, rel=0.02)  # whole-second timestamps, exact rate
    if ok:
        assert figures["max_concurrent"] == 4 and figures["ratio"] == pytest.approx(4 / 1.3, rel=0.05)


@pytest.mark.parametrize(("peak", "ok"), [(30.0, True), (36.0, False)])
def test_memory_needs_each_peak_within_its_share(tmp_path: Path, peak: float, ok: bool):
    one = sweep(tmp_path, "packed-1", "epochs", epochs_table([1000.0], 1.0, peak=2.0))
    four = sweep(tmp_path, "packed-4", "epochs", epochs_table([1000.0] * 4, 1.3, peak=peak))
    (tmp_path / "gpu.json").write_text(json.dumps({"memory_gb": 140.0}))
    rc, line = verdict("memory", one, four, "--gpu-json", tmp_path / "gpu.json", "--share", "0.25")
    assert (rc == 0) == ok and "capped at 35.0 GB" in line, line


OOM_REASON = "out of memory: peak 35.10 GB allocated of its 0.25 GPU share"


@pytest.mark.parametrize(("statuses", "code", "ok"), [
    (("completed", "oom"), 0, True), (("completed", "completed"), 0, False),
    (("completed", "oom"), 130, False), (("oom", "oom"), 0, False)])
def test_oom_needs_the_big_trial_oom_and_the_sweep_going_on(tmp_path: Path, statuses: tuple[str, str],
                                                             code: int, ok: bool):
    trials = pd.DataFrame({"global_crops_size": [32, 224], "status": list(statuses),
                           "stop_reason": ["", OOM_REASON]})
    rc, line = verdict("oom", sweep(tmp_path, "oom", "trials", trials), "--exit-code", str(code))
    assert (rc == 0) == ok, line
    if ok:
        assert "ended 'oom' (out of memory: peak 35.10 GB allocated of its 0.25 GPU share)" in line


def temps_table(knn: dict[int, list[float]], collapsed: set[int]) -> pd.DataFrame:
    rows = []
    for point, values in knn.items():
        for repeat, value in enumerate(values):
            rows.append({"point": point, "repeat": repeat, "knn_top1": value, "collapsed": point in collapsed,
                         "status": "collapsed" if point in collapsed else "completed",
                         "teacher_temp": 0.01 * (point + 1), "student_temp": 0.1,
                         "warmup_teacher_temp_epochs": 0})
    return pd.DataFrame(rows).astype({"collapsed": "boolean"})


@pytest.mark.parametrize(("knn", "collapsed", "ok"), [
    ({0: [46, 47, 45], 1: [44, 45, 44], 2: [33, 34, 32], 3: [35, 36, 34]}, {2, 3}, True),
    ({0: [46, 47, 45], 1: [44, 45, 44], 2: [33, 34, 32], 3: [46, 45, 44]}, {2, 3}, False),  # 45 vs 44.3
    ({0: [46, 47, 45], 1: [44, 45, 44]}, set(), False),                                    # none collapsed
])
def test_temps_needs_every_collapsed_mean_below_every_working_one(tmp_path: Path, knn: dict, collapsed: set,
                                                                  ok: bool):
    path = sweep(tmp_path, "temps", "trials", temps_table(knn, collapsed))
    rc, line = verdict("temps", path, "--exit-code", "0", "--seconds", "95", "--csv", tmp_path / "t.csv")
    assert (rc == 0) == ok, line
    assert "CPU (README" in line  # the GPU figures are read against the CPU's
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns[:4]) == ["point", "repeat", "status", "knn_top1"]
    assert len(table) == sum(len(v) for v in knn.values())


def test_temps_counts_the_trials_the_report_ranks(tmp_path: Path):
    """The verdict counted every ranked-status trial with a kNN on its own, where the report's rule
    (reports.ranking) counts only a value measured after training: a trial that diverged in its first
    epoch holds the untrained network's kNN (knn_epoch 0), and was a 'working configuration' at 20 %."""
    table = temps_table({0: [46, 47, 45], 1: [44, 45, 44], 2: [33, 34, 32], 3: [35, 36, 34], 4: [20]}, {2, 3})
    table["knn_epoch"] = [8] * 12 + [0]
    table.loc[table["point"] == 4, "status"] = "diverged"
    path = sweep(tmp_path, "temps", "trials", table.astype({"knn_epoch": "Int64"}))
    rc, line = verdict("temps", path, "--exit-code", "0", "--seconds", "95")
    assert rc == 0 and "12 of 13 trials counted" in line, line


def test_a_sweep_without_its_report_fails_in_one_line(tmp_path: Path):
    rc, line = verdict("temps", tmp_path / "runs" / "temps", "--exit-code", "124")
    assert rc == 1 and line.startswith("FAIL ") and "trials.parquet: not written" in line


# --- the resume orchestration, with a stand-in for `ablate train` -------------------------------
FAKE_ABLATE = '''
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
out, resume = Path(args[args.index("--out") + 1]), "--resume" in args
out.mkdir(parents=True, exist_ok=True)
metrics = out / "metrics.jsonl"
first = 1 + max(json.loads(x)["epoch"] for x in metrics.read_text().splitlines()) if resume else 0
shift = float(os.environ.get("FAKE_SHIFT", "0")) if resume else 0.0
learns = float(os.environ.get("FAKE_LEARNS", "1"))
try:
    for epoch in range(first, 5):
        # B's first run lingers in epoch 3, as a real epoch takes seconds (the checker polls for
        # epoch 2 and interrupts it; a loaded machine may not run the checker within 0.3 s).
        linger = out.name == "B" and not resume and epoch == 3
        time.sleep(60 if linger else 0.3)
        row = {"epoch": epoch, "loss": 5 - 0.1 * epoch + shift, "knn_top1": 30.0 + learns * epoch}
        with metrics.open("a") as f:
            f.write(json.dumps(row) + "\\n")
except KeyboardInterrupt:
    sys.exit(130)
'''


@pytest.mark.parametrize(("shift", "learns", "ok", "ignore_sigint"),
                         [("0", "1", True, False), ("0", "1", True, True), ("0.01", "1", False, False),
                          ("0", "0", False, False)])
def test_resume_interrupts_after_epoch_2_and_compares(tmp_path: Path, shift: str, learns: str, ok: bool,
                                                      ignore_sigint: bool):
    fake = tmp_path / "fake_ablate.py"
    fake.write_text(FAKE_ABLATE)
    rc, line = verdict("resume", "--work", tmp_path / "w", "--out", tmp_path / "r.json",
                       "--ablate", f"{sys.executable} {fake}", ignore_sigint=ignore_sigint, FAKE_SHIFT=shift,
                       FAKE_LEARNS=learns)
    assert (rc == 0) == ok, line
    if ok:
        assert "bit-identical" in line and "kNN top-1 30.00 -> 34.00 %" in line
    if learns == "0":
        assert "run A did not learn" in line
    runs = json.loads((tmp_path / "r.json").read_text())
    assert [r["epoch"] for r in runs["B"]] == [0, 1, 2, 3, 4]


# --- the whole script, with a stand-in Python: the stages' outputs are fakes, the verdicts real ---
STUB = "gpu_check_stub.py"


def run_check(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    """bench/gpu_check.sh with PYTHON = tests/bench/gpu_check_stub.py (fakes for what needs a GPU)."""
    stub = tmp_path / "python3"
    stub.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).parent / STUB}" "$@"\n')
    stub.chmod(0o755)
    done = subprocess.run(["bash", str(CHECK_SH), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": str(stub),
                               "TMPDIR": str(tmp_path), **env})
    return done, (tmp_path / "out" / "summary.txt").read_text()


def test_every_target_passes_on_good_outputs(tmp_path: Path):
    done, summary = run_check(tmp_path)
    assert done.returncode == 0, summary + done.stderr
    lines = [ln.split(":")[0] for ln in summary.splitlines() if ln.startswith(("PASS", "FAIL"))]
    assert lines == ["PASS preflight", "PASS step", "PASS resume", "PASS oom", "PASS e2e", "PASS packed",
                     "PASS memory", "PASS temps"]
    assert "INFO ddp: skipped, 0 GPU (needs >= 2)" in summary
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["summary.txt", "check.log", "step.jsonl", "e2e.json", "resume.json", "packed.json",
         "temps_trials.csv", "temps_report.md"])
    # the preflight's step, ablate, lightly and the e2e reference
    assert len((tmp_path / "out" / "step.jsonl").read_text().splitlines()) == 4


def test_a_crashed_stage_fails_its_target_and_the_rest_goes_on(tmp_path: Path):
    done, summary = run_check(tmp_path, "--only", "step,temps", FAKE_FAIL="lightly")
    assert done.returncode == 1, summary
    assert re.search(r"^FAIL step: .*lightly\.log: no JSON result line.* \[stage step-lightly: exit 1\]$",
                     summary, re.M), summary
    assert re.search(r"^PASS temps: the main job on the GPU", summary, re.M)
    assert "RuntimeError: a fake failure" in (tmp_path / "out" / "check.log").read_text()


def test_a_stage_past_the_budget_is_stopped_and_the_rest_skipped(tmp_path: Path):
    start = time.monotonic()
    done, summary = run_check(tmp_path, "--only", "step,temps", GPU_CHECK_SECONDS="40", FAKE_SLEEP="ablate")
    assert time.monotonic() - start < 40, summary  # stages end 25 s before the budget
    assert done.returncode == 2, summary
    assert "[stage step-ablate: exit 124, timed out] [stage step-lightly: exit 125, no time left]" in summary
    assert "[stage temps: exit 125, no time left]" in summary


@pytest.mark.parametrize("only", ["step,resume,oom,e2e,packed", "temps", "memory"])
def test_the_plan_lists_the_stages_a_selection_runs(tmp_path: Path, only: str):
    """`--plan` (each call's limits) and the run read the same selection the same way."""
    plan = subprocess.run(["bash", str(CHECK_SH), "--only", only, "--plan"], capture_output=True, text=True,
                          timeout=30).stdout
    planned = [s for s in re.findall(r"^  (\S+)", plan, re.M) if s != "total"]
    _, summary = run_check(tmp_path, "--only", only)
    ran = re.findall(r"(\S+) \d+s", summary.split("== stages:", 1)[1].splitlines()[0])
    together = list(dict.fromkeys("resume+oom" if s in ("resume", "oom") else s for s in ran))  # run at once
    assert planned == together, (plan, summary)
