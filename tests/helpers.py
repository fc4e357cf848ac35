"""Constants and small helpers shared by the tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Loopback addresses of the shared test cluster: nothing leaves the machine. Each pytest-xdist worker
# (gw0, gw1, ...) has its own cluster on its own pair (127.0.0.2/3, 127.0.0.12/13, ...).
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
HEAD_IP, WORKER_IP = f"127.0.0.{2 + 10 * _WORKER}", f"127.0.0.{3 + 10 * _WORKER}"

TINY_TRAINER = {"dataset": "synthetic", "arch": "test_vit", "patch_size": 4, "global_crops_size": 16,
                "local_crops_size": 8, "local_crops_number": 2, "batch_size": 32, "out_dim": 32,
                "head_hidden_dim": 32, "head_bottleneck_dim": 16, "epochs": 2, "device": "cpu",
                "num_workers": 0}


def write_image_folder(root: Path, n: int = 40, size: int = 16) -> Path:
    """train/ and val/, two classes (a, b) each, ``n`` random ``size`` px PNGs per class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def built_once(tmp_path_factory: Any, name: str, build: Callable[[Path], None]) -> Path:
    """A folder that ``build(folder)`` fills, built once per pytest run: under pytest-xdist the first
    worker to ask builds it (on its own cluster) in the run's shared temporary folder, the others wait,
    and every worker gets its own copy of it."""
    import fcntl
    import shutil

    root = tmp_path_factory.mktemp(name)
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: nothing to share
        build(root / "built")
        return root / "built"
    shared = tmp_path_factory.getbasetemp().parent / name  # this run's, beside popen-gw0, ...
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait while the first one builds it
        if not (shared / "done").is_file():
            shutil.rmtree(shared / "built", ignore_errors=True)  # a worker that failed left it half-made
            build(shared / "built")
            (shared / "done").touch()
        shutil.copytree(shared / "built", root / "built", symlinks=True)
    return root / "built"


def write_spec(folder: Path, text: str) -> Path:
    path = folder / "spec.yaml"
    path.write_text(text)
    return path


OPTUNA_SPEC = f"""\
name: tiny
description: tiny real sweep shared by the tests
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: float, low: 0.01, high: 0.1, log: true}}
  student_temp: {{type: float, low: 0.05, high: 0.2}}
  warmup_teacher_temp_epochs: {{type: choice, values: [0, 1]}}
search: {{algorithm: optuna, sampler: random, num_samples: 2, seed: 0}}
metric: knn_top1
mode: max
repeats: 2
resources: {{cpu: 1, gpu: 0}}
"""


class _WritesAFile:
    """Unpickling this calls ``open(marker, "w")``: proof that loading a file ran its code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_crafted_pickle(path: Path, marker: Path, **entries) -> Path:
    """A real ``torch.save`` file whose 'teacher' entry writes ``marker`` when unpickled."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**entries, "teacher": _WritesAFile(marker), "student": {}}, path)
    return path


# A PostScript program as an EPS file: Pillow identifies it by its content (whatever the file's name)
# and renders it by running Ghostscript on it.
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n(/etc/hostname) (r) file pop\nshowpage\n"


