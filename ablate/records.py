"""The driver's side of the trial records: what a new record holds, and how a trial's end is recorded.

The record format (fields, atomic writes, reading) is ``sweep_format.records``; the statuses are
``sweep_format.statuses``; ``ablate.recorder.TrialRecorder`` writes records at Ray's events with
the helpers here. Why the driver and not the trainable writes them: the driver always sees the
sweep folder (a trial may run on a node without it), and it alone knows how a trial ended (a
scheduler's stop, an error after Ray's retries, an interrupt).

    points = Points(spec, read_records(sweep_dir))
    rec.update(ended(rec, "asha", error=None))       # status and reason of a trial that ended
    mark_interrupted(sweep_dir, cause="SIGTERM")      # unfinished records say so
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, NamedTuple

from ablate.oom_kills import CGROUP, Count, KillLedger, logged_kill
from ablate.sweep_spec import SweepSpec
from ablate.sweep_spec.model import takes
from sweep_format import statuses
from sweep_format.layout import TUNE_DIR, trial_folders
from sweep_format.records import (
    FORMAT,
    VERSION,
    final_value,
    is_damaged,
    knn_carried,
    knn_measured,
    read_records,
    write_record,
)
from sweep_format.text import LINE_MAX, cut_at_word, shell_word
from sweep_format.values import PointIndex, values_equal
from trainables.data_workers import Death, worker_death

# Ray bookkeeping kept out of the epoch rows (the config is the record's own field).
RAY_KEYS = {"config", "date", "hostname", "checkpoint_dir_name", "trial_id", "done", "should_checkpoint",
            "experiment_tag", "time_this_iter_s", "time_since_restore", "iterations_since_restore"}


def epoch_row(result: dict[str, Any]) -> dict[str, Any]:
    """Every scalar metric of one report (extra keys of other trainables included), no Ray bookkeeping."""
    return {k: v for k, v in result.items()
            if k not in RAY_KEYS and (v is None or isinstance(v, (bool, int, float, str)))}


class Points:
    """The point (index, label, is_baseline) of a trial's searched values.

    Grid and ablation: the index in ``spec.points()``. Optuna: in the order the settings were first
    seen, kept across resumes by reading the existing records.
    """

    def __init__(self, spec: SweepSpec, records: list[dict[str, Any]]) -> None:
        self.spec = spec
        self.baseline = spec.baseline_point()
        self.known: PointIndex[int] = PointIndex()  # each point's index, by its values
        self.count = 0
        for point in [] if spec.search.algorithm == "optuna" else spec.points():
            self._add(point)
        if spec.search.algorithm == "optuna":
            kept = (r for r in records if not is_damaged(r))  # a null point (the format allows it): last
            for rec in sorted(kept, key=lambda r: (r.get("point") is None, r.get("point") or 0)):
                if rec.get("params") is not None and self.index(rec["params"]) is None:
                    self._add(rec["params"])

    def _add(self, params: dict[str, Any]) -> int:
        self.known.add(params, self.count)
        self.count += 1
        return self.count - 1

    def index(self, params: dict[str, Any]) -> int | None:
        return self.known.first(params)

    def of(self, params: dict[str, Any]) -> tuple[int, str, bool]:
        i = self.index(params)
        if i is None:
            i = self._add(params)
        is_base = all(values_equal(params.get(k), v) for k, v in self.baseline.items())
        return i, self.spec.point_label(params), is_base


class GridPlan(NamedTuple):
    """Where a grid or an ablation stands, by its records (``grid_plan``)."""

    firsts: list[dict[str, Any]]  # each (point, repeat)'s first undamaged record, in the records' order
    unstarted: list[tuple[dict[str, Any], int]]  # the (point, repeat) pairs the spec plans that none holds


def grid_plan(spec: SweepSpec, records: list[dict[str, Any]]) -> GridPlan:
    """The records that stand for a grid's or an ablation's (point, repeat) pairs, and the pairs none
    stands for. A record of a point the spec no longer holds (its space edited) stands for itself."""
    points = spec.points()
    at = PointIndex((p, i) for i, p in enumerate(points))
    firsts: dict[tuple[int, int], dict[str, Any]] = {}
    for rec in records:
        if not is_damaged(rec):
            index = at.first(rec.get("params") or {})
            firsts.setdefault((index if index is not None else -1, int(rec.get("repeat") or 0)), rec)
    return GridPlan(list(firsts.values()), [(dict(p), r) for i, p in enumerate(points)
                                           for r in range(spec.repeats) if (i, r) not in firsts])


def unstarted_trials(spec: SweepSpec, records: list[dict[str, Any]]) -> int:
    """Planned trials no (readable) record stands for: ``ablate resume`` starts them."""
    kept = [r for r in records if not is_damaged(r)]
    if spec.search.algorithm == "optuna":
        return 0 if every_configuration_ran(spec, kept) else max(spec.num_trials - len(kept), 0)
    return len(grid_plan(spec, records).unstarted)


def every_configuration_ran(spec: SweepSpec, records: list[dict[str, Any]]) -> bool:
    """Whether ``records`` hold each repeat of every configuration of an Optuna sweep's finite space
    (``SweepSpec.configurations``): a configuration drawn again is not run again, so its study can add
    none. num_samples 3 over one value: 1 trial ran, and every `ablate resume` started Ray for none."""
    size = spec.configurations()
    if size is None:
        return False
    inside = [r for r in records if isinstance(r.get("params"), dict) and set(r["params"]) == set(spec.space)
              and all(takes(spec.space[name], value) for name, value in r["params"].items())]
    return len(inside) >= size * spec.repeats


def new_record(spec: SweepSpec, points: Points, trial_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """A trial's record when it first starts: its point, seed, repeat and resolved config."""
    from trainables.trial import OPTUNA_TRIAL, trial_config, trial_repeat

    params = {name: config.get(name) for name in spec.space}
    point, label, is_base = points.of(params)
    seed: Any
    planned: Any
    try:
        cfg = trial_config(config)
        seed, planned, resolved = cfg.seed, cfg.epochs, cfg.model_dump(mode="json")
    except Exception:
        seed, planned = config.get("seed"), config.get("epochs")
        resolved = {k: v for k, v in config.items() if not k.startswith("_")}
    return {"format": FORMAT, "version": VERSION, "trial_id": trial_id, "trial_dir": None, "trial_dirs": [],
            "point": point, "label": label, "is_baseline": is_base, "params": params, "seed": seed,
            "repeat": trial_repeat(config), "optuna_trial": config.get(OPTUNA_TRIAL),
            "epochs_planned": planned, "config": resolved, "metric": spec.metric, "mode": spec.mode,
            "status": statuses.PENDING, "reason": "", "collapsed": False, "restarts": [],
            "created_at": time.time(), "epochs": []}


