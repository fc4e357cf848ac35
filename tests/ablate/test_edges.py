"""Input checks to the edges (issue 18, point 5): every file or number a spec or the command line
names is refused before Ray starts, in one line, with exit code 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.cli import main
from tests.helpers import OPTUNA_SPEC, TINY_TRAINER, write_crafted_pickle, write_image_folder, write_spec

SETS = [a for k, v in TINY_TRAINER.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started for input that should have been refused")

    monkeypatch.setattr("ablate.sweep.start_ray", never)


def one_line_error(capsys: pytest.CaptureFixture, command: str) -> str:
    err = capsys.readouterr().err
    assert f"ablate {command}: error:" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(("item", "expected"), [
    ("trainer.teacher_temp=.inf", "teacher_temp=inf: expected a finite number"),
    ("trainer.student_temp=.inf", "student_temp=inf: expected a finite number"),
    ("trainer.teacher_temp=1.0e+300", "teacher_temp=1e+300: expected a number <= 10000"),
    # YAML 1.1 reads 1e300 as text: it is the number (sweep_format.yamltext), and too large
    ("trainer.teacher_temp=1e300", "teacher_temp=1e+300: expected a number <= 10000"),
    # YAML reads these as text too, and no spelling of them is allowed: it told to 'write nan'
    ("trainer.lr=nan", "lr='nan': expected a finite number (Peak lr"),
    ("trainer.lr=-Infinity", "lr='-Infinity': expected a finite number (Peak lr"),
    # a range's bounds as the trainer's keys: it said only 'expected a number'
    ("space.teacher_temp={type: float, low: '1e-3', high: 0.1}",
     "space.teacher_temp.low: got '1e-3'; expected a number, not text (write 1e-3 without quotes)"),
    ("space.teacher_temp={type: float, low: 0.01, high: nan}",
     "space.teacher_temp.high: got 'nan'; expected a finite number"),
    ("trainer.epochs=2.0", "epochs=2.0: expected an integer"),
    ("trainer.epochs=true", "epochs=true: expected an integer"),  # as YAML writes it
    # null too, at any depth: it read teacher_temp=None, got None, values [0.1, None]
    ("trainer.teacher_temp=~", "trainer.teacher_temp: teacher_temp=null: expected a number"),
    ("space.teacher_temp={type: null, low: 0.01, high: 0.1}",
     "space.teacher_temp.type: got null; allowed: float, int, choice"),
    ("space.student_temp={type: choice, values: [0.1, null]}",
     "space.student_temp.values[1]: student_temp=null: expected a number"),
    ("trainer.global_crops_scale=[0.4, null]", "global_crops_scale=[0.4, null]: "),
    ("trainer.epochs=100000000", "expected an integer <= 10000"),
    ("trainer.epochs=99999999999999999999", "expected an integer <= 10000"),
    ("trainer.seed=3", "seed"),
    (f"name={'n' * 101}", "at most 100 long"),  # a folder name of 256+ bytes was a traceback
])
def test_run_refuses_numbers_beyond_the_edges_before_ray(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                        no_ray: None, item: str, expected: str) -> None:
    spec, storage = write_spec(tmp_path, OPTUNA_SPEC), tmp_path / "runs"
    assert main(["run", str(spec), "--storage", str(storage), "--set", item]) == 2
    assert expected in one_line_error(capsys, "run")
    assert not storage.exists()


@pytest.mark.parametrize(("item", "expected"), [
    ("epochs=100000000", "epochs=100000000: expected an integer <= 10000"),
    ("epochs=99999999999999999999", "expected an integer <= 10000"),
    ("epochs=2.0", "epochs=2.0: expected an integer"),
    ("local_crops_number=true", "local_crops_number=true: expected an integer"),
    ("teacher_temp=null", "--set teacher_temp=null: expected a number"),  # was =None
    ("teacher_temp=.inf", "teacher_temp=inf"),
    ("global_crops_scale=[0.4, .nan]", "global_crops_scale"),
    ("patch_size=3", "global_crops_size=16 (Input height (16) should be divisible by patch size (3).); "
                     "local_crops_size=8 (Input height (8) should be divisible by patch size (3).): arch "
                     "'test_vit' with patch_size=3 cannot take these crops"),  # was a traceback
])
def test_train_refuses_numbers_beyond_the_edges(tmp_path: Path, capsys: pytest.CaptureFixture, item: str,
                                                expected: str) -> None:
    out = tmp_path / "run"
    assert main(["train", *SETS, "--set", item, "--out", str(out), "--no-progress"]) == 2
    assert expected in one_line_error(capsys, "train")
    assert not out.exists()


@pytest.mark.parametrize(("space", "resources", "expected"), [
    ("local_crops_size: {type: choice, values: [8, 6]}", "{cpu: 1, gpu: 0}",
     "space.local_crops_size.values[1]: local_crops_size=6 (Input height (6) should be divisible by patch "
     "size (4).): arch 'test_vit' with patch_size=4 cannot take this crop"),
    ("local_crops_size: {type: int, low: 4, high: 12, step: 2}", "{cpu: 1, gpu: 0}",  # 12 fits, 6 does not
     "space.local_crops_size (6): local_crops_size=6 (Input height (6)"),
    ("batch_size: {type: choice, values: [16, 200]}", "{cpu: 1, gpu: 0}",
     "space.batch_size.values[1]: batch_size=200 x grad_accum_steps=1: larger than the 160 training "
     "images of 'synthetic'"),
    ("batch_size: {type: int, low: 16, high: 190, step: 80}", "{cpu: 1, gpu: 0}",  # 16, 96, 176
     "space.batch_size: batch_size=176 x grad_accum_steps=1: larger than the 160"),
    ("grad_accum_steps: {type: int, low: 1, high: 6, step: 1}", "{cpu: 1, gpu: 0}",
     "space.grad_accum_steps.high: batch_size=32 x grad_accum_steps=6: larger than the 160"),
    ("teacher_temp: {type: choice, values: [0.04]}", "{workers: 6, cpu: 1, gpu: 0}",
     "trainer: batch_size=32 x grad_accum_steps=1 x 6 workers: larger than the 160"),
])
def test_a_config_no_trial_could_run_is_refused_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, no_ray: None, space: str, resources: str,
        expected: str) -> None:
    """Every trial would error on its first epoch, and `ablate resume` would only retry them. The local
    Ray is declared 8 CPUs, a larger machine's: on a 2-CPU one the 6 workers' CPUs are refused first (they
    were, run alone; in the suite a session Ray running in the same process had let them by)."""
    spec = write_spec(tmp_path, f"""
