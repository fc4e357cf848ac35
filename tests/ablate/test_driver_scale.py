"""What a sweep's driver does per trial event stays constant as the sweep grows: the live view, the
recorder and the Optuna study, counted in rankings, comparisons and study reads, never in seconds."""

from __future__ import annotations

import io
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


def test_a_ranking_that_takes_long_is_repeated_less_often(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """However large the sweep, ranking keeps about a tenth of the driver: after a ranking that took
    2 s, the next waits 20 s (BEST_SHARE x 2 s), not BEST_EVERY's 5 s."""
    recorder, _ = grid_sweep(tmp_path, 1)
    view = LiveView(recorder, stream=io.StringIO(), interactive=True)
    clock = [100.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    ranked: list[float] = []

    def slow_ranking(finished_only: bool = False) -> str:
        ranked.append(clock[0])
        clock[0] += 2.0
        return f"best {len(ranked)}"

    monkeypatch.setattr(view, "best_text", slow_ranking)
    for _ in range(30):  # a trial ends every second
        view.best_stale = True
        view.drawn_best()
        clock[0] += 1.0
    assert ranked[0] == 100.0 and [b - a for a, b in zip(ranked, ranked[1:], strict=False)] == [22.0]
    assert view.drawn_best(final=True) == "best 3"  # the last draw ranks whatever the wait


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


def step_study(folder: Path, trials: list[tuple[float, float, str, dict]], step: str = "0.05",
               num_samples: int = 40) -> Any:
    """An Optuna sweep (8 settings with ``step`` 0.05) whose study already holds ``trials`` (teacher_temp,
    student_temp, state, user attributes), and its OptunaSource, opened."""
    import optuna

    from ablate.study import OptunaSource, new_study, optuna_distributions

    spec = load_spec(write_spec(folder, f"""
name: s
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: choice, values: [0.04, 0.07]}}
  student_temp: {{type: float, low: 0.05, high: 0.2, step: {step}}}
search: {{algorithm: optuna, sampler: random, num_samples: {num_samples}, seed: 0}}
repeats: 2
"""))
    study = new_study(optuna.storages.RDBStorage(f"sqlite:///{folder / 'optuna.db'}"), spec)
    for teacher, student, state, attrs in trials:
        study.add_trial(optuna.trial.create_trial(
            params={"teacher_temp": teacher, "student_temp": student},
            distributions=optuna_distributions(spec), state=optuna.trial.TrialState[state],
            value=40.0 if state == "COMPLETE" else None, user_attrs=attrs))
    source = OptunaSource(spec, folder)
    source.open([])  # no records: the running trials' repeats are jobs, the finished ones stay
    return source


def nudged(params: dict[str, Any]) -> dict[str, Any]:
    """The same point (values_equal) written another way: 0.1 as 0.10000000001."""
    return {k: v * (1 + 1e-10) if isinstance(v, float) else v for k, v in params.items()}


def assert_the_index_is_a_scan(source: Any) -> None:
    """What the source answers from its StudyIndex is what a scan of the whole study answered (the code
    before the index, pasted): the settings asked, the first ask of a setting, a trial's latest value."""
    from sweep_format.study import latest, samples
    from sweep_format.values import same_point

    asked = source.asked()
    assert source.samples() == samples(asked)
    for t in asked:
        for params in (dict(t.params), nudged(t.params)):
            for number in (t.number, t.number + 1, len(asked)):
                found = source._asked_before(params, number)
                scan = next((u for u in asked if u.number < number and same_point(dict(u.params), params)),
                            None)
                assert (found and (found.number, found.state)) == (scan and (scan.number, scan.state))
        assert source.index.latest(t.number) == latest(asked, t).number


def test_the_studys_index_answers_what_a_scan_of_the_study_answers(tmp_path: Path) -> None:
    """OptunaSource keeps its study's trials by setting (sweep_format.study.StudyIndex) as it asks for
    points and tells re-runs, instead of reading and comparing every trial for each new point: after
    each ask, tell and re-run, its answers are a scan's. Settings come again (8 in all), some wait for
    a running ask of theirs, one value is 0.1 written as 0.10000000001, re-runs replace trials."""
    from ablate.study import Point
    from sweep_format.study import RERUN_OF
    from sweep_format.values import same_point

    source = step_study(tmp_path, [(0.04, 0.1, "COMPLETE", {}), (0.07, 0.15, "FAIL", {}),
                                   (0.04, 0.1 * (1 + 1e-10), "COMPLETE", {}),
                                   (0.04, 0.1, "COMPLETE", {RERUN_OF: 0}), (0.07, 0.2, "RUNNING", {}),
                                   (0.04, 0.1, "COMPLETE", {RERUN_OF: 0}),
                                   (0.07, 0.15, "COMPLETE", {RERUN_OF: 1})])
    assert_the_index_is_a_scan(source)
    for i in range(12):
        jobs = source.next_jobs()
        if i % 3:  # the others keep running: their setting's later asks wait for them
            for job in jobs:
                source.finished(job, "none", error=True)
        assert_the_index_is_a_scan(source)
    assert source.shadows and source.samples() == 40
    first = source.asked()[0]
    asked = source.asked()
    replaced = [t.number for t in asked if t.number >= 0 and RERUN_OF not in t.user_attrs
                and t.state.is_finished() and same_point(dict(t.params), dict(first.params))]
    source.reruns[0] = point = Point(0, dict(first.params), {0: 55.0, 1: None})
    source.retell(point)  # ``ablate resume`` ran a repeat of setting 0 again: every ask of it told anew
    told = source.asked()[len(asked):]
    assert [t.user_attrs[RERUN_OF] for t in told] == replaced and {t.value for t in told} == {55.0}
    assert_the_index_is_a_scan(source)


def test_asking_for_a_point_reads_and_compares_no_trial_of_the_study(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """It read every trial of the study twice and compared the new point with each: 5,000 trials, 18 ms
    of each new point (bench/driver_events.py)."""
    import sweep_format.values as values
    from ablate.study import OptunaSource

    def reads(folder: Path, trials: int) -> tuple[int, int]:
        folder.mkdir()
        source = step_study(folder, [(0.04, 0.05 + 0.05 * (i % 4), "COMPLETE", {}) for i in range(trials)],
                            step="null", num_samples=trials + 3)  # new settings: none asked again
        counts = [0, 0]
        asked, same_point = OptunaSource.asked, values.same_point

        def counted(which: int, call: Any) -> Any:
            def wrapped(*args: Any) -> Any:
                counts[which] += 1
                return call(*args)
            return wrapped

        with monkeypatch.context() as patch:
            patch.setattr(OptunaSource, "asked", counted(0, asked))
            patch.setattr(values, "same_point", counted(1, same_point))
            for _ in range(3):
                for job in source.next_jobs():
                    source.finished(job, "none", error=True)
        return counts[0], counts[1]

    few, many = reads(tmp_path / "few", 4), reads(tmp_path / "many", 40)
    assert few == many == (0, 3)  # no read of the study; each new point compared with itself alone


def test_a_redraw_and_a_trials_end_read_no_row_but_those_shown(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """They summed every row of the view (the trials finished, the epochs, the ETA) and sorted the ended
    ones: 5,000 trials, 2.9 ms a redraw and 1.7 ms a trial's end (bench/driver_events.py)."""
    from ablate.live_rows import Rows

    recorder, trials = grid_sweep(tmp_path, 12)
    view = LiveView(recorder, stream=io.StringIO(), interactive=True)  # drawn by hand: no rich Live thread
    monkeypatch.setattr(live, "BEST_EVERY", math.inf)
    monkeypatch.setattr(Rows, "values", lambda self: pytest.fail("a scan of every row"))
    for i, trial in enumerate(trials):
        for callback in (recorder, view):
            callback.on_trial_start(0, trials, trial)
        result = {"epoch": 1, "loss": 1.0, "knn_top1": 30.0 + i, "time_this_iter_s": 1.0,
                  "trial_outcome": "completed"}
        for callback in (recorder, view):
            callback.on_trial_result(0, trials, trial, result)
            callback.on_trial_complete(0, trials, trial)
        view._render()
    assert (view.rows.ended, view.epochs_done(), view.eta()) == (12, 12, 0.0)
