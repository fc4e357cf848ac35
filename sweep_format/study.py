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

from collections.abc import Sequence
from typing import Any

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
