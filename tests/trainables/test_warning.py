"""trainables.warning is the one form of a warning line (``ablate: warning: ...``) and of an error line
(``ablate run: error: ...``): the trainer, the sweep driver and the CLI print theirs through ``warn`` and
``print_error`` (ablate.errors re-exports both); no module writes either prefix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainables.warning import print_error, warn

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ablate", "trainables", "reports", "sweep_format", "bench")
PREFIX = re.compile(r"ablate( \w+)?: warning: ")
ERROR_PREFIX = re.compile(r"[\"']ablate[^\"']*: error: ")  # in a string: "ablate {args.command}: error: "


def spelled_out(pattern: re.Pattern[str]) -> list[str]:
    """``file:line: text`` of each source line matching ``pattern`` outside trainables/warning.py."""
    owner = ROOT / "trainables" / "warning.py"
    return [f"{file.relative_to(ROOT)}:{n}: {line.strip()}"
            for package in PACKAGES for file in sorted((ROOT / package).rglob("*.py")) if file != owner
            for n, line in enumerate(file.read_text().splitlines(), start=1) if pattern.search(line)]


def test_a_warning_is_one_line_on_the_stderr_of_the_moment(capsys: pytest.CaptureFixture) -> None:
    warn("the study continues in memory")
    warn("training on CPU: no GPU", command="train")
    assert capsys.readouterr() == ("", "ablate: warning: the study continues in memory\n"
                                       "ablate train: warning: training on CPU: no GPU\n")


def test_no_module_writes_the_warning_prefix_by_hand() -> None:
    """It was written out at 16 sites (two of them 'ablate train: warning:'), each its own copy."""
    spelled = spelled_out(PREFIX)
    assert not spelled, "print it with trainables.warning.warn (ablate.errors.warn):\n" + "\n".join(spelled)


def test_an_error_line_has_the_warning_line_form(capsys: pytest.CaptureFixture) -> None:
    print_error("spec.yaml: no such file", "run")
    warn("the study continues in memory", "run")
    assert capsys.readouterr().err == ("ablate run: error: spec.yaml: no such file\n"
                                       "ablate run: warning: the study continues in memory\n")


def test_no_module_writes_the_error_prefix_by_hand() -> None:
    """ablate.cli wrote 'ablate {command}: error:' out at each of its three error sites."""
    spelled = spelled_out(ERROR_PREFIX)
    assert not spelled, "print it with trainables.warning.print_error (ablate.errors):\n" + "\n".join(spelled)