name: big-batch
trainer: {TINY_TRAINER}
space:
  {space}
search: {{algorithm: grid}}
resources: {resources}
""")
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs"), "--num-cpus", "8"]) == 2
    assert expected in one_line_error(capsys, "run")
    assert not (tmp_path / "runs").exists()


def test_a_step_larger_than_cifar_is_refused_before_ray(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                        no_ray: None) -> None:
    """A torchvision dataset had no size before Ray: every trial of a 30,000-image step over 2 workers
    of CIFAR-10 (50,000 images) started, and each errored on its first epoch. Now it is refused before
    its files are looked for (none are here)."""
    spec = write_spec(tmp_path, f"""
name: big-batch
trainer: {dict(TINY_TRAINER, dataset="cifar10", data_path=str(tmp_path / "no-cifar-here"))}
space:
  batch_size: {{type: choice, values: [64, 30000]}}
search: {{algorithm: grid}}
resources: {{workers: 2, cpu: 1, gpu: 0}}
""")
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    assert ("space.batch_size.values[1]: batch_size=30000 x grad_accum_steps=1 x 2 workers: larger than the "
            "50000 training images of 'cifar10'") in one_line_error(capsys, "run")
    assert not (tmp_path / "runs").exists()


def test_more_steps_than_the_schedules_hold_are_refused_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, no_ray: None) -> None:
    """epochs x steps per epoch above MAX_STEPS was checked only when a trial built its trainer: a sweep
    started and every such trial errored. The rule is check_batch's now, which the spec's checks run."""
    spec = write_spec(tmp_path, f"""
