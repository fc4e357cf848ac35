"""How the reports name and write a sweep's metric (the spec's ``metric``): one label, one unit.

kNN accuracies are percentages and a gap between two is in points; the other metrics (``loss``,
``teacher_entropy``, ...) are plain numbers. Every table header, headline and advice that shows
the ranked metric takes its words from here.

    label("knn_top1"), unit("knn_top1"), gap("knn_top1")   # 'kNN top-1 (%)', ' %', ' points'
    label("loss"), unit("loss"), gap("loss")               # 'loss', '', ''
    fmt_gap(0.52, signed=True), fmt_gap(4.2e-06)           # '+0.52', '4.2e-06'
"""

from __future__ import annotations

from sweep_format.metrics import KNN_TOP1, KNN_TOP5, is_knn

LABELS = {KNN_TOP1: "kNN top-1 (%)", KNN_TOP5: "kNN top-5 (%)"}


def is_percent(metric: str) -> bool:
    return is_knn(metric)


def label(metric: str) -> str:
    """A column header or axis label: 'kNN top-1 (%)', or the metric's own name."""
    return LABELS.get(metric, metric)


def name(metric: str) -> str:
    """The metric in a sentence, where its value follows with its unit: 'kNN top-1' (84.44 %)."""
    return label(metric).removesuffix(" (%)")


def unit(metric: str) -> str:
    """What follows a value in a sentence: ' %' for a kNN accuracy, else nothing."""
    return " %" if is_percent(metric) else ""


def gap(metric: str) -> str:
    """What follows a difference of two values in a sentence: ' points' for kNN, else nothing."""
    return " points" if is_percent(metric) else ""


def fmt_gap(value: float, signed: bool = False) -> str:
    """A difference (or a spread) of two values in a sentence or table: two decimals, or two
    significant digits where two decimals would write a difference that is there as 0.00 (a loss
    ranked sweep's configurations can be 4e-06 apart: 'leads by 0.00 ... needs 4 repeats')."""
    sign = "+" if signed else ""
    if value != 0 and abs(value) < 0.005:
        return f"{value:{sign}.2g}"
    return f"{value:{sign}.2f}"
