"""The Optuna study of a sweep (``optuna.db``): a searcher that survives a lost or damaged database.

``RecordedOptunaSearch`` is Ray's ``OptunaSearch`` with two differences:

- a result without the metric (epoch 0 has no ``teacher_entropy``) is not an error: Optuna only
  uses intermediate values for pruning, which ablate leaves to Ray's schedulers;
- when ``optuna.db`` is deleted or damaged (mid-sweep, or before ``ablate resume``), the study is
  rebuilt from ablate's own trial records (``trials/*.json``): every finished setting is added back
  with its value (the mean over its repeats, as Ray's Repeater reports it), and settings that were
  running are asked again with the same values, so the sampler continues warm. One warning says
  what happened and where the damaged file went.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any, cast

from ray.tune.search.optuna import OptunaSearch

from ablate.records import read_records


class RecordedOptunaSearch(OptunaSearch):
    def __init__(self, *args: Any, sweep_dir: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sweep_dir = Path(sweep_dir)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            self._guarded(lambda: super(RecordedOptunaSearch, self).on_trial_result(trial_id, result))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._guarded(lambda: super(RecordedOptunaSearch, self).on_trial_complete(trial_id, result, error))

    def suggest(self, trial_id: str) -> dict | None:
        return self._guarded(lambda: super(RecordedOptunaSearch, self).suggest(trial_id))

    def restore(self, checkpoint_path: str) -> None:
        from ablate.records import ACTIVE

        super().restore(checkpoint_path)
        self._sweep_dir = ACTIVE.get("sweep_dir", self._sweep_dir)
        if not self._healthy():
            self._rebuild("missing or damaged when the sweep resumed")

    # --- rebuilding ------------------------------------------------------------------------
    def _guarded(self, call: Any) -> Any:
        """Run a storage call on a healthy database: rebuild it first if it is lost or damaged (Ray's
        OptunaSearch only logs a failed tell(), so checking afterwards would be too late)."""
        if not self._healthy():
            self._rebuild("deleted or damaged during the sweep")
        try:
            return call()
        except Exception as exc:
            if self._healthy():
                raise
            self._rebuild(f"unreadable during the sweep ({exc.__class__.__name__}: {str(exc)[:120]})")
            return call()

    def _healthy(self) -> bool:
        """The study file is where it was and a fresh connection finds the study in it (an open
        connection keeps reading a deleted file, so it cannot tell)."""
        if getattr(self, "_in_memory", False):
            return True
        known = [t._trial_id for t in self._ot_trials.values()]
        study: Any = self._ot_study  # OptunaSearch types it Optional; set once the search is set up
        return study_in_file(self._sweep_dir / "optuna.db", str(self._study_name), study._study_id, known)

    def _rebuild(self, why: str) -> None:
        import optuna

        db = self._sweep_dir / "optuna.db"
        name, old, space = str(self._study_name), cast(Any, self._ot_study), cast(dict[str, Any], self._space)
        moved = set_aside(db)
        storage: Any = optuna.storages.RDBStorage(f"sqlite:///{db}")
        try:
            study = new_study(storage, name, str(self._mode), old.sampler)
        except Exception as exc:
            print(f"ablate: warning: cannot write {db} ({exc}); the study continues in memory",
                  file=sys.stderr)
            storage = optuna.storages.InMemoryStorage()
            study = new_study(storage, name, str(self._mode), old.sampler)
        added = add_finished(study, self._sweep_dir, list(space), str(self._metric), space)
        running = {tid: t for tid, t in self._ot_trials.items() if tid not in self._completed_trials}
        for tid, old in running.items():  # asked again with the same values, so tell() finds them
            study.enqueue_trial(dict(old.params))
            self._ot_trials[tid] = study.ask(fixed_distributions=self._space)
        self._ot_study = study
        print(f"ablate: warning: {db} was {why}; rebuilt from {added} finished settings in "
              f"{self._sweep_dir / 'trials'} and {len(running)} running ones"
              + (f" (the damaged file is {moved})" if moved else "") + ". Lost: Optuna's intermediate "
              "values and the trials it had not yet reported; the sweep continues.", file=sys.stderr)


def study_in_file(db: Path, name: str, study_id: int, trial_ids: list[int]) -> bool:
    """Whether ``db`` holds the study (same id) and every trial the searcher knows of."""
    import sqlite3

    if not db.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as con:
            row = con.execute("SELECT study_id FROM studies WHERE study_name = ?", (name,)).fetchone()
            if row is None or row[0] != study_id:
                return False
            marks = ",".join("?" * len(trial_ids))
            found = con.execute(f"SELECT COUNT(*) FROM trials WHERE study_id = ? AND trial_id IN ({marks})",
                                (study_id, *trial_ids)).fetchone()[0] if trial_ids else 0
            return found == len(trial_ids)
    except sqlite3.Error:
        return False


def set_aside(db: Path) -> Path | None:
    """Move a damaged study file out of the way (kept for inspection); an empty one is removed."""
    if not db.exists():
        return None
    if study_count(db) == 0:
        db.unlink()  # only the empty schema that reopening a lost file creates
        return None
    target = db.with_name(f"{db.name}.damaged-{int(time.time())}")
    db.replace(target)
    return target


def study_count(db: Path) -> int | None:
    """Studies in ``db``; None when it is not a readable SQLite study file."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as con:
            return int(con.execute("SELECT COUNT(*) FROM studies").fetchone()[0])
    except sqlite3.Error:
        return None


def before_resume(sweep_dir: Path) -> None:
    """A study file SQLite cannot open would fail Ray's own restore of the searcher before
    ablate's rebuild can run: move it aside first (the searcher's restore then rebuilds the study)."""
    db = sweep_dir / "optuna.db"
    if db.exists() and study_count(db) is None:
        moved = set_aside(db)
        print(f"ablate: warning: {db} is not a readable study (moved to {moved}); rebuilding it from "
              f"{sweep_dir / 'trials'}", file=sys.stderr)


def new_study(storage: Any, name: str, mode: str, sampler: Any) -> Any:
    import optuna

    return optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                               direction="minimize" if mode == "min" else "maximize", load_if_exists=True)


def add_finished(study: Any, sweep_dir: Path, params: list[str], metric: str,
                 distributions: dict[str, Any]) -> int:
    """Each finished setting of the records as one COMPLETE trial (value: mean over its repeats)."""
    import optuna

    groups: dict[int, list[dict[str, Any]]] = {}
    for rec in read_records(sweep_dir).values():
        groups.setdefault(int(rec.get("point", -1)), []).append(rec)
    added = 0
    for recs in groups.values():
        values = [final_value(r, metric) for r in recs if r.get("status") in ("completed", "flagged",
                                                                            "collapsed", "stopped early")]
        finite = [v for v in values if v is not None]
        if not finite or len(finite) < len(recs):
            continue  # a setting with repeats still running is asked again, not added
        point = {p: recs[0]["params"][p] for p in params}
        study.add_trial(optuna.trial.create_trial(params=point, distributions=distributions,
                                                  value=sum(finite) / len(finite)))
        added += 1
    return added


def final_value(rec: dict[str, Any], metric: str) -> float | None:
    for row in reversed(rec.get("epochs") or []):
        value = row.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None
