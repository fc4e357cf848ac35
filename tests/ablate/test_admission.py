"""What a trial reserves and whether the cluster can hold it (issue 18, point 1): a data-parallel
trial's driver reserves no CPU, so 2 workers x 1 CPU run on 2 CPUs; a trial the cluster can never
hold is refused at once, with the numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.admission import Cluster, TrialResources, admit, local_cluster, trial_resources
from ablate.errors import UserError
from ablate.sweep_spec import load_spec
from tests.helpers import OPTUNA_SPEC, write_spec

LAPTOP = Cluster(cpus=2.0, gpus=0.0, nodes=((2.0, 0.0),))
TWO_NODES = Cluster(cpus=4.0, gpus=1.0, nodes=((2.0, 1.0), (2.0, 0.0)))


def spec(tmp_path: Path, **resources: object):
    items = [f"resources.{k}={v}" for k, v in resources.items()]
    return load_spec(write_spec(tmp_path, OPTUNA_SPEC), items)


def test_two_workers_of_one_cpu_fit_a_two_cpu_machine(tmp_path: Path) -> None:
    assert admit(spec(tmp_path, workers=2, cpu=1, gpu=0), TrialResources(1.0, 0.0, 2), LAPTOP) == 1
    assert admit(spec(tmp_path, workers=2, cpu=1, gpu=0), TrialResources(1.0, 0.0, 2), TWO_NODES) == 2
    two_gpus = Cluster(cpus=4.0, gpus=2.0, nodes=((2.0, 1.0), (2.0, 1.0)))  # one GPU per node
    assert admit(spec(tmp_path, workers=2, cpu=1, gpu=1), TrialResources(1.0, 1.0, 2), two_gpus) == 1


def test_a_trial_the_cluster_can_never_hold_is_refused_with_the_numbers(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"a trial needs 3 CPU and 0 GPU on one node; the largest node of "
                                        r"the Ray cluster has 2 CPUs and 0 GPUs \(1 node\)"):
        admit(spec(tmp_path, cpu=3, gpu=0), TrialResources(3.0, 0.0, 1), LAPTOP)
    with pytest.raises(UserError, match=r"a trial needs 3 workers x \(1 CPU, 0 GPU\) = 3 CPU and 0 GPU; "
                                        r"the Ray cluster has 2 CPUs"):
        admit(spec(tmp_path, workers=3, cpu=1, gpu=0), TrialResources(1.0, 0.0, 3), LAPTOP)
    with pytest.raises(UserError, match="a trial worker needs 1 CPU and 1 GPU on one node"):
        admit(spec(tmp_path, workers=2, cpu=1, gpu=1), TrialResources(1.0, 1.0, 2), LAPTOP)


def test_a_refusal_names_the_spec_file_and_counts_in_words(tmp_path: Path) -> None:
    """It read 'ablate run: error: resources: a trial needs ...', the one refusal of a spec that named no
    file; and on one CPU (`--num-cpus 1`) the cluster had '1 CPUs'."""
    one_cpu = Cluster(cpus=1.0, gpus=0.0, nodes=((1.0, 0.0),))
    with pytest.raises(UserError) as info:
        admit(spec(tmp_path, cpu=2, gpu=0), TrialResources(2.0, 0.0, 1), one_cpu)
    assert str(info.value) == (
        f"{tmp_path / 'spec.yaml'}: resources: a trial needs 2 CPU and 0 GPU on one node; the largest node "
        "of the Ray cluster has 1 CPU and 0 GPUs (1 node) (lower resources.cpu / resources.gpu, or join a "
        "larger cluster with --address)")
    with pytest.raises(UserError) as info:
        admit(spec(tmp_path, workers=2, cpu=1, gpu=0), TrialResources(1.0, 0.0, 2), one_cpu)
    assert str(info.value).startswith(
        f"{tmp_path / 'spec.yaml'}: resources: a trial needs 2 workers x (1 CPU, 0 GPU) = 2 CPU and 0 GPU; "
        "the Ray cluster has 1 CPU and 0 GPUs in all (1 CPU and 0 GPUs (1 node)); lower resources.workers")


ONE_GPU = Cluster(cpus=2.0, gpus=1.0, nodes=((2.0, 1.0),))


@pytest.mark.parametrize(("sets", "expected"), [
    (["resources.gpu=auto", "trainer.device=cuda"],
     "spec.yaml: trainer: device='cuda' needs a GPU, and a trial gets none (resources.gpu: auto, and "
     "the Ray cluster has no GPU)"),
    (["resources.gpu=auto", "trainer.device=auto", "trainer.augment_device=gpu"],
     "trainer: augment_device='gpu' needs a GPU"),
    (["resources.gpu=auto", "trainer.device=auto", "trainer.precision=fp16"],
     "trainer: precision='fp16' needs a GPU"),
])
def test_a_trial_that_asks_for_a_gpu_the_cluster_lacks_is_refused(tmp_path: Path, sets: list[str],
                                                                  expected: str) -> None:
    """Every such trial would error at its start, and `ablate resume` would only retry it."""
    spec = load_spec(write_spec(tmp_path, OPTUNA_SPEC), sets)
    with pytest.raises(UserError, match=re.escape(expected)):
        trial_resources(spec, LAPTOP)
    assert trial_resources(spec, ONE_GPU).gpu > 0  # where there is a GPU, the same spec runs


def test_a_cuda_device_without_a_gpu_share_is_refused_even_beside_a_gpu(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, OPTUNA_SPEC), ["resources.gpu=0", "trainer.device=cuda:1"])
    with pytest.raises(UserError, match=re.escape("device='cuda:1' needs a GPU, and a trial gets none "
                                                  "(resources.gpu: 0)")):
        trial_resources(spec, ONE_GPU)


def test_a_local_ray_declares_no_more_gpus_than_torch_sees() -> None:
    """More GPUs than the machine's would give trials CUDA ids that do not exist; more CPUs only share
    the cores, and stay allowed."""
    import torch

    seen = torch.cuda.device_count()
    with pytest.raises(UserError, match=rf"--num-gpus {seen + 1}: torch sees {seen} GPU"):
        local_cluster(None, seen + 1)
    assert local_cluster(64, seen) == Cluster(64.0, float(seen), ((64.0, float(seen)),))
    # more CPUs than Ray takes: ray.init raised a ValueError traceback once the sweep had started
    with pytest.raises(UserError, match=r"--num-cpus 100000000000001: at most 100000000000000 \(Ray's"):
        local_cluster(100_000_000_000_001, seen)
    assert local_cluster(100_000_000_000_000, seen).cpus == 1e14


def test_a_searched_cuda_device_is_refused_without_a_gpu(tmp_path: Path) -> None:
    text = OPTUNA_SPEC.replace("warmup_teacher_temp_epochs: {type: choice, values: [0, 1]}",
                               "device: {type: choice, values: [cpu, cuda]}")
    spec = load_spec(write_spec(tmp_path, text), ["resources.gpu=auto"])
    with pytest.raises(UserError, match=re.escape("space.device.values[1]: device='cuda'")):
        trial_resources(spec, LAPTOP)


def test_gpu_auto_on_cpu_says_why_when_the_machine_has_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    """A CPU-only torch on a GPU machine: the sweep warned only 'no GPU in the Ray cluster'."""
    from trainables import cuda

    monkeypatch.setattr(cuda, "unseen_gpu", lambda: "")
    assert trial_resources(spec(tmp_path, gpu="auto"), LAPTOP).gpu == 0
    assert capsys.readouterr().err.endswith("trials run on CPU\n")
    monkeypatch.setattr(cuda, "unseen_gpu", lambda: "this machine has an NVIDIA GPU (/dev/nvidia0), but ...")
    assert trial_resources(spec(tmp_path, gpu="auto"), LAPTOP).gpu == 0
    assert capsys.readouterr().err.endswith(
        "trials run on CPU (this machine has an NVIDIA GPU (/dev/nvidia0), but ...)\n")


# A two-worker trial run to its end on a two-CPU machine (issue 18, point 1: 2 workers x 1 CPU once waited
# forever, the driver holding 0.01 CPU): the trial without a fault in the data-parallel sweep of
# tests/ablate/test_outcomes.py (test_a_data_parallel_trial_whose_rank_runs_out_of_memory_ends_oom_at_once).


def test_a_refused_trial_leaves_no_storage_folder(ray_cluster: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    """Refused after Ray's start (the write probe made --storage first): one line, exit 2, and the
    storage folder the probe created is gone again, so nothing is written."""
    from ablate.cli import main

    storage = tmp_path / "new" / "runs"
    assert main(["run", str(write_spec(tmp_path, OPTUNA_SPEC)), "--storage", str(storage), "--address",
                 ray_cluster, "--set", "resources.cpu=3", "--set", "resources.gpu=0"]) == 2
    err = capsys.readouterr().err
    assert "a trial needs 3 CPU and 0 GPU on one node" in err and "Traceback" not in err
    assert not (tmp_path / "new").exists() and "results in" not in err, err  # a folder never made: unnamed


def test_a_local_run_is_refused_before_ray_starts_in_one_line(tmp_path: Path) -> None:
    """A local Ray is this machine: no Ray started, no 'results in' line for a folder never made (the
    GPU settings go through the same admission: the tests above)."""
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    command = [sys.executable, "-m", "ablate.cli", "run", str(spec), "--storage", str(tmp_path / "runs"),
               "--num-cpus", "2", "--set", "resources.cpu=64"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "a trial needs 64 CPU and 0 GPU on one node" in run.stderr
    assert not (tmp_path / "runs").exists()
