"""The metrics a sweep can rank by (a spec's ``metric``) and the direction that is better.

The trainer reports each of them every epoch it evaluates. kNN accuracies are better high and the
losses low; the collapse diagnostics (``teacher_entropy``, ``kl_teacher_student``) have no better
direction by themselves, so a spec that ranks by one must say ``mode``. The spec's checks
(ablate.sweep_spec) and every reader of a sweep folder (reports) take both from here.

    mode_of("loss")            # 'min': a spec.yaml without mode
    mode_of("loss", "max")     # 'max': the spec's own
"""

from __future__ import annotations

KNN_TOP1, KNN_TOP5 = "knn_top1", "knn_top5"  # the trainer's weighted-kNN accuracies, in %
METRICS = (KNN_TOP1, KNN_TOP5, "loss", "dino_loss", "teacher_entropy", "kl_teacher_student")
DEFAULT_METRIC = KNN_TOP1
# a spec.yaml's metric of older sweeps, no longer accepted by a spec: their folders still open
LEGACY_METRICS = ("best_knn_top1",)
MODES = ("max", "min")
# the metrics whose better direction is not a matter of taste: ranking the other way is a mistake
DIRECTION = {KNN_TOP1: "max", KNN_TOP5: "max", "loss": "min", "dino_loss": "min"}
# ``device_kind``, reported beside ``device_seconds``: the unit of the cost (GPU share x wall seconds on a
# GPU, process CPU seconds on CPU; never added together), GPU first as the reports list them
GPU, CPU = "GPU", "CPU"
DEVICE_KINDS = (GPU, CPU)


def is_knn(metric: str) -> bool:
    """A kNN accuracy (``knn_top1``, ``knn_top5``): in percent, and measured only at the epochs the
    trainer evaluates (the others carry the last measured value, ``knn_evaluated`` false)."""
    return metric.startswith("knn_")


def is_percent(value: object) -> bool:
    """A kNN accuracy's value: a number from 0 to 100 (a record or ``reference_knn.json`` edited by
    hand to 1e308 overflowed the report's mean and interval, or its plots' axes)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100


def mode_of(metric: str, mode: str | None = None) -> str:
    """The ranking direction: ``mode`` where given, else the metric's own (``max`` for one without)."""
    return mode if mode in MODES else DIRECTION.get(metric, "max")


def wrong_way(metric: str, mode: str) -> str:
    """Why ``mode`` ranks ``metric`` the wrong way, in the words a spec's refusal (ablate.sweep_spec) and a
    sweep folder's (reports.sweepdir) share; "" where it ranks it its better way, or the metric has none."""
    better = DIRECTION.get(metric)
    if not better or mode == better:
        return ""
    higher = "higher" if better == "max" else "lower"
    return (f"{metric} is better when {higher}, so mode: {better} (mode: {mode} would call the worst trial "
            "best)")
