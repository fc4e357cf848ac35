"""sweep_format.statuses is the one vocabulary of trial statuses: no other module spells a status to
compare with, nor keeps its own list of them (a copy of the list that lacked ``oom`` was a bug)."""

from __future__ import annotations

import ast
from pathlib import Path

from sweep_format import statuses

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ablate", "trainables", "reports", "sweep_format", "bench")


def status_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, status) of each status spelled as a literal where it decides something: compared with a
    status or an outcome (``rec["status"] == "oom"``, ``outcome in ("completed", ...)``,
    ``trials["status"].isin([...])``), kept as a named list of statuses (``RANKED = (...)``) or written
    as a record's or a result row's status (``status="completed"``, ``{"trial_outcome": "running"}``)."""
    def named(node: ast.AST | None) -> str | None:
        return node.value if isinstance(node, ast.Constant) and node.value in statuses.ORDER else None

    def spelled(node: ast.AST) -> list[str]:
        listed = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return [s for s in map(named, listed) if s]

    def of_status(node: ast.AST) -> bool:
        return any(word in ast.unparse(node) for word in ("status", "outcome"))

    def written(value: ast.AST) -> list[str]:
        return [s for n in ast.walk(value) if (s := named(n))]

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in ("status", "trial_outcome"):
            found += [(node.lineno, s) for s in written(node.value)]
        elif isinstance(node, ast.Dict):
            found += [(node.lineno, s) for key, value in zip(node.keys, node.values, strict=True)
                      if isinstance(key, ast.Constant) and key.value in ("status", "trial_outcome")
                      for s in written(value)]
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(of_status(side) for side in sides):
                found += [(node.lineno, s) for side in sides for s in spelled(side)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "isin":
            if of_status(node.func.value):
                found += [(node.lineno, s) for arg in node.args for s in spelled(arg)]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.Tuple, ast.List)):
            listed = spelled(node.value)
            if len(listed) >= 2 and len(listed) == len(node.value.elts):
                found += [(node.lineno, s) for s in listed]
    return found


def test_status_literals_are_found() -> None:
    code = ('RANKED = ("completed", "flagged")\nok = r["status"] == "oom" or outcome in ("x", "errored")\n'
            't[t["status"].isin(["diverged"])]\n'
            'k = r["collapsed"] if "collapsed" in r else words == "collapsed"\n'  # column names, words
            'rec.update(status="pending")\nrow = {"trial_outcome": "completed" if last else "running"}')
    found = sorted(s for _, s in status_literals(ast.parse(code)))
    assert found == ["completed", "completed", "diverged", "errored", "flagged", "oom", "pending", "running"]


def test_no_module_spells_a_status_it_decides_on() -> None:
    owner = ROOT / "sweep_format" / "statuses.py"
    spelled = [f"{file.relative_to(ROOT)}:{line}: {status!r}"
               for package in PACKAGES for file in sorted((ROOT / package).rglob("*.py")) if file != owner
               for line, status in status_literals(ast.parse(file.read_text(), str(file)))]
    assert not spelled, "import these from sweep_format.statuses:\n" + "\n".join(spelled)
