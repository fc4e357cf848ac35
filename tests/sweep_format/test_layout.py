"""sweep_format.layout owns the names of a sweep folder's files and folders: no other module joins a
path with one of them or prints one in a message or a help text; each imports the name."""

from __future__ import annotations

import ast
from pathlib import Path

from sweep_format import layout

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ablate", "trainables", "reports", "sweep_format", "bench")
FILES = (layout.SPEC_FILE, layout.OPTUNA_DB, layout.REFERENCE_FILE, layout.TRIALS_TABLE, layout.EPOCHS_TABLE,
         layout.REPORT_MD, layout.REPORT_HTML, layout.ATTENTION_FILE, layout.RAY_LOG, layout.LOCK_FILE,
         layout.HISTORY_FILE, layout.ERROR_SUFFIX, layout.CHECKPOINT_NAME)
FOLDERS = (layout.TRIALS_DIR, layout.TUNE_DIR, layout.REPORT_DIR, layout.PLOTS_DIR, layout.MLFLOW_DIR)


def spelled_names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of each layout name a module spells: in a string it prints (a file name, or a folder
    name followed by ``/``; docstrings are prose and left out) or as a segment it joins a path with."""
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found += [(node.lineno, side.value) for side in (node.left, node.right)
                      if isinstance(side, ast.Constant) and side.value in (*FILES, *FOLDERS)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found += [(node.lineno, name) for name in (*FILES, *(f"{d}/" for d in FOLDERS))
                      if name in node.value]
    return found


def test_layout_names_are_found() -> None:
    code = ('"""Reads trials.parquet."""\np = sweep / "tune"\nprint(f"see {x}/optuna.db")\n'
            'q = "report"  # a command\nh = "the sweep\'s trials/ folder"')
    assert sorted(spelled_names(ast.parse(code))) == [(2, "tune"), (3, "optuna.db"), (5, "trials/")]


def test_no_module_spells_a_name_of_the_sweep_folder() -> None:
    owner = ROOT / "sweep_format" / "layout.py"
    spelled = [f"{file.relative_to(ROOT)}:{line}: {name!r}"
               for package in PACKAGES for file in sorted((ROOT / package).rglob("*.py")) if file != owner
               for line, name in spelled_names(ast.parse(file.read_text(), str(file)))]
    assert not spelled, "import these from sweep_format.layout:\n" + "\n".join(spelled)


def test_no_module_spells_a_key_of_reference_knn_json() -> None:
    """The file's keys (pixel_knn_top1, untrained_knn_top1) are written by trainables.baselines and read
    back as the trials table's columns, the plots' lines, the report's and compare's reference lines and
    bench/dino_signal's targets: each spelled them, so a renamed key would have read as missing in some."""
    owner = ROOT / "sweep_format" / "layout.py"
    spelled = [f"{file.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
               for package in PACKAGES for file in sorted((ROOT / package).rglob("*.py")) if file != owner
               for node in ast.walk(ast.parse(file.read_text(), str(file)))
               if isinstance(node, ast.Constant) and node.value in layout.REFERENCE_KNN]
    assert not spelled, "import PIXEL_KNN, UNTRAINED_KNN from sweep_format.layout:\n" + "\n".join(spelled)


def test_a_folder_of_the_sweep_this_user_may_not_enter_is_named_in_one_line(tmp_path: Path,
                                                                            monkeypatch) -> None:
    """Another user's report/ (made under umask 077): the stat of report/plots raised PermissionError,
    which `ablate report`, `compare` and `ls` printed as 'cannot write .../report/plots'."""
    from tests.helpers import lock_folder

    sweep = tmp_path / "sweep"
    (sweep / layout.TRIALS_DIR).mkdir(parents=True)
    (sweep / layout.REPORT_DIR / layout.PLOTS_DIR).mkdir(parents=True)
    (sweep / layout.SPEC_FILE).write_text("name: s\n")
    lock_folder(monkeypatch, sweep / layout.REPORT_DIR)
    assert layout.entry_problem(sweep) == (
        f"{sweep / layout.REPORT_DIR / layout.PLOTS_DIR}: cannot be read (EACCES: Permission denied), inside "
        f"the sweep folder {sweep}, whose files ablate reads and writes: ask its owner for access")


def test_a_sweep_folder_this_user_may_not_enter_is_said_so_and_kept_in_a_listing(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    from tests.helpers import lock_folder

    for name in ("a", "b"):
        (tmp_path / name / layout.TRIALS_DIR).mkdir(parents=True)
        (tmp_path / name / layout.SPEC_FILE).write_text("name: s\n")
    lock_folder(monkeypatch, tmp_path / "a")
    assert not layout.is_sweep(tmp_path / "a")
    why = layout.not_a_sweep(tmp_path / "a")
    assert why.startswith(f"{tmp_path / 'a'}: cannot be listed (Permission denied)")
    # it may be a sweep (ablate ls lists it as unreadable), beside the readable one
    assert layout.sweeps_in(tmp_path) == [tmp_path / "a", tmp_path / "b"]
    assert layout.shut(tmp_path / "a") and not layout.shut(tmp_path / "b")
