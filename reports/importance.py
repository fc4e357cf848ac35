"""Hyperparameter importance from the sweep's Optuna study (``optuna.db``, study name = sweep name).

Uses Optuna's fANOVA and PED-ANOVA evaluators. When importance cannot be computed (no optuna.db,
too few finished trials, no variance) the result says why in one line instead.

    result = param_importance(Path("runs/temps"), "temps")
    result.values      # {"fANOVA": {"teacher_temp": 0.81, ...}, "PED-ANOVA": {...}}
    result.reason      # "" or why there is none
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep_format.layout import OPTUNA_DB
from sweep_format.study import current

MIN_TRIALS = 4  # fewer finished Optuna trials say nothing about importance
# below this many finished trials a parameter, the shares are said to be rough: temps.yaml's 5 trials over
# 3 parameters gave fANOVA 0.37 / 0.34 / 0.29, a table a reader could take as a ranking
TRIALS_PER_PARAM = 10
# fANOVA's random forest grows faster than its trials (2.3 s at 150 finished trials, 15 s at 1,000, 98 s
# at 2,500): above this many it is fitted to a random sample of them (seeded), which says so.
# PED-ANOVA takes them all (0.04 s at 2,500).
FANOVA_MAX_TRIALS = 1000


@dataclass
class Importance:
    values: dict[str, dict[str, float]] = field(default_factory=dict)  # evaluator -> param -> importance
    reason: str = ""  # why there are no values (one line)
    notes: list[str] = field(default_factory=list)  # an evaluator that failed, and why
    n_trials: int = 0


def by_importance(values: dict[str, dict[str, float]]) -> list[str]:
    """Every parameter of ``values`` (``Importance.values``), the most important first: by the first
    evaluator's share (fANOVA), ties by the next one's, then by name. The one order of the report's
    importance table and plot: the table was alphabetical under bars sorted by importance, each panel
    in its own order."""
    params = {p for v in values.values() for p in v}
    return sorted(params, key=lambda p: (*(-v.get(p, 0.0) for v in values.values()), p))


def evaluators() -> dict[str, Any]:
    """The evaluators this Optuna version has (PED-ANOVA arrived in Optuna 3.6)."""
    from optuna import importance

    found: dict[str, Any] = {}
    if hasattr(importance, "FanovaImportanceEvaluator"):
        found["fANOVA"] = importance.FanovaImportanceEvaluator(seed=0)
    if hasattr(importance, "PedAnovaImportanceEvaluator"):
        found["PED-ANOVA"] = importance.PedAnovaImportanceEvaluator()
    return found


def param_importance(sweep_dir: Path, study_name: str) -> Importance:
    db = sweep_dir / OPTUNA_DB
    if not db.is_file():
        return Importance(reason=f"no {OPTUNA_DB} in the sweep folder (only `search.algorithm: optuna` "
                                 "sweeps keep an Optuna study)")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{db}")
    except Exception as exc:  # a missing study or a locked/corrupt file: say so, go on
        return Importance(reason=f"cannot open study '{study_name}' in {db}: {exc}")
    done = [t for t in current(study.get_trials(deepcopy=False))  # a setting run again: its new value
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    if len(done) < MIN_TRIALS:
        return Importance(reason=f"too few finished Optuna trials ({len(done)}, need {MIN_TRIALS})",
                          n_trials=len(done))
    if len({t.value for t in done}) < 2:
        return Importance(reason="no variance: every finished trial has the same value",
                          n_trials=len(done))
    names = {k for t in done for k in t.params}
    if not any(len({repr(t.params.get(p)) for t in done}) > 1 for p in names):
        return Importance(reason="no variance: every finished trial has the same parameters",
                          n_trials=len(done))
    result, directions = Importance(n_trials=len(done)), study.directions
    for name, evaluator in evaluators().items():
        trials = done
        if name == "fANOVA" and len(done) > FANOVA_MAX_TRIALS:
            trials = random.Random(0).sample(done, FANOVA_MAX_TRIALS)
            result.notes.append(f"fANOVA: fitted to a random {FANOVA_MAX_TRIALS:,} of the {len(done):,} "
                                "finished trials (seed 0; its cost grows faster than the trials); PED-ANOVA "
                                "to all.")
        held = optuna.create_study(directions=directions)  # in memory: the trials that hold the values
        held.add_trials(trials)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PED-ANOVA is marked experimental
                values = optuna.importance.get_param_importances(held, evaluator=evaluator)
        except Exception as exc:  # one evaluator failing must not lose the report
            result.notes.append(f"{name}: not computed ({exc.__class__.__name__}: {exc})")
            continue
        if values and not all(v == 0 for v in values.values()):
            result.values[name] = {k: float(v) for k, v in values.items()}
        else:
            result.notes.append(f"{name}: all importances are zero")
    if not result.values:
        result.reason = "; ".join(result.notes) or "no evaluator available in this Optuna version"
    elif len(done) < TRIALS_PER_PARAM * len(names):
        result.notes.append(few_trials(len(done), len(names)))
    return result


def few_trials(trials: int, params: int) -> str:
    """The caveat under importances estimated from fewer than ``TRIALS_PER_PARAM`` trials a parameter.
    Only an Optuna sweep has importances, and its table of every configuration is Configurations against
    the best (reports/render.py ``AGAINST_BEST``): it has no ablation table."""
    return (f"Only {trials} finished Optuna trials for {params} parameters (fewer than {TRIALS_PER_PARAM} a "
            "parameter): these shares are rough and may not rank the parameters; whether a setting's "
            "difference is beyond seed noise is the 'beyond seed noise' column of Configurations against "
            "the best. Raise search.num_samples for importances to rely on.")
