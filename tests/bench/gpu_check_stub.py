"""Stands in for `python3` in bench/gpu_check.sh on a machine without a GPU (tests/bench/test_gpu_check.py).

What needs a GPU is faked (the preflight, bench/step.py, bench/throughput.py, `ablate train` and
`ablate run`, which leave outputs of the documented shape); the verdicts, bench/gpu_check.py, run
for real on them. FAKE_FAIL=IMPL makes `bench/step.py --impl IMPL` crash, FAKE_SLEEP=IMPL hang.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas and yaml load where a fake needs them: most calls only print or exec
    import pandas as pd

REAL, args = sys.executable, sys.argv[1:]
ME = f"{REAL} {os.path.abspath(__file__)}"


def fake_train(argv: list[str]) -> None:
    """`ablate train ... --out DIR [--resume]`: epochs 0-4, 0.2 s each, the same numbers every run."""
    out, resume = Path(argv[argv.index("--out") + 1]), "--resume" in argv
    out.mkdir(parents=True, exist_ok=True)
    metrics = out / "metrics.jsonl"
    first = 1 + max(json.loads(x)["epoch"] for x in metrics.read_text().splitlines()) if resume else 0
    try:
        for epoch in range(first, 5):
            time.sleep(0.2)
            row = {"epoch": epoch, "loss": 5 - 0.1 * epoch, "knn_top1": 30.0 + epoch}
            with metrics.open("a") as f:
                f.write(json.dumps(row) + "\n")
    except KeyboardInterrupt:
        sys.exit(130)


def epochs(starts: list[float], epoch_s: float) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for i, t0 in enumerate(starts):
        for e in range(13):
            total = 3.0 + e * epoch_s
            rows.append({"trial_id": f"t{i}", "epoch": e, "timestamp": int(t0 + total),
                         "time_total_s": total, "epoch_time_s": epoch_s if e else None,
                         "images_per_s": 4311 / epoch_s if e else None,
                         "gpu_mem_peak_gb": 1.5 if e else None})
    return pd.DataFrame(rows)


def fake_run(argv: list[str]) -> None:
    """`ablate run SPEC --storage DIR ...`: the sweep's report/*.parquet."""
    import pandas as pd
    import yaml

    spec = yaml.safe_load(Path(argv[1]).read_text())
    report = Path(argv[argv.index("--storage") + 1]) / spec["name"] / "report"
    report.mkdir(parents=True)
    if spec["name"] == "oom":
        reason = "out of memory: peak 35.1 GB allocated of its 0.25 GPU share"
        pd.DataFrame({"global_crops_size": [32, 224], "status": ["completed", "oom"],
                      "stop_reason": ["", reason]}).to_parquet(report / "trials.parquet")
    elif spec["name"].startswith("packed"):
        starts = [1000.3] if spec["name"] == "packed-1" else [1000.3, 1000.5, 1000.7, 1000.9]
        epochs(starts, 1.0 if len(starts) == 1 else 1.3).to_parquet(report / "epochs.parquet")
    else:
        rows = [{"point": p, "repeat": r, "status": "collapsed" if p > 2 else "completed",
                 "knn_top1": (33.0 if p > 2 else 45.0) + r, "collapsed": p > 2,
                 "teacher_temp": 0.02 * (p + 1), "warmup_teacher_temp_epochs": 0, "student_temp": 0.1}
                for p in range(5) for r in range(3)]
        pd.DataFrame(rows).to_parquet(report / "trials.parquet")
        (report / "report.md").write_text("# temps\n")


def fake_bench(argv: list[str]) -> None:
    """bench/step.py or bench/throughput.py: their JSON result line."""
    impl = argv[argv.index("--impl") + 1] if "--impl" in argv else "e2e"
    if argv[argv.index("--batch") + 1 if "--batch" in argv else 0] == "256":
        impl = "e2e-step"
    if argv[argv.index("--iters") + 1 if "--iters" in argv else 0] == "1":
        impl = "preflight"
    if impl == os.environ.get("FAKE_SLEEP"):
        time.sleep(60)
    if impl == os.environ.get("FAKE_FAIL"):
        sys.exit("Traceback ...\nRuntimeError: a fake failure")
    speed = {"ablate": 130.0, "lightly": 100.0, "e2e": 9800.0, "e2e-step": 10000.0, "preflight": 1.0}[impl]
    print(json.dumps({"img_per_s": speed, "data_wait_share": [0.01], "img": 224, "locals": 8, "local_img": 96,
                      "out_dim": 65536, "batch": 64, "mfu": 0.3, "flops_per_step": 3.7e12}))


if args[:2] == ["bench/gpu_check.py", "preflight"]:
    Path(args[args.index("--gpu-json") + 1]).write_text(json.dumps({"memory_gb": 140.0, "gpu": "fake"}))
    print("PASS preflight: a fake GPU")
elif args[:2] == ["bench/gpu_check.py", "resume"]:
    os.execv(REAL, [REAL, *args, "--ablate", ME])
elif args[:1] in (["bench/step.py"], ["bench/throughput.py"]):
    fake_bench(args)
elif args[:3] == ["-m", "ablate.cli", "train"]:
    fake_train(args)
elif args[:3] == ["-m", "ablate.cli", "run"]:
    fake_run(args[2:])
elif args[:1] == ["train"]:  # as the resume verdict's --ablate
    fake_train(args)
else:
    os.execv(REAL, [REAL, *args])
