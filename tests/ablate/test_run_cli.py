"""`ablate run`: spec mistakes exit 2 before Ray starts and write nothing; --force reaches the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.cli import main
from ablate.sweep_spec import SweepSpec
from tests.helpers import OPTUNA_SPEC, TINY_TRAINER, write_spec


@pytest.mark.parametrize("sets, expected", [
    (["trainer.arch=vit_smal_patch16_224"],
     "trainer.arch: arch='vit_smal_patch16_224': not a timm model name"),
    (["search.num_samples=1000000"], "search.num_samples: got 1000000; at most 100000 trials"),
])
def test_spec_mistake_exits_2_before_ray_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch, sets: list[str],
                                                            expected: str) -> None:
    def no_ray(*args: object) -> None:
        raise AssertionError("Ray started for a spec that should have been refused")

    monkeypatch.setattr("ablate.sweep.run_sweep", no_ray)
    spec, storage = write_spec(tmp_path, OPTUNA_SPEC), tmp_path / "runs"
    args = ["run", str(spec), "--storage", str(storage)] + [a for s in sets for a in ("--set", s)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not storage.exists()


def test_a_missing_dataset_names_its_keys_as_a_spec_holds_them(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer's hint names the keys as `ablate train --set` takes them: `ablate run` said "pass --set
    data_path=FOLDER", which it refuses as an unknown spec key."""
    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray started for a dataset that is not there")

    monkeypatch.setattr("ablate.sweep.start_ray", no_ray)
    spec, storage = write_spec(tmp_path, OPTUNA_SPEC), tmp_path / "runs"
    missing = tmp_path / "no-data"
    assert main(["run", str(spec), "--storage", str(storage), "--set", "trainer.dataset=cifar10",
                 "--set", f"trainer.data_path={missing}"]) == 2
    err = capsys.readouterr().err
    assert err == (f"ablate run: error: {spec}: trainer: data_path='{missing}': no such folder for dataset "
                   "'cifar10'; pass --set data_path=FOLDER with the cifar10 files, or --set download=true to "
                   "let torchvision download it there (in a sweep spec: trainer.data_path, "
                   "trainer.download)\n")
    assert not storage.exists()


