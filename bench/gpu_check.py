"""The verdicts of bench/gpu_check.sh: one PASS or FAIL line per target, from public outputs only.

Each subcommand reads what a stage left (bench/step.py's and bench/throughput.py's JSON lines,
`ablate train`'s metrics.jsonl, `ablate run`'s report/trials.parquet and report/epochs.parquet,
columns in reports/SCHEMA.md, and exit codes), prints ONE line, `PASS TARGET: ...` or
`FAIL TARGET: ...`, on stdout and exits 0 on PASS, 1 on FAIL. Nothing here imports ablate's
modules or reads Ray's files; the statuses and the sweep folder's file names are the format's
own (sweep_format, which imports none of them), and which trials count is the report's ranking rule
(reports.ranking, which reads the same public tables).

    python bench/gpu_check.py preflight --gpu-json W/gpu.json   # imports, CUDA, the GPU
    python bench/gpu_check.py step ABLATE.jsonl LIGHTLY.jsonl --target 1.25
    python bench/gpu_check.py resume --work W/resume --out OUT/resume.json   # runs `ablate train` x 4
    python bench/gpu_check.py e2e E2E.jsonl STEP.jsonl --target 0.05
    python bench/gpu_check.py packed W/runs/packed-1 W/runs/packed-4 --gpu-json W/gpu.json
    python bench/gpu_check.py memory W/runs/packed-1 W/runs/packed-4 --gpu-json W/gpu.json
    python bench/gpu_check.py oom W/runs/oom --exit-code 0
    python bench/gpu_check.py temps W/runs/temps --exit-code 0 --seconds 95 --csv OUT/temps_trials.csv
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's sweep_format, whatever PYTHONPATH says

from sweep_format.layout import EPOCHS_TABLE, REPORT_DIR, TRIALS_TABLE  # noqa: E402
from sweep_format.metrics import KNN_TOP1  # noqa: E402
from sweep_format.statuses import COMPLETED, OOM  # noqa: E402

# The main job on the 2-core CPU (README, "Set-up"): what the GPU figures are read against.
CPU_TEMPS = ("CPU (README, 2 cores, 9 min 45 s): working configurations 46.1 and 45.7 % (means of 3 seeds), "
             "collapsed trials 31.6-36.4 % (teacher_temp 0.062 and 0.095, and 0.012 with student_temp 0.18)")


class Verdict(Exception):
    """Raised with the one line to print: ``ok`` says PASS or FAIL."""

    def __init__(self, ok: bool, text: str) -> None:
        super().__init__(text)
        self.ok, self.text = ok, text


def last_json(path: Path) -> dict[str, Any]:
    """The last line of ``path`` that is a JSON object (the stage's result line)."""
    if not path.is_file():
        raise Verdict(False, f"{path.name}: not written (the stage did not run or crashed)")
    for line in reversed(path.read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise Verdict(False, f"{path.name}: no JSON result line (the stage crashed or timed out)")


def read_parquet(sweep: Path, table: str) -> Any:
    """``table`` (TRIALS_TABLE or EPOCHS_TABLE) of the sweep's report."""
    import pandas as pd

    path = sweep / REPORT_DIR / table
    if not path.is_file():
        raise Verdict(False, f"{path}: not written (the sweep did not finish its report)")
    return pd.read_parquet(path)


# --- preflight --------------------------------------------------------------------------------
def preflight(args: argparse.Namespace) -> str:
    versions = {}
    for name in ("torch", "ray", "optuna", "pydantic", "pandas", "pyarrow", "timm"):
        try:
            versions[name] = __import__(name).__version__
        except Exception as exc:  # any import failure is the verdict
            raise Verdict(False, f"cannot import {name} ({type(exc).__name__}: {exc}); install "
                                 "the carried wheels first (bench/device_install.sh DIR TARGET, then "
                                 "PYTHONPATH=TARGET)") from None
    try:
        import ablate.cli  # noqa: F401  (the command the stages run)
    except Exception as exc:
        raise Verdict(False, f"cannot import ablate.cli ({type(exc).__name__}: {exc}); run from "
                             "the checkout with it on PYTHONPATH") from None
    try:
        from lightly.loss import DINOLoss  # noqa: F401  (what bench/step.py --impl lightly uses)
        from lightly.models.modules import DINOProjectionHead  # noqa: F401
        versions["lightly"] = __import__("lightly").__version__
    except Exception as exc:
        versions["lightly"] = f"missing ({type(exc).__name__})"
    import torch

    if not torch.cuda.is_available():
        raise Verdict(False, f"torch sees no CUDA device (torch {torch.__version__}, built for "
                             f"CUDA {torch.version.cuda})")
    props = torch.cuda.get_device_properties(0)
    info = {"gpu": props.name, "gpus": torch.cuda.device_count(),
            "memory_gb": round(props.total_memory / 1e9, 2), "capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda, **versions}
    if args.gpu_json:
        Path(args.gpu_json).write_text(json.dumps(info))
    return ", ".join(f"{k} {v}" for k, v in info.items())


def gpu_info(path: str | None) -> dict[str, Any]:
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text())
    raise Verdict(False, f"{path}: no GPU description (the preflight did not pass)")


# --- the step ----------------------------------------------------------------------------------
def step(args: argparse.Namespace) -> str:
    a, b = last_json(Path(args.ablate)), last_json(Path(args.lightly))
    ratio = a["img_per_s"] / b["img_per_s"]
    text = (f"bf16 (ViT-S/16, 2x{a['img']} + {a['locals']}x{a['local_img']} px, K {a['out_dim']}, batch "
            f"{a['batch']}): ablate {a['img_per_s']} img/s, lightly {b['img_per_s']} img/s, {ratio:.2f}x "
            f"(target >= {args.target}x); ablate mfu {a['mfu']}, flops/step {a['flops_per_step']:.3g} vs "
            f"{b['flops_per_step']:.3g}")
    raise Verdict(ratio >= args.target, text)


# --- resume on CUDA ----------------------------------------------------------------------------
# The embedded default's network, which learns in 4 epochs: ViT-Tiny/4 with these temperatures
# collapsed to the uniform output by epoch 2 on the H200, and a collapsed run reaches the same
# output whatever a resume restored, so the comparison would say nothing.
RESUME_SETS = ["device=cuda", "epochs=4", "batch_size=128", "seed=0"]


ABLATE = [sys.executable, "-m", "ablate.cli"]  # the `ablate` command, from the checkout


def ablate_cmd(*words: str) -> list[str]:
    return [*ABLATE, *words]


def metrics_rows(run: Path) -> dict[int, dict[str, Any]]:
    """`ablate train`'s metrics.jsonl by epoch (a line still being written is skipped)."""
    path = run / "metrics.jsonl"
    rows = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
            rows[int(row["epoch"])] = row
        except (ValueError, KeyError, TypeError):
            continue
    return rows


def resume(args: argparse.Namespace) -> str:
    """Three fresh 4-epoch runs at once (A and C run through, B is interrupted with SIGINT after its
    epoch-2 checkpoint), then B resumed. B's epochs 3-4 must match A's as closely as C's do (two
    uninterrupted runs differ only by the GPU's nondeterministic kernels): identical where A and C are."""
    if args.ablate:
        ABLATE[:] = shlex.split(args.ablate)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train = ["train", *[w for s in RESUME_SETS for w in ("--set", s)], "--no-progress"]
    logs = {k: (work / f"{k}.log").open("w") for k in "ABC"}
    # B is stopped with SIGINT. A checker started with SIGINT ignored (`cmd &` in a script, nohup)
    # would pass that on to the runs; a handled signal is reset to the default at exec instead.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    procs = {k: subprocess.Popen(ablate_cmd(*train, "--out", str(work / k)), stdout=logs[k],
                                 stderr=subprocess.STDOUT, cwd=ROOT) for k in "ABC"}
    interrupted = False
    while procs["B"].poll() is None:
        if 2 in metrics_rows(work / "B"):  # written after the epoch-2 checkpoint
            procs["B"].send_signal(signal.SIGINT)
            interrupted = True
            break
        time.sleep(0.05)
    codes = {k: p.wait() for k, p in procs.items()}
    for log in logs.values():
        log.close()
    if not interrupted or codes["B"] != 130:
        raise Verdict(False, f"run B was not interrupted after epoch 2 (exit codes {codes}; "
                             f"logs in {work})")
    if codes["A"] or codes["C"]:
        raise Verdict(False, f"an uninterrupted run failed (exit codes {codes}; logs in {work})")
    with (work / "B.log").open("a") as log:
        again = subprocess.run(ablate_cmd("train", "--out", str(work / "B"), "--resume", "--no-progress"),
                               stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if again.returncode:
        raise Verdict(False, f"`ablate train --resume` on CUDA exited {again.returncode} "
                             f"(log {work}/B.log)")
    runs = {k: metrics_rows(work / k) for k in "ABC"}
    if any(sorted(r) != [0, 1, 2, 3, 4] for r in runs.values()):
        raise Verdict(False, f"epochs {[sorted(r) for r in runs.values()]} (expected 0-4 once each)")
    if args.out:
        Path(args.out).write_text(json.dumps({k: [runs[k][e] for e in range(5)] for k in "ABC"}))

    def gap(x: str, y: str, key: str, epochs: tuple[int, ...] = (3, 4)) -> float:
        return max(abs(runs[x][e][key] - runs[y][e][key]) for e in epochs)

    start, end = runs["A"][0]["knn_top1"], runs["A"][4]["knn_top1"]
    if not end > start:
        raise Verdict(False, f"run A did not learn (kNN top-1 {start:.2f} % at epoch 0, {end:.2f} % at "
                             "epoch 4): a run that does not learn says nothing of what a resume restored")
    resumed = {k: gap("A", "B", k) for k in ("loss", "knn_top1")}
    natural = {k: gap("A", "C", k) for k in ("loss", "knn_top1")}
    ok = all(resumed[k] <= 5 * natural[k] + (1e-6 if k == "loss" else 0.0) for k in resumed)
    same = "bit-identical" if resumed["loss"] == 0 and resumed["knn_top1"] == 0 else "not identical"
    raise Verdict(ok, f"on CUDA, epochs 3-4 after an interrupt at epoch 2 vs uninterrupted: {same}, "
                      f"max |d loss| {resumed['loss']:.3g}, |d kNN| {resumed['knn_top1']:.3g} points; two "
                      f"uninterrupted runs differ by {natural['loss']:.3g} and {natural['knn_top1']:.3g} "
                      f"(allowed: 5x that); final loss {runs['A'][4]['loss']:.4f}, kNN top-1 "
                      f"{start:.2f} -> {end:.2f} %")


# --- end to end, data wait -----------------------------------------------------------------------
def e2e(args: argparse.Namespace) -> str:
    run, ref = last_json(Path(args.e2e)), last_json(Path(args.step))
    wait = max(run["data_wait_share"])
    share = max(0.0, 1 - run["img_per_s"] / ref["img_per_s"])
    raise Verdict(wait < args.target and share < args.target,
                  f"CIFAR-sized in-memory data, augmented on the GPU: {run['img_per_s']} img/s, "
                  f"host data wait {wait:.3f}; step alone {ref['img_per_s']} img/s, so data and loop take "
                  f"{share:.3f} (targets < {args.target})")


# --- four trials packed on one GPU -------------------------------------------------------------
def trial_spans(epochs: Any) -> list[dict[str, float]]:
    """Per trial: training start and end (Unix s), images trained, peak GPU memory (GB).

    Ray's ``timestamp`` is whole seconds; ``time_total_s`` is exact but per trial. Each report
    bounds the trial's start (timestamp - time_total_s, within a second), and all of a trial's
    reports together bound it much closer. An epoch's training ends ``epoch_time_s`` before its
    report at the latest (the kNN of its last epoch comes in between)."""
    out = []
    for _, rows in epochs[epochs["epoch"] >= 1].groupby("trial_id"):
        rows = rows.sort_values("epoch")
        low = (rows["timestamp"] - rows["time_total_s"]).max()
        high = (rows["timestamp"] + 1 - rows["time_total_s"]).min()
        origin = (low + high) / 2 if high >= low else low
        reported = origin + rows["time_total_s"]
        start = float((reported - rows["epoch_time_s"]).iloc[0])
        out.append({"start": start, "end": start + float(rows["epoch_time_s"].sum()),
                    "train_s": float(rows["epoch_time_s"].sum()),
                    "images": float((rows["images_per_s"] * rows["epoch_time_s"]).sum()),
                    "peak_gb": float(rows["gpu_mem_peak_gb"].max()) if "gpu_mem_peak_gb" in rows
                    else math.nan})
    return out


def max_overlap(spans: list[dict[str, float]]) -> int:
    events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    running = best = 0
    for _, change in events:
        running += change
        best = max(best, running)
    return best


def aggregate(spans: list[dict[str, float]]) -> float:
    wall = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    return sum(s["images"] for s in spans) / wall if wall > 0 else math.nan


def packed_figures(args: argparse.Namespace) -> dict[str, Any]:
    one, four = (trial_spans(read_parquet(Path(d), EPOCHS_TABLE)) for d in (args.one, args.four))
    if len(one) != 1 or len(four) != 4:
        raise Verdict(False, f"{len(one)} and {len(four)} trials trained (expected 1 and 4)")
    single, together = aggregate(one), aggregate(four)
    return {"one": one, "four": four, "one_img_per_s": single, "four_img_per_s": together,
            "ratio": together / single, "max_concurrent": max_overlap(four),
            "cap_gb": args.share * gpu_info(args.gpu_json)["memory_gb"]}


def packed(args: argparse.Namespace) -> str:
    f = packed_figures(args)
    if args.out:
        Path(args.out).write_text(json.dumps(f))
    raise Verdict(f["max_concurrent"] >= 4 and f["ratio"] >= args.target,
                  f"4 trials at gpu {args.share}: {f['max_concurrent']} overlapping, "
                  f"{f['four_img_per_s']:.0f} img/s together vs {f['one_img_per_s']:.0f} for one trial alone "
                  f"= {f['ratio']:.2f}x (target >= {args.target}x)")


def memory(args: argparse.Namespace) -> str:
    f = packed_figures(args)
    peaks = [s["peak_gb"] for s in f["four"]]
    raise Verdict(all(p <= f["cap_gb"] for p in peaks),
                  f"peak {', '.join(f'{p:.2f}' for p in peaks)} GB for the 4 trials at gpu "
                  f"{args.share}, each capped at {f['cap_gb']:.1f} GB; one trial alone "
                  f"{f['one'][0]['peak_gb']:.2f} GB")


# --- an out-of-memory trial --------------------------------------------------------------------
def oom(args: argparse.Namespace) -> str:
    if args.exit_code in (130, 2):
        raise Verdict(False, f"the sweep exited {args.exit_code} (interrupted or refused)")
    trials = read_parquet(Path(args.sweep), TRIALS_TABLE)
    by_size = {int(r["global_crops_size"]): r for _, r in trials.iterrows()}
    big, small = by_size.get(args.big), by_size.get(args.small)
    if big is None or small is None:
        raise Verdict(False, f"trials for global_crops_size {sorted(by_size)} (expected "
                             f"{args.small} and {args.big})")
    reason = str(big["stop_reason"] or "")[:160]
    raise Verdict(big["status"] == OOM and small["status"] == COMPLETED,
                  f"crops {args.big} px ended {big['status']!r} ({reason}), crops {args.small} px ended "
                  f"{small['status']!r}; the sweep exited {args.exit_code}")


# --- the main job on the GPU -------------------------------------------------------------------
def temps(args: argparse.Namespace) -> str:
    trials = read_parquet(Path(args.sweep), TRIALS_TABLE)
    params = [c for c in ("teacher_temp", "warmup_teacher_temp_epochs", "student_temp") if c in trials]
    columns = ["point", "repeat", "status", "knn_top1", "collapsed", *params]
    table = trials[columns].sort_values(["point", "repeat"])
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(table.to_string(index=False), file=sys.stderr)
    from reports.ranking import counted_trials  # pandas, as read_parquet: only where a table is read

    # as the report counts them: a trained value, of a trial that ran its schedule or stopped for cause
    counted, partial = counted_trials(trials, KNN_TOP1)
    counted = counted.iloc[0:0] if partial else counted
    counted = counted.assign(collapsed=counted["collapsed"].fillna(False).astype(bool))
    points = counted.groupby("point").agg(mean=("knn_top1", "mean"), n=("knn_top1", "size"),
                                          collapsed=("collapsed", "any"))
    collapsed, working = points[points["collapsed"]], points[~points["collapsed"]]
    done = (f"{len(counted)} of {len(trials)} trials counted, {args.seconds:.0f} s end to end"
            f"{f' at {args.resources}' if args.resources else ''} (exit {args.exit_code})")

    def means(p: Any) -> str:
        return ", ".join(f"{m:.1f}" for m in sorted(p["mean"], reverse=True)) or "none"
    text = (f"the main job on the GPU (temps.yaml): {done}; working configurations {means(working)} %, "
            f"collapsed {means(collapsed)} %; {CPU_TEMPS}")
    if args.exit_code in (130, 2) or not len(collapsed) or not len(working):
        raise Verdict(False, text + " (needs a finished sweep with collapsed and working configurations)")
    raise Verdict(bool(collapsed["mean"].max() < working["mean"].min()), text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("preflight")
    s.add_argument("--gpu-json")
    s = sub.add_parser("step")
    s.add_argument("ablate")
    s.add_argument("lightly")
    s.add_argument("--target", type=float, default=1.25)
    s = sub.add_parser("resume")
    s.add_argument("--work", required=True)
    s.add_argument("--out")
    s.add_argument("--ablate", help="the ablate command (default: this Python -m ablate.cli)")
    s = sub.add_parser("e2e")
    s.add_argument("e2e")
    s.add_argument("step")
    s.add_argument("--target", type=float, default=0.05)
    for name in ("packed", "memory"):
        s = sub.add_parser(name)
        s.add_argument("one", help="the sweep of one trial at gpu 1")
        s.add_argument("four", help="the sweep of four trials at gpu --share")
        s.add_argument("--gpu-json")
        s.add_argument("--share", type=float, default=0.25)
        s.add_argument("--target", type=float, default=2.5)
        s.add_argument("--out")
    s = sub.add_parser("oom")
    s.add_argument("sweep")
    s.add_argument("--exit-code", type=int, default=0)
    s.add_argument("--small", type=int, default=32)
    s.add_argument("--big", type=int, default=224)
    s = sub.add_parser("temps")
    s.add_argument("sweep")
    s.add_argument("--exit-code", type=int, default=0)
    s.add_argument("--seconds", type=float, default=math.nan)
    s.add_argument("--csv")
    s.add_argument("--resources", help="what each trial had, for the line (e.g. 'gpu 0.125, cpu 2')")
    args = p.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    try:
        text = globals()[args.command](args)
        ok = True
    except Verdict as v:
        ok, text = v.ok, v.text
    except Exception as exc:  # a broken output is a failed target, in one line
        ok, text = False, f"could not read the stage's output ({type(exc).__name__}: {exc})"
    print(f"{'PASS' if ok else 'FAIL'} {args.command}: {text}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
