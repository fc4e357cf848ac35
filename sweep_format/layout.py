"""The layout of a sweep folder, ``<storage>/<name>/``, and the one answer to "is this a sweep?".

    spec.yaml            the resolved spec (ablate.sweep_spec), plus ``resolved: {baseline, trainer}``
    trials/<id>.json     ablate's trial records, the sweep's source of truth (sweep_format.records);
                         trials/.reserve: space kept to write them with when the disk fills;
                         trials/<id>.error.txt: an errored trial's whole error (its reason is one line)
    optuna.db            the Optuna study (search.algorithm: optuna)
    reference_knn.json   raw-pixel and untrained-network kNN of the dataset
    tune/                Ray Tune's experiment: one folder per trial run, with its checkpoints
                         (checkpoint_NNNNNN/checkpoint.pt, the name an `ablate train` run folder uses
                         too); ablate reads back only the checkpoints (weights-only), never Ray's state;
                         a data-parallel trial's folder under ASHA holds asha_verdict.json too
    report/              trials.parquet, epochs.parquet, report.md, report.html, plots/, attention.png
                         (an `ablate compare` folder holds the same names)
    ray.log              Ray's and Optuna's own log lines
    driver.lock          who is running the sweep now (ablate.lock)
    history.jsonl        one line per event of a driver: start (command, host, CPUs, GPUs), end, report
    mlruns/, wandb/      experiment trackers, when the spec asks for them

A folder is a sweep when it holds ``spec.yaml`` and ``trials/`` (``ablate run`` makes both before
anything else): everything else may be missing (a sweep stopped before its first trial, a copy
without Ray's files) and is rebuilt or resumed from the records. A project folder whose own spec
file is named spec.yaml is no sweep: nothing reads it as one, resumes it or writes into it.

    if is_sweep(Path("runs/temps")): ...
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from sweep_format.files import NOT_REGULAR, READS, linked, loads, not_a_file, user_path, write_json
from sweep_format.text import printable

SPEC_FILE = "spec.yaml"
RESOLVED = "resolved"  # a section the sweep writes into its spec.yaml: derived, so ignored on reading
RESOLVED_TRAINER = "trainer"  # in it: the trainer settings the trials run with (kept on resume)
TRIALS_DIR = "trials"
OPTUNA_DB = "optuna.db"
REFERENCE_FILE = "reference_knn.json"
# its values, kNN top-1 in %: raw pixels, the untrained network (trainables.baselines computes them)
PIXEL_KNN, UNTRAINED_KNN = "pixel_knn_top1", "untrained_knn_top1"
REFERENCE_KNN = (PIXEL_KNN, UNTRAINED_KNN)
TUNE_DIR = "tune"
# In a data-parallel trial's tune/<trial>/ folder under ASHA: Tune's decision on the trial's last result
# (``tell_verdict``), written by the driver (ablate.asha) and waited for by the trial's workers at each
# epoch ASHA judges (trainables.ddp_trial.asha_verdict, through ``told_verdict``)
ASHA_VERDICT = "asha_verdict.json"
# a trial's weights-only checkpoint in tune/<run>/checkpoint_NNNNNN/ (and in an `ablate train` run folder)
CHECKPOINT_NAME = "checkpoint.pt"
REPORT_DIR = "report"
RESERVE_FILE = ".reserve"  # in TRIALS_DIR (ablate.ending); never a record: records are *.json
ERROR_SUFFIX = ".error.txt"  # trials/<id>.error.txt (sweep_format.records.error_path); never a record
# in REPORT_DIR, and in an `ablate compare` output folder
TRIALS_TABLE = "trials.parquet"
EPOCHS_TABLE = "epochs.parquet"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"
ATTENTION_FILE = "attention.png"
RAY_LOG = "ray.log"
LOCK_FILE = "driver.lock"
HISTORY_FILE = "history.jsonl"
MLFLOW_DIR = "mlruns"
WANDB_DIR = "wandb"
# What ablate writes, replaces or deletes in a sweep folder, and the folders it does so entry by entry:
# none of them may be a symbolic link (``entry_problem``).
WRITTEN = (SPEC_FILE, TRIALS_DIR, OPTUNA_DB, REFERENCE_FILE, TUNE_DIR, REPORT_DIR, RAY_LOG, LOCK_FILE,
           HISTORY_FILE, MLFLOW_DIR, WANDB_DIR)
ENTRY_FOLDERS = (TRIALS_DIR, TUNE_DIR, REPORT_DIR)
# What a reader that writes nothing there (``ablate compare`` of a source sweep, ``ablate.load(...).trials``)
# reads in a sweep folder, and the folder it reads entry by entry: a link among them would read another
# folder's files as the sweep's (``entry_problem(sweep_dir, READ)``); its report/, tune/ and driver.lock are
# never read, so a link there is no reader's concern (compare refused a source whose driver.lock was one).
READ = (SPEC_FILE, TRIALS_DIR, REFERENCE_FILE)
READ_FOLDERS = (TRIALS_DIR,)
# What ``ablate ls`` reads: the same, and driver.lock, which says whether a driver runs the sweep now
# (ablate.lock.driven): a link there read another sweep's lock, or any file, as this one's, and ls trusted it.
LISTED = (*READ, LOCK_FILE)
# The folders and files ablate makes in a sweep folder: a file where a folder belongs, or a folder (or a
# FIFO, socket or device) where a file belongs, is refused (``entry_problem``).
MADE_FOLDERS = (TRIALS_DIR, TUNE_DIR, REPORT_DIR, f"{REPORT_DIR}/{PLOTS_DIR}")
MADE_FILES = (OPTUNA_DB, REFERENCE_FILE, RAY_LOG, LOCK_FILE, HISTORY_FILE,
              *(f"{REPORT_DIR}/{name}" for name in (TRIALS_TABLE, EPOCHS_TABLE, REPORT_MD, REPORT_HTML,
                                                    ATTENTION_FILE)))
EXPECTED = f"a sweep folder holding {SPEC_FILE} and {TRIALS_DIR}/, as `ablate run SPEC.yaml` writes it"
STORAGE_EXPECTED = f"a storage folder holding sweep folders ({SPEC_FILE} + {TRIALS_DIR}/), e.g. ./runs"


def is_sweep(folder: str | Path) -> bool:
    """Whether ``folder`` is a sweep folder (it holds ``spec.yaml`` and ``trials/``; a file or link named
    trials makes a damaged one, which ``entry_problem`` names)."""
    trials = Path(folder) / TRIALS_DIR
    try:
        return (Path(folder) / SPEC_FILE).is_file() and (trials.exists() or trials.is_symlink())
    except OSError:  # a folder this user may not enter (another user's, made under umask 077): not_a_sweep
        return False  # says so; it was 'cannot write spec.yaml', and `ablate ls` listed none beside it


def sweep_around(path: str | Path) -> Path | None:
    """The sweep folder ``path`` is or lies inside (None: none), whose files are the sweep's: another
    sweep written there would mix with them."""
    folder = user_path(path).resolve()
    return next((f for f in (folder, *folder.parents) if is_sweep(f)), None)


def inside_sweep(sweep: Path) -> str:
    """Why a run, a sweep or a comparison may not be written at a path ``sweep_around`` finds in the
    sweep folder ``sweep``; the caller adds where to write instead."""
    return f"inside the sweep folder {sweep}, whose files are the sweep's"


def not_a_sweep(folder: str | Path) -> str:
    """Why ``folder`` is not a sweep folder, in one line naming it and what was expected."""
    folder = Path(folder)
    if problem := not_a_folder(folder, EXPECTED):
        return problem
    try:
        inside = sorted(printable(d.name) for d in folder.iterdir() if is_sweep(d))  # names anyone chose
    except OSError as exc:
        return unlisted(folder, exc, EXPECTED)
    hint = f"; it holds the sweeps {', '.join(inside)}: pass one of them" if inside else ""
    if (folder / SPEC_FILE).is_file() and not hint:  # a project's own spec.yaml, or a copy that lost trials/
        return (f"{folder}: not a sweep folder: it holds {SPEC_FILE} but no {TRIALS_DIR}/ (expected "
                f"{EXPECTED}; run a spec with `ablate run {folder / SPEC_FILE}`)")
    spec = folder / SPEC_FILE
    if (spec.exists() or spec.is_symlink()) and not spec.is_file() and not hint:  # a FIFO a tar kept, ...
        return f"{spec}: {not_a_file(spec)}, where a sweep folder keeps the spec it ran as a YAML file " \
               f"(expected {EXPECTED})"
    return f"{folder}: not a sweep folder, no {SPEC_FILE} (expected {EXPECTED}{hint})"


def not_a_folder(folder: Path, expected: str) -> str:
    """"" when ``folder`` is a folder, else one line naming it, why not (``folder_problem``) and
    what was ``expected`` there: the one wording of a sweep folder's (``EXPECTED``) and a storage
    folder's (``STORAGE_EXPECTED``) check."""
    problem = folder_problem(folder)
    return f"{folder}: {problem} (expected {expected})" if problem else ""


