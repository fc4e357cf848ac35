"""What ablate keeps in a sweep's Optuna study (``optuna.db``) beyond Optuna's own fields.

Optuna tells a trial its value once. A setting whose repeats run again after the study was told
(``ablate resume`` of an errored repeat, ``--retry oom``, a repeat whose record was deleted) gets
its new value as a new finished trial that names the one it replaces (user attribute ``RERUN_OF``,
the sample's number). Such a trial is not another sample of the search (``samples``), and
the trial it replaces no longer holds the setting's value (``latest``, ``current``): the report's
importance reads the current trials only.

    study.add_trial(optuna.trial.create_trial(..., user_attrs={RERUN_OF: 3}))
    samples(study.trials)    # the settings asked for, without the re-runs
    current(study.trials)    # each setting's latest value: trial 3 is left out
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from sweep_format.values import PointIndex

RERUN_OF = "ablate_rerun_of"  # the number of the sample (a trial asked for) a re-run's value replaces


def samples(trials: Sequence[Any]) -> int:
    """How many of the study's trials are samples of the search (``search.num_samples`` counts them)."""
    return sum(RERUN_OF not in t.user_attrs for t in trials)


def latest(trials: Sequence[Any], trial: Any) -> Any:
    """The trial that holds ``trial``'s value now: its newest re-run, else itself."""
    reruns = [t for t in trials if t.user_attrs.get(RERUN_OF) == trial.number]
    return max(reruns, key=lambda t: t.number, default=trial)


def current(trials: Sequence[Any]) -> list[Any]:
    """The trials that hold the settings' values: each sample, or its newest re-run in its place."""
    newest: dict[int, Any] = {}
    for t in trials:
        replaced = t.user_attrs.get(RERUN_OF)
        if replaced is not None and (replaced not in newest or newest[replaced].number < t.number):
            newest[replaced] = t
    return [newest.get(t.number, t) for t in trials if RERUN_OF not in t.user_attrs]


class StudyIndex:
    """The study's trials by setting, ``samples`` and each trial's ``latest``, kept up to date as
    trials are added: the same answers as a scan of the study, without reading every trial again for
    each question (asking for a new point read and compared them all: a sweep of n points cost its
    driver n^2). Holds numbers and the storage's trial ids; a trial's state is read when needed.

        index = StudyIndex(study.get_trials(deepcopy=False))
        index.add(trial.number, trial._trial_id, trial.params)     # a trial just asked
        index.samples, index.asked(params), index.latest(3)
    """

    def __init__(self, trials: Iterable[Any] = ()) -> None:
        self.ids: dict[int, int] = {}  # number -> the storage's trial id
        self.reruns: set[int] = set()  # the numbers of re-runs (RERUN_OF)
        self.samples = 0  # ``samples`` of the study
        self._points: PointIndex[int] = PointIndex()
        self._newest: dict[Hashable, int] = {}  # a sample's number -> its newest re-run's
        for t in trials:
            self.add(t.number, t._trial_id, t.params, t.user_attrs)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, number: int, trial_id: int, params: dict[str, Any], user_attrs: dict[str, Any] | None = None
            ) -> None:
        """A trial added to the study (after every trial of a lower number)."""
        self.ids[number] = trial_id
        self._points.add(dict(params), number)
        if user_attrs is None or RERUN_OF not in user_attrs:
            self.samples += 1
            return
        self.reruns.add(number)
        replaced = user_attrs[RERUN_OF]
        if not isinstance(replaced, Hashable):  # the number of no trial
            return
        if replaced not in self._newest or self._newest[replaced] < number:
            self._newest[replaced] = number

    def asked(self, params: dict[str, Any]) -> list[int]:
        """The numbers of the trials of a setting (``same_point``), lowest first."""
        return self._points.all(params)

    def latest(self, number: int) -> int:
        """The number of the trial that holds trial ``number``'s value now (``latest``)."""
        return self._newest.get(number, number)
