"""A sweep folder someone else wrote (downloaded, shared): ablate writes and deletes only inside it,
and prints and reports its texts as text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ablate.cli import main
from sweep_format.files import write_json
from sweep_format.layout import trial_folder
from sweep_format.records import read_records, record_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", ["report", "driver.lock", "history.jsonl", "tune/trial_x", "trials/x.json"])
def test_a_symbolic_link_in_the_folder_is_refused_before_anything_is_written(
        sweep_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture, entry: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("precious\n")
    link = sweep_copy / entry
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(outside if entry in ("report", "tune/trial_x") else outside / "victim.txt")
    for command in (["report", str(sweep_copy)], ["resume", str(sweep_copy), "--num-cpus", "1"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].endswith(
            f": {link}: a symbolic link (to {link.readlink()}) inside {sweep_copy}; ablate writes and "
            "deletes files only inside its own folders: replace the link with a copy of what it points "
            "to"), err
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_text() == "precious\n"


@pytest.mark.parametrize("entry", ["report", "report/plots", "trials", "tune"])
def test_a_file_where_the_sweep_keeps_a_folder_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, entry: str) -> None:
    """A file named report (or report/plots) ended `ablate report` in a FileExistsError traceback; a
    file named trials read as 'no trial records yet'."""
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    file = sweep / entry
    if file.is_dir():
        shutil.rmtree(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("someone's notes\n")
    for command in (["report", str(sweep)], ["resume", str(sweep), "--num-cpus", "1"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].endswith(
            f": {file}: a file, where the sweep folder {sweep} keeps its folder {entry}/ (ablate writes "
            "there); move or rename the file"), err
    assert file.read_text() == "someone's notes\n"
    assert main(["ls", str(sweep.parent)]) == 0  # ls reads the spec and the records only (layout.READ)
    assert (f"(unreadable: {file}: a file" in capsys.readouterr().out) == (entry == "trials")
    if entry == "trials":  # a FIFO there (tar keeps them) was called 'a file'
        file.unlink()
        os.mkfifo(file)
        assert main(["report", str(sweep)]) == 2
        assert capsys.readouterr().err.strip().endswith(
            f": {file}: not a regular file (a FIFO, socket or device), where the sweep folder {sweep} keeps "
            "its folder trials/ (ablate writes there); move or rename it")


@pytest.mark.parametrize("entry", ["report/report.md", "report/trials.parquet", "driver.lock",
                                   "history.jsonl"])
def test_a_folder_where_the_sweep_keeps_a_file_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, entry: str) -> None:
    """A folder named report/report.md ended `ablate report` in an IsADirectoryError traceback."""
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    (sweep / entry / "kept").mkdir(parents=True)
    for command in (["report", str(sweep)], ["resume", str(sweep), "--num-cpus", "1"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].endswith(
            f": {sweep / entry}: a folder, where the sweep folder {sweep} keeps its file {entry} (ablate "
            "writes it); move or rename the folder"), err
    assert (sweep / entry / "kept").is_dir()


def test_a_record_names_no_folder_through_a_link_and_writes_no_file_outside(sweep_copy: Path,
                                                                           tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (sweep_copy / "tune" / "old").symlink_to(tmp_path / "other")
    assert trial_folder(sweep_copy, "tune/old") is None  # never read, never deleted
    # a record whose trial_id is a path: damaged (its id is not its file's name), never written back
    rec = json.loads(next((sweep_copy / "trials").glob("*.json")).read_text())
    write_json(sweep_copy / "trials" / "zz.json", {**rec, "trial_id": "../../outside/pwned"})
    (damaged,) = [r for r in read_records(sweep_copy) if r["trial_id"] == "zz"]
    assert damaged["status"] == "damaged" and "is not its file's name" in damaged["reason"]
    for bad in ("../../outside/pwned", "/tmp/x", ".hidden", ""):
        with pytest.raises(ValueError, match="is not a file name"):
            record_path(sweep_copy, bad)


def test_texts_from_the_folder_stay_text(sweep_copy: Path, capsys: pytest.CaptureFixture) -> None:
    """A description with terminal escapes, an HTML tag and a link; a parameter named like a path."""
    spec = yaml.safe_load((sweep_copy / "spec.yaml").read_text())
    spec["description"] = "\x1b]0;TITLE\x07\x1b[2J<img src=x onerror=alert(1)> [click](javascript:alert(1))"
    evil = "x/../../../../outside/pwned"
    spec["space"][evil] = spec["space"].pop("teacher_temp")
    (sweep_copy / "spec.yaml").write_text(yaml.safe_dump(spec))
    for file in (sweep_copy / "trials").glob("*.json"):
        rec = json.loads(file.read_text())
        rec["params"][evil] = rec["params"].pop("teacher_temp")
        rec["reason"] = "\x1b[31mred\x1b[0m"
        file.write_text(json.dumps(rec))
    assert main(["report", str(sweep_copy)]) == 0
    assert not (sweep_copy.parent / "outside").exists() and not (sweep_copy / "outside").exists()
    assert (sweep_copy / "report" / "plots" / "effect_x_____________outside_pwned.png").is_file()
    md = (sweep_copy / "report" / "report.md").read_text()
    assert "<img" not in md and "](javascript" not in md and "\x1b" not in md
    assert "&lt;img src=x onerror=alert(1)> [click]\\(javascript:alert(1))" in md
    capsys.readouterr()
    assert main(["ls", str(sweep_copy.parent)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "]0;TITLE" in out


def test_a_record_saved_with_a_byte_order_mark_still_reads(sweep_copy: Path) -> None:
    """A record hand-edited on Windows (UTF-8 with a BOM) read as before the control-character check."""
    file = next((sweep_copy / "trials").glob("*.json"))
    file.write_bytes(b"\xef\xbb\xbf" + file.read_bytes())
    (rec,) = [r for r in read_records(sweep_copy) if r["trial_id"] == file.stem]
    assert rec["status"] == "completed"


def test_text_nested_too_deep_to_parse_is_named_not_a_traceback(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """A record, reference_knn.json, history.jsonl, driver.lock or checkpoint file of '[[[[...' (or a
    spec.yaml of it) ended ablate ls, report and resume in a RecursionError traceback."""
    import os

    from ablate.lock import holder
    from tests.helpers import crafted_sweep, good_record
    from trainables.trial import DamagedFileError, read_json

    deep = "[" * 100_000
    sweep = crafted_sweep(tmp_path, [good_record("a")])
    for name in ("trials/b.json", "reference_knn.json", "history.jsonl", "tune/trial_a/knn_carry.json"):
        (sweep / name).parent.mkdir(parents=True, exist_ok=True)
        (sweep / name).write_text(deep)
    assert main(["ls", str(sweep.parent)]) == 0
    assert "1 completed, 1 damaged" in capsys.readouterr().out
    assert main(["report", str(sweep)]) == 0
    assert "trials/b.json: not readable as JSON (ValueError: JSON nested too deeply to read)" in \
        (sweep / "report" / "report.md").read_text()
    with pytest.raises(DamagedFileError, match="knn_carry.json: not a readable kNN carry file"):
        read_json(sweep / "tune" / "trial_a" / "knn_carry.json", "kNN carry file")
    fd = os.open(sweep / "driver.lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, deep.encode())
    assert holder(fd) == {"host": "?", "pid": "?", "command": "?", "since": None}
    os.close(fd)
    (sweep / "spec.yaml").write_text("name: crafted\nspace: " + deep)
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ablate report: error: {sweep / 'spec.yaml'}: nests collections deeper than a YAML "
                   "reader can follow; a spec is a few levels deep; expected the sweep spec that `ablate "
                   "run` writes; restore it from a copy of the sweep folder"]



def not_unicode_sweeps(tmp_path: Path) -> tuple[Path, Path]:
    """Two copies of a crafted sweep: one in a folder named in Latin-1 bytes (b"caf\xe9", as Python keeps
    it), one named with a terminal escape; \udce9 escapes in their spec's description and a reason."""
    from tests.helpers import crafted_sweep, good_record

    (tmp_path / "spec").mkdir()  # where crafted_sweep writes the spec file: not a folder above the output
    sweep = crafted_sweep(tmp_path / "spec", [good_record("a"), {**good_record("b"), "reason": "why \udce9"}])
    spec = (sweep / "spec.yaml").read_text()
    (sweep / "spec.yaml").write_text(spec.replace("name: crafted", 'name: crafted\ndescription: "d \\ud800"'))
    latin1, escape = sweep.parent / "caf\udce9", sweep.parent / "\x1b[31mred"
    shutil.copytree(sweep, escape)
    sweep.rename(latin1)
    return latin1, escape


