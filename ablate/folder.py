"""A sweep folder's own files as ablate run writes them: the write probe, ``spec.yaml``, the
reference kNN; and ``spec.yaml`` read back for ``ablate resume`` (layout: sweep_format.layout).

    made = check_writable(Path("runs"), "--storage")  # before Ray starts; remove_made(made, ...) undoes it
    create(spec, Path("runs/temps"))                    # the folder, spec.yaml, trials/
    spec = load_sweep_spec(Path("runs/temps"))          # one line naming the file if it is damaged
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

from ablate.errors import UserError, warn
from ablate.sweep_spec import SweepSpec, load_spec
from sweep_format.files import file_on_path, remove_made, to_make, too_long, write_text
from sweep_format.layout import (
    REFERENCE_FILE,
    REFERENCE_KNN,
    SPEC_FILE,
    TRIALS_DIR,
    entry_problem,
    is_sweep,
    not_a_sweep,
)
from sweep_format.records import records_problem
from sweep_format.text import shell_word


def check_writable(folder: Path, option: str) -> Path | None:
    """A write probe before Ray starts: a read-only or full disk stops the sweep before any trial.

    Returns the outermost folder the probe had to create (None: ``folder`` existed), for
    ``remove_made`` to take away again if the command stops before it writes anything."""
    if problem := too_long(folder):
        raise UserError(f"{option} {str(folder)[:60]}…: {problem}; give a shorter one")
    if file := file_on_path(folder):  # mkdir's EEXIST would read as a disk problem ("free space")
        raise UserError(f"{option} {folder}: {file} is a file, not a folder; give a folder")
    made = to_make(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ablate-write-probe-") as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        remove_made(made, folder)
        code = errno.errorcode.get(exc.errno or 0, "error")
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)  # else a folder this user cannot write (make)
        advice = "Free space, or give another folder" if full else "Give a writable folder"
        raise UserError(f"{option} {folder}: cannot write there ({code}: {exc.strerror}); nothing was "
                        f"started. {advice}") from None
    return made


def refuse_existing(sweep_dir: Path, name: str) -> None:
    if is_sweep(sweep_dir):
        raise UserError(f"{sweep_dir}: a sweep named {name!r} already exists; continue it with "
                        f"`ablate resume {shell_word(sweep_dir)}`, or choose another name (--set name=...)")
    if sweep_dir.exists() or sweep_dir.is_symlink():  # not a sweep: resume would refuse it too
        has_spec = (sweep_dir / SPEC_FILE).is_file()
        lacks = f"it holds {SPEC_FILE} but no {TRIALS_DIR}/" if has_spec else f"no {SPEC_FILE}"
        raise UserError(f"{sweep_dir}: exists and is not a sweep folder ({lacks}); move it away, or "
                        "choose another name for the sweep (--set name=...)")


def create(spec: SweepSpec, sweep_dir: Path) -> None:
    """The new sweep folder with ``spec.yaml`` and ``trials/``; refused if another driver made it first.
    The text is made first: a spec that cannot be resolved leaves no folder that blocks its name."""
    text = spec_text(spec)
    try:
        sweep_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UserError(f"{sweep_dir}: another `ablate run` created this sweep folder just now; continue "
                        f"it with `ablate resume {shell_word(sweep_dir)}` once it stops, or choose another "
                        "name (--set name=...)") from None
    (sweep_dir / TRIALS_DIR).mkdir()
    write_text(sweep_dir / SPEC_FILE, text)


def spec_text(spec: SweepSpec) -> str:
    """spec.yaml: the resolved spec plus what the reports need and must not re-derive: the
    baseline point (grid and ablation: the trainer's own values of the searched keys)."""
    from sweep_format import yamltext
    from sweep_format.layout import RESOLVED, RESOLVED_TRAINER

    data = yamltext.load(spec.dump())
    # derived (the loader ignores it): the baseline point, and the trainer settings every trial runs with
    data[RESOLVED] = {"baseline": spec.baseline_point(),
                      RESOLVED_TRAINER: spec.trainer_config().model_dump(mode="json")}
    return yamltext.dump(data, sort_keys=False, default_flow_style=None)


def load_sweep_spec(sweep_dir: Path) -> SweepSpec:
    """The spec a sweep ran with; one line naming the folder or ``spec.yaml`` when it is not usable."""
    if not is_sweep(sweep_dir):
        raise UserError(not_a_sweep(sweep_dir))
    if problem := entry_problem(sweep_dir) or records_problem(sweep_dir):
        raise UserError(problem)
    file = sweep_dir / SPEC_FILE
    try:
        spec = load_spec(file, force=True)  # accepted (with --force if it needed it) when the sweep started
    except UserError as exc:
        raise UserError(f"{exc} ({file} is the spec this sweep ran with: restore it from a copy of the "
                        "sweep folder, or from the spec file and --set options it was started with)"
                        ) from None
    from sweep_format.layout import RESOLVED_TRAINER
    from trainables.config import config_differences

    ran = spec._resolved.get(RESOLVED_TRAINER)
    now = spec.trainer_config().model_dump(mode="json")
    changed = config_differences(ran, now) if isinstance(ran, dict) else []
    if changed:  # the records and checkpoints are of the settings it ran with
        raise UserError(f"{file}: trainer: edited since the sweep ran ({'; '.join(changed)}); a sweep keeps "
                        "the trainer settings its trials ran with: undo the edit, or start a new sweep with "
                        f"them (ablate run {file} --set name=NEW)")
    return spec


def planned_trials(sweep_dir: Path) -> int | None:
    """The trials ``sweep_dir``'s spec plans (a trial that never started has no record: without this,
    an interrupted sweep would look finished); None where its spec cannot be read."""
    try:
        return load_sweep_spec(sweep_dir).num_trials
    except UserError:
        return None


def record_reference_knn(spec: SweepSpec, sweep_dir: Path) -> None:
    """The raw-pixel and untrained kNN of the sweep's dataset, written to ``reference_knn.json``
    before the trials start, unless the folder has them (``ablate resume`` of a sweep stopped before it
    was written, or whose file was damaged since, computes them then). A failure only warns: the sweep
    runs without the reference lines.

    It runs on the driver's main thread, before Tune starts: run in a thread beside Tune's start
    (tried), the two contended for the GIL and took 2.5x (Tune) and 4x (the kNN) as long."""
    from reports.sweepdir import read_reference

    if all(key in read_reference(sweep_dir) for key in REFERENCE_KNN):  # damaged or edited: computed again
        return
    cfg = spec.trainer_config()
    try:
        import torch

        from trainables.baselines import reference_knn

        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            cfg = cfg.model_copy(update={"device": "cpu"})  # the driver may have no GPU
        values = reference_knn(cfg)
    except Exception as exc:
        warn(f"reference kNN (raw pixels, untrained network) not computed: {exc}")
        return
    write_text(sweep_dir / REFERENCE_FILE, json.dumps(
        {**values, "dataset": cfg.dataset, "arch": cfg.arch, "seed": cfg.seed}, indent=1))
