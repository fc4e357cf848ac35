"""Tune's decision on each result of a data-parallel trial, told to the trial's workers.

A one-process trial waits in Tune's ``report`` until the driver has taken its result, so ASHA stopping
it ends it there. A data-parallel trial's workers (a Ray Train run inside the Tune trial) report and
train on: without word from the driver, a trial ASHA stopped trained to its last epoch, writing
checkpoints past its record and holding its workers while the next trial waited (a 4-point grid with
ASHA, 2 workers on 2 CPUs). ``WorkersTold`` writes each decision into the trial's folder
(``sweep_format.layout.ASHA_VERDICT``); the workers wait for it at the epochs ASHA judges
(``trainables.ddp_trial.asha_verdict``) and end the run where the trial's record ends.

    callbacks = [recorder, view, WorkersTold(sweep_dir / TUNE_DIR)]
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ray.tune import Callback

from sweep_format.layout import tell_verdict


class WorkersTold(Callback):
    """For each result with an ``epoch``, into ``<tune_dir>/<trial folder>``: whether Tune stopped the
    trial on it (ASHA, or Tune's epoch limit: Tune marks that result ``done`` before its callbacks see
    it)."""

    def __init__(self, tune_dir: Path) -> None:
        self.tune_dir = Path(tune_dir)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        epoch = result.get("epoch")
        if isinstance(epoch, int) and trial.path:
            with contextlib.suppress(OSError):  # a full disk: the recorder's write of it stops the sweep
                tell_verdict(self.tune_dir / Path(trial.path).name, epoch, bool(result.get("done")))
