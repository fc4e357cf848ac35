"""The columns of the report's tables (reports/SCHEMA.md), and so the names a searched parameter
cannot take: a parameter is a column of ``trials.parquet`` between ``HEAD_COLUMNS`` and
``TAIL_COLUMNS`` (and the spec's metric one more, when it is none of these). The spec's checks
(ablate.sweep_spec) refuse a bundle named like one; no trainer key is (tests/docs).
"""

from __future__ import annotations

from sweep_format.layout import PIXEL_KNN, UNTRAINED_KNN

# trials.parquet: these columns, in this order, around the searched hyperparameters (SCHEMA.md).
HEAD_COLUMNS = {"sweep": "string", "trial_id": "string", "status": "string", "stop_reason": "string"}
TAIL_COLUMNS = {
    "seed": "Int64", "repeat": "Int64", "knn_top1": "float64", "knn_top5": "float64", "knn_epoch": "Int64",
    "best_knn_top1": "float64", "knn_top1_epoch0": "float64", "loss": "float64",
    "epochs_done": "Int64", "wall_time_s": "float64", "images_per_s": "float64",
    "collapsed": "boolean", "point": "Int64", "is_baseline": "boolean", "epochs_planned": "Int64",
    "trial_dir": "string", "label": "string", PIXEL_KNN: "float64", UNTRAINED_KNN: "float64",
    "device_seconds": "float64", "restarts": "Int64",
}
EPOCH_HEAD = {"sweep": "string", "trial_id": "string", "epoch": "Int64"}


def taken(name: str, metrics: tuple[str, ...] = ()) -> bool:
    """Whether a parameter called ``name`` would collide with a trials.parquet column (``metrics``:
    those a sweep may rank by, each a column too)."""
    return name in HEAD_COLUMNS or name in TAIL_COLUMNS or name in metrics
