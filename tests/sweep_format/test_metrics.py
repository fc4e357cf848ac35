"""sweep_format.metrics owns what a metric is: which ones are kNN accuracies (percent, measured only at
evaluated epochs) is answered there once, not by each reader's own ``startswith("knn_")``."""

from __future__ import annotations

from pathlib import Path

from sweep_format.metrics import METRICS, is_knn

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ablate", "trainables", "reports", "sweep_format", "bench")


def test_the_knn_metrics_are_the_accuracies() -> None:
    assert [m for m in METRICS if is_knn(m)] == ["knn_top1", "knn_top5"]
    assert not is_knn("loss") and not is_knn("teacher_entropy")


def test_only_metrics_tells_a_knn_metric_by_its_name() -> None:
    owner = ROOT / "sweep_format" / "metrics.py"
    copies = [str(f.relative_to(ROOT)) for p in PACKAGES for f in sorted((ROOT / p).rglob("*.py"))
              if f != owner and 'startswith("knn_")' in f.read_text()]
    assert not copies, f"use sweep_format.metrics.is_knn in {copies}"


def test_only_metrics_names_the_device_kinds() -> None:
    """``device_kind`` is written by the trainable (trainables/trial.py) and read by the cost report
    (reports/cost.py): every module that handles it takes GPU and CPU from sweep_format.metrics."""
    import ast

    from sweep_format.metrics import DEVICE_KINDS

    def kinds(file: Path) -> list[str]:  # the kinds as values, in a module that handles device_kind
        text = file.read_text()
        if "device_kind" not in text:
            return []
        return [n.value for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant)
                and n.value in DEVICE_KINDS]

    owner = ROOT / "sweep_format" / "metrics.py"
    copies = [str(f.relative_to(ROOT)) for p in PACKAGES for f in sorted((ROOT / p).rglob("*.py"))
              if f != owner and kinds(f)]
    assert not copies, f"use sweep_format.metrics.GPU / CPU in {copies}"


def test_every_knn_metric_is_labelled_in_percent_and_compare_falls_back_to_the_one_it_checks() -> None:
    """The kNN metrics' names are sweep_format.metrics' (reports.metric_words kept its own KNN_TOP1, and
    compare checked a literal "knn_top1" while falling back to DEFAULT_METRIC): a sweep pair that ranks by
    different metrics is compared on the one check_shared made sure every sweep has."""
    import pandas as pd

    from reports import compare, metric_words

    assert all(metric_words.label(m).endswith("(%)") for m in METRICS if is_knn(m))
    sources = [compare.Source(name, Path(name), pd.DataFrame({"knn_top1": [50.0]}), pd.DataFrame(),
                              {"params": ["teacher_temp"], "metric": metric, "mode": mode})
               for name, metric, mode in (("a", "loss", "min"), ("b", "knn_top5", "max"))]
    metric, mode, note = compare.comparison_metric(sources)
    assert (metric, mode) == (metric_words.KNN_TOP1, "max") and "compared on knn_top1 (max)" in note
