"""What a sweep's driver does per trial event stays constant as the sweep grows: the live view, the
recorder and the Optuna study, counted in rankings, comparisons and study reads, never in seconds."""

from __future__ import annotations

import io
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

import ablate.live as live
import reports.tables as tables
from ablate.live import LiveView
from ablate.recorder import TrialRecorder
from ablate.sweep_spec import load_spec
from tests.helpers import OPTUNA_SPEC, TINY_TRAINER, write_spec


def grid_sweep(folder: Path, n: int) -> tuple[TrialRecorder, list[SimpleNamespace]]:
    """A grid of ``n`` teacher temperatures, its recorder, and fake Ray trials of it."""
    values = [round(0.01 + i / 1000, 4) for i in range(n)]
    spec = load_spec(write_spec(folder, f"""
name: many
trainer: {dict(TINY_TRAINER, epochs=1)}
space:
  teacher_temp: {{type: choice, values: {values}}}
search: {{algorithm: grid}}
"""))
    trials = [SimpleNamespace(trial_id=f"t{i}", path=str(folder / f"t{i}"), error_file=None, error_msg="",
                              config={**TINY_TRAINER, "epochs": 1, "teacher_temp": v, "repeat": 0})
              for i, v in enumerate(values)]
    return TrialRecorder(spec, folder / "sweep"), trials


def run_trials(recorder: TrialRecorder, view: LiveView, trials: list[SimpleNamespace]) -> None:
    view.setup()
    for i, trial in enumerate(trials):
        for callback in (recorder, view):
            callback.on_trial_start(0, trials, trial)
        for epoch in (0, 1):
            result = {"epoch": epoch, "loss": 1.0, "knn_top1": 30.0 + i, "time_this_iter_s": 1.0,
                      "trial_outcome": "completed" if epoch else "running"}
            for callback in (recorder, view):
                callback.on_trial_result(0, trials, trial, result)
        for callback in (recorder, view):
            callback.on_trial_complete(0, trials, trial)
    view.on_experiment_end(trials)
    view.end(finished=True)


def count_rankings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    rankings: list[int] = []
    table = tables.trials_table
    monkeypatch.setattr(tables, "trials_table", lambda sweep, records: rankings.append(len(records))
                        or table(sweep, records))
    return rankings


def test_off_a_terminal_the_view_ranks_the_sweep_once_at_its_end(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """It ranked every record at each trial's end (and at its start), for a line printed at the end."""
    recorder, trials = grid_sweep(tmp_path, 12)
    rankings = count_rankings(monkeypatch)
    out = io.StringIO()
    run_trials(recorder, LiveView(recorder, stream=out, interactive=False), trials)
    assert rankings == [12]
    assert out.getvalue().splitlines()[-1].endswith("best knn_top1 (max): 41 (teacher_temp=0.021; mean of 1)")


def test_on_a_terminal_the_best_line_is_ranked_at_most_every_few_seconds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder, trials = grid_sweep(tmp_path, 12)
    rankings = count_rankings(monkeypatch)
    monkeypatch.setattr(live, "BEST_EVERY", math.inf)  # no time passes: the first draw and the last
    out = io.StringIO()
    view = LiveView(recorder, stream=out, interactive=True)
    run_trials(recorder, view, trials)
    assert rankings[-1] == 12 and len(rankings) <= 3  # first draw, last draw, the closing line
    assert view.best_line == "best knn_top1 (max): 41 (teacher_temp=0.021; mean of 1)"
    assert view.best_line in out.getvalue()


def study_reads(folder: Path, points: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """How often opening a study of ``points`` finished settings (``ablate resume``) copies all its trials."""
    import optuna
    from optuna.storages._cached_storage import _CachedStorage

    from ablate.study import OptunaSource, new_study, optuna_distributions

    spec = load_spec(write_spec(folder, OPTUNA_SPEC))
    study = new_study(optuna.storages.RDBStorage(f"sqlite:///{folder / 'optuna.db'}"), spec)
    for i in range(points):
        params = {"teacher_temp": 0.01 + i / 1000, "student_temp": 0.1, "warmup_teacher_temp_epochs": 0}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=optuna_distributions(spec),
                                                  value=40.0 + i))
    reads = 0
    get_all = _CachedStorage.get_all_trials

    def counting(self, study_id, deepcopy=True, states=None):
        nonlocal reads
        reads += bool(deepcopy)
        return get_all(self, study_id, deepcopy, states)

    with monkeypatch.context() as patch:
        patch.setattr(_CachedStorage, "get_all_trials", counting)
        OptunaSource(spec, folder).open([])  # its points have no records: every repeat runs again
    return reads


def test_resuming_reads_the_study_as_often_for_20_points_as_for_2(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """It deep-copied every trial of the study once per trial: 2,500 points took 8 minutes."""
    (tmp_path / "few").mkdir(), (tmp_path / "many").mkdir()
    assert study_reads(tmp_path / "many", 20, monkeypatch) == study_reads(tmp_path / "few", 2, monkeypatch)
