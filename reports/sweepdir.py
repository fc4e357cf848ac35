"""The reports' view of a sweep folder (layout: sweep_format.layout): its spec, params, metric, mode.

Only reads. The spec is read with plain PyYAML (the ``ablate.sweep_spec`` model lives in another layer).

    sweep = open_sweep("runs/temps")     # ReportError if missing, empty, unreadable or not a sweep
    sweep.params                          # ["teacher_temp", "student_temp", ...] (keys of `space`)
    sweep.metric, sweep.mode              # the spec's ranking metric and direction
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reports.errors import ReportError
from sweep_format import yamltext
from sweep_format.files import NOT_REGULAR, loads
from sweep_format.layout import (
    PIXEL_KNN,
    REFERENCE_FILE,
    REFERENCE_KNN,
    REPORT_DIR,
    RESOLVED,
    RESOLVED_TRAINER,
    SPEC_FILE,
    TUNE_DIR,
    UNTRAINED_KNN,
    entry_problem,
    is_sweep,
    not_a_sweep,
)
from sweep_format.metrics import (
    DEFAULT_METRIC,
    LEGACY_METRICS,
    METRICS,
    MODES,
    is_percent,
    mode_of,
    wrong_way,
)
from sweep_format.records import records_problem
from sweep_format.space import is_log, keys_set, values_of
from sweep_format.text import printable_tree


@dataclass
class SweepDir:
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
        return self.path / TUNE_DIR

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT_DIR

    @property
    def space(self) -> dict[str, Any]:
        return dict(self.spec.get("space") or {})

    @property
    def params(self) -> list[str]:
        return list(self.space)

    @property
    def log_params(self) -> list[str]:
        return [k for k, v in self.space.items() if is_log(v)]

    @property
    def categorical_params(self) -> list[str]:
        """Parameters searched over a list of values (shown as categories, like the paper's tables):
        choices, bundles, and the stepped ranges a grid or an ablation runs value by value."""
        return [k for k in self.space if self.values_of(k) is not None]

    def values_of(self, param: str) -> list[Any] | None:
        """The values a parameter's trials get (sweep_format.space.values_of), None for a sampled range."""
        return values_of(self.space.get(param), self.algorithm)

    @property
    def algorithm(self) -> str:
        return str((self.spec.get("search") or {}).get("algorithm") or "")

    @property
    def trainer(self) -> dict[str, Any]:
        return dict(self.spec.get("trainer") or {})

    @property
    def fixed_settings(self) -> dict[str, Any]:
        """The trainer settings every trial shares: those the trials ran with (spec.yaml's resolved
        section; the spec's own trainer section in a folder written before ablate kept them), less
        the keys the space searches."""
        resolved = self.spec.get(RESOLVED)
        ran = resolved.get(RESOLVED_TRAINER) if isinstance(resolved, dict) else None
        searched = set().union(*(keys_set(p, e) for p, e in self.space.items()))
        settings = ran if isinstance(ran, dict) else self.trainer
        return {k: v for k, v in settings.items() if k not in searched}

    @property
    def epochs(self) -> int | None:
        value = self.trainer.get("epochs")
        return int(value) if isinstance(value, int) else None

    @property
    def metric(self) -> str:
        return str(self.spec.get("metric") or DEFAULT_METRIC)

    @property
    def mode(self) -> str:
        return mode_of(self.metric, self.spec.get("mode"))

    def reranked(self, searched: list[tuple[str, str]]) -> str:
        """What ``ablate ls``, the report and ``ablate compare`` say when spec.yaml ranks by another metric
        or direction than the sweep searched (``sweep_format.records.searched_by`` of its records):
        ``reranking`` of the spec's metric and mode."""
        return reranking(self.metric, self.mode, searched)

    @property
    def reference(self) -> dict[str, Any]:
        """``reference_knn.json``: raw-pixel and untrained kNN top-1 of the dataset ({} if absent or
        unreadable). A value that is not a kNN accuracy, 0 to 100 (a file edited or damaged elsewhere),
        is left out like a missing one: the report would print it, mark configurations against it and write it
        into the tables' metadata, which ``ablate compare`` then refuses. ``reference_damage`` says why."""
        return read_reference(self.path)

    @property
    def reference_damage(self) -> str:
        """What is wrong with ``reference_knn.json``, naming it ("" when it is whole or absent): what the
        report says in place of the values ``reference`` leaves out, which would otherwise read as never
        recorded."""
        why = reference_file(self.path)[1]
        return f"{REFERENCE_FILE} is damaged: {why}" if why else ""

    def param_info(self, searched: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        """What a parquet file keeps of the spec, so `ablate compare` works on the file alone;
        ``searched``: the (metric, mode) pairs the records say the sweep searched (``searched_by``), kept
        as ``searched`` where given, for the comparison to say a re-ranking (``reranking``)."""
        ref = self.reference
        return {"sweep": self.name, "params": self.params, "log_params": self.log_params,
                "categorical_params": self.categorical_params, "algorithm": self.algorithm,
                "metric": self.metric, "mode": self.mode,
                **({"searched": [list(pair) for pair in searched]} if searched is not None else {}),
                PIXEL_KNN: ref.get(PIXEL_KNN),
                UNTRAINED_KNN: ref.get(UNTRAINED_KNN), "fixed": self.fixed_settings}


# why a re-ranked sweep's configurations are not the ranking's own choice (said after ``reranking``)
RERANKED_WHY = "the search chose the configurations to try by the metric it was given"


def reranking(metric: str, mode: str, searched: list[tuple[str, str]]) -> str:
    """The one wording for a sweep whose spec.yaml ranks by ``metric`` and ``mode``, another metric or
    direction than the sweep searched (``searched``: ``sweep_format.records.searched_by`` of its records),
    e.g. 'spec.yaml ranks by loss, the sweep searched knn_top1'; "" when it ranks by that one, or no
    record says. Re-ranking by editing spec.yaml is allowed; read in silence, a loss ranking stood for
    the sweep's own result."""
    ranked = (metric, mode)
    searched = [(m, d) for m, d in searched]  # pairs read back from JSON are lists
    if not searched or searched == [ranked]:
        return ""
    turned = len({m for m, _ in [ranked, *searched]}) == 1  # the same metric, the other way: say how

    def said(metric: str, mode: str) -> str:
        return f"{metric} {mode}" if turned else metric

    return (f"{SPEC_FILE} ranks by {said(*ranked)}, the sweep searched "
            + " and ".join(said(*pair) for pair in searched))


def read_reference(sweep_dir: Path) -> dict[str, Any]:
    """``SweepDir.reference`` of the folder ``sweep_dir`` (``ablate resume`` computes the values again
    where they are missing)."""
    return reference_file(sweep_dir)[0]


def reference_file(sweep_dir: Path) -> tuple[dict[str, Any], str]:
    """``reference_knn.json`` of ``sweep_dir``: its entries less the ``REFERENCE_KNN`` values that are
    not kNN accuracies, and what is wrong with it ("" when it is absent or whole: an object with both
    values, each a percentage from 0 to 100, as ``ablate run`` writes it)."""
    file = sweep_dir / REFERENCE_FILE
    if not file.exists():
        return {}, ""
    if not file.is_file():  # reading a FIFO would wait for ever (open_sweep refuses one before)
        return {}, NOT_REGULAR
    try:
        data = loads(file.read_bytes())
    except OSError as exc:
        return {}, f"cannot be read ({exc.strerror})"
    except ValueError as exc:  # truncated, not JSON, bytes that are not UTF-8
        return {}, f"not readable as JSON ({exc.__class__.__name__}: {str(exc)[:80]})"
    if not isinstance(data, dict):
        return {}, f"holds {repr(data)[:40]}, not a JSON object of {' and '.join(REFERENCE_KNN)}"
    wrong = [f"{key} is {repr(data[key])[:40]}, not a percentage from 0 to 100" if key in data
             else f"no {key}" for key in REFERENCE_KNN if not is_percent(data.get(key))]
    return {k: v for k, v in data.items() if k not in REFERENCE_KNN or is_percent(v)}, "; ".join(wrong)


def open_sweep(path: str | Path, reads: tuple[str, ...] | None = None) -> SweepDir:
    """Check that ``path`` is a sweep folder and read its spec; ReportError naming the path if not.
    ``reads``: nothing will be written into it, only these entries read (``layout.READ``, ``layout.LISTED``;
    ``entry_problem``)."""
    folder = Path(path)
    if not is_sweep(folder):
        raise ReportError(not_a_sweep(folder))
    if problem := entry_problem(folder, reads) or records_problem(folder):
        raise ReportError(problem)
    return SweepDir(folder, read_spec(folder / SPEC_FILE))


def read_spec(file: Path) -> dict[str, Any]:
    expected = "expected the sweep spec that `ablate run` writes; restore it from a copy of the sweep folder"
    try:
        data = yamltext.load(file.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ReportError(f"{file}: cannot be read ({exc.strerror})") from None
    except yamltext.TooLarge as exc:
        raise ReportError(f"{file}: {exc}; {expected}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ReportError(f"{file}: not a YAML text ({exc.__class__.__name__}); {expected}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{file}: expected a mapping (name, trainer, space, search, ...), "
                          f"got {type(data).__name__}; {expected}")
    if not isinstance(data.get("space") or {}, dict):
        raise ReportError(f"{file}: 'space' must map parameter names to their ranges; {expected}")
    data = printable_tree(data)  # its description is printed (ablate ls) and reported
    if "metric" in data and data["metric"] not in METRICS + LEGACY_METRICS:
        raise ReportError(f"{file}: metric: {str(data['metric'])[:60]!r} is not a metric a sweep ranks by "
                          f"(allowed: {', '.join(METRICS)})")
    if data.get("mode") is not None and data["mode"] not in MODES:  # ranked the metric's way in silence
        raise ReportError(f"{file}: mode: {str(data['mode'])[:60]!r} is not a ranking direction "
                          f"(allowed: {', '.join(MODES)})")
    if data.get("mode") is not None and (wrong := wrong_way(str(data.get("metric") or DEFAULT_METRIC),
                                                            data["mode"])):  # ablate run refuses such a spec
        raise ReportError(f"{file}: mode: {data['mode']!r}: {wrong}")
    return data
