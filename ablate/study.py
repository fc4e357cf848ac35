"""The Optuna study of a sweep (``optuna.db``): where its points come from, and what survives its loss.

``OptunaSource`` asks the study for a point whenever the sweep's queue runs dry and makes it
``repeats`` jobs (one per seed); once every repeat of a point has ended it tells the study the mean
of their values, read from their records (``ablate.records.search_value``: the final metric the
ranking counts, of a trial whose status says something of its setting); none at all: the Optuna
trial failed (every repeat out of memory, say, or none measured after training). On ``ablate
resume`` the study is opened again: its finished trials stay, each running one gets back the
repeats that have no final record (continued from their checkpoints), a finished one whose repeats
run again (errored, ``--retry oom``, a deleted record) is told their new value as a trial that
replaces it (``sweep_format.study``: Optuna keeps a told value for good), and the sampler goes on
from the trials it has, as Optuna samplers do.

When ``optuna.db`` is deleted or damaged (mid-sweep, or before ``ablate resume``), the study is
rebuilt from ablate's own trial records (``trials/*.json``): every finished point is added back
with its value, points with repeats still to run are asked again with the same values, so the
sampler continues warm. One warning says what happened and where the damaged file went. A study
that cannot be written (disk full, read-only) stops the sweep with one line (``StorageFull``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

from ablate.errors import StorageFull, warn
from ablate.records import search_value
from ablate.search import Job, continued
from ablate.sweep_spec import SAMPLERS, SweepSpec
from sweep_format import statuses
from sweep_format.layout import OPTUNA_DB, TRIALS_DIR
from sweep_format.records import is_damaged, read_record, read_records, record_path
from sweep_format.study import RERUN_OF, StudyIndex, latest
from sweep_format.values import PointIndex, same_point

T = TypeVar("T")
# SQLite's words for a write that failed for lack of space or permission.
STORAGE_MESSAGES = ("disk is full", "disk i/o error", "readonly database", "unable to open database",
                    "read-only file system", "no space left")


@dataclass
class Point:
    """One Optuna trial: its values, and the final metric of each repeat that has ended."""

    number: int
    params: dict[str, Any]
    values: dict[int, float | None] = field(default_factory=dict)  # repeat -> final metric (None: none)


class Seen(NamedTuple):
    """A resumed study's trials and the sweep's records, each by its point (read once to open it)."""

    asked: PointIndex[Any]
    records: PointIndex[dict[str, Any]]


class OptunaSource:
    """The jobs of an Optuna sweep, from its study (see the module docstring)."""

    def __init__(self, spec: SweepSpec, sweep_dir: Path) -> None:
        self.spec, self.sweep_dir = spec, Path(sweep_dir)
        self.db = self.sweep_dir / OPTUNA_DB
        self.distributions = optuna_distributions(spec)
        self.study: Any = None
        self.points: dict[int, Point] = {}  # the running points, by their number in the study
        self.trials: dict[int, Any] = {}  # number -> optuna Trial of a running point, for tell()
        self.alias: dict[int, int] = {}  # a point's number in a lost study -> its number in the rebuilt one
        self.shadows: dict[int, list[Any]] = {}  # a running point -> later asks of the same setting
        self.reruns: dict[int, Point] = {}  # a finished point some of whose repeats run again (resume)
        self.index = StudyIndex()  # the study's trials by setting, kept up to date as they are added

    # --- opening ---------------------------------------------------------------------------------
    def open(self, records: list[dict[str, Any]], retry: tuple[str, ...] = ()) -> list[Job]:
        """Open the study (rebuilt from ``records`` when it is lost); the jobs that continue or
        complete its points, for ``ablate resume`` (none for a new sweep)."""
        import optuna

        kept = set_aside_unreadable(self.db)
        self.study = self._guard(lambda: new_study(self._storage(), self.spec))
        if not self.study.trials and any(not is_damaged(r) for r in records):
            why = f"missing or damaged when the sweep resumed{moved(kept)}"
            self._guard(lambda: self._fill(records, why))
        if self.study.trials:  # a seeded sampler would draw its first settings again: go on from here
            self.study.sampler = optuna_sampler(self.spec, asked=len(self.study.trials))
        jobs: list[Job] = []
        asked = self.asked()
        self.index = StudyIndex(asked)
        by_point = Seen(PointIndex((dict(t.params), t) for t in asked),  # once: a scan per trial was n^2
                        PointIndex((r.get("params") or {}, r) for r in records if not is_damaged(r)))
        for trial in asked:
            if RERUN_OF in trial.user_attrs:  # the value of a point below: it has no repeats of its own
                continue
            first = self._asked_before(trial.params, trial.number, by_point.asked)
            if trial.state == optuna.trial.TrialState.RUNNING and first is not None:  # asked again
                again = optuna.trial.Trial(self.study, trial._trial_id)
                if first.state == optuna.trial.TrialState.RUNNING:
                    self.shadows.setdefault(first.number, []).append(again)
                else:
                    told = latest(asked, first)
                    self._guard(partial(self._tell_like, again, told.state, told.value))
                continue
            if trial.state != optuna.trial.TrialState.RUNNING:
                jobs += self._run_again(trial, first is None, by_point, retry)
                continue
            point = self.points[trial.number] = Point(trial.number, dict(trial.params))
            self.trials[trial.number] = optuna.trial.Trial(self.study, trial._trial_id)
            mine = self._records_of(trial, by_point)
            for repeat in range(self.spec.repeats):
                rec = mine.get(repeat)
                if rec is None:
                    jobs.append(Job(dict(point.params), repeat, optuna=point.number))
                elif statuses.resumed(rec.get("status"), retry):
                    jobs.append(Job(dict(point.params), repeat, str(rec["trial_id"]),
                                    continued(rec, self.sweep_dir).resume_dirs, point.number))
                else:
                    point.values[repeat] = self.value(rec)
        for point in [p for p in self.points.values() if len(p.values) >= self.spec.repeats]:
            self._guard(partial(self.tell, point))  # every repeat ended before the study was told
        return jobs

    def _run_again(self, trial: Any, first_ask: bool, by_point: Seen, retry: tuple[str, ...]) -> list[Job]:
        """The repeats of a finished point that run again: those ``statuses.resumed`` (errored, and the
        ``retry`` statuses), and, of the first ask of a setting, those whose record is gone (deleted by
        hand), as in a grid sweep. Once they end, the study is told the setting's new value
        (``retell``): Optuna keeps the value it was told first for good."""
        import optuna

        mine = self._records_of(trial, by_point)
        jobs = [continued(rec, self.sweep_dir) for rec in mine.values()
                if statuses.resumed(rec.get("status"), retry)]
        if first_ask and trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL):
            jobs += [Job(dict(trial.params), r) for r in range(self.spec.repeats) if r not in mine]
        if not jobs or trial.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL):
            return jobs
        again = {j.repeat for j in jobs}
        kept = {r: self.value(rec) for r, rec in mine.items() if r not in again}
        self.reruns[trial.number] = Point(trial.number, dict(trial.params), kept)
        return [replace(j, optuna=trial.number) for j in jobs]

    def _records_of(self, trial: Any, by_point: Seen) -> dict[int, dict[str, Any]]:
        """Repeat -> record of an Optuna trial: records with its values, tagged with its number (or
        untagged, as ablate <= 0.1 wrote them, or tagged with a number of a lost study). ``by_point``:
        the study's trials and the records, read and indexed once by the caller (a read per point, then
        a scan of them all per point, made resuming a sweep of thousands of points take minutes)."""
        same = by_point.records.all(trial.params)
        claimed = {t.number for t in by_point.asked.all(trial.params)}
        out: dict[int, dict[str, Any]] = {}
        for rec in same:
            tag = rec.get("optuna_trial")
            if tag == trial.number or tag not in claimed:
                out.setdefault(int(rec.get("repeat") or 0), rec)
        return out

    # --- the searcher's side ---------------------------------------------------------------------
    def next_jobs(self) -> list[Job]:
        """A new point, ``repeats`` times; none once the study has ``search.num_samples`` trials. A
        setting the sampler asks for again (it may, in a discrete space) is not run again: the
        study is told the earlier trial's result (at once, or when its repeats end), and asked on."""
        import optuna

        while self._guard(self.samples) < int(self.spec.search.num_samples or 0):
            trial = self._guard(lambda: self.study.ask(self.distributions))
            self.index.add(trial.number, trial._trial_id, trial.params)
            earlier = self._guard(partial(self._asked_before, dict(trial.params), trial.number))
            if earlier is None:
                self.trials[trial.number] = trial
                self.points[trial.number] = Point(trial.number, dict(trial.params))
                return [Job(dict(trial.params), r, optuna=trial.number) for r in range(self.spec.repeats)]
            if earlier.state == optuna.trial.TrialState.RUNNING:
                self.shadows.setdefault(earlier.number, []).append(trial)
            else:
                told = self._trial(self.index.latest(earlier.number))
                self._guard(partial(self._tell_like, trial, told.state, told.value))
        return []

    def samples(self) -> int:
        """The settings asked for so far (``search.num_samples`` of them in all; re-runs do not count)."""
        return self.index.samples

    def asked(self) -> list[Any]:
        """The study's trials as stored, read without Optuna's deep copy of every one (``study.trials``
        copies them all at each call: per new point of a sweep of thousands, seconds); never changed."""
        return self.study.get_trials(deepcopy=False)

    def _asked_before(self, params: dict[str, Any], number: int, asked: PointIndex[Any] | None = None) -> Any:
        """The first trial of the study (frozen; of ``asked``, the study's trials by point, when given)
        asked before trial ``number`` with the same ``params``."""
        if asked is not None:
            return next((t for t in asked.all(params) if t.number < number), None)
        first = next((n for n in self.index.asked(params) if n < number), None)
        return None if first is None else self._trial(first)

    def _trial(self, number: int) -> Any:
        """Trial ``number`` of the study as stored now (frozen), read alone."""
        return self.study._storage.get_trial(self.index.ids[number])

    def _catch_up(self) -> None:
        """Into the index, the trials added to the study since it last learned of one (``add_trial``
        says no number): read one by one, by number."""
        storage, study_id = self.study._storage, self.study._study_id
        while True:
            try:
                trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, len(self.index))
            except KeyError:
                return
            trial = storage.get_trial(trial_id)
            self.index.add(trial.number, trial_id, trial.params, trial.user_attrs)

    def value(self, rec: dict[str, Any]) -> float | None:
        """A repeat's value for the study (ablate.records.search_value)."""
        return search_value(rec, self.spec.metric, self.spec.scheduler.type)

    def _tell_like(self, trial: Any, state: Any, value: float | None) -> None:
        import optuna

        if state == optuna.trial.TrialState.COMPLETE:
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def finished(self, job: Job, record_id: str, error: bool) -> None:
        """One repeat ended (its record, ``record_id``, holds its epochs); once all have, the study is
        told the mean of their values (``search_value``; a trial Ray ended with an error has none)."""
        if job.optuna is None:
            return
        number = self.alias.get(job.optuna, job.optuna)
        point = self.points.get(number)
        tell = self.tell
        if point is None and number in self.reruns:  # a finished point's repeat, run again
            point, tell = self.reruns[number], self.retell
        if point is None:
            return
        rec = None if error else read_record(record_path(self.sweep_dir, record_id))
        point.values[job.repeat] = None if rec is None else self.value(rec)
        if len(point.values) >= self.spec.repeats:
            self._guard(lambda: tell(point))

    def tell(self, point: Point) -> None:
        trial = self.trials.pop(point.number, None)
        self.points.pop(point.number, None)
        if trial is None:  # a rebuilt study holds it as finished already
            return
        state, value = outcome(point)
        for asked in [trial, *self.shadows.pop(point.number, [])]:
            self._tell_like(asked, state, value)

    def retell(self, point: Point) -> None:
        """A finished point whose repeats ran again: its new value, as a trial that replaces it, and
        each later ask of its setting that was told its first value (sweep_format.study)."""
        import optuna

        if self.reruns.get(point.number) is not point:  # the study was rebuilt meanwhile, with its value
            return
        del self.reruns[point.number]
        state, value = outcome(point)
        same = [self._trial(n) for n in self.index.asked(point.params)
                if n >= point.number and n not in self.index.reruns]
        for told in [t for t in same if t.state.is_finished()]:
            self.study.add_trial(optuna.trial.create_trial(
                params=point.params, distributions=self.distributions, state=state, value=value,
                user_attrs={RERUN_OF: told.number}))
        self._catch_up()

    # --- a lost, damaged or full study -----------------------------------------------------------
    def _storage(self) -> Any:
        import optuna

        return optuna.storages.RDBStorage(f"sqlite:///{self.db}")

    def _guard(self, call: Callable[[], T]) -> T:
        """Run a storage call on a healthy study: rebuilt first if its file was lost or damaged (an
        open connection keeps reading a deleted file); a write that fails for lack of space or
        permission stops the sweep."""
        if self.study is not None and not self._healthy():
            self._rebuild("deleted or damaged during the sweep")
        try:
            return call()
        except Exception as exc:
            if self.study is not None and not self._healthy():
                self._rebuild(f"unreadable during the sweep ({type(exc).__name__})")
                return call()
            full = storage_failure(exc, self.db)
            if full is not None:
                raise full from None
            raise

    def _healthy(self) -> bool:
        import optuna

        if isinstance(self.study._storage, optuna.storages.InMemoryStorage):  # a disk that refused the file
            return True
        known = [t._trial_id for t in self.trials.values()]
        return study_in_file(self.db, self.spec.name, self.study._study_id, known)

    def _rebuild(self, why: str) -> None:
        """The study file is lost or damaged mid-sweep: a new one, filled from the records."""
        import optuna

        kept = set_aside(self.db)
        try:
            self.study = new_study(self._storage(), self.spec, self.study.sampler)
        except Exception as exc:
            warn(f"cannot write {self.db} ({type(exc).__name__}); the study continues in memory")
            self.study = new_study(optuna.storages.InMemoryStorage(), self.spec, self.study.sampler)
        self.shadows.clear()  # repeated asks of the lost study: the new one never had them
        self._fill(read_records(self.sweep_dir), why + moved(kept))
        self.index = StudyIndex(self.asked())
        reruns, self.reruns = self.reruns, {}
        for number, point in reruns.items():  # re-run repeats still to end: the new study's number
            found = self._asked_before(point.params, len(self.study.trials))
            if found is not None and found.state != optuna.trial.TrialState.RUNNING:
                self.reruns[found.number] = replace(point, number=found.number)
                self.alias[number] = found.number

    def _fill(self, records: list[dict[str, Any]], why: str) -> None:
        """Points of the records (and running points not recorded yet) into the (empty) study:
        finished ones with their mean, unfinished ones asked again with the same values (their
        repeats keep their records and checkpoints)."""
        import optuna

        groups: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        grouped: PointIndex[list[dict[str, Any]]] = PointIndex()

        def group(params: dict[str, Any]) -> list[dict[str, Any]]:
            found = grouped.first(params)
            if found is None:
                groups.append((dict(params), found := []))
                grouped.add(dict(params), found)
            return found

        for rec in records:
            if not is_damaged(rec) and rec.get("params") is not None:
                group(rec["params"]).append(rec)
        for point in self.points.values():  # asked, no trial started yet
            group(point.params)
        added = asked = 0
        for params, recs in groups:
            ended = [r for r in recs if statuses.is_final(r.get("status"))]
            old = next((n for n, p in self.points.items() if same_point(p.params, params)), None)
            kept = self.points.pop(old).values if old is not None else {}
            if old is not None:
                self.trials.pop(old, None)
            if len(ended) >= self.spec.repeats:  # finished (perhaps while the study was lost)
                values = [v for v in map(self.value, ended) if v is not None]
                state = optuna.trial.TrialState.COMPLETE if values else optuna.trial.TrialState.FAIL
                self.study.add_trial(optuna.trial.create_trial(
                    params=params, distributions=self.distributions, state=state,
                    value=sum(values) / len(values) if values else None))
                added += 1
                continue
            self.study.enqueue_trial(params)
            trial = self.study.ask(self.distributions)
            asked += 1
            self.points[trial.number] = Point(trial.number, params, kept)
            self.trials[trial.number] = trial
            for tag in {r.get("optuna_trial") for r in recs} | ({old} if old is not None else set()):
                if isinstance(tag, int) and tag != trial.number:
                    self.alias[tag] = trial.number
        warn(f"{self.db} was {why}; rebuilt from {added} finished settings in {self.sweep_dir / TRIALS_DIR} "
             f"and {asked} running ones. Lost: Optuna's intermediate values and the settings it had asked "
             "for but no trial had started; the sweep continues.")


