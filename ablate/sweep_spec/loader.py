"""``load_spec``: YAML file + ``--set`` items -> a validated ``SweepSpec``, or one ``SpecError``.

The error names the file, the key path (``space.teacher_temp.low``), the value given and what is
allowed, and the ``--set`` items that touched that path, one line per mistake.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ablate.errors import UserError
from ablate.overrides import load_yaml, parse_sets, set_dotted
from ablate.sweep_spec.base import SPEC_ERROR, UNKNOWN_KEY, SpecError
from ablate.sweep_spec.model import SweepSpec
from ablate.sweep_spec.sections import FORCE
from ablate.sweep_spec.space import DIST_TAGS, DIST_TYPE_ERROR, DIST_TYPES
from sweep_format import yamltext
from sweep_format.layout import RESOLVED
from sweep_format.text import did_you_mean
from trainables.config import (
    EXPECTED,
    DINOConfig,
    exact_type_problem,
    expected_words,
    key_not_text,
    short,
)

MISSING = {
    "name": "required: a folder name of letters, digits, '-', '_', '.' (e.g. teacher-temps)",
    "space": "missing: the parameters to search, e.g. space: {teacher_temp: {type: float, low: 0.02, "
             "high: 0.08}}",
    "low": "missing: a range needs low and high", "high": "missing: a range needs low and high",
}


def load_spec(path: str | Path, sets: list[str] | None = None, force: bool = False) -> SweepSpec:
    """Read a spec, apply ``--set a.b=value`` items (dotted paths into the spec), validate it all.

    ``force``: accept what is legal but probably a typo (more than ``MAX_SAMPLES`` trials).
    """
    source = Path(path)
    try:
        data = load_yaml(source, "" if sets else "a sweep spec (name, space, search, ...), e.g. "
                         "search_spaces/temps.yaml")
        pairs = parse_sets(sets)
    except UserError as exc:
        message = str(exc)
        raise SpecError(message if message.startswith(str(source)) else f"{source}: {message}") from None
    applied: list[tuple[str, str]] = []  # (the key path a --set made or set, the --set as given)
    for (key, value), item in zip(pairs, sets or [], strict=True):
        try:
            applied.append((set_dotted(data, key, value), item))
        except UserError as exc:
            raise SpecError(f"{source}: {exc} (from --set {item})") from None
    resolved = data.pop(RESOLVED, None)
    try:
        spec = SweepSpec.model_validate(data, context={FORCE: force})
    except ValidationError as exc:
        errors = exc.errors()
        if any(tuple(err["loc"]) == ("metric",) for err in errors):  # a metric that is none has no direction:
            errors = [err for err in errors if tuple(err["loc"]) != ("mode",) or err["type"] != "missing"]
        raise SpecError("\n".join(describe(err, source, applied) for err in errors)) from None
    spec._source = source
    spec._resolved = dict(resolved) if isinstance(resolved, dict) else {}
    check_resolved(spec, resolved, source)
    return spec


def check_resolved(spec: SweepSpec, resolved: Any, source: Path) -> None:
    """A sweep's spec.yaml states the baseline it derived: an edited one no longer matches its records."""
    baseline = resolved.get("baseline") if isinstance(resolved, dict) else None
    if baseline is not None and baseline != spec.baseline_point():
        raise SpecError(f"{source}: {RESOLVED}.baseline: got {baseline}; written by `ablate run` as the "
                        f"trainer's values of the searched keys, expected {spec.baseline_point()} (remove "
                        f"the {RESOLVED} section to recompute it)")