name: long
trainer: {dict(TINY_TRAINER, dataset="cifar10", batch_size=4, data_path=str(tmp_path / "no-cifar-here"))}
space:
  epochs: {{type: choice, values: [100, 10000]}}
search: {{algorithm: grid}}
resources: {{cpu: 1, gpu: 0}}
""")
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    assert ("space.epochs.values[1]: epochs=10000 x 12,500 steps per epoch = 125,000,000 optimizer steps: at "
            "most 100,000,000") in one_line_error(capsys, "run")
    assert not (tmp_path / "runs").exists()


def test_a_small_batch_with_many_epochs_of_a_grid_is_refused_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, no_ray: None) -> None:
    """Each searched value was checked with the trainer section alone: batch_size 1 at the baseline's
    epochs, and epochs 10000 at the baseline's batch, both fit; their grid point (50,000 steps an epoch
    x 10,000 epochs) started the sweep, and that trial errored when it built its trainer."""
    spec = write_spec(tmp_path, f"""
name: long
trainer: {dict(TINY_TRAINER, dataset="cifar10", batch_size=64, data_path=str(tmp_path / "no-cifar-here"))}
space:
  batch_size: {{type: choice, values: [1, 64]}}
  epochs: {{type: choice, values: [2, 10000]}}
search: {{algorithm: grid}}
resources: {{cpu: 1, gpu: 0}}
""")
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    assert ("space (the trial batch_size=1, epochs=10000): epochs=10000 x 50,000 steps per epoch = "
            "500,000,000 optimizer steps: at most 100,000,000") in one_line_error(capsys, "run")
    assert not (tmp_path / "runs").exists()


def test_the_ends_of_two_optuna_ranges_together_are_refused_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, no_ray: None) -> None:
    """Optuna's integer ranges were checked one key at a time: batch_size up to 256 and grad_accum_steps
    up to 32 each fit CIFAR-10 at the other's baseline, but a trial Optuna may sample with both at their
    ends (a step of 8,192 x 8 = 65,536 images > 50,000) errored when it built its trainer."""
    spec = write_spec(tmp_path, f"""
name: ends
trainer: {dict(TINY_TRAINER, dataset="cifar10", batch_size=64, data_path=str(tmp_path / "no-cifar-here"))}
space:
  batch_size: {{type: int, low: 8, high: 8192}}
  grad_accum_steps: {{type: int, low: 1, high: 8}}
  teacher_temp: {{type: float, low: 0.02, high: 0.08}}
search: {{algorithm: optuna, num_samples: 4}}
resources: {{cpu: 1, gpu: 0}}
""")
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    assert ("space (the trial batch_size=8192, grad_accum_steps=8, teacher_temp=0.02): batch_size=8192 x "
            "grad_accum_steps=8: larger than the 50000 training images of 'cifar10'") in one_line_error(
        capsys, "run")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("space", "bad_file", "expected"), [
    ("teacher_temp: {type: choice, values: [0.04]}", True,
     "spec.yaml: trainer: data_path='{data}': train/a/bad.png: not a readable image"),
    ("batch_size: {type: choice, values: [8, 64]}", False,
     "spec.yaml: space.batch_size.values[1]: batch_size=64 x grad_accum_steps=1: larger than the 24 training "
     "images of 'imagefolder'"),
])
def test_an_image_folder_no_trial_could_use_is_refused_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, no_ray: None, space: str, bad_file: bool,
        expected: str) -> None:
    """The driver builds the folder as a trial would (every image decoded, its size against every
    searched batch): one line before Ray, instead of every trial erroring."""
    data = write_image_folder(tmp_path / "data", n=12)
    if bad_file:
        (data / "train" / "a" / "bad.png").write_text("not an image")
    spec = write_spec(tmp_path, f"""
name: folder
trainer: {dict(TINY_TRAINER, dataset="imagefolder", data_path=str(data), batch_size=8)}
space:
  {space}