def test_a_storage_that_cannot_be_written_is_refused_before_the_data_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write probe of --storage came after the spec's data checks: a download (trainer.download) or
    the first decode of an image folder (about 8 minutes for ImageNet) ran before a --storage below a
    file, read-only or full was refused. A refusal of the data after the probe leaves no --storage
    (test_a_missing_dataset_names_its_keys_as_a_spec_holds_them)."""
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("data read before the storage was checked")

    monkeypatch.setattr(SweepSpec, "check_inputs", never)
    spec, afile = write_spec(tmp_path, OPTUNA_SPEC), tmp_path / "afile"
    afile.write_text("x")
    assert main(["run", str(spec), "--storage", str(afile / "runs")]) == 2
    err = capsys.readouterr().err
    assert err == f"ablate run: error: --storage {afile / 'runs'}: {afile} is a file, not a folder; give a " \
                  "folder\n"


def test_the_opening_line_counts_one_trial_as_one(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """It said "1 trials (optuna)", and "results in DIR" before Ray, where a cluster that does not answer
    or cannot hold a trial left no DIR (test_ray_network: the line, then the refusal)."""
    from ablate.errors import UserError

    def no_ray(*args: object, **kwargs: object) -> None:
        raise UserError("no Ray in this test")

    monkeypatch.setattr("ablate.sweep.ray_session", no_ray)
    spec, storage = write_spec(tmp_path, OPTUNA_SPEC), tmp_path / "runs"
    sets = ["--set", "search.num_samples=1", "--set", "repeats=1"]
    assert main(["run", str(spec), "--storage", str(storage), *sets]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate: sweep 'tiny': 1 trial (optuna); ") and "results in" not in err, err
    assert not storage.exists()


def test_a_data_key_its_dataset_does_not_read_is_warned_once_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """trainer.num_workers 3 on the in-memory synthetic set, and a bundle's skip_bad_images: accepted and
    unused by every trial, without a word; now one warning line each, before Ray starts."""
    from ablate.errors import UserError

    def no_ray(*args: object, **kwargs: object) -> None:
        raise UserError("no Ray in this test")

    monkeypatch.setattr("ablate.sweep.ray_session", no_ray)
    pick = ("  pick: {type: choice, values: [{label: a, set: {skip_bad_images: true}}, "
            "{label: b, set: {epochs: 1}}]}")
    spec = write_spec(tmp_path, OPTUNA_SPEC.replace("space:\n", f"space:\n{pick}\n"))
    sets = ["--set", "trainer.num_workers=3"]
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs"), *sets]) == 2
    warnings = [line for line in capsys.readouterr().err.splitlines() if "has no effect on dataset" in line]
    assert warnings == [
        f"ablate: warning: {spec}: trainer: num_workers 3 has no effect on dataset 'synthetic': only "
        "imagefolder reads it, or any dataset with augment_device: cpu; leave it out",
        f"ablate: warning: {spec}: space.pick.values[0].set: skip_bad_images true has no effect on dataset "
        "'synthetic': only imagefolder reads it; leave it out"]


def test_an_empty_storage_is_refused_before_ray(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """--storage '' put the sweep into the folder ablate ran in (Path('') is '.'), as --out '' did."""
    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray started for a storage that should have been refused")

    monkeypatch.setattr("ablate.sweep.start_ray", no_ray)
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    for storage in ("", "  "):
        assert main(["run", str(spec), "--storage", storage]) == 2
        assert f"--storage {storage!r}: give a folder for the sweeps" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.name]


def test_text_ray_cannot_take_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Latin-1 byte in an argument or in the working folder ended ray.init in a UnicodeEncodeError
    traceback (Ray sends the command line and folder on as UTF-8)."""
    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray started with text it cannot take")

    monkeypatch.setattr("ablate.sweep.start_ray", no_ray)
    spec, latin1 = write_spec(tmp_path, OPTUNA_SPEC), "caf\udce9"  # b"caf\xe9" as Python keeps it
    storage = tmp_path / latin1
    argv = ["run", str(spec), "--storage", str(storage)]
    monkeypatch.setattr("sys.orig_argv", ["python", "-m", "ablate", *argv])
    assert main(argv) == 2
    assert f"ablate run: error: argument {tmp_path}/caf\\xe9: not UTF-8 text" in capsys.readouterr().err
    assert not storage.exists()
    monkeypatch.setattr("sys.orig_argv", ["python", "-m", "ablate"])
    storage.mkdir()
    monkeypatch.chdir(storage)
    assert main(["run", str(spec), "--storage", "runs"]) == 2
    assert f"error: working folder {tmp_path}/caf\\xe9: not UTF-8 text" in capsys.readouterr().err
    assert list(storage.iterdir()) == []
    assert main(["train", "--out", "run", "--workers", "2"]) == 2
    assert f"error: working folder {tmp_path}/caf\\xe9: not UTF-8 text" in capsys.readouterr().err
    assert list(storage.iterdir()) == []