def describe(err: ErrorDetails, source: Path, sets: list[tuple[str, str]]) -> str:
    """One line: ``FILE: KEY.PATH: got VALUE; allowed ... (from --set ...)``."""
    loc = list(err["loc"])
    if len(loc) >= 3 and loc[0] == "space" and loc[2] in DIST_TAGS:
        del loc[2]  # the distribution pydantic chose by `type`: not a key the user wrote
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    path = _path(loc, str(ctx.get("at", "")))
    related: tuple[str, ...] = ()
    if err["type"] == SPEC_ERROR:
        message, related = err["msg"], tuple(_path(loc, r) for r in ctx.get("related", ()))
    elif err["type"] == UNKNOWN_KEY:
        path, message = _path(loc, str(ctx["key"])), _unknown_key(ctx["key"], ctx["allowed"], path)
    elif err["type"] == DIST_TYPE_ERROR:
        path, message = _dist_type(path, err["input"])
    elif loc and loc[-1] == "[key]":  # pydantic's (section, key, "[key]"): a YAML key read as 1, true, null
        path, message = _path(loc[:-2], ""), key_not_text(err["input"])
    elif err["type"] == "missing" and loc == ["mode"]:  # only a metric with no better direction leaves it
        message = (f"missing: metric {err['input'].get('metric')} is not better high or low by itself; "
                   "set mode: max or mode: min")
        related = ("metric",)
    else:
        message = _pydantic_message(err, str(loc[-1]) if loc else "", ctx)
    where = f"{path}: " if path else ""
    return f"{source}: {where}{message}{_set_note((path, *related), sets)}"


def _pydantic_message(err: ErrorDetails, key: str, ctx: dict[str, Any]) -> str:
    """pydantic's own checks (types, bounds, literals, missing keys) in the spec's words."""
    value = err["input"]
    if err["type"] == "missing":
        return MISSING.get(key, "missing (required)")
    if err["type"] == "literal_error":
        allowed = re.findall(r"'((?:[^'\\]|\\.)*)'", ctx.get("expected", ""))
        close = did_you_mean(value, allowed)
        hint = f" (did you mean {close}?)" if close else ""
        return f"got {short(value)}; allowed: {', '.join(allowed)}{hint}"
    if err["type"] not in EXPECTED:
        return f"got {short(value)}; {err['msg']}"
    if err["type"] == "float_type" and isinstance(value, str):  # '1e-3' quoted, or nan: text
        return f"got {short(value)}; expected {exact_type_problem(float, value)}"
    if err["type"] == "string_type":  # a name YAML read as a date, a number or true/false
        return f"got {short(value)}; expected {exact_type_problem(str, value)}"
    if err["type"] == "dict_type":  # `trainer:` over `epochs:1` (no space after the colon): text
        return f"got {short(value)}; {EXPECTED['dict_type']}{yamltext.colon_hint(value)}"
    return f"got {short(value)}; {expected_words(err)}"


def _path(loc: list[int | str], at: str) -> str:
    """('space', 'split', 'values', 0) + 'set' -> 'space.split.values[0].set'."""
    text = ""
    for part in [*loc, *([at] if at else [])]:
        if isinstance(part, int) or str(part).startswith("["):
            text += f"[{part}]" if isinstance(part, int) else str(part)
        else:
            text += f".{part}" if text else str(part)
    return text


def _unknown_key(key: Any, allowed: tuple[str, ...], section: str) -> str:
    close = did_you_mean(key, allowed)
    hint = f" Did you mean {close}?" if close else ""
    if not section and key in DINOConfig.model_fields:
        hint = f" {key} is a trainer key: put it under `trainer:` (--set trainer.{key}=...)."
    where = f" in {section}" if section else ""
    return f"unknown key {short(key)}.{hint} Allowed keys{where}: {', '.join(allowed)}"


def _dist_type(path: str, entry: Any) -> tuple[str, str]:
    allowed = ", ".join(DIST_TYPES)
    if not isinstance(entry, dict):
        return path, f"got {short(entry)}; expected a mapping such as {{type: float, low: 0.02, high: 0.08}}"
    if "type" not in entry:
        return f"{path}.type", f"missing; allowed: {allowed}"
    close = did_you_mean(entry["type"], DIST_TYPES)
    hint = f" (did you mean {close}?)" if close else ""
    return f"{path}.type", f"got {short(entry['type'])}; allowed: {allowed}{hint}"


def _set_note(paths: tuple[str, ...], sets: list[tuple[str, str]]) -> str:
    """Which ``--set`` items touched one of ``paths`` (a path, a section above it or a key below)."""
    def touches(a: str, b: str) -> bool:
        return bool(a and b) and (a == b or a.startswith((b + ".", b + "[")) or b.startswith(a + "."))

    items = [item if len(item) <= 100 else item[:97] + "..." for key, item in sets
             if any(touches(p, key) for p in paths)]
    return f" (from --set {', --set '.join(items)})" if items else ""