def folder_problem(folder: str | Path) -> str:
    """What stands at ``folder`` where a folder was expected ("" for a folder, links followed): "no
    such folder", "a link to nothing", "a file, not a folder" or ``NOT_REGULAR`` (a FIFO, ...): the
    reason ``not_a_folder`` gives, for a caller that names the folder its own way (a dataset's
    ``data_path``), as ``sweep_format.files.not_a_file`` is for a file."""
    folder = Path(folder)
    if folder.is_dir():
        return ""
    if not folder.exists():
        return "a link to nothing" if folder.is_symlink() else "no such folder"
    return "a file, not a folder" if folder.is_file() else f"{NOT_REGULAR}, not a folder"


ASK_ACCESS = "ask its owner for access"  # what to do about a folder of someone else's this user may not read


def unlisted(folder: str | Path, exc: OSError, expected: str, todo: str = ASK_ACCESS) -> str:
    """The line of a folder whose listing ``exc`` refused (a sweep folder, a storage folder, an image
    folder's train/ or a class folder in it): named, why, what was ``expected`` there, and what to do."""
    return f"{folder}: cannot be listed ({exc.strerror}) (expected {expected}); {todo}"


def entry_problem(sweep_dir: str | Path, reads: tuple[str, ...] | None = None) -> str:
    """"" when ablate may write into the sweep folder, else one line naming the symbolic link that
    would take its writes or deletions elsewhere (the sweep folder itself may be a link), the file
    that stands where ablate keeps a folder (``MADE_FOLDERS``), or the folder where it keeps a file
    (``MADE_FILES``), or the entry that cannot be looked at (a folder of it this user may not enter).
    ``reads``: the folder is only read, these entries of it (``READ``: a source of ``ablate compare``;
    ``LISTED``: ``ablate ls``), so only they are checked: a link in its report/ takes no write anywhere."""
    try:
        if reads is not None:
            return linked(sweep_dir, reads, READ_FOLDERS, READS) or misplaced(sweep_dir, READ_FOLDERS, ())
        return linked(sweep_dir, WRITTEN, ENTRY_FOLDERS) or misplaced(sweep_dir)
    except OSError as exc:  # a stat that was refused: it reached the user as 'cannot write ...'
        code = errno.errorcode.get(exc.errno or 0, "?")
        return (f"{printable(str(exc.filename))}: cannot be read ({code}: {exc.strerror}), inside the sweep "
                f"folder {printable(str(sweep_dir))}, whose files ablate reads and writes: ask its owner for "
                "access")


