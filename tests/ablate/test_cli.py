"""The ``ablate`` command line itself: how it answers arguments no command takes."""

from __future__ import annotations

import pytest

from ablate.cli import main

RUN_HELP, TOP_HELP = "(`ablate run --help` lists the options)", "(`ablate --help` lists the commands)"


@pytest.mark.parametrize("argv, error", [
    (["run", "spec.yaml", "--stoarge", "x"], "ablate run: error: unrecognized arguments: --stoarge x "
     "(did you mean --storage? `ablate run --help` lists the options)"),
    (["resume", "runs/temps", "--retyr", "oom"], "ablate resume: error: unrecognized arguments: --retyr oom "
     "(did you mean --retry? `ablate resume --help` lists the options)"),
    (["ls", "runs", "--verbose"],
     "ablate ls: error: unrecognized arguments: --verbose (--verbose is an option of `ablate run`, "
     "`ablate resume`; `ablate ls --help` lists the options)"),
    (["report", "runs/temps", "runs/other"],
     "ablate report: error: unrecognized arguments: runs/other (`ablate report --help` lists the options)"),
    # an option's own name after `--` is a positional it does not take: no 'did you mean --set?' of itself
    (["run", "spec.yaml", "--", "--set"], f"ablate run: error: unrecognized arguments: --set {RUN_HELP}"),
    # written before the command, an option is the top parser's: it was `ablate run`'s error, with a
    # hint of run's --verbose
    (["--bogus", "run", "spec.yaml", "--stoarge", "x"],
     f"ablate: error: unrecognized arguments: --bogus {TOP_HELP}"),
    (["--verison", "run", "spec.yaml"], "ablate: error: unrecognized arguments: --verison "
     "(did you mean --version? `ablate --help` lists the commands)"),
])
def test_an_argument_a_command_does_not_take_is_named_by_that_command(
        capsys: pytest.CaptureFixture, argv: list[str], error: str) -> None:
    """A mistyped option of a command was refused by the top parser: `usage: ablate [-h] [--version]
    COMMAND ...` and `ablate: error: unrecognized arguments`, which named neither the command nor its
    options."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == error + "\n"


@pytest.mark.parametrize("argv, error", [
    (["run", "spec.yaml", "--num-cpus", "0"],
     f"ablate run: error: argument --num-cpus: 0: expected a whole number >= 1 {RUN_HELP}"),
    # resume's option given to run: named as another command's, not 'did you mean --set?'
    (["run", "spec.yaml", "--retry", "foo"],
     "ablate run: error: unrecognized arguments: --retry foo (--retry is an option of `ablate resume`; "
     "`ablate run --help` lists the options)"),
    (["resume", "runs/temps", "--out", "x", "--retyr=oom"], "ablate resume: error: unrecognized arguments: "
     "--out x --retyr=oom (--out is an option of `ablate train`, `ablate compare`, `ablate attention`; "
     "did you mean --retry? `ablate resume --help` lists the options)"),
    (["run"], f"ablate run: error: the following arguments are required: spec {RUN_HELP}"),
    (["run", "spec.yaml", "--logger", "tensorbord"], "ablate run: error: argument --logger: invalid choice: "
     f"'tensorbord' (choose from 'tensorboard', 'mlflow', 'wandb') {RUN_HELP}"),
    (["train", "--out"], "ablate train: error: argument --out: expected one argument "
     "(`ablate train --help` lists the options)"),
    (["rn"], "ablate: error: argument COMMAND: invalid choice: 'rn' (choose from 'train', 'run', 'resume', "
     "'report', 'compare', 'ls', 'attention') (did you mean run? `ablate --help` lists the commands)"),
    (["frobnicate"], "ablate: error: argument COMMAND: invalid choice: 'frobnicate' (choose from 'train', "
     f"'run', 'resume', 'report', 'compare', 'ls', 'attention') {TOP_HELP}"),
    # a prefix was read as the option (--storage x): one more option (--storage-class) would have
    # made it ambiguous, and an old script's command line an error
    (["run", "spec.yaml", "--storag", "x"], "ablate run: error: unrecognized arguments: --storag x "
     "(did you mean --storage? `ablate run --help` lists the options)"),
    (["run", "spec.yaml", "--storag=x"], "ablate run: error: unrecognized arguments: --storag=x "
     "(did you mean --storage? `ablate run --help` lists the options)"),
    (["--vers"], "ablate: error: unrecognized arguments: --vers (did you mean --version? `ablate --help` "
     "lists the commands)"),
])
def test_every_refusal_of_argparse_is_one_line(capsys: pytest.CaptureFixture, argv: list[str],
                                               error: str) -> None:
    """argparse printed its usage (four lines for `ablate run`) above the error of a bad value, a missing
    argument or an unknown command, where every other refusal of ablate is one line; it took
    `--storag x` as `--storage x`."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == error + "\n"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"], ["train", "-h"],
                                  ["attention", "--help"]])
