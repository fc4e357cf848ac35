"""Parameter importance reads each setting's current value from the study (reports/importance.py)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from reports.importance import param_importance
from sweep_format.study import RERUN_OF, current, samples


def test_a_setting_run_again_counts_once_with_its_new_value(tmp_path: Path) -> None:
    """`ablate resume` told a setting run again its new value as a trial that replaces the first one:
    the importance counted both values of that setting, the stale one too."""
    dist = {"teacher_temp": optuna.distributions.FloatDistribution(0.01, 0.1)}
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                direction="maximize")
    for i, value in enumerate([30.0, 40.0, 45.0, 50.0]):
        study.add_trial(optuna.trial.create_trial(params={"teacher_temp": 0.02 * (i + 1)}, distributions=dist,
                                                  value=value))
    for value in (35.0, 38.0):  # trial 0's repeats ran again, twice
        study.add_trial(optuna.trial.create_trial(params={"teacher_temp": 0.02}, distributions=dist,
                                                  value=value, user_attrs={RERUN_OF: 0}))
    assert [(t.number, t.value) for t in current(study.trials)] == [
        (5, 38.0), (1, 40.0), (2, 45.0), (3, 50.0)]
    assert samples(study.trials) == 4
    assert param_importance(tmp_path, "s").n_trials == 4


def test_importances_from_few_trials_a_parameter_carry_a_caveat(tmp_path: Path) -> None:
    """temps.yaml's 5 trials over 3 parameters gave fANOVA 0.37 / 0.34 / 0.29 with nothing said: a table
    a reader could take as a ranking. Below 10 trials a parameter a note says so; at 10 none. The note
    sent readers to 'the ablation table's paired test', which no Optuna sweep's report has."""
    dists = {p: optuna.distributions.FloatDistribution(0.0, 1.0) for p in ("a", "b")}
    for n, caveat in ((5, True), (20, False)):
        study = optuna.create_study(study_name=f"s{n}", storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                    direction="maximize")
        for i in range(n):
            a, b = (i * 0.37) % 1, (i * 0.61) % 1
            study.add_trial(optuna.trial.create_trial(params={"a": a, "b": b}, distributions=dists,
                                                      value=10 * a + b))
        result = param_importance(tmp_path, f"s{n}")
        assert result.values and result.n_trials == n
        said = [note for note in result.notes if note.startswith("Only ")]
        assert said == ([f"Only {n} finished Optuna trials for 2 parameters (fewer than 10 a parameter): "
                         "these shares are rough and may not rank the parameters; whether a setting's "
                         "difference is beyond seed noise is the 'beyond seed noise' column of "
                         "Configurations against the best. Raise search.num_samples for importances to "
                         "rely on."] if caveat else [])


def test_fanova_is_fitted_to_a_sample_of_a_large_study_and_says_so(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """fANOVA's forest took 98 s at 2,500 finished trials: above FANOVA_MAX_TRIALS it sees a seeded random
    sample of them, the same one every time, and a note says so; PED-ANOVA sees them all."""
    from reports import importance

    monkeypatch.setattr(importance, "FANOVA_MAX_TRIALS", 8)
    dists = {p: optuna.distributions.FloatDistribution(0.0, 1.0) for p in ("a", "b")}
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                direction="maximize")
    for i in range(30):
        a, b = (i * 0.37) % 1, (i * 0.61) % 1
        study.add_trial(optuna.trial.create_trial(params={"a": a, "b": b}, distributions=dists,
                                                  value=10 * a + b))
    seen: dict[str, list[list[float]]] = {"fANOVA": [], "PED-ANOVA": []}
    evaluate = optuna.importance.get_param_importances

    def counted(study: optuna.Study, evaluator: object) -> dict[str, float]:
        name = "fANOVA" if "Fanova" in type(evaluator).__name__ else "PED-ANOVA"
        seen[name].append(sorted(t.params["a"] for t in study.trials))
        return evaluate(study, evaluator=evaluator)

    monkeypatch.setattr(optuna.importance, "get_param_importances", counted)
    first, again = param_importance(tmp_path, "s"), param_importance(tmp_path, "s")
    assert [len(a) for a in seen["fANOVA"]] == [8, 8] and seen["fANOVA"][0] == seen["fANOVA"][1]
    assert [len(a) for a in seen["PED-ANOVA"]] == [30, 30]
    assert first.n_trials == 30 and set(first.values) == {"fANOVA", "PED-ANOVA"}
    assert first.values == again.values
    assert "fANOVA: fitted to a random 8 of the 30 finished trials (seed 0; its cost grows faster than " \
           "the trials); PED-ANOVA to all." in first.notes