def misplaced(sweep_dir: str | Path, folders: tuple[str, ...] = MADE_FOLDERS,
              files: tuple[str, ...] = MADE_FILES) -> str:
    """"" unless a file stands where the sweep folder keeps a folder, or a folder (FIFO, ...) where it
    keeps a file: one line naming it (``entry_problem``)."""
    for name in folders:
        entry = Path(sweep_dir) / name
        if entry.exists() and not entry.is_dir():
            what = ("a file", "the file") if entry.is_file() else (NOT_REGULAR, "it")  # a FIFO a tar kept
            return (f"{entry}: {what[0]}, where the sweep folder {sweep_dir} keeps its folder {name}/ "
                    f"(ablate writes there); move or rename {what[1]}")
    for name in files:
        entry = Path(sweep_dir) / name
        if entry.is_dir():
            return (f"{entry}: a folder, where the sweep folder {sweep_dir} keeps its file {name} (ablate "
                    "writes it); move or rename the folder")
        if entry.exists() and not entry.is_file():  # reading a FIFO waits for a writer, for ever
            return (f"{entry}: a FIFO, socket or device, where the sweep folder {sweep_dir} keeps its file "
                    f"{name} (ablate reads and writes it); move or rename it")
    return ""


def sweeps_in(storage: str | Path) -> list[Path]:
    """``storage`` itself if it is a sweep folder, else its sub-folders that are, or may be (``shut``),
    or were (``spec_lost``), by name."""
    storage = Path(storage)
    if is_sweep(storage):
        return [storage]
    return sorted(d for d in storage.iterdir() if d.is_dir() and (is_sweep(d) or shut(d) or spec_lost(d)))


