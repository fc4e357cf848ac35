"""ablate's trial records, ``<sweep>/trials/<trial_id>.json``: the sweep's source of truth.

One small JSON object per trial (format ``ablate.trial``, version 1, fields in docs/CONTRACTS.md):
its point, seed, repeat, resolved config, status and reason, the collapse verdict and every
epoch's metrics. The sweep's driver writes it at every event (ablate.recorder), each time replacing
the whole file atomically, so a kill at any moment leaves every record complete; everything else
(tables, listings, reports, ``ablate resume``) reads it back through ``read_records``, one contract:
every file of ``trials/``, a record that cannot be read as a ``damaged`` stub naming the file.

    for rec in read_records(Path("runs/temps")):
        rec["status"], rec["epochs"][-1].get("knn_top1")
"""

from __future__ import annotations

import errno
import json
import math
import re
from pathlib import Path
from typing import Any

from sweep_format.files import NOT_REGULAR, loads, special_file, write_json
from sweep_format.layout import ERROR_SUFFIX, TRIALS_DIR
from sweep_format.metrics import DEVICE_KINDS, LEGACY_METRICS, METRICS, MODES, is_knn, is_percent
from sweep_format.statuses import DAMAGED, ORDER
from sweep_format.text import has_control, printable, printable_tree

FORMAT, VERSION = "ablate.trial", 1
VERSIONS = (1,)  # record versions this reader understands; fields may be added within a version
INT64 = 2**63  # an integer field must fit the tables' Int64 columns


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -INT64 <= v < INT64


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# What each field the readers use must be, where a record has it (docs/CONTRACTS.md): a record copied
# from elsewhere or edited by hand that breaks one is ``damaged``, named with the field, instead of
# a traceback in every table, listing, report and resume that reads it.
FIELDS: dict[str, tuple[str, Any]] = {
    "status": (f"one of {', '.join(ORDER)}", lambda v: v in ORDER),
    "reason": ("a text", lambda v: isinstance(v, str)),
    "label": ("a text", lambda v: isinstance(v, str)),
    "params": ("an object", lambda v: isinstance(v, dict)),
    "config": ("an object", lambda v: isinstance(v, dict)),
    "restarts": ("a list of objects", lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v)),
    "trial_dir": ("a text or null", lambda v: v is None or isinstance(v, str)),
    "trial_dirs": ("a list of texts", lambda v: isinstance(v, list) and all(isinstance(d, str) for d in v)),
    **dict.fromkeys(("point", "seed", "repeat", "optuna_trial"),
                    ("an integer or null", lambda v: v is None or is_int(v))),
    # a trainer's epochs are >= 1 (trainables.config); each epoch row is checked against it (misfit)
    "epochs_planned": ("an integer >= 1 or null", lambda v: v is None or is_int(v) and v >= 1),
    **dict.fromkeys(("created_at", "updated_at"), ("a number", is_number)),
    **dict.fromkeys(("collapsed", "is_baseline"), ("true or false", lambda v: isinstance(v, bool))),
}


# What each epoch field the readers compute with must be, where a row has it (null: not reported):
# a text or a list where a number belongs ended the report and ablate ls in a ValueError (a sum of
# epoch times, a cost, a plotted line) or, for a metric, silently dropped the trial's value (and
# changed the best); a text where a flag belongs was read as true.
EPOCH_NUMBERS = (*METRICS, "ln_out_dim", "lr", "weight_decay", "teacher_temp", "momentum_teacher",
                 "epoch_time_s", "images_per_s", "data_wait_s", "data_wait_share", "knn_eval_s",
                 "gpu_mem_peak_gb", "device_seconds", "time_total_s", "timestamp", "started_at",
                 "reported_at")
EPOCH_AMOUNTS = ("ln_out_dim", "epoch_time_s", "images_per_s", "data_wait_s", "data_wait_share", "knn_eval_s",
                 "gpu_mem_peak_gb", "device_seconds", "time_total_s")
