"""Does the embedded default measure DINO? One table: baselines, the default recipe, its failures.

Trains, at the default epochs and for ``--seeds`` seeds each: the default recipe; the DINO term
off (the DINO loss multiplied by 0 and no KoLeo: no gradient reaches the weights, only weight
decay and the BatchNorm running statistics of the augmented crops change, so this row is what a
run gains without learning anything); teacher_temp 0.09 (the paper's uniform collapse);
center_momentum 0.999 (one-hot collapse). Adds the raw-pixel and untrained-backbone kNN
(``trainables.baselines``), checks the targets of issue 8 and prints ONE table; ``--out``
writes everything as JSON.

    python bench/dino_signal.py --seeds 5 --out bench/signal.json    # ~11 min on 2 cores
    python bench/dino_signal.py --seeds 1 --epochs 2 --set dataset=digits

Trials run ``--jobs`` at a time (default 2), each in its own process with one thread, the way
a sweep runs them on a 2-core machine (``resources: {cpu: 1}``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repository

from sweep_format.layout import PIXEL_KNN, UNTRAINED_KNN  # reference_knn's keys

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "dino_off": {"koleo_weight": 0.0, "dino_weight": 0.0},
    "teacher_temp_0.09": {"teacher_temp": 0.09, "warmup_teacher_temp": 0.09},
    "center_momentum_0.999": {"center_momentum": 0.999},
    "koleo_only": {"koleo_weight": 0.1, "dino_weight": 0.0},  # optional: --variants ... koleo_only
    "dino_koleo": {"koleo_weight": 0.1},                       # optional: DINOv2's regularizer added
}
CORE = ["default", "dino_off", "teacher_temp_0.09", "center_momentum_0.999"]


class ScaledDINOLoss:
    """The trainer's DINOLoss with its loss times ``weight``; its diagnostics (entropy, KL) kept."""

    def __init__(self, loss: Any, weight: float) -> None:
        self.loss, self.weight = loss, weight

    def __call__(self, *args: Any) -> Any:
        out = self.loss(*args)
        return out._replace(loss=self.weight * out.loss)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loss, name)


def train_once(overrides: dict[str, Any]) -> dict[str, Any]:
    """One run in this process (1 thread): final and per-epoch kNN, the stop rule's verdict."""
    import torch

    from trainables.config import make_config
    from trainables.dino.trainer import DINOTrainer
    from trainables.stop_rules import CollapseMonitor, StopRules

    torch.set_num_threads(1)
    overrides = dict(overrides)
    dino_weight = float(overrides.pop("dino_weight", 1.0))
    trainer = DINOTrainer(make_config(overrides))
    if dino_weight != 1.0:
        trainer.loss_fn = ScaledDINOLoss(trainer.loss_fn, dino_weight)  # type: ignore[assignment]
    monitor, start, curve, collapse = CollapseMonitor(StopRules(patience=2)), time.time(), [], ""
    last: dict[str, Any] = {}
    for metrics in trainer.run():
        curve.append(round(metrics.get("knn_top1", float("nan")), 2))
        collapse = collapse or monitor.update(metrics)
        last = metrics
    return {"knn_top1": curve[-1], "curve": curve, "collapse": collapse,
            "teacher_entropy": last.get("teacher_entropy"), "ln_out_dim": last.get("ln_out_dim"),
            "time_s": round(time.time() - start, 1)}