search: {{algorithm: grid}}
""")
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    assert expected.format(data=data) in one_line_error(capsys, "run")
    assert not (tmp_path / "runs").exists()


def test_a_resumed_sweep_is_not_told_to_skip_an_unreadable_image(tmp_path: Path) -> None:
    """`ablate resume` after a broken file came into the folder said to set skip_bad_images, which a
    resumed sweep refuses (it keeps the trainer settings its trials ran with): it says to remove it."""
    from ablate.errors import UserError
    from ablate.sweep import check_inputs
    from ablate.sweep_spec import load_spec

    data = write_image_folder(tmp_path / "data", n=12)
    (data / "train" / "a" / "bad.png").write_text("not an image")
    spec = load_spec(write_spec(tmp_path, f"""
name: folder
trainer: {dict(TINY_TRAINER, dataset="imagefolder", data_path=str(data), batch_size=8)}
space:
  teacher_temp: {{type: choice, values: [0.04]}}
search: {{algorithm: grid}}
"""))
    with pytest.raises(UserError, match="skip_bad_images=true"):
        check_inputs(spec, None)
    with pytest.raises(UserError) as resumed:
        check_inputs(spec, None, resuming=True)
    message = str(resumed.value)
    assert "train/a/bad.png: not a readable image" in message and "skip_bad_images: true" not in message
    assert message.endswith("; remove it (a resumed sweep keeps the trainer settings it ran with, "
                            "skip_bad_images among them)")


def test_crafted_pretrained_weights_in_a_spec_are_refused_before_ray(tmp_path: Path, no_ray: None,
                                                                   capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"
    evil = write_crafted_pickle(tmp_path / "evil.pt", marker)
    spec, storage = write_spec(tmp_path, OPTUNA_SPEC), tmp_path / "runs"
    item = f"trainer.pretrained_weights={evil}"
    assert main(["run", str(spec), "--storage", str(storage), "--set", item]) == 2
    err = one_line_error(capsys, "run")
    assert "spec.yaml: trainer: " in err and "evil.pt: refused to load this pretrained_weights file" in err
    assert not marker.exists() and not storage.exists()


def test_a_missing_file_named_by_a_searched_value_is_refused(tmp_path: Path, no_ray: None,
                                                           capsys: pytest.CaptureFixture) -> None:
    spec = write_spec(tmp_path, f"""
name: weights
trainer: {TINY_TRAINER}
space:
  pretrained_weights: {{type: choice, values: [{tmp_path / 'missing.pth'}]}}
search: {{algorithm: grid}}
""")
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    err = one_line_error(capsys, "run")
    assert "space.pretrained_weights.values[0]" in err and "missing.pth" in err and "no such file" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e9"])
def test_connect_timeout_is_a_finite_positive_number(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                     no_ray: None, value: str) -> None:
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs"), "--address", "127.0.0.1:1",
                 "--connect-timeout", value]) == 2
    assert "--connect-timeout" in one_line_error(capsys, "run")


def test_a_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          no_ray: None) -> None:
    """558 bytes whose aliases expand to 10^9 strings: refused in one short line, fast."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nname: bomb\n")
    assert main(["run", str(bomb), "--storage", str(tmp_path / "runs")]) == 2
    err = one_line_error(capsys, "run")
    assert "bomb.yaml" in err and "expands to more than 100,000 values" in err and len(err) < 400
    assert main(["train", "--set", f"description={bomb.read_text()}", "--out", str(tmp_path / "t")]) == 2
    assert len(capsys.readouterr().err) < 600


def test_an_error_never_prints_an_unbounded_value(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  no_ray: None) -> None:
    huge = "[" + ", ".join(["1"] * 50_000) + "]"
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs"), "--set", f"trainer.lr={huge}"]) == 2
    assert "trainer.lr" in (err := one_line_error(capsys, "run")) and len(err) < 600


@pytest.mark.parametrize(("option", "value"), [("--num-cpus", "0"), ("--num-cpus", "-2"),
                                               ("--num-cpus", "two"), ("--num-gpus", "-1")])
