"""The docs name only what the code has: README, search_spaces/README.md and reports/SCHEMA.md against the
spec's keys, the trainer's keys, the parquet columns and the status vocabulary (and back)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ablate.sweep_spec.model import SweepSpec
from ablate.sweep_spec.sections import Resources, Scheduler, Search, Stop
from reports.tables import EPOCH_HEAD, HEAD_COLUMNS, TAIL_COLUMNS
from sweep_format import statuses
from trainables.config import DINOConfig

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SPEC_README = (ROOT / "search_spaces" / "README.md").read_text()
SCHEMA = (ROOT / "reports" / "SCHEMA.md").read_text()
SECTIONS = {"trainer": set(DINOConfig.model_fields), "search": set(Search.spec_keys()),
            "resources": set(Resources.spec_keys()), "scheduler": set(Scheduler.spec_keys()),
            "stop": set(Stop.spec_keys())}


def dotted_keys(text: str) -> set[tuple[str, str]]:
    """Every ``section.key`` a text names (``trainer.epochs``, ``resources.gpu``, ...; not a file such
    as ``ablate/search.py``)."""
    found = re.findall(r"\b(trainer|search|resources|scheduler|stop)\.([a-z_]+)\b", text)
    return {(section, key) for section, key in found if key != "py"}


def test_every_dotted_spec_key_in_the_docs_exists() -> None:
    for name, text in (("README.md", README), ("search_spaces/README.md", SPEC_README)):
        unknown = sorted(f"{s}.{k}" for s, k in dotted_keys(text) if k not in SECTIONS[s])
        assert not unknown, f"{name} names keys the spec does not have: {unknown}"


def test_the_spec_reference_table_lists_every_key_once() -> None:
    rows = re.findall(r"^\| `([a-z_.]+)` \|", SPEC_README, flags=re.M)
    top = [r for r in rows if "." not in r]
    assert len(rows) == len(set(rows)), [r for r in rows if rows.count(r) > 1]
    assert set(top) <= set(SweepSpec.spec_keys()), set(top) - set(SweepSpec.spec_keys())
    for section in ("search", "resources", "scheduler", "stop"):
        documented = {r.split(".", 1)[1] for r in rows if r.startswith(section + ".")}
        assert documented == SECTIONS[section], (section, documented ^ SECTIONS[section])


def test_every_trainer_key_set_in_a_readme_command_exists() -> None:
    commands = re.findall(r"(?<!\$ )ablate train[^\n]*", README)  # "$ ablate ...": a mistake, shown
    keys = {k for c in commands for k in re.findall(r"--set ([a-z_]+)=", c)} - {"key"}  # key=value: the form
    assert keys and keys <= SECTIONS["trainer"], keys - SECTIONS["trainer"]


def test_schema_lists_exactly_the_trials_parquet_columns() -> None:
    table = SCHEMA.split("## `trials.parquet`", 1)[1].split("## `epochs.parquet`", 1)[0]
    documented = re.findall(r"^\| `([a-z_0-9]+)` \|", table, flags=re.M)
    assert documented == [*HEAD_COLUMNS, *TAIL_COLUMNS], set(documented) ^ {*HEAD_COLUMNS, *TAIL_COLUMNS}
    epochs = SCHEMA.split("## `epochs.parquet`", 1)[1]
    assert re.findall(r"^\| `([a-z_]+)` \|", epochs, flags=re.M) == list(EPOCH_HEAD)


def test_every_status_the_docs_name_exists_and_schema_names_them_all() -> None:
    section = SCHEMA.split("`status`:", 1)[1].split("Which trials count", 1)[0]
    named = {w for line in section.splitlines() if line.startswith("- ")
             for w in re.findall(r"`([a-z_ ]+)`", line.split(":", 1)[0])}
    assert named == set(statuses.ORDER), named ^ set(statuses.ORDER)
    guarantees = README.split("**Every way a trial ends is final and named.**", 1)[1].split("\n- **", 1)[0]
    in_readme = set(re.findall(r"`([a-z_ ]+)`", guarantees))
    unknown = {w for w in in_readme if w not in statuses.ORDER and not w.startswith("ablate ")}
    assert not unknown, unknown


def test_the_readme_says_how_a_number_in_exponent_notation_is_read() -> None:
    """README says an unquoted `1e-3` is the number 0.001 (sweep_format.yamltext), which PyYAML alone
    reads as text, and a quoted one is refused as text (trainables.config)."""
    import yaml

    from sweep_format import yamltext
    from trainables.config import exact_type_problem

    text = " ".join(README.split())
    quoted, given, number = re.findall(r"no quoted `'([^`]+)'` for a number; an unquoted `([^`]+)` is the "
                                       r"number ([0-9.]+), as in YAML 1\.2", text)[0]
    assert yamltext.load(given) == float(number) and yaml.safe_load(given) == given
    assert exact_type_problem(float, quoted) == f"a number, not text (write {quoted} without quotes)"


def test_the_readmes_example_error_is_what_the_command_prints(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """README showed 'Did you mean teacher_temp, warmup_teacher_temp?' for `--set teacher_tmp=0.1`;
    the command prints 'Did you mean teacher_temp?'."""
    from ablate.cli import main

    shown = re.search(r"^\$ (ablate train [^\n]+)\n([^\n]+)$", README, flags=re.M)
    assert shown is not None
    command, error = shown.group(1).split(), shown.group(2)
    out = command.index("--out")
    command[out + 1] = str(tmp_path / command[out + 1])
    assert main(command[1:]) == 2
    printed = capsys.readouterr().err
    assert error.endswith("Valid keys: ...")
    assert error.removesuffix("...") in printed


def test_every_option_of_a_documented_command_is_its_whole_name() -> None:
    """ablate takes no option prefixes (``--storag x`` was read as ``--storage x``; ablate.cli.Parser): an
    abbreviation, or an option of another command, in a shipped doc would be a command that is refused."""
    import argparse

    from ablate.cli import COMMANDS, build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    options = {name: {o for a in parser._actions for o in a.option_strings}
               for name, parser in sub.choices.items()}
    docs = [ROOT / "README.md", *(doc for folder in ("search_spaces", "bench", "reports", "docs")
                                  for doc in (ROOT / folder).glob("*.md"))]
    used = [(doc.relative_to(ROOT), command, option) for doc in docs
            for command, line in re.findall(rf"\bablate ({'|'.join(COMMANDS)})\b([^\n`|]*)", doc.read_text())
            for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line)]
    assert len(used) > 20 and all(option in options[command] for _, command, option in used), \
        [u for u in used if u[2] not in options[u[1]]]


def documented_value(cell: str) -> object:
    """A value as a doc's table writes it (``8e-3 (1e-3 effective)``, `` `adamw` ``, ``true``): its first
    word read as a number, a boolean or else a word."""
    word = cell.strip().split(" ")[0].strip("`")
    with_value = {"true": True, "false": False, "null": None, '""': "", "[]": [], "{}": {}}
    if word in with_value:
        return with_value[word]
    try:
        return float(word)
    except ValueError:
        return word


def test_the_readmes_table_of_trainer_defaults_is_the_configs() -> None:
    """README's "Why the defaults differ from the paper" restates DINOConfig's defaults: a default
    changed in trainables/config.py left the table saying the old one (the recipe the README explains)."""
    table = README.split("### Why the defaults differ from the paper", 1)[1].split("| key | default |", 1)[1]
    rows = [line.split("|")[1:3] for line in table.split("\n\n", 1)[0].splitlines()[2:]]
    defaults = DINOConfig()
    checked = []
    for keys_cell, default_cell in rows:
        keys = re.findall(r"`([a-z_]+)`", keys_cell)
        values = re.split(r" / |, ", default_cell.strip()) if len(keys) > 1 else [default_cell]
        for key, value in zip(keys, values * len(keys) if len(values) == 1 else values, strict=True):
            assert documented_value(value) == getattr(defaults, key), (key, value, getattr(defaults, key))
            checked.append(key)
    assert {"teacher_temp", "warmup_teacher_temp", "momentum_teacher", "out_dim", "lr"} <= set(checked)


def test_the_spec_reference_tables_defaults_are_the_specs() -> None:
    """search_spaces/README.md's format reference restates each spec key's default: checked against the
    spec's own (a section's, as a spec without the key resolves it: ``search.sampler`` is tpe)."""
    sections = {"search": Search(), "resources": Resources(), "scheduler": Scheduler(), "stop": Stop()}
    rows = re.findall(r"^\| `([a-z_.]+)` \| [^|]* \| `([^`|]*)` \|", SPEC_README, flags=re.M)
    for key, cell in rows:
        if "." in key:
            section, name = key.split(".", 1)
            actual = getattr(sections[section], name)
        else:
            actual = SweepSpec.model_fields[key].get_default(call_default_factory=True)
        assert documented_value(cell) == actual, (key, cell, actual)
    assert len(rows) >= 18, rows


def documented_runs() -> list[tuple[str, str, list[str]]]:
    """Every ``ablate run SPEC ...`` command of README and search_spaces/README.md (its lines joined at a
    trailing backslash): (doc, spec, the --set values)."""
    runs = []
    for name, text in (("README.md", README), ("search_spaces/README.md", SPEC_README)):
        for command in re.findall(r"\bablate run (search_spaces/\S+\.yaml)((?:[^\n`]*\\\n)*[^\n`]*)",
                                  text):
            runs.append((name, command[0], re.findall(r"--set '?([^ '\\]+)", command[1])))
    return runs


def test_every_compared_sweep_in_the_docs_is_one_a_documented_run_makes() -> None:
    """README's `ablate compare runs/temps runs/temps-cifar` named a sweep that no documented command
    made (its CIFAR-10 run is `name=temps-cifar10`), and search_spaces/README.md's CIFAR-10 run, with no
    `name`, was refused after the main job: `runs/temps` existed."""
    from sweep_format import yamltext  # a spec as ablate reads it

    made = set()
    for doc, spec, sets in documented_runs():
        names = [s.split("=", 1)[1] for s in sets if s.startswith("name=")]
        if any(s.startswith("trainer.dataset=") for s in sets):
            assert names, f"{doc}: `ablate run {spec}` on another dataset keeps the spec's name: {sets}"
        made.add(names[-1] if names else yamltext.load((ROOT / spec).read_text())["name"])
    compared = [name for text in (README, SPEC_README)
                for line in re.findall(r"\bablate[ .]compare\b([^\n]*)", text)
                for name in re.findall(r"runs/([\w.-]+)", line.split("out", 1)[0])]
    assert len(compared) >= 4 and {"temps", "temps-cifar10"} <= made
    assert set(compared) <= made, set(compared) - made


def test_the_readme_names_where_image_folder_verdicts_are_kept(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """README said `$ABLATE_CACHE_DIR` moves `~/.cache/ablate/image_folders/`: a user who set it to that
    folder found the verdicts in `.../image_folders/image_folders/` (it replaces `~/.cache/ablate`)."""
    from trainables.image_check import verdict_file

    text = " ".join(README.split())
    kept = re.search(r"is kept in `([^`]+)` \(in `([^`]+)` where that is set, else `([^`]+)`;", text)
    assert kept is not None
    monkeypatch.setenv("HOME", str(tmp_path))
    for variable in ("ABLATE_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    for documented, variable in zip(kept.groups(), (None, "ABLATE_CACHE_DIR", "XDG_CACHE_HOME"), strict=True):
        if variable:
            monkeypatch.setenv(variable, str(tmp_path / variable))
        expected = documented.replace("~", str(tmp_path))
        if variable:
            expected = expected.replace(f"${variable}", str(tmp_path / variable))
        assert verdict_file("x").parent == Path(expected.rstrip("/")), (documented, verdict_file("x"))
        if variable:
            monkeypatch.delenv(variable)
