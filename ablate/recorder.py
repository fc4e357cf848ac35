"""``TrialRecorder``: the ``tune.Callback`` that writes ablate's trial records (see ablate.records).

Kept apart from ablate.records so that reading records never imports Ray.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from ray import tune

from ablate.errors import StorageFull
from ablate.records import (
    ACTIVE,
    FINAL,
    FORMAT,
    RECORDS_DIR,
    VERSION,
    Points,
    epoch_row,
    error_text,
    final_verdict,
    read_records,
    write_json,
)
from ablate.spec import SweepSpec
from trainables.storage_errors import STORAGE_FULL, write_failure


class TrialRecorder(tune.Callback):
    """Writes ``<sweep>/trials/<trial_id>.json`` for every trial, at every Ray event."""

    def __init__(self, spec: SweepSpec, sweep_dir: Path) -> None:
        self.spec, self.sweep_dir = spec, Path(sweep_dir)
        self.records: dict[str, dict[str, Any]] = {}
        self.points: Points | None = None
        self.reconciled = False

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles the callback with the experiment
        return {"spec": self.spec, "sweep_dir": self.sweep_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        TrialRecorder.__init__(self, state["spec"], state["sweep_dir"])

    def setup(self, **info: Any) -> None:  # type: ignore[override]  # Ray passes keywords only
        self.sweep_dir = ACTIVE.get("sweep_dir", self.sweep_dir)  # a resumed sweep may have moved
        self.records = read_records(self.sweep_dir)
        self.points = Points(self.spec, self.records)
        self.reconciled = False

    # --- Ray's events ----------------------------------------------------------------------
    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.reconciled:
            return
        self.reconciled = True  # once per run: Ray restored these as finished, the record may lag
        for trial in trials:
            rec = self.records.get(trial.trial_id)
            if rec and rec["status"] not in FINAL and trial.status in ("TERMINATED", "ERROR"):
                self._finish(trial, errored=trial.status == "ERROR")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rec = self._record(trial)
        rec.update(status="running", reason="")
        self._save(rec)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        rec = self._record(trial)
        row = epoch_row(result)
        epoch = row.get("epoch")
        if not isinstance(epoch, int):
            return
        rec["epochs"] = [r for r in rec["epochs"] if r.get("epoch") != epoch] + [row]
        rec["epochs"].sort(key=lambda r: r["epoch"])
        rec.update(status="running", reason="")
        if row.get("trial_outcome") == STORAGE_FULL:  # the trial could not write: nor will the others
            with contextlib.suppress(StorageFull):
                self._save(rec)
            raise StorageFull(str(row.get("stop_reason") or "a trial could not write its checkpoint"))
        self._save(rec)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=True)

    # --- the record ------------------------------------------------------------------------
    def _record(self, trial: Any) -> dict[str, Any]:
        rec = self.records.get(trial.trial_id)
        if rec is None:
            rec = self.records[trial.trial_id] = self._new(trial)
        return rec

    def _new(self, trial: Any) -> dict[str, Any]:
        from trainables.tune_trainable import trial_config, trial_repeat

        config = dict(trial.config)
        params = {name: config.get(name) for name in self.spec.space}
        point, label, is_base = self.points.of(params)  # type: ignore[union-attr]
        seed: Any
        planned: Any
        try:
            cfg = trial_config(config)
            seed, planned, resolved = cfg.seed, cfg.epochs, cfg.model_dump(mode="json")
        except Exception:
            seed, planned = config.get("seed"), config.get("epochs")
            resolved = {k: v for k, v in config.items() if not k.startswith("_")}
        return {"format": FORMAT, "version": VERSION, "trial_id": trial.trial_id,
                "trial_dir": f"tune/{Path(trial.path or '').name}", "point": point, "label": label,
                "is_baseline": is_base, "params": params, "seed": seed,
                "repeat": trial_repeat(config), "epochs_planned": planned,
                "config": resolved, "metric": self.spec.metric, "mode": self.spec.mode,
                "status": "pending", "reason": "", "collapsed": False, "created_at": time.time(),
                "epochs": []}

    def _finish(self, trial: Any, errored: bool) -> None:
        rec = self._record(trial)
        rec.update(final_verdict(rec, self.spec.scheduler.type, error_text(trial) if errored else None))
        self._save(rec)

    def _save(self, rec: dict[str, Any]) -> None:
        rec["updated_at"] = time.time()
        path = self.sweep_dir / RECORDS_DIR / f"{rec['trial_id']}.json"
        try:
            write_json(path, rec)
        except OSError as exc:  # read-only or full storage: ablate.sweep.fit stops with one clear line
            failed = OSError(exc.errno, exc.strerror, str(path))
            raise StorageFull(write_failure(failed, "the trial record")) from None
