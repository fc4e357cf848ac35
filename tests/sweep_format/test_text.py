"""sweep_format.text: commands ablate tells the user to run name paths as a shell reads them back."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ablate.cli import main


def pasted(line: str) -> list[str]:
    """The words of the last `ablate ...` command a line names, as a shell splits it when pasted."""
    found = re.findall(r"`(ablate [^`]*)`|continue with: (ablate .*)$", line)
    assert found, line
    return shlex.split("".join(found[-1]))


def test_a_command_to_run_names_a_path_with_spaces_as_one_word(tmp_path: Path, capsys: pytest.CaptureFixture):
    """'continue with `ablate resume /home/me/my runs/temps`' gave resume two folders when pasted (and
    'ablate train --out my run --resume' a stray argument): a path with a space, a quote or a `$` is now
    quoted as the shell reads it back."""
    from ablate.commands.train import interrupted
    from ablate.lock import SweepLock
    from ablate.summary import resume_hint
    from tests.helpers import crafted_sweep, good_record

    root = tmp_path / "my runs é $HOME 'q'"
    root.mkdir()
    sweep = crafted_sweep(root, [good_record("a")])
    assert pasted(resume_hint(sweep, 0, 2)) == ["ablate", "resume", str(sweep)]
    assert pasted(resume_hint(sweep, 2, 2)) == ["ablate", "report", str(sweep)]
    with SweepLock(sweep, "run"):  # a second driver is refused, naming the command for later
        assert main(["resume", str(sweep)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and pasted(err[0]) == ["ablate", "resume", str(sweep)], err
    (root / "checkpoint.pt").write_bytes(b"")
    assert interrupted(root, 2, KeyboardInterrupt(), 1, 2) == 130
    resumed = ["ablate", "train", "--out", str(root), "--resume", "--workers", "2"]
    assert pasted(capsys.readouterr().err) == resumed


def test_a_name_in_another_case_is_the_one_suggested(tmp_path: Path) -> None:
    """`mode: MAX` and `scheduler: {type: ASHA}` were refused with 'allowed: max, min' and no "did you
    mean": difflib's ratio of 'MAX' to 'max' is 0."""
    from ablate.sweep_spec import SpecError, load_spec
    from sweep_format.text import did_you_mean

    assert did_you_mean("MAX", ["max", "min"]) == "max"
    assert did_you_mean("Teacher_Temp", ["teacher_temp", "student_temp"]) == "teacher_temp"
    assert did_you_mean("knn_top", ["knn_top1", "knn_top5"]) == "knn_top1, knn_top5"  # as before
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\nspace: {teacher_temp: {type: float, low: 0.02, high: 0.08}}\n"
                    "metric: knn_top1\nmode: MAX\nscheduler: {type: ASHA}\n")
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert "mode: got 'MAX'; allowed: max, min (did you mean max?)" in str(info.value)
    assert "scheduler.type: got 'ASHA'; allowed: none, asha (did you mean asha?)" in str(info.value)
