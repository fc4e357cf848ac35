"""The Python API, for notebooks and scripts; the ``ablate`` CLI is a thin layer over it.

    import ablate
    sweep = ablate.run("search_spaces/temps.yaml", set={"trainer.epochs": 2})
    sweep = ablate.load("runs/temps")          # a finished, running or interrupted sweep
    sweep.trials                                # one row per trial (pandas; reports/SCHEMA.md)
    sweep.epochs                                # one row per trial and epoch
    sweep.best                                  # the best trial's row, ranked as the report ranks
    sweep.report()                              # writes runs/temps/report/, returns that folder
    ablate.compare("runs/temps", "runs/temps-cifar10", out="runs/compare")

Mistakes raise ``ablate.errors.UserError`` (or ``trainables.config.ConfigError``) with the message
the CLI would print.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pandas as pd

from ablate.errors import UserError
from reports.errors import ReportError
from sweep_format.files import user_path
from sweep_format.layout import REPORT_DIR, SPEC_FILE, TRIALS_TABLE, is_sweep, not_a_sweep

if TYPE_CHECKING:
    from reports.sweepdir import SweepDir


@dataclass
class Sweep:
    """A sweep folder (``runs/NAME``): its spec, its tables and its report."""

    path: Path
    _tables: tuple[pd.DataFrame, pd.DataFrame] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def spec(self) -> dict[str, Any]:
        """The resolved spec the sweep ran with (``spec.yaml``)."""
        from reports.sweepdir import read_spec

        try:
            return read_spec(self.path / SPEC_FILE)
        except ReportError as exc:
            raise UserError(str(exc)) from None

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial (the columns of ``report/trials.parquet``, reports/SCHEMA.md), built from
        the sweep's own records when first asked: current while it runs (``reload()`` reads again),
        whether or not a report was written."""
        return self._load()[0]

    @property
    def epochs(self) -> pd.DataFrame:
        """One row per trial and epoch (the columns of ``report/epochs.parquet``), as ``trials``."""
        return self._load()[1]

    @property
    def best(self) -> pd.Series | None:
        """The trials row of the best trial of the best configuration, by the one ranking rule
        (reports/ranking.py: the summary, ``ablate ls`` and the report rank the same way); None
        while no trial has a value."""
        from reports.ranking import best_trial

        sweep = self._folder()
        return best_trial(self.trials, sweep.params, sweep.metric, sweep.mode)

    def report(self) -> Path:
        """Write the full report (parquet, report.md, report.html, plots); returns its folder."""
        from ablate.folder import planned_trials
        from ablate.lock import driven
        from reports.render import build_report

        try:  # ablate's lock file says whether a driver runs it (as for `ablate ls`); reports only read
            out = build_report(self.path, planned_trials(self.path), driven(self.path))
        except ReportError as exc:
            raise UserError(str(exc)) from None
        self._tables = None  # re-read: the sweep may have moved on
        return out

    def reload(self) -> Sweep:
        """Forget the cached tables (a running sweep has new results)."""
        self._tables = None
        return self

    def _folder(self) -> SweepDir:
        from reports.sweepdir import open_sweep
        from sweep_format.layout import READ

        try:  # trials, epochs and best only read it (report() checks what it writes)
            return open_sweep(self.path, READ)
        except ReportError as exc:
            raise UserError(str(exc)) from None

    def _load(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        from reports.tables import sweep_tables

        if self._tables is None:
            self._tables = sweep_tables(self._folder())
        return self._tables


def load(path: str | Path) -> Sweep:
    """The sweep in folder ``path`` (``runs/NAME``); UserError if it is not one."""
    folder = user_path(path).resolve()
    if not is_sweep(folder):
        raise UserError(not_a_sweep(folder))
    return Sweep(folder)


def set_items(values: Mapping[str, Any] | None) -> list[str]:
    """``{"trainer.epochs": 2}`` -> ``["trainer.epochs=2"]`` (values as JSON, which YAML reads back)."""
    return [f"{key}={json.dumps(value)}" for key, value in (values or {}).items()]


def run(spec_path: str | Path, set: Mapping[str, Any] | None = None, storage: str | Path = "runs",
        address: str | None = None, loggers: Sequence[str] = (), num_cpus: int | None = None,
        num_gpus: int | None = None, verbose: bool = False, stream: IO[str] | None = None,
        force: bool = False, connect_timeout: float = 30.0) -> Sweep:
    """Run the sweep of ``spec_path`` (with ``set`` overrides by dotted key) into ``storage``; every
    option of ``ablate run`` is an argument (``connect_timeout``: ``--connect-timeout``).

    Progress is printed to ``stream`` (stderr by default), one line per event off a terminal.
    """
    from ablate.sweep_spec import load_spec

    spec = load_spec(spec_path, set_items(set), force=force)  # every mistake is reported before Ray starts
    return run_spec(spec, storage, address, loggers, num_cpus, num_gpus, verbose, stream, connect_timeout)


def run_spec(spec: Any, storage: str | Path = "runs", address: str | None = None, loggers: Sequence[str] = (),
             num_cpus: int | None = None, num_gpus: int | None = None, verbose: bool = False,
             stream: IO[str] | None = None, connect_timeout: float = 30.0) -> Sweep:
    """``run`` for an already loaded ``ablate.sweep_spec.SweepSpec``."""
    from ablate.sweep import run_sweep

    return Sweep(run_sweep(spec, storage, address, num_cpus, num_gpus, connect_timeout=connect_timeout,
                           loggers=loggers, verbose=verbose, stream=stream))


def compare(*sweeps: str | Path | Sweep, out: str | Path) -> Path:
    """One report across two or more sweeps (folders, Sweep objects or trials.parquet files)."""
    from reports.compare import build_comparison

    sources: list[str | Path] = [s.path if isinstance(s, Sweep) else Path(s) for s in sweeps]
    if len(sources) < 2:
        raise UserError(f"compare needs two or more sweeps, got {len(sources)}")
    if not str(out).strip():  # Path("") is the folder ablate runs in: its files would land there unasked
        raise UserError(f"--out {str(out)!r}: give a folder for the comparison, e.g. --out runs/compare")
    refuse_repeats(sources)
    try:
        return build_comparison(list(sources), user_path(out))  # checked, made and written: one folder
    except ReportError as exc:
        raise UserError(str(exc)) from None


def refuse_repeats(sources: list[str | Path]) -> None:
    """The same sweep twice (also as its folder and its report/trials.parquet) compares nothing."""
    seen: dict[Path, str | Path] = {}
    for source in sources:
        path = user_path(source).resolve()
        if path.name == TRIALS_TABLE and path.parent.name == REPORT_DIR:
            path = path.parent.parent
        if path in seen:
            raise UserError(f"{seen[path]} and {source} are the same sweep ({path}); "
                            "compare two or more different sweeps")
        seen[path] = source