def test_a_local_ray_of_no_cpus_is_refused_before_ray(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      no_ray: None, option: str, value: str) -> None:
    """`--num-cpus 0` started Ray (seconds) to then find no trial fits; now argparse refuses it."""
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    with pytest.raises(SystemExit) as stop:
        main(["run", str(spec), "--storage", str(tmp_path / "runs"), option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and "expected a whole number >= " in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_folder_given_as_the_spec_is_named_so(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                no_ray: None) -> None:
    write_spec(tmp_path, OPTUNA_SPEC)
    assert main(["run", str(tmp_path)]) == 2
    err = one_line_error(capsys, "run")
    assert f"{tmp_path}: a folder, not a YAML file (e.g. {tmp_path / 'spec.yaml'})" in err


def test_a_sweep_folder_given_as_the_spec_points_to_resume(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                           no_ray: None) -> None:
    """`ablate run runs/temps` (meaning to continue it) pointed to runs/temps/spec.yaml, which `ablate run`
    then refuses as a sweep that already exists."""
    sweep = tmp_path / "runs" / "temps"
    (sweep / "trials").mkdir(parents=True)
    write_spec(sweep, OPTUNA_SPEC)
    assert main(["run", str(sweep)]) == 2
    err = one_line_error(capsys, "run")
    assert (f"{sweep}: a sweep folder, not a YAML file: `ablate resume {sweep}` continues the sweep "
            f"(its spec: {sweep / 'spec.yaml'})") in err


def test_a_spec_that_is_no_regular_file_is_not_called_missing(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                               no_ray: None) -> None:
    """`ablate run /dev/null` (or a named pipe) said 'no such file' of a file that is there."""
    import os

    pipe = tmp_path / "spec.fifo"
    os.mkfifo(pipe)
    assert main(["run", str(pipe)]) == 2
    assert (f"{pipe}: not a regular file (a FIFO, socket or device); expected a YAML file"
            in one_line_error(capsys, "run"))
    assert main(["run", str(tmp_path / "absent.yaml")]) == 2
    assert f"{tmp_path / 'absent.yaml'}: no such file" in one_line_error(capsys, "run")


def test_a_path_too_long_for_the_file_system_is_refused_and_nothing_made(
        tmp_path: Path, no_ray: None, capsys: pytest.CaptureFixture) -> None:
    """--out or --storage with a name of 256+ bytes ended in OSError ENAMETOOLONG, after the folders
    above it had been made."""
    long = tmp_path / "new" / ("b" * 260)
    assert main(["train", *SETS, "--out", str(long)]) == 2
    assert "is 260 bytes, where a file system allows 255" in one_line_error(capsys, "train")
    assert main(["run", str(write_spec(tmp_path, OPTUNA_SPEC)), "--storage", str(long)]) == 2
    assert "is 260 bytes, where a file system allows 255" in one_line_error(capsys, "run")
    assert not (tmp_path / "new").exists()


def test_a_folder_named_like_the_sweep_that_is_not_one_is_named_so(tmp_path: Path, no_ray: None,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """It said 'a sweep named s already exists; continue it with ablate resume', which then refused
    the folder as not a sweep."""
    spec, storage = write_spec(tmp_path, OPTUNA_SPEC), tmp_path / "runs"
    name = OPTUNA_SPEC.split("name: ", 1)[1].split("\n", 1)[0]
    (storage / name).mkdir(parents=True)
    assert main(["run", str(spec), "--storage", str(storage)]) == 2
    assert "exists and is not a sweep folder (no spec.yaml)" in one_line_error(capsys, "run")
    assert not any((storage / name).iterdir())


def test_a_project_folder_holding_its_own_spec_yaml_is_no_sweep(tmp_path: Path, no_ray: None,
                                                               capsys: pytest.CaptureFixture) -> None:
    """A folder whose spec file someone named spec.yaml (no trials/, which ablate run makes first):
    `ablate resume` ran the whole sweep inside it, `ablate ls` listed it as '15 not started'."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "spec.yaml").write_text(OPTUNA_SPEC)
    for command in (["resume", str(project)], ["report", str(project)]):
        assert main(command) == 2
        assert (f"{project}: not a sweep folder: it holds spec.yaml but no trials/"
                in one_line_error(capsys, command[0]))
    assert main(["ls", str(project)]) == 2
    assert f"{project}: no sweeps here" in one_line_error(capsys, "ls")
    assert [p.name for p in project.iterdir()] == ["spec.yaml"]
    assert main(["run", str(project / "spec.yaml"), "--storage", str(tmp_path), "--set",
                 f"name={project.name}"]) == 2
    err = one_line_error(capsys, "run")
    assert "exists and is not a sweep folder (it holds spec.yaml but no trials/)" in err
    assert [p.name for p in project.iterdir()] == ["spec.yaml"]


def test_a_local_crop_alone_in_a_batchnorm_pass_is_refused_before_it_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture, no_ray: None) -> None:
    """batch_size 1 with one local crop: the student's CNN sees each local crop alone, and BatchNorm
    cannot train on one 1 x 1 px value per channel. `ablate train` wrote config.yaml and the epoch-0
    row, then ended in a ValueError traceback at its first step; every trial of a sweep errored so."""
    lone = {**TINY_TRAINER, "arch": "test_resnet", "local_crops_number": 1}
    sets = [a for k, v in lone.items() for a in ("--set", f"{k}={v}")]
    out = tmp_path / "run"
    assert main(["train", *sets, "--set", "batch_size=1", "--out", str(out), "--no-progress"]) == 2
    expected = ("batch_size=1 with local_crops_number=1: the student trains on each local_crops_size=8 "
                "crop alone, which arch 'test_resnet' cannot (Expected more than 1 value per channel when "
                "training")
    err = one_line_error(capsys, "train")
    assert expected in err and "set batch_size >= 2, or local_crops_number 0 or >= 2" in err
    assert not out.exists()
    spec = write_spec(tmp_path, f"""
name: lone-crop
trainer: {lone}
space:
  batch_size: {{type: choice, values: [8, 1]}}
search: {{algorithm: grid}}
resources: {{cpu: 1, gpu: 0}}
""")
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    assert f"space.batch_size.values[1]: {expected}" in one_line_error(capsys, "run")
    # a range of more than 256 values was checked at its largest only (Optuna may draw its low)
    spec = write_spec(tmp_path, spec.read_text().replace("{type: choice, values: [8, 1]}",
                                                         "{type: int, low: 1, high: 300}").replace(
        "'synthetic'", "'digit_scenes'").replace("{algorithm: grid}", "{algorithm: optuna, num_samples: 2}"))
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    assert f"space.batch_size.low: {expected}" in one_line_error(capsys, "run")
    assert not (tmp_path / "runs").exists()


BN_LN = ("use_bn_in_head: {type: choice, values: [true, false]}\n"
         "  use_ln_in_head: {type: choice, values: [true]}")
BOTH = "space (the trial use_bn_in_head=true, use_ln_in_head=true): use_bn_in_head and use_ln_in_head cannot"


@pytest.mark.parametrize(("space", "algorithm", "expected"), [
    (BN_LN, "grid", BOTH),
    (BN_LN, "optuna, num_samples: 2", BOTH),
    ("arch: {type: choice, values: [test_resnet, test_vit]}\n  global_crops_size: {type: choice, values: "
     "[16, 18]}", "grid", "space (the trial arch=test_vit, global_crops_size=18): global_crops_size=18 "
     "(Input height (18) should be divisible by patch size (4).): arch 'test_vit' with patch_size=4 cannot"),
])
def test_searched_values_valid_alone_but_not_together_are_refused_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, no_ray: None, space: str, algorithm: str,
        expected: str) -> None:
    """Each searched value was checked with the trainer section alone: a grid (or Optuna's choices) that
    puts two of them in one trial which breaks a rule between keys started Ray, and that trial errored."""
    spec = write_spec(tmp_path, f"""
name: together
trainer: {dict(TINY_TRAINER, arch="test_resnet")}
space:
  {space}
search: {{algorithm: {algorithm}}}
resources: {{cpu: 1, gpu: 0}}
""")
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    assert expected in one_line_error(capsys, "run")
    assert not (tmp_path / "runs").exists()