def row_collapsed(row: dict[str, Any]) -> bool:
    """The trainable's collapse verdict of an epoch (rows of ablate <= 0.1 carry only the flag)."""
    if "collapsed" in row:
        return bool(row["collapsed"])
    return bool(row.get("collapse_flag")) or row.get("trial_outcome") in statuses.COLLAPSES


def ended(rec: dict[str, Any], scheduler: str, failure: Failure | None) -> dict[str, Any]:
    """status, reason and collapsed of a trial that ended: the trainable's own outcome where it gave
    one, else how Ray ended it (``failure``: after its retries, ``failure_of(trial)``; or a
    scheduler's stop before the last epoch). The collapse verdict is the trainable's, at the trial's
    last epoch."""
    last = rec["epochs"][-1] if rec["epochs"] else {}
    outcome, reason = str(last.get("trial_outcome") or ""), str(last.get("stop_reason") or "")
    done, planned = last.get("epoch", 0), rec.get("epochs_planned")
    if failure is not None:
        status, reason = failure
    elif rec.get("status") in statuses.AT_START:  # the trainable's own, before it trained
        status, reason = str(rec["status"]), str(rec.get("reason") or "")  # (no epoch row): inputs, memory
    elif outcome and outcome != statuses.RUNNING:
        status = outcome
    elif planned and done < planned:
        status = statuses.STOPPED_EARLY
        flag = str(last.get("collapse_flag") or "")
        reason = (f"stopped early by the {scheduler} scheduler after {done}/{planned} epochs"
                  + (f"; {flag}" if flag else "") + knn_note(rec["epochs"]))
    else:
        status = statuses.COMPLETED
    return {"status": status, "reason": reason, "collapsed": row_collapsed(last)}