def references(overrides: dict[str, Any]) -> dict[str, float]:
    import torch

    from trainables.baselines import reference_knn
    from trainables.config import make_config

    torch.set_num_threads(1)
    return reference_knn(make_config(overrides))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run_all(base: dict[str, Any], seeds: int, jobs: int, variants: list[str]) -> dict[str, Any]:
    jobs_list = [(name, seed) for name in variants for seed in range(seeds)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        refs = [pool.submit(references, {**base, "seed": seed}) for seed in range(seeds)]
        futures = {key: pool.submit(train_once, {**base, **VARIANTS[key[0]], "seed": key[1]})
                   for key in jobs_list}
        runs = {key: f.result() for key, f in futures.items()}
        ref_values = [r.result() for r in refs]
    out: dict[str, Any] = {"config": base, "seeds": seeds, "variants": {}}
    out[PIXEL_KNN] = ref_values[0][PIXEL_KNN]  # seed-independent
    out[UNTRAINED_KNN] = [r[UNTRAINED_KNN] for r in ref_values]
    for name in variants:
        per_seed = [runs[(name, s)] for s in range(seeds)]
        mean, std = mean_std([r["knn_top1"] for r in per_seed])
        out["variants"][name] = {"mean": mean, "std": std, "runs": per_seed}
    out["paired"] = paired_gaps(out)
    out["targets"] = check_targets(out)
    return out


def paired_gaps(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Default minus each variant, seed by seed (same seed: same initialization and data order).

    The seed spread of every run is mostly common to all runs of a seed (it follows the
    initialization), so the paired gap is what a sweep with shared repeat seeds compares.
    """
    default = [r["knn_top1"] for r in out["variants"]["default"]["runs"]]
    gaps = {}
    for name, v in out["variants"].items():
        if name != "default":
            per_seed = [d - r["knn_top1"] for d, r in zip(default, v["runs"])]
            mean, std = mean_std(per_seed)
            gaps[name] = {"mean": round(mean, 2), "std": round(std, 2),
                          "per_seed": [round(g, 2) for g in per_seed]}
    return gaps


def check_targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of issue 8, each as (name, measured, required, passed)."""
    pixel = out[PIXEL_KNN]
    untrained = statistics.fmean(out[UNTRAINED_KNN])
    v = out["variants"]
    default = v["default"]["mean"]
    best_ref = max(pixel, untrained)
    rows = [
        ("raw-pixel kNN <= 80", pixel, 80.0, pixel <= 80.0),
        ("untrained kNN <= 80", untrained, 80.0, untrained <= 80.0),
        ("default - max(pixel, untrained) >= 10", default - best_ref, 10.0, default - best_ref >= 10.0),
        ("default - DINO off >= 5", default - v["dino_off"]["mean"], 5.0,
         default - v["dino_off"]["mean"] >= 5.0),
        ("default - teacher_temp 0.09 >= 10", default - v["teacher_temp_0.09"]["mean"], 10.0,
         default - v["teacher_temp_0.09"]["mean"] >= 10.0),
        ("default - center_momentum 0.999 >= 10", default - v["center_momentum_0.999"]["mean"], 10.0,
         default - v["center_momentum_0.999"]["mean"] >= 10.0),
        ("seed std of default <= 1", v["default"]["std"], 1.0, v["default"]["std"] <= 1.0),
    ]
    return [{"target": t, "measured": round(m, 2), "required": r, "passed": bool(p)} for t, m, r, p in rows]


def table(out: dict[str, Any]) -> str:
    untrained = out[UNTRAINED_KNN]
    u_mean, u_std = mean_std(untrained)
    lines = ["| run | kNN top-1 (%) | per seed | stop rule (patience 2) |", "|---|---|---|---|",
             f"| raw pixels | {out[PIXEL_KNN]:.2f} | | |",
             f"| untrained backbone | {u_mean:.2f} ± {u_std:.2f} | "
             f"{', '.join(f'{u:.1f}' for u in untrained)} | |"]
    for name, v in out["variants"].items():
        flagged = sum(bool(r["collapse"]) for r in v["runs"])
        kinds = {r["collapse"].split(")")[0].removeprefix("collapsed (") for r in v["runs"] if r["collapse"]}
        verdict = f"{flagged}/{len(v['runs'])} collapsed"
        verdict += f" ({', '.join(sorted(kinds))})" if kinds else ""
        per_seed = ", ".join(f"{r['knn_top1']:.1f}" for r in v["runs"])
        lines.append(f"| {name} | {v['mean']:.2f} ± {v['std']:.2f} | {per_seed} | {verdict} |")
    lines += ["", "| default minus, paired by seed | mean ± std | per seed |", "|---|---|---|"]
    for name, g in out.get("paired", {}).items():
        lines.append(f"| {name} | {g['mean']:.2f} ± {g['std']:.2f} | "
                     f"{', '.join(f'{x:.1f}' for x in g['per_seed'])} |")
    lines += ["", "| target | measured | required | |", "|---|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']:.2f} | {t['required']:g} | "
              f"{'pass' if t['passed'] else 'FAIL'} |" for t in out["targets"]]
    return "\n".join(lines)


def parse_sets(items: list[str]) -> dict[str, Any]:
    from sweep_format import yamltext  # as ablate reads a --set value (1e-4 is a number)
    sets = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value")
        sets[key] = yamltext.load(value)
    return sets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config default")
    parser.add_argument("--jobs", type=int, default=2, help="trials at a time, one thread each")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="trainer config override applied to every run")
    parser.add_argument("--variants", nargs="+", default=CORE, choices=list(VARIANTS),
                        help=f"runs to train (default: {' '.join(CORE)}; the targets need these four)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    base = {"device": "cpu", **parse_sets(args.set)}
    if args.epochs is not None:
        base["epochs"] = args.epochs
    start = time.time()
    if missing := set(CORE) - set(args.variants):
        parser.error(f"--variants must include {', '.join(sorted(missing))} (the targets read them)")
    out = run_all(base, args.seeds, args.jobs, args.variants)
    out["wall_s"] = round(time.time() - start, 1)
    print(table(out))
    print(f"\n{args.seeds} seeds, {out['wall_s']:.0f} s wall, overrides {base}")
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    return 0 if all(t["passed"] for t in out["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
