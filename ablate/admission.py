"""What one trial reserves, and whether the Ray cluster can ever hold it: refused before anything runs.

A one-process trial reserves ``resources.cpu`` CPUs and a ``resources.gpu`` share on one node. A
data-parallel trial (``resources.workers`` > 1) is a driver on the head node that reserves no CPU
(it only waits on Ray Train's controller: ``DRIVER``, a little memory) plus ``workers`` bundles of
``cpu`` and ``gpu`` that Ray Train reserves when the trial starts. Tune reserves only the driver, so ablate
caps the trials running at once at what the cluster holds (Ray's guide for Train inside Tune),
and a trial the cluster can never hold is refused at once with the numbers.

    resources = trial_resources(spec, cluster())        # TrialResources(cpu=1.0, gpu=0.0, workers=1)
    limit = admit(spec, resources, cluster())           # max trials at once, or a UserError
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from ablate.errors import UserError, warn
from ablate.sweep_spec import SweepSpec
from ablate.sweep_spec.model import GPU_KEYS
from sweep_format.text import plural
from trainables.config import make_config

# The driver of a data-parallel trial: Tune needs a non-empty request; memory leaves the CPUs to the
# workers (on 2 CPUs, 2 workers x 1 CPU fit). It runs on the head node (Ray's resource that only the
# head has), and with it Ray Train's controller, which Train starts on its caller's node: a lost
# worker node then never takes a controller along. A controller that dies with its node leaves its
# workers' placement group reserved (Train's cleaner needs the State API, which a cluster without
# the dashboard lacks), and the trial's retry then waits for CPUs that never free.
HEAD_NODE = "node:__internal_head__"
# The most of one resource Ray accepts (ray._private.ray_constants.MAX_RESOURCE_QUANTITY, not imported
# here: Ray reads its switches when it is imported, session.start_ray); ray.init raised a ValueError.
MAX_RESOURCE = 100_000_000_000_000
DRIVER: dict[str, float] = {"memory": 64 * 2**20, HEAD_NODE: 0.001}
TRAIN_WORKER = 1.0  # CPUs of one ``ablate train --workers`` worker
EPS = 1e-9


@dataclass(frozen=True)
class Cluster:
    """The CPUs and GPUs of the Ray cluster, in total and per alive node."""

    cpus: float
    gpus: float
    nodes: tuple[tuple[float, float], ...]  # (CPUs, GPUs) of each node
    address: str | None = None  # of a running cluster (its GCS); None: the local Ray this machine will be


@dataclass(frozen=True)
class TrialResources:
    cpu: float  # per process (per worker of a data-parallel trial)
    gpu: float  # share of one GPU per process
    workers: int


def cluster() -> Cluster:
    import ray

    total = ray.cluster_resources()
    nodes = tuple((float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
                  for n in ray.nodes() if n.get("Alive"))
    return Cluster(float(total.get("CPU", 0)), float(total.get("GPU", 0)), nodes,
                   ray.get_runtime_context().gcs_address)


def local_cluster(num_cpus: int | None, num_gpus: int | None) -> Cluster:
    """The cluster a local Ray will be (this machine, or ``--num-cpus``/``--num-gpus``), known before
    it starts: Ray counts no more CPUs than ``os.cpu_count()`` (it honours cgroup limits) and sees
    the GPUs torch sees. More CPUs than the machine's may be declared (trials then share cores);
    more GPUs than torch sees, or more CPUs than Ray takes, are refused (a UserError)."""
    import torch

    seen = torch.cuda.device_count()
    if num_gpus is not None and num_gpus > seen:  # Ray would hand trials GPU ids that do not exist
        raise UserError(f"--num-gpus {num_gpus}: torch sees {seen} {plural(seen, 'GPU')} on this machine "
                        f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}), and a "
                        "local Ray can give trials only those; leave --num-gpus out (the default is what "
                        "torch sees), or join a cluster with --address")
    if num_cpus is not None and num_cpus > MAX_RESOURCE:
        raise UserError(f"--num-cpus {num_cpus}: at most {MAX_RESOURCE} (Ray's limit of one resource); "
                        f"this machine has {os.cpu_count()} CPUs, and more declared only share them")
    cpus = float(num_cpus if num_cpus is not None else (os.cpu_count() or 1))
    gpus = float(num_gpus if num_gpus is not None else seen)
    return Cluster(cpus, gpus, ((cpus, gpus),))


def trial_resources(spec: SweepSpec, where: Cluster, quiet: bool = False) -> TrialResources:
    """CPU and GPU share of one trial's process; ``gpu: auto`` falls back to CPU without a GPU
    (said once, unless ``quiet``), unless the trainer asks for one (a UserError)."""
    has_gpu = where.gpus > 0
    resources = TrialResources(float(spec.resources.cpu), spec.resources.gpu_per_trial(has_gpu),
                               spec.resources.workers)
    check_gpu_asked(spec, resources, where)
    if spec.resources.gpu == "auto" and not has_gpu and not quiet:
        from trainables.cuda import unseen_gpu

        why = unseen_gpu()  # a local Ray sees the GPUs torch sees
        warn("no GPU in the Ray cluster (resources.gpu: auto); trials run on CPU"
             + (f" ({why})" if why else ""))
    return resources


def admit(spec: SweepSpec, resources: TrialResources, where: Cluster) -> int | None:
    """The most trials that run at once (``None``: as many as Tune fits); a UserError when the
    cluster can never hold one trial."""
    limit = spec.search.max_concurrent_trials
    cpu, gpu, workers = resources.cpu, resources.gpu, resources.workers
    if not any(c + EPS >= cpu and g + EPS >= gpu for c, g in where.nodes):
        raise UserError(f"{spec.source}: resources: a trial {'worker ' if workers > 1 else ''}needs {cpu:g} "
                        f"CPU and {gpu:g} GPU on one node; the largest node of the Ray cluster has "
                        f"{describe_nodes(where)} (lower resources.cpu / resources.gpu, or join a larger "
                        "cluster with --address)")
    if workers == 1:
        return limit
    trials = worker_slots(resources, where) // workers
    if trials < 1:
        raise UserError(f"{spec.source}: resources: a trial needs {workers} workers x ({cpu:g} CPU, {gpu:g} "
                        f"GPU) = {workers * cpu:g} CPU and {workers * gpu:g} GPU; the Ray cluster has "
                        f"{counts(where.cpus, where.gpus)} in all ({describe_nodes(where)}); "
                        "lower resources.workers or resources.cpu, or join a larger cluster with --address")
    return min(limit, trials) if limit else trials


def worker_slots(resources: TrialResources, where: Cluster) -> int:
    """How many data-parallel workers of ``resources`` (CPU and GPU share each) the cluster holds at
    once, node by node."""
    cpu, gpu = resources.cpu, resources.gpu
    fits = sum(math.floor(c / cpu + EPS) if cpu else resources.workers for c, _ in where.nodes)
    return min(fits, sum(math.floor(g / gpu + EPS) for _, g in where.nodes)) if gpu else fits


def admit_workers(workers: int, where: Cluster, gpu: float = 0.0) -> None:
    """``ablate train --workers N``: N workers of one CPU each (``TRAIN_WORKER``), and ``gpu`` GPUs each,
    must fit the Ray they run on (``where``: this machine for a local Ray, or the running cluster), as
    a sweep's data-parallel trial must fit its cluster (``admit``); a UserError naming what fits,
    before the workers start. Declaring more CPUs than the machine has started every worker anyway:
    100 on 2 CPUs ran out of memory minutes later; on a running cluster Ray Train waited 60 s for
    workers that could never start, then failed."""
    fits = worker_slots(TrialResources(TRAIN_WORKER, gpu, workers), where)
    if workers <= fits:
        return
    has = f"{where.cpus:g} {plural(where.cpus, 'CPU')}"
    if gpu:
        has += f" and {where.gpus:g} {plural(where.gpus, 'GPU')}"
    place = f"the Ray cluster at {where.address}" if where.address else "this machine"
    each = "one CPU and one GPU" if gpu else "one"
    give = f"give --workers 1 to {fits}" if fits else "no worker fits"
    if gpu:
        give += " (or --set device=cpu: workers of one CPU each)"
    raise UserError(f"--workers {workers}: {place} has {has}, and each data-parallel worker takes {each}; "
                    f"{give}")


def check_gpu_asked(spec: SweepSpec, resources: TrialResources, where: Cluster) -> None:
    """A UserError when the baseline or a searched value asks for a GPU (``device: cuda``,
    ``augment_device: gpu``, ``precision: fp16``) and trials get no GPU share: every trial would
    error at its start."""
    if resources.gpu > 0:
        return
    why = ("resources.gpu: auto, and the Ray cluster has no GPU" if spec.resources.gpu == "auto" and
           not where.gpus else f"resources.gpu: {float(spec.resources.gpu):g}")
    for at, values in spec.configs_of(GPU_KEYS):
        asks = make_config(values).gpu_settings()
        if asks:
            raise UserError(f"{spec.source}: {at}: {', '.join(asks)} need{'s' * (len(asks) == 1)} a GPU, "
                            f"and a trial gets none ({why}); on CPUs use device auto or cpu, augment_device "
                            "auto, precision fp32 or bf16, or give trials a GPU share (resources.gpu, "
                            "--address of a cluster with GPUs)")


def describe_nodes(where: Cluster) -> str:
    best = max(where.nodes, default=(0.0, 0.0))
    return f"{counts(*best)} ({len(where.nodes)} {plural(len(where.nodes), 'node')})"


def counts(cpus: float, gpus: float) -> str:
    """'2 CPUs and 0 GPUs', '1 CPU and 1 GPU'."""
    return f"{cpus:g} {plural(cpus, 'CPU')} and {gpus:g} {plural(gpus, 'GPU')}"


def trainable(spec: SweepSpec, resources: TrialResources, tune_dir: str) -> Any:
    """The Tune trainable of the sweep with what each trial reserves."""
    from ray import tune

    if resources.workers > 1:  # a Ray Train run per trial, in the trial's own folder
        from trainables.ddp_trial import dino_train_trial

        driver = tune.with_parameters(dino_train_trial, workers=resources.workers, cpu=resources.cpu,
                                      gpu=resources.gpu, storage_path=tune_dir)
        return tune.with_resources(driver, tune.PlacementGroupFactory([DRIVER]))
    from trainables.tune_trial import dino_trainable

    return tune.with_resources(dino_trainable, {"cpu": resources.cpu, "gpu": resources.gpu})