def test_help_and_version_still_answer_and_exit_0(capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 0 and out.startswith(("usage: ablate", "ablate ")) and not err


@pytest.mark.parametrize("command", ["train", "run", "resume", "report", "compare", "ls", "attention"])
def test_every_commands_help_ends_with_an_example_that_parses(capsys: pytest.CaptureFixture,
                                                             command: str) -> None:
    """`ablate report/compare/ls/attention/train --help` showed no example (run and resume did): a new user
    had to find one in the README. Each example is a command the parser takes as written."""
    import shlex

    from ablate.cli import COMMANDS, build_parser

    assert command in COMMANDS
    with pytest.raises(SystemExit):
        main([command, "--help"])
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(("example: ", "examples:")))
    paragraph = lines[at:lines.index("", at) if "" in lines[at:] else len(lines)]
    examples = [" ".join(paragraph).removeprefix("example: ")] if lines[at] != "examples:" else \
        [line for line in paragraph if line.startswith("  ablate ")]
    assert examples, lines[at:]
    for example in examples:
        words = shlex.split(example.split("   (", 1)[0])
        words = words[:next((i for i, w in enumerate(words) if w.startswith("(")), len(words))]
        assert words[:2] == ["ablate", command], example
        assert build_parser().parse_args(words[1:]).command == command


def test_train_help_says_how_an_image_folder_is_laid_out(capsys: pytest.CaptureFixture) -> None:
    """`data_path` read "Folder of torchvision data / imagefolder.": a user with their own images learnt
    the train/ and val/ class folders only from the README."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out.splitlines()
    (line,) = [line for line in out if line.lstrip().startswith("data_path ")]
    assert "train/<class>/" in line and "val/<class>/" in line and "./data" in line


def test_python_m_ablate_imports_nothing_from_the_folder_it_runs_in(tmp_path) -> None:
    """`python -m` puts the working folder first on sys.path: `python -m ablate ls .` in a folder
    someone else wrote ran its typing.py (ablate/__init__.py imported typing), yaml.py, torch.py, ..."""
    import subprocess
    import sys

    for name in ("typing", "yaml", "torch", "pandas", "pathlib"):
        (tmp_path / f"{name}.py").write_text("print('RAN FROM THE FOLDER'); raise SystemExit(9)\n")
    done = subprocess.run([sys.executable, "-m", "ablate", "ls", "."], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert "RAN FROM THE FOLDER" not in done.stdout + done.stderr
    assert done.returncode == 2 and "ablate ls: error: .: no sweeps here" in done.stderr


def test_a_ctrl_c_that_lands_in_an_import_is_an_interrupt_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Python 3.11 re-raises a Ctrl-C that lands in a class body being imported (``from ray import
    tune`` as a sweep starts) as ``RuntimeError: Error calling __set_name__``: `ablate run` ended in
    that traceback, exit 1. Any other RuntimeError is not an interrupt."""
    import ablate.commands.ls as ls

    def imported(error: BaseException) -> None:
        try:
            raise error
        except BaseException as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance 'x' in 'Y'") from exc

    monkeypatch.setattr(ls, "main", lambda args: imported(KeyboardInterrupt()))
    assert main(["ls", "runs"]) == 130
    assert capsys.readouterr().err == "ablate ls: interrupted\n"
    monkeypatch.setattr(ls, "main", lambda args: imported(ValueError("a bug")))
    with pytest.raises(RuntimeError):
        main(["ls", "runs"])


NO_USER = "~no-such-user-of-ablate"  # a shell leaves it as written: no user of that name


