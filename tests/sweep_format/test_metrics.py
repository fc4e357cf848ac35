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
