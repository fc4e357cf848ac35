"""``ablate train``: one DINO run with a progress bar, metrics.jsonl and a checkpoint every epoch.

``--workers N`` trains the same run as N data-parallel workers on a local Ray: the one
``TorchTrainer`` launcher of a multi-worker sweep trial (``trainables.ddp_trial.torch_trainer``),
rank 0 writing ``metrics.jsonl``, ``checkpoint.pt`` and its lines (``train.log``, which this
command prints as they come), every rank restoring ``checkpoint.pt`` on ``--resume``. Ray's own
lines go to ``ray.log`` and Ray's session logs, not to the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ablate import admission
from ablate.admission import MAX_RESOURCE, TRAIN_WORKER
from ablate.ending import SignalInterrupt, Signals, deferred, exit_code, signal_of
from ablate.errors import UserError, warn
from ablate.folder import check_writable, remove_made
from ablate.lock import hold_run_folder
from ablate.overrides import load_yaml, parse_sets
from ablate.sweep_spec.model import absolute_paths
from sweep_format import yamltext
from sweep_format.files import (
    NOT_REGULAR,
    file_on_path,
    linked,
    loads,
    special_file,
    too_long,
    user_arg,
    write_text,
)
from sweep_format.layout import CHECKPOINT_NAME, RAY_LOG, inside_sweep, sweep_around
from sweep_format.text import shell_word
from trainables.config import (
    ConfigError,
    DINOConfig,
    arch_problem,
    config_differences,
    describe_keys,
    make_config,
    short,
)
from trainables.inputs import check_inputs

if TYPE_CHECKING:
    from ablate.oom_kills import KillLedger
    from trainables.data_workers import WorkerDied
    from trainables.dino.trainer import DINOTrainer

CONFIG_NAME = "config.yaml"  # the run's resolved configuration, read back by --resume
METRICS_NAME = "metrics.jsonl"  # one JSON row per epoch (0: the untrained baseline)
RAY_TRAIN_FOLDER = "ray_train"  # Ray Train's own run records inside --out (--workers)
TRAIN_LOG = "train.log"  # --workers: rank 0's lines (epochs, resume, done), printed by this command
DONE = "done: "  # how a finished run's last line begins (rank 0's too, in train.log, which Echo prints)

EPILOG = ("examples:\n"
          "  ablate train --set teacher_temp=0.04 --set epochs=10 --out runs/t04\n"
          "  ablate train --set dataset=imagefolder --set data_path=DIR --out runs/mine   "
          "(your images: DIR/train/<class>/*.jpg, DIR/val/<class>/*.jpg)\n"
          "  ablate train --out runs/t04 --resume\n\n"
          "Trainer keys (name, default, meaning [paper value]):\n" + describe_keys())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train one DINO run", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one DINO run (student, EMA teacher, multi-crop) with weighted-kNN "
                    "evaluation at epoch 0, every eval_every epochs and at the end. Writes "
                    f"DIR/{CONFIG_NAME}, DIR/{METRICS_NAME} (one JSON object per epoch) and "
                    f"DIR/{CHECKPOINT_NAME} (every epoch).")
    p.add_argument("config", nargs="?", help="YAML file of trainer keys (or a sweep spec: its "
                   "'trainer' section is used)")
    p.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE", default=[],
                   help="override a trainer key, e.g. --set epochs=5 --set teacher_temp=0.04")
    p.add_argument("--out", required=True, type=user_arg, metavar="DIR", help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (logs only; so too when stderr is not a terminal)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="data-parallel workers on a local Ray (Ray Train: DDP over gloo on CPU, NCCL "
                        "with one GPU each); batch_size is per worker, lr scales with the global batch; "
                        f"rank 0's lines also in DIR/{TRAIN_LOG}, Ray's in DIR/{RAY_LOG}")
    p.set_defaults(func=main)


def resolve_config(config_file: str | None, sets: list[str], workers: int = 1,
                   base: dict[str, Any] | None = None) -> DINOConfig:
    """The run's config: the defaults (or ``base``, a resumed run's own config), then ``config_file``,
    then ``--set``."""
    values: dict[str, Any] = dict(base or {})
    where = ""
    if config_file:
        values = trainer_keys(load_yaml(config_file, "trainer keys, e.g. epochs: 4 (leave CONFIG out to "
                                        "train with the defaults)"), config_file)
        where = f"{config_file}: "
    pairs = parse_sets(sets)
    values.update(pairs)
    if pairs:
        where = f"{config_file} + --set: " if config_file else "--set "
    absolute_paths(values, {})  # --workers: Ray Train's workers run in other folders
    cfg = make_config(values, where)
    problem = arch_problem(cfg.arch)  # before the data is read, with the closest timm names
    if problem:
        raise ConfigError(f"{where}{problem}")
    try:
        check_inputs(cfg, workers)  # the crops, weights and data it names, before anything is written
    except ConfigError as exc:  # named by where the values came from, as the config's own refusals are
        raise ConfigError(f"{where}{exc}", exc.cross_key) from None
    return cfg


def trainer_keys(data: dict[str, Any], config_file: str) -> dict[str, Any]:
    """A CONFIG file's trainer keys: the file itself, or a sweep spec's ``trainer`` section (a spec is
    a file with any of a spec's own keys, ``trainer`` optional). A trainer key beside the spec's keys
    would be left out: refused, as ``ablate run`` refuses it."""
    from ablate.sweep_spec import SweepSpec

    if not set(data) & set(SweepSpec.spec_keys()):
        return data
    section = data.get("trainer")
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"{config_file}: trainer: got {short(section)}; expected a mapping of trainer keys "
                          f"to values, e.g. trainer: {{epochs: 4}}{yamltext.colon_hint(section)}")
    if stray := [key for key in data if key in DINOConfig.model_fields]:
        raise ConfigError(f"{config_file}: {', '.join(stray)}: a trainer key at the top of a sweep spec, "
                          f"which would be left out: put it under `trainer:` (or --set {stray[0]}=...)")
    return dict(section or {})


def main(args: argparse.Namespace) -> int:
    """Train; SIGTERM (``timeout``, Slurm, Kubernetes) and SIGHUP stop the run as Ctrl-C does: the last
    epoch's checkpoint kept, a line saying how to continue, exit 143 or 129 (``ablate.ending``)."""
    ending = Ending()
    try:
        with Signals() as signals:
            return run_train(args, signals, ending)
    except KeyboardInterrupt:
        if ending.done:  # the signal came as the command returned: the done line is its ending
            return 0
        raise


class Ending:
    """Whether this command has printed its run's done line (``say_done``, ``Echo``). A signal that
    comes after it, as Ray's workers stop or as the command returns, stopped nothing: the done line
    stays the one ending line, exit 0. It printed 'done: ...' and then 'interrupted by SIGTERM;
    continue with: ... --resume' (exit 143) when a SIGTERM came as a short --workers run ended."""

    def __init__(self) -> None:
        self.done = False


def run_train(args: argparse.Namespace, signals: Signals | None = None, ending: Ending | None = None) -> int:
    """The run, holding its folder (``hold``) from before anything in it is read until the command ends."""
    with contextlib.ExitStack() as held:
        return train_in(args, held, signals, ending)


def hold(out: Path, held: contextlib.ExitStack) -> None:
    """One ``ablate train`` per run folder (ablate.lock.hold_run_folder), for as long as ``held`` lasts."""
    if (fd := hold_run_folder(out)) is not None:
        held.callback(os.close, fd)


def train_in(args: argparse.Namespace, held: contextlib.ExitStack, signals: Signals | None = None,
             ending: Ending | None = None) -> int:
    from trainables import cuda  # torch and timm: not for --help
    from trainables.dino.trainer import DINOTrainer, resolve_device

    ending = ending or Ending()
    if not 1 <= args.workers <= MAX_RESOURCE:  # Ray's ValueError (a traceback) once it started
        raise UserError(f"--workers {args.workers}: expected a number of data-parallel workers from 1 to "
                        f"{MAX_RESOURCE}")
    if args.workers > 1:
        check_workers_fit(args.workers)  # before the data is read: the same for every dataset
    if not args.out.strip():  # Path("") is the folder ablate runs in: its files would land there unasked
        raise UserError(f"--out {args.out!r}: give a folder for the run, e.g. --out runs/one")
    out = Path(args.out)
    if problem := too_long(out):  # before a parent of it is made
        raise UserError(f"--out: {problem}; give a shorter folder name")
    ckpt = out / CHECKPOINT_NAME
    if file := file_on_path(out):
        raise UserError(f"--out {out}: {file} is a file, not a folder; give a folder for the run")
    written = (CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, TRAIN_LOG, RAY_LOG, RAY_TRAIN_FOLDER)
    if problem := linked(out, written):  # a folder written elsewhere must not send writes outside it
        raise UserError(f"--out {out}: {problem}")
    if (inside := sweep_around(out)) is not None:  # its files would mix with the sweep's
        raise UserError(f"--out {out}: {inside_sweep(inside)}; give a folder beside it, e.g. "
                        f"--out {inside.parent / 'one'}")
    if problem := foreign_files(out):  # before the data is read
        raise UserError(f"--out {out}: {problem}")
    if out.is_dir():  # before its files are read: a run training there now writes them
        hold(out, held)
    if special_file(ckpt):  # a FIFO's read waits for ever: neither "no checkpoint" nor a run's
        raise UserError(f"--out {out}: its {CHECKPOINT_NAME} is {NOT_REGULAR}, not a run's checkpoint; "
                        "choose another folder, or move it")
    if args.resume:
        if not ckpt.is_file():
            raise UserError(f"--resume: no {CHECKPOINT_NAME} in {out} (start the run without --resume)")
        cfg = make_config(load_yaml(out / CONFIG_NAME), f"{out / CONFIG_NAME}: ")
        if args.config or args.sets:  # --set alone changes the run's own config (device, num_workers)
            given = resolve_config(args.config, args.sets, args.workers,
                                   base=None if args.config else cfg.model_dump(mode="json"))
            cfg = same_config(cfg, given, out)
    else:
        cfg = resolve_config(args.config, args.sets, args.workers)
        if ckpt.exists():
            raise UserError(f"--out {out}: already holds a run; pass --resume to continue it, "
                            "or choose another folder")
        if (out / METRICS_NAME).exists():
            print(f"ablate train: {out} holds a run stopped before its first checkpoint (nothing to "
                  "resume): starting it over", file=sys.stderr)
    for note in cfg.unfinished_warmups(args.workers) + cfg.unread_keys():
        warn(note, command="train")
    if args.workers > 1:
        from ablate.session import check_for_ray

        check_for_ray()
    made = check_writable(out, "--out")  # a folder that cannot be made or written: before training
    if made is not None:  # the folder is new: no run could hold it before
        hold(out, held)
    if args.workers > 1:
        try:
            return train_with_workers(cfg, out, args.workers, args.resume, made, signals, ending)
        except KeyboardInterrupt as exc:
            remove_unstarted(made, out)
            return interrupted(out, args.workers, exc, ending=ending)
        except BaseException:  # no GPU per worker, Ray or a worker that did not start
            remove_unstarted(made, out)
            raise
    try:
        # a bar only on a terminal: piped or in CI it wrote its every redraw (tqdm: every 0.1 s) to the log
        progress = not args.no_progress and sys.stderr.isatty()
        trainer = DINOTrainer(cfg, progress=progress)  # validates data before writing
        if args.resume:
            trainer.load_checkpoint(ckpt)
    except (RuntimeError, MemoryError) as exc:  # its data, models or checkpoint do not fit: a fault, no bug
        remove_made(made, out)
        if not cuda.out_of_memory(exc):
            raise
        reason = cuda.start_oom_reason(exc, resolve_device(cfg.device), 0, sweep=False)
        print(f"ablate train: stopped: {reason}", file=sys.stderr)
        return 1
    except BaseException:
        remove_made(made, out)  # refused before anything was written: no empty folder left
        raise
    if args.resume:
        print(f"resuming {out} after epoch {trainer.epoch}/{cfg.epochs}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, cfg)
    try:
        return run_epochs(trainer, out, sys.stderr, ending)
    except KeyboardInterrupt as exc:
        return interrupted(out, args.workers, exc, trainer.checkpoint_epoch, cfg.epochs, ending)


def foreign_files(out: Path) -> str:
    """Why the run must not write into ``out``: it holds a file of a run's name that no run wrote (""
    when it holds none, or a run's, one stopped before its first checkpoint included, which starts
    over). A run writes its config.yaml before anything else, with every trainer key (``write_config``;
    an older release's, some of them, beside its metrics.jsonl): that file is what marks a folder as a
    run's. So a config.yaml of other keys is someone's own (``ablate train exp/config.yaml --out exp``
    replaced it with the resolved keys, its comments lost), and a metrics.jsonl or checkpoint.pt
    without a config.yaml beside it is no run's (the run rewrote the user's metrics.jsonl, dropping its
    rows and appending its own)."""

    config = out / CONFIG_NAME
    if not config.exists():
        found = next((name for name in (METRICS_NAME, CHECKPOINT_NAME) if (out / name).exists()), "")
        return (f"holds a {found} that no ablate train run wrote (no {CONFIG_NAME} beside it, which a run "
                "writes first), which the run would overwrite; choose another folder, or move the file"
                if found else "")
    try:
        keys = set(load_yaml(config))
    except UserError:
        keys = set()
    fields = set(DINOConfig.model_fields)
    if keys == fields or (keys and keys <= fields and (out / METRICS_NAME).exists()):
        return ""
    return (f"holds a {CONFIG_NAME} that is not an ablate train run's, which the run would replace with "
            "its own; choose another folder, or move the file")


def check_workers_fit(workers: int, gpu: float = 0.0) -> None:
    """The workers, one CPU (and ``gpu`` GPUs) each, fit the Ray they will run on
    (admission.admit_workers, ``ray_here``). Ray Train waited 60 s for workers that did not fit it,
    then failed."""
    admission.admit_workers(workers, ray_here(), gpu)


def ray_here() -> admission.Cluster:
    """The Ray the workers will run on: a Ray this process has already joined (a notebook's, the
    tests'), asked for its resources; else the local Ray this machine will be, known before it starts."""
    ray = sys.modules.get("ray")
    joined = ray is not None and ray.is_initialized()
    return admission.cluster() if joined else admission.local_cluster(None, None)


def remove_unstarted(made: Path | None, out: Path) -> None:
    """A run folder this command made (``made``: the outermost one ``check_writable`` created), with
    no result in it (no metrics row, no checkpoint): the files the start wrote (config.yaml, ray.log,
    train.log, Ray Train's folder) and the made folders removed, so that a run whose workers never
    started leaves nothing behind. A folder that holds a result or anything else is kept."""
    if not unstarted(made, out):
        return
    for name in (CONFIG_NAME, TRAIN_LOG, RAY_LOG):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / RAY_TRAIN_FOLDER, ignore_errors=True)  # a link in its place: rmtree refuses it
    remove_made(made, out)


def unstarted(made: Path | None, out: Path) -> bool:
    """Whether ``out`` is a run folder this command made (``made``) that holds no result yet, which
    ``remove_unstarted`` removes when the run stops."""

    return made is not None and not any((out / name).exists() for name in (CHECKPOINT_NAME, METRICS_NAME))


def interrupted(out: Path, workers: int, exc: KeyboardInterrupt, saved: int | None = None,
                epochs: int = 0, ending: Ending | None = None) -> int:
    """Ctrl-C, SIGTERM or SIGHUP: say where the run stopped (``saved``: its checkpoint's epoch, when
    known) and how it continues, or that it starts over; exit 130, 143 or 129. After the run's done
    line (``ending``) nothing was stopped: nothing more is said, exit 0."""

    if ending is not None and ending.done:
        return 0
    signum = signal_of(exc)
    by = f" by {signal.Signals(signum).name}" if signum != signal.SIGINT else ""
    if (out / CHECKPOINT_NAME).is_file():
        after = f" after epoch {saved}/{epochs} (its checkpoint kept)" if saved is not None else ""
        same = f" --workers {workers}" if workers > 1 else ""
        print(f"interrupted{by}{after}; continue with: ablate train --out {shell_word(out)} --resume{same}",
              file=sys.stderr)
    else:
        print(f"interrupted{by} before the first checkpoint (nothing to resume); the same command "
              "starts the run over", file=sys.stderr)
    return exit_code(exc)


def run_epochs(trainer: DINOTrainer, out: Path, log: IO[str] | None, ending: Ending | None = None) -> int:
    """Train the remaining epochs; with a ``log`` (its lines' stream) this process writes the metrics,
    the checkpoint and the lines; ``ending``: the command's, when the lines are its own (``say_done``).

    With data-parallel workers every rank trains and only rank 0 writes.
    """
    from ablate import oom_kills
    from trainables import cuda
    from trainables.data_workers import BadImageFile, dead_worker
    from trainables.dino.trainer import NonFiniteLossError
    from trainables.distributed import is_distributed

    cfg, ckpt, metrics_file = trainer.cfg, out / CHECKPOINT_NAME, out / METRICS_NAME
    kills = oom_kills.KillLedger({LOCAL}, oom_kills.read_count)  # a worker's death may be the kernel's kill
    kills.start(RUN)
    writes = log is not None
    if writes:  # a run that starts over (no checkpoint) rewrites its epoch 0 too: no row is kept
        keep_metrics(metrics_file, trainer.epoch if trainer.baseline_done else -1)
    if writes and cfg.device == "auto" and trainer.device.type == "cpu" and (why := cuda.unseen_gpu()):
        warn(f"training on CPU: {why}", command="train")
    baseline = None
    try:
        for metrics in trainer.run():
            baseline = metrics["knn_top1"] if metrics["epoch"] == 0 else baseline
            if not writes:
                continue
            # the row before the checkpoint: a kill mid-row leaves the epoch to train again on --resume
            # (keep_metrics drops the partial row); after it, the checkpoint held an epoch with no row
            with metrics_file.open("a") as f:
                f.write(json.dumps(metrics) + "\n")
            if metrics["epoch"] > 0:
                trainer.save_checkpoint(ckpt)
            print(epoch_line(metrics, cfg.epochs, baseline), file=log, flush=True)
    except NonFiniteLossError as exc:
        if writes:
            print(f"ablate train: stopped: {exc}", file=log)
        return 1
    except BadImageFile as exc:  # an image file changed as the run read it
        if not writes:
            raise
        print(f"ablate train: stopped: {exc}; {kept(ckpt)}", file=log)
        return 1
    except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError too; a data-loading worker's death
        death = dead_worker(exc) if isinstance(exc, RuntimeError) else None
        if death is None and not cuda.out_of_memory(exc):
            raise
        reason = death_reason(death, kills) if death else \
            cuda.oom_reason(exc, trainer.device, 0, sweep=False)
        stopped = f"ablate train: stopped: {reason}; {kept(ckpt)}"
        if is_distributed():  # this rank alone, maybe: its peers may wait for it in a collective
            from trainables.ddp_trial import RankEnded
            raise RankEnded({"stop_reason": stopped}) from exc  # Ray Train ends them all
        if writes:
            print(stopped, file=log)
        return 1
    if log is not None:
        say_done(log, f"{DONE}{metrics_file}, {ckpt}", ending)
    return 0


RUN, LOCAL = "run", "127.0.0.1"  # the one key of run_epochs' KillLedger, and this machine


def death_reason(death: WorkerDied, kills: KillLedger) -> str:
    """What killed a data-loading worker: the kernel's OOM killer when it killed a process of this run's
    memory cgroup as it ran (``kills``: its count since the run started) or its log names the pid, in a
    sweep's words for a trial's worker (``ablate.records.kernel_kill``); else ``death``'s own (a SIGKILL:
    "a kill -9, or the kernel's OOM killer")."""
    from ablate.records import kernel_kill
    from trainables.data_workers import worker_death

    found = worker_death(str(death))
    if found is None or not found.may_be_oom():
        return str(death)
    killed = kernel_kill({"pid": str(found.pid)}, kills.claim(RUN, LOCAL), found.said, "data-loading worker",
                         run="run")
    return killed.reason if killed else str(death)


def kept(ckpt: Path) -> str:
    """What a stopped run keeps: ``ckpt`` (its last finished epoch), or nothing when it stopped before
    its first checkpoint (in epoch 1: it named a checkpoint.pt that was never written)."""
    if ckpt.is_file():
        return f"{ckpt} holds the last finished epoch"
    return "it stopped before its first checkpoint (nothing to resume: the same command starts it over)"


def say_done(log: IO[str], line: str, ending: Ending | None) -> None:
    """Print the run's done line; with the command's ``ending`` (one process), note it as printed in the
    same breath: a signal meanwhile is delivered after both (``deferred``), so it never finds the line
    printed and not noted (it said 'interrupted' after it). Rank 0 of --workers writes it to train.log,
    and the driver's ``Echo`` notes it."""
    if ending is None:
        print(line, file=log)
        return
    with deferred():
        print(line, file=log, flush=True)
        ending.done = True


def same_config(saved: DINOConfig, given: DINOConfig, out: Path) -> DINOConfig:
    """``given`` when it is the run's configuration (device and num_workers may change)."""
    changed = config_differences(saved.model_dump(mode="json"), given.model_dump(mode="json"))
    if changed:
        raise UserError(f"--resume: the run in {out} was started with another configuration "
                        f"(its config.yaml), and a resumed run keeps it; start a new run with another "
                        f"--out. Differs: {'; '.join(changed)}")
    return given


def keep_metrics(path: Path, last_epoch: int) -> None:
    """Drop metric rows newer than ``last_epoch``: on resume those a crashed run wrote after its
    checkpoint; on a start over (``last_epoch`` -1) all of them."""
    if not path.exists():
        return
    kept = [r for r in path.read_text().splitlines() if (e := _epoch(r)) is not None and e <= last_epoch]
    write_text(path, "".join(r + "\n" for r in kept))  # a kill mid-write keeps the rows


def write_config(out: Path, cfg: DINOConfig) -> None:
    """The run's config.yaml, replaced atomically: ``--resume`` reads it back, and a kill while it is
    rewritten must not leave the run without it."""
    write_text(out / CONFIG_NAME, yamltext.dump(cfg.model_dump(mode="json"), sort_keys=False))


def _epoch(row: str) -> int | None:
    """The epoch of a metrics row; None for a blank or half-written line (a crash mid-write)."""
    try:
        return int(loads(row)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


def epoch_line(m: dict[str, Any], epochs: int, baseline: float | None) -> str:
    if m["epoch"] == 0:
        return f"epoch 0/{epochs}  kNN top-1 {m['knn_top1']:.2f}% (untrained baseline)"
    parts = [f"epoch {m['epoch']}/{epochs}", f"loss {m['loss']:.4f}",
             f"H(teacher) {m['teacher_entropy']:.3f}/ln K {m['ln_out_dim']:.3f}",
             f"KL {m['kl_teacher_student']:.3f}"]
    if "knn_top1" in m:
        delta = f" ({m['knn_top1'] - baseline:+.2f} vs epoch 0)" if baseline is not None else ""
        parts.append(f"kNN top-1 {m['knn_top1']:.2f}%{delta}")
    parts.append(f"{m['images_per_s']:.0f} img/s")
    return "  ".join(parts)


# --- --workers N: data-parallel on a local Ray --------------------------------------------------
def worker_devices(cfg: DINOConfig, workers: int) -> bool:
    """Whether each worker gets a GPU of the Ray it runs on (``ray_here``: this machine's, or a joined
    cluster's, node by node): ``device: cuda`` needs one per worker (refused before anything starts),
    auto takes them when there is one per worker and trains on CPUs otherwise."""
    if cfg.device == "cpu":
        return False
    if cfg.device.startswith("cuda"):
        check_workers_fit(workers, gpu=1.0)
        return True
    gpus = admission.worker_slots(admission.TrialResources(TRAIN_WORKER, 1.0, workers), ray_here())
    if 0 < gpus < workers:
        print(f"ablate train: GPUs for {gpus} of {workers} workers: training on CPU (gloo)", file=sys.stderr)
    return gpus >= workers


def train_with_workers(cfg: DINOConfig, out: Path, workers: int, resume: bool,
                       made: Path | None = None, signals: Signals | None = None,
                       ending: Ending | None = None) -> int:
    """Run the DINO training of ``cfg`` on ``workers`` local Ray Train workers (1 CPU each, and one
    GPU each when there are enough); the exit code. ``made``: the folder ``check_writable`` made for
    ``out`` (None: none), which a failed start removes. ``signals``: SIGTERM and SIGHUP handed to Ray
    Train's Ctrl-C handler, which stops the workers; a ``SignalInterrupt`` then says which came.
    ``ending``: notes rank 0's done line as ``Echo`` prints it."""
    import logging
    import os

    from ablate.session import (
        bind_local_ray_to_loopback,
        init_ray,
        prepare,
        ray_stopped,
        session_logs,
        stop_ray,
    )

    prepare()
    bind_local_ray_to_loopback()  # before Ray is imported: the local Ray listens on 127.0.0.1 only
    from ablate.ray_logs import RayLogFile

    with RayLogFile() as logs:
        import ray
        from ray import train

        from trainables.ddp_trial import input_error, one_line, rank_ended, torch_trainer, whole_error

        logs.capture()
        use_gpu = worker_devices(cfg, workers)  # a GPU each, when they fit (main checked the CPUs)
        out = out.resolve()
        out.mkdir(parents=True, exist_ok=True)
        write_config(out, cfg)
        ray_stopped()  # a Ray this process stopped before is gone
        started = not ray.is_initialized()
        if started:  # the workers' own output (Ray Train's lines among it) stays in Ray's logs
            init_ray(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False)  # as many as check_workers_fit counted
            if signals:
                signals.install()  # again: Ray's driver puts its own SIGTERM handler in (it exits)
        logs.attach(out)
        loop_config = {"trainer": cfg.model_dump(mode="json"), "out": str(out), "resume": resume}
        trainer = torch_trainer(worker_loop, loop_config, workers=workers, cpu=TRAIN_WORKER,
                                gpu=1.0 if use_gpu else 0.0, name=RAY_TRAIN_FOLDER, storage_path=str(out))
        each, where = "one GPU" if use_gpu else "one CPU", "a local Ray" if started else "the running Ray"
        print(f"ablate train: {workers} data-parallel workers ({each} each) on {where}; Ray's lines in "
              f"{out / RAY_LOG}", file=sys.stderr, flush=True)
        echo = Echo(out / TRAIN_LOG, ending or Ending())
        sigint = signal.getsignal(signal.SIGINT)  # fit() puts Ray Train's own in, and leaves it there
        try:
            result = trainer.fit()
        except train.TrainingFailedError as exc:  # a worker's ConfigError (its inputs, its network) whole
            failed = f"ablate train --workers {workers}: a worker failed"
            if refused := input_error(exc):
                raise UserError(f"{failed}: {refused}") from None
            if ended := rank_ended(exc):  # out of memory on a rank: stopped as one process stops
                print(ended.row["stop_reason"], file=sys.stderr)
                return 1
            logging.getLogger("ray").error("%s:\n%s", failed, whole_error(exc))  # each worker's whole text
            whole = session_logs() if unstarted(made, out) else str(out / RAY_LOG)  # unstarted: no ray.log
            raise UserError(f"{failed}: {one_line(exc, whole)}") from None
        except SystemExit:  # Ray Train's Ctrl-C handler stopped the workers, then exits the process
            signum = signals.received if signals else None
            raise (SignalInterrupt(signum) if signum else KeyboardInterrupt()) from None
        finally:
            signal.signal(signal.SIGINT, sigint)  # a Ctrl-C after the run is the command's again
            echo.stop()
            stop_ray(started)
    code = (result.metrics or {}).get("exit_code")  # the workers' own end (the run done, or diverged)
    if code is None and signals and signals.received:  # Ray Train stopped them before it
        raise SignalInterrupt(signals.received)
    return int(code or 0)


class Echo(threading.Thread):
    """Prints to stderr, as they come, the lines rank 0 appends to ``file`` (the local Ray's workers
    write on this machine's disk), noting its done line in ``ending``; started at once, ``stop()``
    prints the last ones (the driver decides how the run ended only after it)."""

    def __init__(self, file: Path, ending: Ending) -> None:
        super().__init__(name="ablate-train-echo", daemon=True)
        self.file, self.done, self.ending = file, threading.Event(), ending
        self.offset = file.stat().st_size if file.exists() else 0  # a resumed run's earlier lines
        self.start()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.echo()
        self.echo()

    def echo(self) -> None:
        try:
            with self.file.open("rb") as f:
                f.seek(self.offset)
                new = f.read()
        except FileNotFoundError:
            return
        whole = new.rfind(b"\n") + 1  # complete lines only
        if whole:
            sys.stderr.write(new[:whole].decode(errors="replace"))
            sys.stderr.flush()
            self.offset += whole
            self.ending.done |= any(line.startswith(DONE.encode()) for line in new[:whole].splitlines())

    def stop(self) -> None:
        self.done.set()
        self.join()


def worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker of ``ablate train``: rank 0 writes, every rank trains and restores."""
    from ray import train

    from trainables import cuda
    from trainables.ddp_trial import RankEnded, worker_config
    from trainables.dino.trainer import DINOTrainer, resolve_device
    from trainables.trial import use_assigned_cpus

    use_assigned_cpus()
    cfg = worker_config(DINOConfig(**config["trainer"]))
    out = Path(config["out"])
    try:
        trainer = DINOTrainer(cfg)
        if config["resume"]:
            trainer.load_checkpoint(out / CHECKPOINT_NAME)
    except (RuntimeError, MemoryError) as exc:  # this rank's data, models or checkpoint do not fit
        if not cuda.out_of_memory(exc):
            raise
        reason = cuda.start_oom_reason(exc, resolve_device(cfg.device), 0, sweep=False)
        raise RankEnded({"stop_reason": f"ablate train: stopped: {reason}"}) from exc  # ends every rank
    with contextlib.ExitStack() as stack:
        # rank 0's lines go to the file the driver prints (a file, not stderr: Ray Train's workers
        # print stderr's lines twice, once of them through its logger)
        log = stack.enter_context((out / TRAIN_LOG).open("a", buffering=1, encoding="utf-8")) \
            if trainer.is_main_process else None
        if config["resume"] and log:
                print(f"resuming {out} after epoch {trainer.epoch}/{cfg.epochs} "
                      f"({trainer.world_size} workers)", file=log)
        code = run_epochs(trainer, out, log)
    train.report({"exit_code": code, "epoch": trainer.epoch})
