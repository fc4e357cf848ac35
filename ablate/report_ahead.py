"""``ReportAhead``: the report's imports paid on the driver while the sweep's last trials run.

The report after the last trial imported matplotlib, scipy and Optuna's importance evaluators
first (1.5-2 s on 2 CPUs, both cores otherwise idle but for Ray's stop). Once every trial of the
run has started and one has ended, a slot stays free until the end, and the driver imports them
then, beside the trials still running.

    callbacks = [recorder, view, ReportAhead(planned=15)]
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial


class ReportAhead(Callback):
    """Imports ``reports.render`` and Optuna's importance evaluators once, at the first trial end
    after all ``planned`` trials of this run have been created and none waits to start."""

    def __init__(self, planned: int) -> None:
        self.planned, self.done = planned, False

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.slot_freed(trials)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.slot_freed(trials)

    def slot_freed(self, trials: list[Any]) -> None:
        if self.done or len(trials) < self.planned or any(t.status == Trial.PENDING for t in trials):
            return
        self.done = True
        try:
            import reports.render  # noqa: F401  (matplotlib, scipy)
            from reports.importance import evaluators

            evaluators()  # Optuna's lazily imported modules
        except Exception:  # the report says its own error at the end; raised here, Tune failed and
            return  # retried the trial whose end this is (an exception in on_trial_complete)