def spec_lost(folder: str | Path) -> bool:
    """Whether ``folder`` holds ``trials/`` and, named spec.yaml, something that is no file (a folder, a
    FIFO a tar kept, a link to a device or to nothing): a sweep whose spec is damaged, which ``ablate
    ls`` lists with why (``not_a_sweep``) rather than leave out: it said "no sweeps here" beside it."""
    spec, trials = Path(folder) / SPEC_FILE, Path(folder) / TRIALS_DIR
    try:
        return (spec.exists() or spec.is_symlink()) and not spec.is_file() and trials.is_dir()
    except OSError:
        return False


def shut(folder: str | Path) -> bool:
    """Whether this user may not look into ``folder`` (another user's, made under umask 077), so cannot
    tell whether it is a sweep: ``ablate ls`` lists it as a folder it cannot read, not as a sweep (most
    are none: lost+found on a mounted disk), rather than leave a colleague's sweep out in silence."""
    try:
        (Path(folder) / SPEC_FILE).stat()
    except OSError as exc:
        return exc.errno in (errno.EACCES, errno.EPERM)
    return False


def trial_folder(sweep_dir: str | Path, name: object) -> Path | None:
    """The folder of a trial run that a record names (``trial_dir``: ``tune/<trial run>``, relative,
    so a sweep moved or copied elsewhere still finds it), or None for anything else. A record is a
    file anyone may have edited: a path outside ``tune/`` (absolute, ``..``, a symbolic link) is never
    read or deleted."""
    if not isinstance(name, str):
        return None
    parts = PurePosixPath(name).parts
    if len(parts) != 2 or parts[0] != TUNE_DIR or parts[1] in (".", ".."):
        return None
    folder = Path(sweep_dir) / TUNE_DIR / parts[1]
    return None if folder.is_symlink() or folder.parent.is_symlink() else folder


def tell_verdict(trial_folder: Path, epoch: int, stop: bool) -> None:
    """``trial_folder/ASHA_VERDICT`` = ``{"epoch": E, "stop": BOOL}``: whether Tune stopped the trial on
    the result of ``epoch``."""
    write_json(trial_folder / ASHA_VERDICT, {"epoch": epoch, "stop": stop})


def told_verdict(trial_folder: Path, epoch: int) -> bool | None:
    """Whether Tune stopped the trial on the result of ``epoch``, as ``tell_verdict`` wrote it; None while
    the folder holds no word on that epoch (none yet, an earlier epoch's, a file half read or foreign)."""
    try:
        said = loads((trial_folder / ASHA_VERDICT).read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(said, dict) and type(said.get("epoch")) is int and said["epoch"] == epoch \
            and isinstance(said.get("stop"), bool):
        return said["stop"]
    return None


def trial_folders(sweep_dir: str | Path, record: Mapping[str, Any]) -> list[Path]:
    """Every folder a record's trial ran in (``trial_dirs``, then ``trial_dir``), newest first: the
    one it runs or ended in, then the earlier runs' that ``ablate resume`` continued it from."""
    names = [*(record.get("trial_dirs") or []), record.get("trial_dir")]
    folders = [trial_folder(sweep_dir, n) for n in dict.fromkeys(n for n in names if isinstance(n, str))]
    return [f for f in reversed(folders) if f is not None]