def search_value(rec: dict[str, Any], metric: str, scheduler: str) -> float | None:
    """What the search (the Optuna study) learns from a trial that ended: its final value
    (``final_value``, the value the ranking counts) when its status says something of its setting
    (``statuses.INFORMATIVE``), else None. A record the driver has not closed yet (its trial ends as
    this is asked) has the status ``ended`` gives it."""
    status = rec.get("status")
    if not statuses.is_final(status) and not is_damaged(rec):
        status = ended(rec, scheduler, None)["status"]
    return final_value(rec.get("epochs") or [], metric) if status in statuses.INFORMATIVE else None


class Failure(NamedTuple):
    """How a trial that Ray ended with an error ended: its status and the reason the record gives."""

    status: str
    reason: str


# Ray's memory monitor kills a worker when its node's memory passes RAY_memory_usage_threshold; the
# trial's error file then holds its report (a page per kill) instead of an exception.
MEMORY_KILL = "killed due to the node running low on memory"
NODE_MEMORY = re.compile(r"Memory on the node \(IP: ([^,)]+)[^)]*\) was ([\d.]+ ?[KMGT]?B) used / "
                         r"([\d.]+ ?[KMGT]?B) limit")
KILL_THRESHOLD = re.compile(r"exceeded threshold of \d+B \(([\d.]+%) of")


# Ray's text of a trial whose actor died (its worker process killed, its node lost): this line, the
# actor's fields, then what happened and Ray's advice (ray.exceptions.ActorDiedError).
ACTOR_DIED = "The actor died unexpectedly before finishing this task."
ACTOR_FIELD = re.compile(r"(class_name|actor_id|pid|name|namespace|ip): \S*$")
ACTOR_FIELD_VALUE = re.compile(r"(pid|ip): (\S+)$")
# A worker killed by a signal Ray did not send (the kernel's OOM killer, a kill -9, a crash).
# Ray's header of a task's error: "ray::ImplicitFunc.train() (pid=27706, ip=127.0.0.1, actor_id=...)".
RAY_TASK = re.compile(r"\(pid=(\d+), ip=([^,)\s]+)")
WORKER_LOST = re.compile(r"worker process has died\. Worker exit type: SYSTEM_ERROR .*unexpectedly exits")


def first_sentences(text: str, limit: int = LINE_MAX) -> str:
    """The whole sentences of ``text`` that fit in ``limit`` characters; the first alone cut at a word
    (ending in "…") when it is longer. Ray's messages say what happened first, then the advice."""
    kept = ""
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text.strip()):
        joined = f"{kept} {sentence}" if kept else sentence
        if len(joined) > limit:
            break
        kept = joined
    return kept or cut_at_word(text, limit)


def failure_of(trial: Any, kills: KillLedger | None = None) -> Failure:
    """The trial's last failure, from its error file (Ray appends one ``Failure # N`` section per
    failure): ``oom`` when Ray's memory monitor killed it (its node's memory, the threshold, what
    to change) or the kernel's OOM killer did (``kernel_kill``: the driver's ``kills`` ledger, the
    kernel's counts), else ``errored`` with the first sentences of the exception's last line, or of
    what happened to a dead actor (a pointer to the trial folder when there is no file)."""
    last = re.split(r"^Failure # \d+.*$", failure_text(trial), flags=re.MULTILINE)[-1]
    if MEMORY_KILL in last:
        return Failure(statuses.OOM, memory_kill_reason(last))
    lines = [ln.strip() for ln in last.splitlines() if ln.strip()]
    if ACTOR_DIED in lines:  # what happened follows the actor's fields: a worker or its node died
        fields = {m[1]: m[2] for ln in lines if (m := ACTOR_FIELD_VALUE.match(ln))}
        lines = [" ".join(ln for ln in lines[lines.index(ACTOR_DIED) + 1:] if not ACTOR_FIELD.match(ln))]
        if kills is not None and WORKER_LOST.search(lines[-1]):
            killed = kernel_kill(fields, kills.claim(str(trial.trial_id), fields.get("ip")), lines[-1])
            if killed is not None:
                return killed
    if lines and (death := worker_death(lines[-1])) is not None:  # a DataLoader worker of the trial's
        return loader_death(trial, death, RAY_TASK.findall(last), kills)
    if lines and lines[-1]:
        return Failure(statuses.ERRORED, first_sentences(lines[-1]))
    folder = Path(trial.path or "").name
    return Failure(statuses.ERRORED, f"Ray marked the trial as errored (see {TUNE_DIR}/{folder})")