def outcome(point: Point) -> tuple[Any, float | None]:
    """The state and value the study is told of a point whose repeats all ended: the mean of their
    values; a failed trial when none has one."""
    import optuna

    finite = [v for v in point.values.values() if v is not None]
    if not finite:
        return optuna.trial.TrialState.FAIL, None
    return optuna.trial.TrialState.COMPLETE, sum(finite) / len(finite)


def moved(path: Path | None) -> str:
    return f" (the damaged file is {path})" if path else ""


def new_study(storage: Any, spec: SweepSpec, sampler: Any = None) -> Any:
    import optuna

    return optuna.create_study(storage=storage, study_name=spec.name, sampler=sampler or optuna_sampler(spec),
                               direction="minimize" if spec.mode == "min" else "maximize",
                               load_if_exists=True)


def optuna_distributions(spec: SweepSpec) -> dict[str, Any]:
    from optuna import distributions as d

    out: dict[str, Any] = {}
    for name, dist in spec.space.items():
        dist = cast(Any, dist)  # FloatDist or IntDist in the numeric branches
        if dist.type == "float":
            out[name] = d.FloatDistribution(dist.low, dist.high, log=bool(dist.log), step=dist.step)
        elif dist.type == "int":
            out[name] = d.IntDistribution(int(dist.low), int(dist.high), log=bool(dist.log),
                                          step=int(dist.step or 1))
        else:
            out[name] = d.CategoricalDistribution(spec.choice_values(name))
    return out