def ghostscript_on_path(folder: Path, monkeypatch) -> Path:
    """A stand-in ``gs`` first on PATH that writes the returned marker when it is handed a file to
    render (``gs --version``, Pillow's probe, just answers): proof that a file reached Ghostscript."""
    from PIL import EpsImagePlugin

    marker = folder / "ghostscript-ran"
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    gs = folder / "bin" / "gs"
    gs.write_text(f'#!/bin/sh\n[ "$1" = --version ] && {{ echo 10.0; exit 0; }}\necho "$@" > "{marker}"\n'
                  "exit 1\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # Pillow looks for gs again, on this PATH
    return marker


# Fault injection into trial processes: a local Ray started by a driver whose PYTHONPATH begins with
# this folder runs the sitecustomize below in every Python process it starts (each trial is one).
TRIAL_FAULT = '''\
"""Test fault: a trial's checkpoint of epoch {epoch} {what} (epoch 0 writes none)."""
import errno, os, time

_replace, _written = os.replace, []


def replace(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)) == "checkpoint.pt":
        _written.append(dst)
        if len(_written) == {epoch} and {enospc}:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        if len(_written) == {epoch}:
            time.sleep(600)
    return _replace(src, dst, *args, **kwargs)


os.replace = replace
'''


def trial_fault_env(folder: Path, epoch: int, fault: str) -> dict[str, str]:
    """The environment of an `ablate run` (local Ray) whose trials, at ``epoch``'s checkpoint, hang
    (``fault="hang"``: an epoch that never ends) or find the disk full (``fault="enospc"``)."""
    what = "fails with ENOSPC" if fault == "enospc" else "hangs"
    return fault_env(folder, TRIAL_FAULT.format(epoch=epoch, what=what, enospc=fault == "enospc"))


# Trial outcomes injected at the trainer's boundary (DINOTrainer.train_one_epoch), chosen by each trial's
# student_temp: a local Ray started by a driver whose PYTHONPATH begins with this folder runs the
# sitecustomize below in every Python process it starts. Out of memory, divergence and errors are
# raised where a real one would arrive; the collapse is the trainer's own entropy and KL at ln K and 0.
OUTCOMES = {0.1: "completed", 0.11: "flagged", 0.12: "collapsed", 0.13: "diverged", 0.14: "oom",
            0.15: "an exception", 0.16: "a CUDA error", 0.17: "unusable inputs",
            0.18: "oom in epoch 2; unusable inputs once fault/inputs_gone exists",
            0.19: "an exception in epoch 3, after two trained epochs",
            0.2: "its process killed with SIGKILL in epoch 2, once (a lost worker)",
            0.21: "its process killed with SIGKILL right after Ray copied its checkpoint of epoch 1 into "
                  "storage, once (the result lost on its way to the driver)"}
# The end of a fault sitecustomize: ``patch(module)`` applied to trainables.dino.trainer as it is imported.
PATCH_ON_IMPORT = '''

class Finder:
    def find_spec(self, name, path=None, target=None):
        if name != "trainables.dino.trainer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, Finder())
'''
OUTCOME_FAULT = '''\
"""Test fault: each trial ends as its student_temp says (tests/helpers.py OUTCOMES)."""
import importlib.util, math, os, signal, sys

GONE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inputs_gone")
KILLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "killed_once")
COPIED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "killed_after_copy")
TRAINING = []  # the fault of the trial this process trains


def patch(module):
    import torch
    from trainables.config import ConfigError

    real, build = module.DINOTrainer.train_one_epoch, module.DINOTrainer.__init__
    from ray.train._internal.storage import StorageContext

    persist = StorageContext.persist_current_checkpoint

    def persist_current_checkpoint(self, checkpoint):
        persisted = persist(self, checkpoint)
        if TRAINING == [0.21] and self.current_checkpoint_index == 0 and not os.path.exists(COPIED):
            open(COPIED, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)  # in storage, its result not yet sent to the driver
        return persisted

    StorageContext.persist_current_checkpoint = persist_current_checkpoint

    def __init__(self, cfg, *args, **kwargs):
        fault = round(cfg.student_temp, 4)
        if fault == 0.17 or (fault == 0.18 and os.path.exists(GONE)):
            raise ConfigError(f"/data/train/a/{fault}.png: not a readable image (a test fault at the start)")
        build(self, cfg, *args, **kwargs)

    def train_one_epoch(self, epoch):
        fault = round(self.cfg.student_temp, 4)
        TRAINING[:] = [fault]
        if fault == 0.18 and epoch == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 30.00 GiB")
        if fault == 0.14:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if fault == 0.15:
            raise ValueError("boom: an exception at the trainer's boundary")
        if fault == 0.16:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        if fault == 0.19 and epoch == 2:
            raise ValueError("boom in epoch 3")
        if fault == 0.2 and epoch == 1 and not os.path.exists(KILLED):
            open(KILLED, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer or a `kill -9` would
        metrics = real(self, epoch)
        if fault == 0.13 and epoch == 1:
            raise module.NonFiniteLossError(f"loss is nan at epoch {epoch + 1}: training diverged")
        if fault == 0.12 or (fault == 0.11 and epoch == self.cfg.epochs - 1):
            metrics.update(teacher_entropy=math.log(self.cfg.out_dim), kl_teacher_student=0.0)
        return metrics

    module.DINOTrainer.train_one_epoch, module.DINOTrainer.__init__ = train_one_epoch, __init__

''' + PATCH_ON_IMPORT


def outcome_fault_env(folder: Path) -> dict[str, str]:
    """The environment of an `ablate run` (local Ray) whose trials end as OUTCOMES says."""
    return fault_env(folder, OUTCOME_FAULT)


# Out of memory on rank 1 alone of a data-parallel trial, chosen by its student_temp, where a real one
# arrives: NumPy allocating its in-memory dataset as the trainer is built, or torch's CPU allocator in a
# step of the second epoch (rank 0 is then in DDP's all-reduce of that step's gradients).
RANK_OOM = {0.1: "Unable to allocate 3.00 GiB for an array with shape (50000, 3, 96, 96) and data type "
                 "float32",
            0.11: "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 274877906944 bytes. Error code 12 (Cannot allocate memory)"}
RANK_OOM_FAULT = f'''\
"""Test fault: rank 1 of a data-parallel trial runs out of memory (tests/helpers.py RANK_OOM)."""
import importlib.util, sys

RANK_OOM = {RANK_OOM!r}


def rank_1_fault(cfg):
    import torch.distributed as dist

    rank_1 = dist.is_available() and dist.is_initialized() and dist.get_rank() == 1
    return round(cfg.student_temp, 4) if rank_1 else None


def patch(module):
    build_data, step = module.DINOTrainer._build_data, module.DINOTrainer.train_step

    def _build_data(self):
        if rank_1_fault(self.cfg) == 0.1:
            raise MemoryError(RANK_OOM[0.1])
        build_data(self)

    def train_step(self, micro_batches, it, epoch):
        if rank_1_fault(self.cfg) == 0.11 and epoch == 1:
            raise RuntimeError(RANK_OOM[0.11])
        return step(self, micro_batches, it, epoch)

    module.DINOTrainer._build_data, module.DINOTrainer.train_step = _build_data, train_step
''' + PATCH_ON_IMPORT


def fault_env(folder: Path, sitecustomize: str) -> dict[str, str]:
    """The environment of an `ablate run` (local Ray) whose processes run ``sitecustomize``."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(sitecustomize)
    return {**os.environ, "RAY_AUTH_MODE": "token",
            "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def good_record(tid: str) -> dict:
    """A completed trial's record at point 0 (teacher_temp 0.02), as ablate writes it."""
    from sweep_format.records import FORMAT, VERSION

    return {"format": FORMAT, "version": VERSION, "trial_id": tid, "status": "completed", "point": 0,
            "params": {"teacher_temp": 0.02}, "seed": 0, "repeat": 0, "epochs_planned": 1, "created_at": 1.0,
            "epochs": [{"epoch": 0, "knn_top1": 30.0},
                       {"epoch": 1, "knn_top1": 40.0, "loss": 1.0, "collapsed": False}]}


def crafted_sweep(tmp_path: Path, records: list[dict]) -> Path:
    """A sweep folder as ablate writes it (a 2-point grid over teacher_temp) holding ``records``."""
    from ablate.folder import spec_text
    from ablate.sweep_spec import load_spec
    from sweep_format.files import write_json

    spec = load_spec(write_spec(tmp_path, f"""
name: crafted
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: choice, values: [0.02, 0.04]}}
search: {{algorithm: grid}}
"""))
    sweep = tmp_path / "runs" / "crafted"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "spec.yaml").write_text(spec_text(spec))
    for rec in records:
        write_json(sweep / "trials" / f"{rec['trial_id']}.json", rec)
    return sweep



def lock_folder(monkeypatch, folder: Path) -> None:
    """``folder`` as another user's folder made under umask 077 looks to this one (chmod 000 does not
    stop root, who runs some CI): it can be stat'ed, but not listed, nor can anything inside it."""
    import errno
    import os

    stat, listdir, scandir = os.stat, os.listdir, os.scandir

    def refused(path) -> OSError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def locked_stat(path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and Path(os.fsdecode(path)).parent == folder:
            raise refused(path)
        return stat(path, *args, **kwargs)

    def locked_list(real):
        def listing(path=".", *args, **kwargs):
            if isinstance(path, (str, os.PathLike)) and Path(os.fsdecode(path)) == folder:
                raise refused(path)
            return real(path, *args, **kwargs)
        return listing

    monkeypatch.setattr(os, "stat", locked_stat)
    monkeypatch.setattr(os, "listdir", locked_list(listdir))
    monkeypatch.setattr(os, "scandir", locked_list(scandir))