@pytest.mark.parametrize("argv, error", [
    (["run", "{spec}", "--storage", f"{NO_USER}/runs", "--set", "trainer.batch_size=100000"],
     "batch_size=100000 x grad_accum_steps=1: larger than the"),  # refused before Ray, running or not
    (["resume", f"{NO_USER}/runs/tiny"], f"{{cwd}}/{NO_USER}/runs/tiny: no such folder"),
    (["compare", f"{NO_USER}/a", f"{NO_USER}/b", "--out", f"{NO_USER}/compare"],
     f"{NO_USER}/a: no such file or folder"),
])
def test_a_tilde_of_no_user_is_a_folder_name_as_in_a_shell(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, argv: list[str],
        error: str) -> None:
    """`--storage ~runs` (meant: ~/runs) ended in a traceback, 'RuntimeError: Could not determine home
    directory.' (pathlib's expanduser), as did `ablate resume ~x/...` and `ablate compare`'s sources and
    --out; a shell leaves `~runs` as it is, a folder of that name (sweep_format.files.user_path)."""
    from tests.helpers import OPTUNA_SPEC, write_spec

    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    assert main([arg.format(spec=spec) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and error.format(cwd=tmp_path) in err, err
    assert not (tmp_path / NO_USER).exists()


def test_resume_help_names_its_own_folder_for_rays_log(capsys: pytest.CaptureFixture) -> None:
    """`ablate resume --help` said Ray's lines go to STORAGE/NAME/ray.log, run's words: resume is given
    the sweep folder itself."""
    with pytest.raises(SystemExit):
        main(["resume", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: they go to SWEEP/ray.log)" in help_text and "STORAGE/NAME" not in help_text
    assert help_text.startswith("usage: ablate resume [-h] [--retry STATUS]")
    assert "SWEEP the sweep folder" in help_text


@pytest.mark.parametrize("argv, key, expected", [
    (["run", "spec.yaml", "--storage=~/runs"], "storage", "runs"),
    (["train", "--out=~/run"], "out", "run"),
    (["compare", "a", "b", "--out=~/compare"], "out", "compare"),
    (["attention", "run", "--out=~/a.png"], "out", "a.png"),
    (["attention", "run", "--image=~/x.png", "--out", "a.png"], "image_files", ["x.png"])])
def test_a_path_option_after_equals_has_its_tilde_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                                           argv: list[str], key: str, expected) -> None:
    """A shell expands `~` only at the start of a word: `--out=~/run` reached ablate as written, and
    `ablate train` and `ablate attention` wrote into a folder named `~` in the current one; `ablate
    compare` checked ~/compare and wrote ./~/compare (ablate run's --storage alone was expanded)."""
    from ablate.cli import build_parser

    monkeypatch.setenv("HOME", str(tmp_path))
    value = getattr(build_parser().parse_args(argv), key)
    assert value == ([str(tmp_path / e) for e in expected] if isinstance(expected, list)
                     else str(tmp_path / expected))


def test_a_comparison_is_written_where_its_out_was_checked(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """`ablate.compare(..., out="~/compare")` (or --out=~/compare before the option was expanded) checked
    and made ~/compare, and wrote every file into ./~/compare, leaving ~/compare empty."""
    import ablate
    from tests.helpers import crafted_sweep, good_record

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    second = {**good_record("b"), "point": 1, "params": {"teacher_temp": 0.04}}
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    sweeps = [crafted_sweep(tmp_path / name, [good_record("a"), second]) for name in ("one", "two")]
    out = ablate.compare(*sweeps, out="~/compare")
    assert out == home / "compare" and (home / "compare" / "report.md").is_file()
    assert not (cwd / "~").exists()


@pytest.mark.parametrize("command, typed, meant", [
    # typos: a letter missing, doubled, wrong or two swapped, a prefix (argparse no longer takes one)
    ("run", "--storag", "--storage"), ("run", "--adress", "--address"), ("train", "--resum", "--resume"),
    ("run", "--vebrose", "--verbose"), ("run", "--stroage", "--storage"), ("run", "--froce", "--force"),
    ("run", "--nmu-cpus", "--num-cpus"), ("run", "--num_cpus", "--num-cpus"), ("run", "--seet", "--set"),
    ("run", "--conect-timeout", "--connect-timeout"), ("train", "--wokers", "--workers"),
    ("train", "--no-progres", "--no-progress"), ("attention", "--treshold", "--threshold"),
    ("attention", "--imgae", "--image"), ("compare", "--ot", "--out"), ("resume", "--retyr", "--retry"),
    ("run", "--stor", "--storage"), ("attention", "--dev", "--device"), ("run", "-verbose", "--verbose"),
    # words of another meaning: no suggestion
    ("run", "--bogus", None), ("run", "--foo", None), ("run", "--quiet", None), ("run", "--dry-run", None),
    ("run", "--debug", None), ("run", "--seed", None), ("run", "--output", None), ("run", "--name", None),
    ("run", "--epochs", None), ("run", "--config", None), ("run", "--tag", None), ("run", "--save", None),
    ("run", "--timeout", None), ("run", "--gpus", None), ("train", "--lr", None), ("train", "--seed", None),
    ("train", "--config", None), ("attention", "--version", None), ("resume", "--rerun", None),
])
def test_an_unknown_option_names_only_the_option_it_is_a_typo_of(
        capsys: pytest.CaptureFixture, command: str, typed: str, meant: str | None) -> None:
    """The suggestion compared names with their dashes at difflib's 0.6: `ablate run --bogus` said 'did
    you mean --verbose?' (the shared -- lifted every ratio)."""
    out = ["--out", "o"] if command in ("train", "compare", "attention") else []  # required: refused first
    with pytest.raises(SystemExit) as exit_:
        main([command, "x", *out, typed])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"ablate {command}: error: unrecognized arguments: {typed}"), err
    assert f"{typed} ({f'did you mean {meant}? ' if meant else ''}`ablate {command} --help`" in err, err


def test_ctrl_c_as_ablate_starts_is_one_line(capsys: pytest.CaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C in ablate's first quarter second (its imports, its parser: before a command ran) printed
    a 10-24 line KeyboardInterrupt traceback, and Python's exit by SIGINT; now one line, exit 130. The
    command line imports no pydantic before main runs (it was 0.15 s of imports nothing guarded)."""
    import subprocess
    import sys

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ablate.cli.build_parser", interrupted)
    try:
        assert main(["ls", "runs"]) == 130
    except KeyboardInterrupt:  # not pytest's own: the one main let through
        pytest.fail("the interrupt escaped main")
    assert capsys.readouterr().err == "ablate: interrupted\n"
    heavy = subprocess.run([sys.executable, "-c", "import sys, ablate.cli; "
                            "print(sorted({'pydantic', 'torch', 'pandas', 'ray'} & set(sys.modules)))"],
                           capture_output=True, text=True, timeout=60)
    assert heavy.stdout == "[]\n", heavy.stdout + heavy.stderr


@pytest.mark.parametrize("argv, named, meant", [
    (["train", "--otu", "x"], "--otu", "--out"), (["compare", "a", "b", "--oput=x"], "--oput", "--out"),
    (["attention", "--outt", "x.png", "runs/a"], "--outt", "--out"),
    (["compare", "a", "b", "--bogus"], "--bogus", None),
    (["train", "--otu", "x", "--bogus"], "--otu --bogus", "--out"),
])
def test_a_typo_of_a_required_option_is_named_not_the_option_it_left_missing(
        capsys: pytest.CaptureFixture, argv: list[str], named: str, meant: str | None) -> None:
    """`ablate train --otu x` said only 'the following arguments are required: --out': argparse checks the
    required options before it looks at the arguments it does not know, so the typo went unnamed."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"ablate {argv[0]}: error: unrecognized arguments: {named} ("), err
    assert (f"did you mean {meant}? " in err) == (meant is not None), err


def test_a_missing_required_option_without_a_typo_is_named(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["compare", "a", "-1"])  # a negative number is a value, not an unknown option
    err = capsys.readouterr().err
    assert err.startswith("ablate compare: error: the following arguments are required: --out"), err


@pytest.mark.parametrize("where", ["command", "start"])
def test_an_interrupt_gives_back_a_logging_lock_it_left_held(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str],
                                                              where: str) -> None:
    """A Ctrl-C between logging's lock acquire and its `try` (logging.getLogger, as imports and
    ray.init run) leaves the lock held by the main thread; at the exit, Ray's handler stops threads
    that log, and they waited for ever. Whichever level catches the interrupt gives it back."""
    import logging

    import ablate.cli as cli
    import ablate.commands.ls as ls

    def leave_it_held(*args: object) -> None:
        logging._lock.acquire()  # type: ignore[attr-defined]  # as the interrupt leaves it
        raise KeyboardInterrupt

    if where == "command":
        monkeypatch.setattr(ls, "main", leave_it_held)
    else:
        monkeypatch.setattr(cli, "dispatch", leave_it_held)
    try:
        assert main(["ls", "runs"]) == 130
        assert not logging._lock._is_owned()  # type: ignore[attr-defined]
    finally:
        while logging._lock._is_owned():  # type: ignore[attr-defined]
            logging._lock.release()  # type: ignore[attr-defined]
    assert capsys.readouterr().err.endswith("interrupted\n")