EPOCH_FLAGS = ("knn_evaluated", "collapsed", "replayed", "loss_at_ln_out_dim")
EPOCH_INTEGERS = ("restored_from_epoch", "training_iteration", "workers")
# A metric may be NaN or inf (a diverged trial's loss); the others are measured or scheduled, always
# finite: an inf there (ln_out_dim, device_seconds) ended the report in matplotlib's "Axis limits cannot
# be NaN or Inf".
EPOCH_FIELDS: dict[str, tuple[str, Any]] = {
    **dict.fromkeys(EPOCH_NUMBERS, ("a finite number",
                                    lambda v: v is None or is_number(v) and math.isfinite(v))),
    **dict.fromkeys(METRICS, ("a number", lambda v: v is None or is_number(v))),
    # times, rates and sizes: a device_seconds of -1 was taken off the sweep's cost (ablate ls: 30 CPU-s
    # became 14) in silence
    **dict.fromkeys(EPOCH_AMOUNTS, ("a finite number >= 0",
                                    lambda v: v is None or is_number(v) and math.isfinite(v) and v >= 0)),
    # the unit of device_seconds; a text of a million characters drew a plot too wide to save (a traceback)
    "device_kind": (f"one of {', '.join(DEVICE_KINDS)}", lambda v: v is None or v in DEVICE_KINDS),
    **{m: ("a percentage from 0 to 100", lambda v: v is None or is_percent(v)) for m in METRICS if is_knn(m)},
    **dict.fromkeys(EPOCH_FLAGS, ("true or false", lambda v: v is None or isinstance(v, bool))),
    **dict.fromkeys(EPOCH_INTEGERS, ("an integer", lambda v: v is None or is_int(v))),
}


RECORD_SUFFIX = ".json"


def is_record_file(file: Path) -> bool:
    """Whether a file of ``trials/`` is a trial record (by its name): ``<id>.json``, never a hidden file
    (``record_path`` gives none such a name): the ``._<id>.json`` that macOS leaves beside each file it
    copies to another file system is not a trial, nor is ``.reserve`` or ``<id>.error.txt``."""
    return file.suffix == RECORD_SUFFIX and not file.name.startswith(".")


def record_path(sweep_dir: str | Path, trial_id: str) -> Path:
    """``trials/<trial_id>.json``; ValueError for an id that is not a plain file name (a record
    read back always has its file's name as its id: see ``read_record``)."""
    if not trial_id or trial_id.startswith(".") or any(c in trial_id for c in "/\\\0"):
        raise ValueError(f"trial id {trial_id[:80]!r} is not a file name")
    return Path(sweep_dir) / TRIALS_DIR / f"{trial_id}{RECORD_SUFFIX}"


def error_path(sweep_dir: str | Path, trial_id: str) -> Path:
    """``trials/<trial_id>.error.txt``: the whole error of an errored trial, whose record's reason is one
    line of it (ablate.recorder writes it)."""
    return record_path(sweep_dir, trial_id).with_name(f"{trial_id}{ERROR_SUFFIX}")


def write_record(sweep_dir: str | Path, record: dict[str, Any]) -> Path:
    """Replace the record's file atomically (an OSError such as ENOSPC leaves the old one intact)."""
    return write_json(record_path(sweep_dir, str(record["trial_id"])), record)


