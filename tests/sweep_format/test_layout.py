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
         layout.HISTORY_FILE, layout.ERROR_SUFFIX)
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