def test_a_token_ray_cannot_send_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token saved with a byte-order mark (Windows' Notepad) or another byte outside printable ASCII
    aborted the process inside ray.init (exit 134, gRPC's 'Illegal header value', 'ASSERTION FAILED'):
    gRPC takes the token as a header. Whitespace around it is Ray's to trim, and passes."""
    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray started with a token it cannot send")

    monkeypatch.setattr("ablate.sweep.start_ray", no_ray)
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    token = home / ".ray" / "auth_token"
    token.write_bytes(b"\xef\xbb\xbf" + b"0123abcd" * 8 + b"\r\n")
    spec, storage = write_spec(tmp_path, OPTUNA_SPEC), tmp_path / "runs"
    assert main(["run", str(spec), "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert f"ablate run: error: {token}: Ray's authentication token holds the byte 0xef at 1 (a UTF-8 " \
           "byte-order mark: save it without one)" in err and "Traceback" not in err
    assert not storage.exists()
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0123\x01abcd")  # the variable comes before any file, as in Ray
    assert main(["train", "--out", str(tmp_path / "run"), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "error: RAY_AUTH_TOKEN: Ray's authentication token holds the byte 0x01 at 5" in err
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token is sent: none is read
    from ablate.session import check_ray_token

    check_ray_token()
    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    token.write_bytes(b"  " + b"0123abcd" * 8 + b"\r\n")  # whitespace around it: Ray trims it
    check_ray_token()
    token.write_bytes(b"\xef\xbb\xbf0123")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "")  # empty: no token of its own, the file is read
    from ablate.errors import UserError

    with pytest.raises(UserError, match="auth_token: Ray's authentication token holds the byte 0xef"):
        check_ray_token()


def test_a_local_ray_that_does_not_start_is_one_line_and_leaves_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """ray.init's own failure (a GCS that did not come up, a /tmp/ray another user owns) was a traceback
    from ablate.session: now one line with Ray's words and where its logs are, exit 2, no folder."""
    import ray

    def no_start(**kwargs: object) -> None:
        raise RuntimeError("Failed to start GCS.\n  See the logs")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # the shared test Ray is not this run's
    monkeypatch.setattr("ablate.session.init_ray", no_start)
    monkeypatch.setattr("ablate.session.other_rays", lambda: [])
    spec, storage = write_spec(tmp_path, OPTUNA_SPEC), tmp_path / "runs"
    assert main(["run", str(spec), "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert "ablate run: error: the local Ray did not start (RuntimeError: Failed to start GCS. See the " \
           "logs); Ray's own logs, where it got that far: " in err and "Traceback" not in err
    assert err.rstrip().endswith("/ray/session_latest/logs") and not storage.exists()
    import sys

    from ablate.session import local_start_failed

    monkeypatch.setitem(sys.modules, "ray._common.utils", None)  # a Ray without that module: its default
    assert local_start_failed(TimeoutError()).endswith("(TimeoutError); Ray's own logs, where it got that "
                                                       "far: /tmp/ray/session_latest/logs")


@pytest.mark.parametrize("sets", [["trainer.data_path={tmp}/imagenet"],  # the paper-scale spec, no GPU
                                  ["trainer.dataset=cifar10", "trainer.data_path={tmp}/data",
                                   "trainer.download=true", "resources.gpu=0.5", "resources.cpu=8"]])
def test_a_trial_this_machine_cannot_hold_is_refused_before_the_data_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
        sets: list[str]) -> None:
    """search_spaces/imagenet_vits16.yaml on a 2-CPU machine without a GPU decoded the image folder
    (ImageNet: about 8 minutes) before saying that a worker needs 10 CPUs and a GPU; README's CIFAR-10
    GPU example downloaded the dataset first. The machine's check now comes before the data's."""
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("data read or Ray started for a trial this machine cannot hold")

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    monkeypatch.setattr("ray.is_initialized", lambda: False)  # a local Ray would be started
    monkeypatch.setattr(SweepSpec, "check_inputs", never)
    monkeypatch.setattr("ablate.sweep.start_ray", never)
    storage = tmp_path / "runs"
    spec = Path(__file__).resolve().parents[2] / "search_spaces" / "imagenet_vits16.yaml"
    if "trainer.download=true" in sets:
        spec = spec.with_name("temps.yaml")
    args = ["run", str(spec), "--storage", str(storage)]
    assert main(args + [a for s in sets for a in ("--set", s.format(tmp=tmp_path))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ablate run: error: {spec}: resources: a trial "), err
    assert "on one node; the largest node of the Ray cluster has 2 CPUs and 0 GPUs (1 node)" in err[0]
    assert not storage.exists()


def test_a_storage_inside_a_sweep_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """--storage runs/temps (for runs) put the new sweep inside the old one's folder, among its files,
    where ablate ls no longer saw it."""
    from tests.helpers import crafted_sweep, good_record

    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray started for a storage that should have been refused")

    monkeypatch.setattr("ablate.sweep.start_ray", no_ray)
    sweep = crafted_sweep(tmp_path, [good_record("a")])
    before = sorted(sweep.rglob("*"))
    for storage in (sweep, sweep / "trials"):
        assert main(["run", str(write_spec(tmp_path, OPTUNA_SPEC)), "--storage", str(storage)]) == 2
        said = f"--storage {storage}: inside the sweep folder {sweep}, whose files are the sweep's; give the "
        assert f"{said}folder that holds the sweeps, e.g. --storage {sweep.parent}" in capsys.readouterr().err
    assert sorted(sweep.rglob("*")) == before


def test_force_accepts_a_huge_num_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[SweepSpec] = []

    def fake_sweep(spec: SweepSpec, storage: str, *args: object, **kwargs: object) -> Path:
        seen.append(spec)
        return Path(storage) / spec.name

    monkeypatch.setattr("ablate.sweep.run_sweep", fake_sweep)
    monkeypatch.setattr("ablate.commands.run.conclude", lambda *args, **kwargs: 0)
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    assert main(["run", str(spec), "--storage", str(tmp_path), "--set", "search.num_samples=1000000",
                 "--force"]) == 0
    assert seen[0].search.num_samples == 1_000_000


def test_force_accepts_repeats_beyond_the_limit_as_its_help_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """--help named only search.num_samples, though configurations x repeats above the limit is refused
    too and --force accepts it (search_spaces/README.md, `repeats`)."""
    from ablate.sweep_spec import MAX_SAMPLES

    monkeypatch.setattr("ablate.sweep.run_sweep", lambda spec, storage, *a, **k: Path(storage) / spec.name)
    monkeypatch.setattr("ablate.commands.run.conclude", lambda *args, **kwargs: 0)
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    huge = ["run", str(spec), "--storage", str(tmp_path), "--set", "search.num_samples=2",
            "--set", f"repeats={MAX_SAMPLES}"]
    assert main(huge) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main([*huge, "--force"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert f"accept more than {MAX_SAMPLES} trials (search.num_samples, or configurations x repeats" in said


def test_help_imports_no_training_or_report_libraries() -> None:
    """`ablate --help` and every `ablate COMMAND --help` answer without torch, Ray, pandas or
    matplotlib (seconds each): the commands import them when they run."""
    import subprocess
    import sys

    code = ("import sys; from ablate.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'timm', 'torchvision', 'ray', 'pandas', 'matplotlib', 'sklearn', 'optuna'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ctrl_c_before_the_trials_start_gives_the_resume_hint(ray_cluster: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the reference kNN (after the folder was made) printed only 'interrupted': the
    sweep folder it left had no word on how to continue."""
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ablate.sweep.record_reference_knn", interrupted)
    storage = tmp_path / "runs"
    assert main(["run", str(write_spec(tmp_path, OPTUNA_SPEC)), "--storage", str(storage),
                 "--address", ray_cluster]) == 130
    (sweep,) = storage.iterdir()
    err = capsys.readouterr().err
    assert f"0 of 4 trials finished; continue with `ablate resume {sweep}`" in err and "Traceback" not in err


def two_trial_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: str = "completed") -> Path:
    """A grid sweep of teacher_temp [0.02, 0.04], one record each (the second's ``status``); a start of
    Ray raises "Ray started" (a UserError: exit 2), so a test sees whether `ablate resume` would run."""
    from ablate.errors import UserError
    from tests.helpers import crafted_sweep, good_record

    def no_ray(*args: object, **kwargs: object) -> None:
        raise UserError("Ray started")

    monkeypatch.setattr("ablate.sweep.ray_session", no_ray)
    second = {**good_record("b"), "point": 1, "params": {"teacher_temp": 0.04}, "status": status}
    return crafted_sweep(tmp_path, [good_record("a"), second])


@pytest.mark.parametrize("status, retry, runs", [
    ("completed", [], False), ("oom", [], False), ("oom", ["--retry", "oom"], True),
    ("interrupted", [], True)])
def test_resume_of_a_sweep_whose_trials_all_ended_starts_no_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
        status: str, retry: list[str], runs: bool) -> None:
    """`ablate resume` of a sweep whose every planned trial had ended started Ray, waited for it, ran
    nothing and stopped it (about 10 s) before the summary, with no word of why. Now one line says
    so and the summary and report follow; a trial it would run (unfinished, or retried) still starts Ray."""
    sweep = two_trial_grid(tmp_path, monkeypatch, status)
    code = main(["resume", str(sweep), *retry])
    err = capsys.readouterr().err
    if runs:
        assert code == 2 and "Ray started" in err
    else:
        said = f"ablate: nothing to resume in {sweep}: all 2 trials have ended; its summary and report follow"
        assert said in err
        assert "Ray started" not in err and code == 0
        assert (sweep / "report" / "report.md").is_file()


@pytest.mark.parametrize("values, runs", [("[0.02, 0.04]", False), ("[0.02, 0.04, 0.06]", True)])
def test_resume_of_an_optuna_sweep_that_ran_every_configuration_of_its_space_starts_no_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, values: str,
        runs: bool) -> None:
    """num_samples 8 over a choice of two values: both ran, Optuna's other draws repeated them (not run
    again), and every `ablate resume` took the 2 records of 8 planned trials for a sweep to continue:
    it started Ray and ran nothing. A configuration still to draw (0.06) still starts Ray."""
    sweep = two_trial_grid(tmp_path, monkeypatch)
    spec = sweep / "spec.yaml"
    text = spec.read_text().replace("{algorithm: grid,", "{algorithm: optuna, sampler: random, "
                                                          "num_samples: 8,")
    spec.write_text(text.replace("values: [0.02, 0.04]", f"values: {values}"))
    code = main(["resume", str(sweep)])
    err = capsys.readouterr().err
    if runs:
        assert code == 2 and "Ray started" in err
    else:
        assert f"ablate: nothing to resume in {sweep}: all 2 trials have ended" in err
        assert "Ray started" not in err and code == 0


def test_a_damaged_record_beside_ended_trials_is_nothing_to_resume(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged record (a half-copied trials/x.json) beside a record of every planned trial: `ablate
    resume` took it for a trial to run (statuses.resumed), started Ray, ran nothing (no job reads a
    damaged record) and stopped it, with no word of why. An Optuna sweep runs a damaged record's repeat
    again, as one whose record is gone: there the damaged record is no trial that ended."""
    from ablate.folder import load_sweep_spec
    from ablate.sweep import nothing_to_resume

    sweep = two_trial_grid(tmp_path, monkeypatch)
    (sweep / "trials" / "c.json").write_text('{"trial_id": "c", "status": "compl')
    assert main(["resume", str(sweep)]) == 1  # the damaged record: exit 1, as at the end of a run
    err = capsys.readouterr().err
    assert f"nothing to resume in {sweep}: all 2 trials have ended" in err and "Ray started" not in err
    assert "1 trial record damaged" in err
    spec = load_sweep_spec(sweep)
    spec.search.algorithm, spec.search.num_samples = "optuna", 2  # 2 trials planned, 1 of them damaged
    (sweep / "trials" / "c.json").unlink()
    (sweep / "trials" / "b.json").write_text('{"trial_id": "b", "status": "compl')
    assert not nothing_to_resume(spec, sweep, (), None)


def test_resume_runs_a_value_its_spec_was_edited_to(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A grid's spec.yaml edited from values [0.02, 0.04] to [0.02, 0.06]: as many records as trials
    planned, so `ablate resume` said 'nothing to resume: all 2 trials have ended' and never ran 0.06
    (adding a value ran it). The plan is its points (ablate.records.unstarted), as the jobs are."""
    sweep = two_trial_grid(tmp_path, monkeypatch)
    spec = sweep / "spec.yaml"
    spec.write_text(spec.read_text().replace("values: [0.02, 0.04]", "values: [0.02, 0.06]"))
    assert main(["resume", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "Ray started" in err and "nothing to resume" not in err
    # its opening line, as `ablate run`'s: 0.06 starts; both records stay (0.04's stands for itself)
    assert f"ablate: sweep {sweep.name!r}: resuming 1 trial (2 ended, kept as they are); " in err


def test_resume_of_a_sweep_that_cannot_be_written_is_refused_before_the_data_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """As for `ablate run`: the write probe of the sweep folder came after the data checks."""
    from ablate.errors import UserError
    from tests.helpers import crafted_sweep, good_record

    def read_only(folder: Path, option: str) -> None:
        raise UserError(f"{option} {folder}: cannot write there (EROFS: Read-only file system)")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("data read before the sweep folder was checked")

    monkeypatch.setattr("ablate.sweep.check_writable", read_only)
    monkeypatch.setattr(SweepSpec, "check_inputs", never)
    sweep = crafted_sweep(tmp_path, [good_record("a")])  # the second point never started
    assert main(["resume", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"resume {sweep}: cannot write there (EROFS: Read-only file system)\n"), err


@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize("text", ["", "# name: temps\n# space: {}\n"])
def test_a_spec_or_config_file_without_keys_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, command: str, text: str) -> None:
    """An empty file (a save that failed, a template with every key commented out): `ablate train` trained
    the defaults unasked (8 epochs), and `ablate run` listed two errors ('name: required', 'space:
    missing') on two lines. Now one line says the file holds no keys, and nothing is written."""
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    tiny = [a for k, v in {**TINY_TRAINER, "epochs": 1}.items() for a in ("--set", f"{k}={v}")]  # were it run
    out = ["--storage", str(tmp_path / "runs")] if command == "run" else ["--out", str(tmp_path / "r"), *tiny]
    assert main([command, str(empty), *out]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"ablate {command}: error: {empty}: holds no keys (an empty "
                                               "file, or comments only); expected "), err
    assert sorted(tmp_path.iterdir()) == [empty]


def test_nothing_to_resume_of_a_one_trial_sweep_reads_as_english(tmp_path: Path) -> None:
    """It said "all 1 trial have ended"."""
    import io

    from ablate.sweep import nothing_to_resume
    from ablate.sweep_spec import load_spec
    from sweep_format.files import write_json
    from tests.helpers import good_record

    spec = load_spec(write_spec(tmp_path, f"""
name: one
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: choice, values: [0.04]}}
search: {{algorithm: grid}}
"""))
    sweep = tmp_path / "runs" / "one"
    (sweep / "trials").mkdir(parents=True)
    record = {**good_record("a"), "point": 0, "params": {"teacher_temp": 0.04}}
    write_json(sweep / "trials" / "a.json", record)
    said = io.StringIO()
    assert nothing_to_resume(spec, sweep, (), said)
    assert said.getvalue() == (f"ablate: nothing to resume in {sweep}: its one trial has ended; its summary "
                               "and report follow\n")
