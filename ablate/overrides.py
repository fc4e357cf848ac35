"""``--set key=value`` overrides and YAML loading with errors that name the file, key and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ablate.errors import UserError
from sweep_format import yamltext
from sweep_format.files import not_a_file
from sweep_format.layout import SPEC_FILE, is_sweep
from sweep_format.text import shell_word
from trainables.config import short


def parse_value(text: str) -> Any:
    """A value as YAML reads it: 0.04 -> float, true -> bool, [0.3, 1] -> list, abc -> str. Text YAML
    cannot read is that text (``note: see x``), unless it opens a list or mapping (``[0.02, 0.04``) or
    breaks a rule of ablate's YAML (a key written twice, a tag): then the YAMLError."""
    try:
        return yamltext.load(text) if text.strip() else ""
    except yaml.constructor.ConstructorError:
        raise
    except yaml.YAMLError:
        if text.lstrip().startswith(("[", "{")):
            raise
        return text


def parse_sets(items: list[str] | None) -> list[tuple[str, Any]]:
    """Split ``["a.b=1", ...]`` into ``[("a.b", 1), ...]`` (the value is parsed as YAML)."""
    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item[:80]!r}: expected KEY=VALUE, e.g. --set teacher_temp=0.04")
        try:
            pairs.append((key.strip(), parse_value(value)))
        except yamltext.TooLarge as exc:
            raise UserError(f"--set {key.strip()}: the value {exc}") from None
        except yaml.YAMLError as exc:  # it was taken for text, and refused as text far from the reason
            raise UserError(f"--set {key.strip()}: the value {short(value)} is not YAML "
                            f"({yamltext.reason(exc)}); quote it if you mean the text") from None
    return pairs


def load_yaml(path: str | Path, expected: str = "") -> dict[str, Any]:
    """Read a YAML mapping; a syntax error or a non-mapping names the file and the line. ``expected``:
    what a file given for its keys must hold, so that one without any (empty, or comments only: a save
    that failed, a template) is refused; without it, it reads as no keys."""
    file = Path(path)
    if is_sweep(file):  # `ablate run runs/temps`, meaning to continue it
        raise UserError(f"{file}: a sweep folder, not a YAML file: `ablate resume {shell_word(file)}` "
                        f"continues the sweep (its spec: {file / SPEC_FILE})")
    if file.is_dir():
        first = min(file.glob("*.yaml"), default=None)
        hint = f" (e.g. {first})" if first else ""
        raise UserError(f"{file}: a folder, not a YAML file{hint}")
    if not file.is_file():  # /dev/null, a FIFO: no YAML file either, but not missing
        raise UserError(f"{file}: {not_a_file(file)}; expected a "
                        "YAML file")
    try:
        data = yamltext.load(file.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise UserError(f"{file}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: {not_utf8(exc)}") from None
    except yamltext.TooLarge as exc:
        raise UserError(f"{file}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        kind = "" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error: "  # a tag,
        raise UserError(f"{file}:{where}: {kind}{yamltext.reason(exc)}") from None  # a key twice: refused
    if data is None and expected:  # `ablate train empty.yaml` trained the defaults for hours, unasked
        raise UserError(f"{file}: holds no keys (an empty file, or comments only); expected {expected}")
    if data is None:
        return {}
    if not isinstance(data, dict):  # `epochs:1` is the text 'epochs:1'; `- epochs: 1` a list
        got = f"the text {short(data)}" if isinstance(data, str) else type(data).__name__
        raise UserError(f"{file}: expected a mapping of keys to values at the top level, got "
                        f"{got}{yamltext.colon_hint(data)}")
    return data


def not_utf8(exc: UnicodeDecodeError) -> str:
    """What a YAML file that is not UTF-8 is, where, and what to do: saved as Latin-1 (an é in a comment)
    or as UTF-16 (Windows' "Unicode"), it was 'not a UTF-8 text file (byte 6); expected a YAML spec',
    a spec when it was a CONFIG, and without the line to look at."""
    data = bytes(exc.object)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "a UTF-16 text file; save it as UTF-8"
    line = data[:exc.start].count(b"\n") + 1
    return (f"not UTF-8 text: line {line} holds the byte 0x{data[exc.start]:02x} (Latin-1 or another "
            "encoding?); save the file as UTF-8")


def set_dotted(tree: dict[str, Any], path: str, value: Any) -> str:
    """``set_dotted(d, "search.num_samples", 4)`` sets ``d["search"]["num_samples"] = 4``.

    Returns the path of the highest section this made (``space.foo`` for ``space.foo.low`` when the
    space had no ``foo``), or ``path`` itself: an error anywhere below it is this ``--set``'s doing.
    An empty section (``trainer:`` with nothing under it, null) is filled like a missing one.
    """
    *parents, leaf = parts = path.split(".")
    if not all(part.strip() for part in parts):
        raise UserError(f"--set {path}: a key path with an empty part; expected names joined by dots, "
                        "e.g. --set trainer.epochs=2")
    node, made = tree, path
    for i, part in enumerate(parents):
        child = node.get(part)
        if child is None:
            if made == path:
                made = ".".join(parents[:i + 1])
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise UserError(f"--set {path}: {'.'.join(parents[:i + 1])} is a value, not a section")
        node = child
    node[leaf] = value
    return made
