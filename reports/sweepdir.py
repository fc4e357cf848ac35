"""A sweep folder as ``ablate run`` writes it: ``spec.yaml``, ``tune/`` (Ray), ``optuna.db``, ``report/``.

Only reads. The spec is read with plain PyYAML (the ``ablate.spec`` model lives in another layer).

    sweep = open_sweep("runs/temps")     # ReportError if missing, empty or not a sweep
    sweep.params                          # ["teacher_temp", "student_temp", ...] (keys of `space`)
    sweep.metric, sweep.mode              # the spec's ranking metric and direction
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reports.errors import ReportError

EXPECTED = "a sweep folder with spec.yaml and tune/, as `ablate run SPEC.yaml` writes it"


@dataclass
class Sweep:
    """A sweep folder and its spec (a plain dict, as read from spec.yaml)."""

    path: Path
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or self.path.name)

    @property
    def description(self) -> str:
        return str(self.spec.get("description") or "")

    @property
    def tune_dir(self) -> Path:
        return self.path / "tune"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def space(self) -> dict[str, Any]:
        return dict(self.spec.get("space") or {})

    @property
    def params(self) -> list[str]:
        return list(self.space)

    @property
    def log_params(self) -> list[str]:
        return [k for k, v in self.space.items() if isinstance(v, dict) and v.get("log")]

    @property
    def categorical_params(self) -> list[str]:
        """Parameters searched over a list of values (shown as categories, like the paper's tables)."""
        return [k for k, v in self.space.items() if space_values(v) is not None]

    @property
    def algorithm(self) -> str:
        return str((self.spec.get("search") or {}).get("algorithm") or "")

    @property
    def trainer(self) -> dict[str, Any]:
        return dict(self.spec.get("trainer") or {})

    @property
    def epochs(self) -> int | None:
        value = self.trainer.get("epochs")
        return int(value) if isinstance(value, int) else None

    @property
    def metric(self) -> str:
        return str(self.spec.get("metric") or "knn_top1")

    @property
    def mode(self) -> str:
        return str(self.spec.get("mode") or "max")

    @property
    def reference(self) -> dict[str, Any]:
        """``reference_knn.json``: raw-pixel and untrained kNN top-1 of the dataset ({} if absent)."""
        try:
            data = json.loads((self.path / "reference_knn.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def param_info(self) -> dict[str, Any]:
        """What a parquet file keeps of the spec, so `ablate compare` works on the file alone."""
        ref = self.reference
        return {"sweep": self.name, "params": self.params, "log_params": self.log_params,
                "categorical_params": self.categorical_params, "algorithm": self.algorithm,
                "metric": self.metric, "mode": self.mode,
                "pixel_knn_top1": ref.get("pixel_knn_top1"),
                "untrained_knn_top1": ref.get("untrained_knn_top1")}


def space_values(entry: Any) -> list[Any] | None:
    """The values of a ``choice``/``grid`` space entry (or a plain list), None for a range."""
    if isinstance(entry, list):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("values"), list):
        return entry["values"]
    return None


def open_sweep(path: str | Path) -> Sweep:
    """Check that ``path`` is a sweep folder and read its spec; ReportError naming the path if not."""
    folder = Path(path)
    if not folder.exists():
        raise ReportError(f"{folder}: no such folder (expected {EXPECTED})")
    if not folder.is_dir():
        raise ReportError(f"{folder}: is a file, not a folder (expected {EXPECTED})")
    if not any(folder.iterdir()):
        raise ReportError(f"{folder}: empty folder (expected {EXPECTED})")
    missing = [n for n, ok in (("spec.yaml", (folder / "spec.yaml").is_file()),
                               ("tune/", (folder / "tune").is_dir())) if not ok]
    if missing:
        inside = [d.name for d in sorted(folder.iterdir()) if (d / "spec.yaml").is_file()]
        hint = f"; it holds the sweeps {', '.join(inside)}: pass one of them" if inside else ""
        raise ReportError(f"{folder}: not a sweep folder, no {' and no '.join(missing)} "
                          f"(expected {EXPECTED}{hint})")
    return Sweep(folder, read_spec(folder / "spec.yaml"))


def read_spec(file: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ReportError(f"{file}: not valid YAML ({exc.__class__.__name__}); expected the sweep "
                          "spec that `ablate run` writes") from None
    if not isinstance(data, dict):
        raise ReportError(f"{file}: expected a mapping (name, trainer, space, search, ...), "
                          f"got {type(data).__name__}")
    if not isinstance(data.get("space") or {}, dict):
        raise ReportError(f"{file}: 'space' must map parameter names to their ranges")
    return data


def values_equal(a: Any, b: Any) -> bool:
    """Parameter values as equal as a sweep means them (0.1 == 0.1000000001, [0.4, 1] == (0.4, 1.0))."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b