def test_text_that_is_not_unicode_is_listed_and_reported(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """Arrow holds no lone surrogate, so ablate ls (of the whole storage) and ablate report ended in a
    UnicodeEncodeError traceback; a folder named with a terminal escape was printed as it is."""
    latin1, _ = not_unicode_sweeps(tmp_path)
    assert main(["ls", str(latin1.parent)]) == 0
    out = capsys.readouterr().out
    assert "caf\\xe9 (name: crafted)" in out and "d \\ud800" in out
    assert "\x1b" not in out and "[31mred (name: crafted)" in out
    assert main(["report", str(latin1)]) == 0
    assert "d \\ud800" in (latin1 / "report" / "report.md").read_text()


def test_text_that_is_not_unicode_is_compared(tmp_path: Path) -> None:
    """The comparison's table of sources held the folders' paths as they are: a traceback for b"caf\xe9",
    a terminal escape written into report.md."""
    latin1, escape = not_unicode_sweeps(tmp_path)
    out_dir = tmp_path / "cmp\udce9"
    assert main(["compare", str(latin1), str(escape), "--out", str(out_dir)]) == 0
    md = (out_dir / "report.md").read_text()
    assert "caf\\xe9" in md and "[31mred" in md and "\x1b" not in md


def test_names_and_link_targets_from_the_folder_reach_the_terminal_as_text(tmp_path: Path) -> None:
    """The sweeps a storage folder holds (in `not a sweep folder ...; it holds the sweeps ...`) and where a
    link in a sweep folder points were printed as they are: an escape in a folder's name or a link's
    target drove the terminal."""
    from sweep_format.files import linked
    from sweep_format.layout import not_a_sweep

    sweep = tmp_path / "\x1b]0;owned\x07x"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "spec.yaml").write_text("name: x\n")
    (sweep / "report").symlink_to("/tmp/\x1b[2J")
    said = not_a_sweep(tmp_path)
    assert "it holds the sweeps ]0;ownedx: pass one of them" in said and "\x1b" not in said
    said = linked(sweep, ["report"])
    assert "a symbolic link (to /tmp/[2J)" in said and "\x1b" not in said and "\x07" not in said