def loader_death(trial: Any, death: Death, task: list[tuple[str, str]], kills: KillLedger | None) -> Failure:
    """How a trial ended whose data-loading worker died (``trainables.data_workers``): ``oom`` when
    the kernel's OOM killer killed it (``kernel_kill``, with the worker's pid; the node is the trial's,
    from Ray's ``(pid=..., ip=...)`` of the task), else ``errored`` with what killed it."""
    if kills is not None and death.may_be_oom():
        ip = task[-1][1] if task else None
        fields = {"pid": str(death.pid), **({"ip": ip} if ip else {})}  # Ray named no node: none said
        killed = kernel_kill(fields, kills.claim(str(trial.trial_id), ip), death.said, "data-loading worker")
        if killed is not None:
            return killed
    return Failure(statuses.ERRORED, first_sentences(death.said))


def failure_text(trial: Any) -> str:
    """The text of the trial's error file (a ``Failure # N`` section per failure, tracebacks included;
    Ray's colour codes left out), "" without one."""
    try:
        text = Path(trial.error_file).read_text(errors="replace")
    except (OSError, TypeError):
        return ""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def memory_kill_reason(report: str) -> str:
    """One line from Ray's memory-monitor report: the node, its memory in use and the threshold."""
    from trainables.cuda import HOST_MEMORY_ADVICE  # the trial's own words (torch: imported when needed)

    node, threshold = NODE_MEMORY.search(report), KILL_THRESHOLD.search(report)
    where = f" on node {node[1]} ({node[2]} of {node[3]} in use)" if node else ""
    over = f", over Ray's kill threshold of {threshold[1]} (RAY_memory_usage_threshold)" if threshold else ""
    return f"out of host memory: killed by Ray's memory monitor{where}{over}; {HOST_MEMORY_ADVICE}"


def kernel_kill(fields: dict[str, str], kills: Count | None, said: str, process: str = "worker",
                run: str = "sweep") -> Failure | None:
    """How a worker that died without a word from Ray ended, when the kernel's OOM killer killed a
    process on the driver's node as it ran (``kills``: those no earlier death claimed, ``KillLedger``).

    ``oom`` when the kernel's log names the worker's pid, or when the kill was in the memory cgroup of
    the driver and its local Ray (the count of processes started with the sweep, not of the machine):
    a worker killed unexpectedly while the kernel killed one of them for memory, so that
    ``ablate resume --retry oom`` and the memory advice apply; "likely" where the log is unreadable
    (``kernel.dmesg_restrict``), as the count does not name the process. None when the readable log
    does not name the pid (the kernel killed another process). A machine-wide count alone (no cgroup
    count to read) may be another user's kill: ``errored``, with Ray's words (``said``), then the
    likely cause and the advice. ``process``: what the pid is, the trial's Ray ``worker`` or its
    ``data-loading worker`` (a DataLoader's, ``loader_death``). ``run``: whose cgroup it is, the
    ``sweep``'s or (``ablate train``, whose fields name no node) the ``run``'s."""
    if kills is None:
        return None
    from trainables.cuda import memory_advice  # the trial's own words (torch: imported when needed)

    advice = memory_advice(True, sweep=run == "sweep")
    pid, ip = fields.get("pid"), fields.get("ip")
    worker = f"its {process}" + (f" (pid {pid})" if pid else "") + (f" on node {ip}" if ip else "")
    logged = logged_kill(int(pid)) if pid and pid.isdigit() else None
    if logged is False:  # the kernel killed another process: the worker died otherwise (Ray's words)
        return None
    if logged:
        return Failure(statuses.OOM, f"out of host memory: {worker} was killed by the kernel's OOM killer "
                                     f"(the kernel log names it); {advice}")
    many = f"{kills.kills} processes" if kills.kills > 1 else "a process"
    if kills.scope == CGROUP:
        return Failure(statuses.OOM, f"out of host memory, likely: {worker} died unexpectedly as the "
                                     f"kernel's OOM killer killed {many} in this {run}'s memory "
                                     f"cgroup (its oom_kill count rose); {advice}")
    note = (f"Likely out of host memory: the kernel's OOM killer killed {many} on this machine as it ran "
            f"(/proc/vmstat oom_kill); {advice}")
    return Failure(statuses.ERRORED, f"{first_sentences(said, LINE_MAX - len(note) - 1)} {note}")