def optuna_sampler(spec: SweepSpec, asked: int = 0) -> Any:
    """The spec's Optuna sampler (tpe, random, cmaes or gp), seeded with ``search.seed``, or, for a
    study that has ``asked`` trials already (``ablate resume``), with ``search.seed + asked``: Optuna
    keeps no sampler state, and a sampler seeded as at the start would ask for the settings it asked
    for then. CMA-ES reads its stored state without unpickling anything but a CMA-ES state
    (ablate.cmaes_state)."""
    from optuna import samplers

    seed = spec.search.seed + asked if spec.search.seed is not None else None
    name = spec.search.sampler or "tpe"
    if name == "cmaes":
        from ablate.cmaes_state import CmaEsSampler

        return CmaEsSampler(seed=seed, warn_independent_sampling=False)  # said once: random_under_cmaes
    cls_name, _ = SAMPLERS[name]
    return getattr(samplers, cls_name)(seed=seed)


def storage_failure(exc: BaseException, db: Path) -> StorageFull | None:
    """A StorageFull naming the study file when ``exc`` (SQLAlchemy's or sqlite3's) is a write that
    failed for lack of space or permission."""
    while exc is not None:
        text = str(exc).lower()
        if isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("sqlalchemy"):
            if any(m in text for m in STORAGE_MESSAGES):
                first = str(exc).strip().splitlines()[0][:160]
                return StorageFull(f"{db}: cannot write the Optuna study ({first})")
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def study_in_file(db: Path, name: str, study_id: int, trial_ids: list[int]) -> bool:
    """Whether ``db`` holds the study (same id) and every trial the searcher knows of."""
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


def study_count(db: Path) -> int | None:
    """Studies in ``db``; None when it is not a readable SQLite study file."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as con:
            return int(con.execute("SELECT COUNT(*) FROM studies").fetchone()[0])
    except sqlite3.Error:
        return None


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


def set_aside_unreadable(db: Path) -> Path | None:
    """A study file SQLite cannot open is moved aside before the study is opened."""
    if db.exists() and study_count(db) is None:
        return set_aside(db)
    return None