def test_a_matplotlibrc_in_the_folder_runs_no_program_in_the_report(tmp_path: Path) -> None:
    """matplotlib reads ./matplotlibrc first: `ablate report .` in a sweep folder holding one with
    `text.usetex: true` ran LaTeX on every label, with the file's preamble (which can read any file of
    the machine into the figures), and ended in a RuntimeError traceback without LaTeX. The report's
    figures are drawn with matplotlib's own defaults."""
    from tests.helpers import crafted_sweep, good_record

    records = [{**good_record(f"t{i}"), "point": i, "params": {"teacher_temp": t}}
               for i, t in enumerate([0.02, 0.04])]
    sweep = crafted_sweep(tmp_path, records)
    (sweep / "matplotlibrc").write_text("text.usetex: True\ntext.latex.preamble: \\input{/etc/hostname}\n")
    marker = tmp_path / "latex-ran"
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("latex", "dvipng", "kpsewhich"):  # stand-ins that say when matplotlib runs them
        (tools / tool).write_text(f'#!/bin/sh\necho "$@" >> "{marker}"\nexit 1\n')
        (tools / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "ablate", "report", "."], cwd=sweep, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not marker.exists()
    assert (sweep / "report" / "plots" / "effect_teacher_temp.png").is_file()


def test_an_error_quoting_the_folder_reaches_the_terminal_as_text(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """`ablate resume` of a spec.yaml whose space key holds a terminal escape printed the key, as the
    spec's error names it, escape and all: every one-line error goes out through printable."""
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    spec = yaml.safe_load((sweep / "spec.yaml").read_text())
    spec["space"] = {"bogus\x1b]0;owned\x07": {"type": "choice", "values": [1]}}
    (sweep / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["resume", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "ablate resume: error: " in err and "space.bogus]0;owned: " in err
    assert "is not a trainer key" in err
    assert "\x1b" not in err and "\x07" not in err


@pytest.mark.parametrize("value", ["'abc'", "true", "[1]", "Infinity", "NaN", "1e999"])
def test_a_reference_value_that_is_no_number_is_left_out(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         value: str) -> None:
    """A reference_knn.json edited or damaged elsewhere: a text made the report say the sweep 'ranks by
    another metric' (it ranks by kNN top-1), true was printed as 'untrained network 1.00 %', infinity
    marked every configuration as not beating raw pixels, and each went into trials.parquet's metadata,
    which `ablate compare` then refused. Such a value is left out, as a missing file is."""
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    (sweep / "reference_knn.json").write_text(
        f'{{"pixel_knn_top1": {value.replace(chr(39), chr(34))}, "untrained_knn_top1": 29.5}}')
    assert main(["report", str(sweep)]) == 0
    md = (sweep / "report" / "report.md").read_text()
    assert "Reference kNN top-1 of the dataset: **raw pixels –**, **untrained network 29.50 %**" in md
    assert "ranks by another metric" not in md
    (tmp_path / "other").mkdir()
    other = crafted_sweep(tmp_path / "other", [good_record("b")])
    assert main(["compare", str(sweep / "report" / "trials.parquet"), str(other), "--out",
                 str(tmp_path / "cmp")]) == 0
    capsys.readouterr()


def test_a_fifo_in_the_folder_is_named_not_waited_on(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A folder unpacked from an archive may hold a FIFO (tar keeps them). A FIFO named trials/b.json made
    ablate ls, report and resume wait for a writer for ever, as did one named driver.lock (ls, report)
    or reference_knn.json (report). Now the record is damaged ('not a regular file'), and a FIFO where
    the sweep keeps a file is refused in one line by report and resume, read by nothing; ls, which writes
    nothing there, lists the sweep without a wait. (The alarm only turns a hang into a failure.)"""
    import signal

    from tests.helpers import crafted_sweep, good_record

    class Hung(BaseException):  # no OSError (TimeoutError is one), which the readers take as unreadable
        pass

    def hung(*_: object) -> None:
        raise Hung("waited on a FIFO")

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    os.mkfifo(sweep / "trials" / "b.json")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        assert main(["ls", str(sweep.parent)]) == 0
        assert "1 completed, 1 damaged" in capsys.readouterr().out
        assert main(["report", str(sweep)]) == 0
        assert ("trials/b.json: not a regular file (a FIFO, socket or device); a record is a JSON file"
                in (sweep / "report" / "report.md").read_text())
        for name in ("driver.lock", "reference_knn.json"):
            os.mkfifo(sweep / name)
            assert main(["ls", str(sweep.parent)]) == 0  # ls only reads: each is read without a wait
            assert "  1 completed, 1 damaged  " in capsys.readouterr().out
            assert main(["report", str(sweep)]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert err == [f"ablate report: error: {sweep / name}: a FIFO, socket or device, where the sweep "
                           f"folder {sweep} keeps its file {name} (ablate reads and writes it); move or "
                           "rename it"]
            (sweep / name).unlink()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["fifo", "folder", "dangling link"])
def test_a_spec_yaml_that_is_no_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              kind: str) -> None:
    """A FIFO (tar keeps them), a folder or a link to nothing named spec.yaml beside trials/ read 'not a
    sweep folder, no spec.yaml', which it has."""
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    spec = sweep / "spec.yaml"
    spec.unlink()
    make = {"fifo": os.mkfifo, "folder": os.mkdir, "dangling link": lambda p: p.symlink_to(tmp_path / "x")}
    make[kind](spec)
    words = {"fifo": "not a regular file (a FIFO, socket or device)", "folder": "a folder",
             "dangling link": "a link to nothing"}[kind]
    assert main(["report", str(sweep)]) == 2
    assert capsys.readouterr().err.startswith(
        f"ablate report: error: {spec}: {words}, where a sweep folder keeps the spec it ran as a YAML file")
    # ablate ls of the folder beside it said "no sweeps here", leaving the sweep out in silence
    (tmp_path / "runs" / "whole").mkdir()
    shutil.copytree(sweep / "trials", tmp_path / "runs" / "whole" / "trials")
    (tmp_path / "again").mkdir()
    shutil.copy(crafted_sweep(tmp_path / "again", []) / "spec.yaml", tmp_path / "runs" / "whole")
    assert main(["ls", str(sweep.parent)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["crafted", "whole"]
    assert f"(unreadable: {spec}: {words}, where a sweep folder keeps the spec" in rows[0]