def read_records(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every trial record of the sweep in file-name order (``is_record_file``); damaged ones as ``damaged``
    stubs."""
    folder = Path(sweep_dir) / TRIALS_DIR
    if not folder.is_dir():
        return []
    return [read_record(f) for f in sorted(folder.glob(f"*{RECORD_SUFFIX}")) if is_record_file(f)]


def read_record(file: Path) -> dict[str, Any]:
    if special_file(file):  # reading a FIFO would wait for ever
        return damaged(file, f"{NOT_REGULAR}; a record is a JSON file")
    try:
        raw = file.read_bytes()
        text = raw.decode(json.detect_encoding(raw))  # as json.loads(bytes) reads it (a BOM, UTF-16)
        data = loads(text)
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        return damaged(file, f"not readable as JSON ({exc.__class__.__name__}: {str(exc)[:80]})")
    if has_control(text):  # a hand-written reason or id must not drive the terminal it is printed on
        data = printable_tree(data)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return damaged(file, f"not an ablate trial record (expected \"format\": \"{FORMAT}\")")
    if data.get("version") not in VERSIONS:
        newer = ", written by a newer ablate" if is_newer(data.get("version")) else ""
        return damaged(file, f"record version {repr(data.get('version'))[:40]}{newer}, this ablate reads "
                             f"{list(VERSIONS)}")
    if not isinstance(data.get("epochs"), list) or not isinstance(data.get("trial_id"), str):
        return damaged(file, "record without trial_id or epochs")
    if data["trial_id"] != file.stem:  # written back under its id: never a file elsewhere
        return damaged(file, f"its trial_id {data['trial_id'][:80]!r} is not its file's name")
    if why := misfit(data):
        return damaged(file, why)
    return data


def is_newer(version: Any) -> bool:
    """Whether ``version`` is a record version after every one this reader knows (a later ablate's)."""
    return is_int(version) and version > max(VERSIONS)


def records_problem(sweep_dir: str | Path) -> str:
    """"" when this ablate can read the records of ``trials/``, else one line naming why not: the folder
    cannot be listed (another user's, made under umask 077: it read as a sweep with no trial, and
    ``ablate resume`` started every trial again), or a record is of a version after this reader's.
    A sweep a later ablate wrote (or resumed) would read as damaged throughout, its report would
    replace the later one's with a table of damaged trials, and ``ablate resume`` ran its trials again
    beside its records; so every command refuses such a folder until ablate is upgraded. A record
    that cannot be read at all is no sign of a later ablate: ``damaged``."""
    folder = Path(sweep_dir) / TRIALS_DIR
    try:
        if not folder.is_dir() or folder.is_symlink():
            return ""
        files = sorted(f for f in folder.iterdir() if is_record_file(f))
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "?")
        return (f"{printable(str(folder))}: cannot be listed ({code}: {exc.strerror}), so no trial record "
                "of the sweep can be read: ask its owner for access")
    for file in files:
        if is_newer(version := record_version(file)):
            known = ", ".join(map(str, VERSIONS))
            return (f"{printable(str(file))}: trial record version {version}, written by a newer ablate "
                    f"(this one reads version {known}); upgrade ablate to report, compare or resume the "
                    "sweep")
    return ""


# How every record ablate writes begins (ablate.records.new_record: these keys first, json.dumps's
# separators): its version is read from the first bytes, not from a parse of every epoch.
HEAD = re.compile(rb'\{"format": "' + FORMAT.encode() + rb'", "version": (\d{1,18})[,}]')


def record_version(file: Path) -> Any:
    """The ``version`` of the record ``file`` (None: no record, or one that cannot be read)."""
    if not file.is_file():  # reading a FIFO waits for a writer, for ever
        return None
    try:
        with file.open("rb") as f:
            if head := HEAD.match(f.read(64)):
                return int(head[1])
            f.seek(0)
            raw = f.read()
        data = loads(raw.decode(json.detect_encoding(raw)))
    except (OSError, ValueError):
        return None
    return data.get("version") if isinstance(data, dict) and data.get("format") == FORMAT else None


def misfit(data: dict[str, Any]) -> str:
    """What in a record is not of its field's kind (FIELDS; every epoch an object with an integer
    ``epoch`` >= 0, after the one before and at most ``epochs_planned``, no integer beyond the tables'
    64 bits, each of its EPOCH_FIELDS of its kind or null), "" when nothing is."""
    if "status" not in data:
        return "record without status"
    for key, (kind, fits) in FIELDS.items():
        if key in data and not fits(data[key]):
            return f"{key} is {repr(data[key])[:40]}, not {kind}"
    before, planned = -1, data.get("epochs_planned")
    for i, row in enumerate(data["epochs"]):
        if not isinstance(row, dict) or not is_int(row.get("epoch")) or row["epoch"] < 0:
            return f"epochs[{i}] is {repr(row)[:40]}, not an object with an integer epoch >= 0"
        # the recorder keeps one row per epoch, in order (ablate.recorder): the readers take a trial's last
        # row as its final one, so a row moved or repeated was its final kNN in silence
        if row["epoch"] <= before:
            return f"epochs[{i}].epoch is {row['epoch']} after {before}, not in increasing order, each once"
        if is_int(planned) and row["epoch"] > planned:
            return f"epochs[{i}].epoch is {row['epoch']}, beyond epochs_planned {planned}"
        before = row["epoch"]
        if big := next((k for k, v in row.items() if isinstance(v, int) and not -INT64 <= v < INT64), None):
            return f"epochs[{i}].{big[:40]} is {str(row[big])[:40]}..., beyond a 64-bit integer"
        for key, (kind, fits) in EPOCH_FIELDS.items():
            if key in row and not fits(row[key]):
                return f"epochs[{i}].{key} is {repr(row[key])[:40]}, not {kind}"
    return ""


def knn_carried(row: dict[str, Any]) -> bool:
    """Whether an epoch's kNN values were carried over from an earlier evaluation (``knn_evaluated``
    false), not measured at that epoch; a row without the field (an older trial's) was evaluated."""
    return not row.get("knn_evaluated", True)


def knn_measured(row: dict[str, Any]) -> bool:
    """Whether an epoch's row holds a kNN measured at that epoch (not one carried over epochs that
    were not evaluated: ``knn_carried``)."""
    return not knn_carried(row) and row.get("knn_top1") is not None


def final_value(rows: list[dict[str, Any]], metric: str) -> float | None:
    """The value of ``metric`` a trial ended with, as it counts: its last finite value at a trained
    epoch (>= 1), a kNN metric only at an epoch where it was evaluated. Never the untrained
    network's kNN (epoch 0), nor a value carried over epochs without evaluation (``knn_evaluated``
    false), e.g. the epoch-0 kNN a trial that ran out of memory in epoch 1 reports. The reports'
    ranking counts the same value (``reports.ranking.trained``: ``knn_epoch`` >= 1); the Optuna
    study is told it (``ablate.records.search_value``)."""
    for row in reversed(rows):
        if not isinstance(row.get("epoch"), int) or row["epoch"] < 1:
            continue
        if is_knn(metric) and knn_carried(row):
            continue
        value = row.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def searched_by(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (metric, mode) pairs the sweep's search and scheduler were given, as its records say (each
    record keeps the spec's pair of its run: ablate.records.new_record), first seen first; [] where no
    record says (damaged ones, an older ablate's, a pair that is no metric and direction). spec.yaml,
    which the reports rank by, may have been edited since."""
    pairs = ((r.get("metric"), r.get("mode")) for r in records)
    return list(dict.fromkeys((str(m), str(d)) for m, d in pairs if is_search_pair(m, d)))


def is_search_pair(metric: Any, mode: Any) -> bool:
    """Whether (``metric``, ``mode``) is a pair a search was given: a metric a sweep ranks by (or an older
    ablate's) and a direction (``searched_by``; a trials.parquet keeps them: reports.parquet)."""
    return metric in METRICS + LEGACY_METRICS and mode in MODES


def damaged(file: Path, why: str) -> dict[str, Any]:
    """The stub of a record that cannot be read, named by its file (whose name anyone may have chosen:
    printable, as Arrow holds no byte that is not UTF-8 and a terminal obeys escapes)."""
    return {"trial_id": printable(file.stem), "status": DAMAGED,
            "reason": printable(f"{file.parent.name}/{file.name}: {why}"), "collapsed": False, "epochs": [],
            "params": {}, "file": printable(str(file))}


def is_damaged(record: dict[str, Any]) -> bool:
    return record.get("status") == DAMAGED