def knn_note(rows: list[dict[str, Any]]) -> str:
    """``; kNN last evaluated at epoch E`` when the last row carries an earlier kNN, else ""."""
    if not rows or not knn_carried(rows[-1]):
        return ""
    measured = [r["epoch"] for r in rows if knn_measured(r)]
    return f"; kNN last evaluated at epoch {measured[-1]}" if measured else "; kNN never evaluated"


def checkpointed_epoch(sweep_dir: Path, rec: dict[str, Any]) -> int:
    """The newest epoch of which a checkpoint of the record's trial is kept (the report kept beside it
    says which), 0 without one. It is ahead of the record's epochs when the node or the driver died
    between the checkpoint and its result (``TrialRecorder`` fills them from these when it resumes)."""
    from trainables.trial import reported_epochs  # torch: imported when needed

    try:
        return max(reported_epochs(trial_folders(sweep_dir, rec)), default=0)
    except OSError:  # an unreadable folder or report: the record says what it holds
        return 0


def unrecorded_checkpoint(sweep_dir: Path, rec: dict[str, Any]) -> int:
    """The epoch of the trial's newest kept checkpoint when it is ahead of the record's epochs (the trial's
    process, its node or the driver died between the checkpoint and its result reaching the driver),
    else 0. A resume that runs the trial again continues from it (``checkpointed_epoch``)."""
    last = rec["epochs"][-1] if rec.get("epochs") else {}
    kept = checkpointed_epoch(sweep_dir, rec)
    return kept if kept > last.get("epoch", 0) else 0


def unrecorded_note(kept: int) -> str:
    """What a record whose trial ended says of ``unrecorded_checkpoint``'s epoch ("" for none)."""
    return f"; its checkpoint of epoch {kept} is kept, its result unrecorded" if kept else ""


def mark_interrupted(sweep_dir: Path, cause: str = "") -> list[dict[str, Any]]:
    """After an interrupt (``cause``: why, when it was not Ctrl-C): every unfinished record says so
    (status ``interrupted``, the epochs done and the epoch of its last kNN, a newer epoch's checkpoint
    that its result never reached the record from: resume continues from it); returns them. A trial
    whose last result already ended it (a trainable's final ``trial_outcome``, reported before the
    signal stopped Tune from closing it) is closed with that outcome instead."""
    out = []
    for rec in read_records(sweep_dir):
        if not statuses.is_unfinished(rec.get("status")):
            continue
        last = rec["epochs"][-1] if rec.get("epochs") else {}
        if statuses.is_final(last.get("trial_outcome")):  # it had ended (collapsed, diverged, ...): its
            rec.update(ended(rec, "", None), updated_at=time.time())  # last result came, Ray's "done" not
            write_record(sweep_dir, rec)
            continue
        done = last.get("epoch", 0)
        full = last.get("trial_outcome") == statuses.STORAGE_FULL  # the trial that found the disk full
        what = "its checkpoint could not be written after" if full else "interrupted after"
        kept = 0 if full else unrecorded_checkpoint(sweep_dir, rec)  # its result lost with the driver or node
        ahead, since = unrecorded_note(kept), f" from epoch {kept}" if kept else ""
        rec.update(status=statuses.STORAGE_FULL if full else statuses.INTERRUPTED, updated_at=time.time(),
                   reason=f"{what} {done}/{rec.get('epochs_planned')} epochs"
                          f"{knn_note(rec.get('epochs') or [])}{ahead}{'; ' + cause if cause else ''}; "
                          f"`ablate resume {shell_word(sweep_dir)}` continues it{since}")
        write_record(sweep_dir, rec)
        out.append(rec)
    return out
