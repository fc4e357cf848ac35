"""YAML as ablate reads it (specs, ``--set`` values, a sweep's ``spec.yaml``): safe and bounded.

``yaml.safe_load`` builds no Python objects beyond plain data, but its aliases can make a few
hundred bytes stand for billions of values (the "billion laughs"), which anything that walks the
data (validation, an error message, a JSON dump) would then expand. ``load`` refuses data that
expands to more than ``MAX_VALUES`` values: a sweep spec holds a few dozen. A key written twice in
one mapping is refused too (a ``yaml.YAMLError`` naming both lines): YAML keeps the last in
silence, so a second ``teacher_temp:`` under ``space:`` would drop the first one's values. A number
in exponent notation without a dot or without the exponent's sign (``1e-4``, ``5E3``, ``1.5e5``) is
a number, as in YAML 1.2 (YAML 1.1, which PyYAML reads, takes it for text; every ML config reads it
as the number it says). Integers are YAML 1.2's too: ``010`` is ten (YAML 1.1: octal, eight:
``epochs: 010`` trained 8 epochs), ``0o17`` is octal, and ``1:20`` is text (YAML 1.1: base 60,
eighty: ``seed: 1:20`` ran seed 80, and ``description: 12:30`` was refused as 'the number 750'), so
a key that takes a number refuses it.

    data = load(Path("spec.yaml").read_text())   # TooLarge when aliases blow it up
    text = dump(data, sort_keys=False)            # what load reads back equal ('1e5' quoted)
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_VALUES = 100_000


class TooLarge(ValueError):
    """The YAML expands (through its aliases) to more than ``MAX_VALUES`` values, or nests deeper than
    the parser can recurse."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                continue
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{repr(key)[:60]} is written twice in one mapping (line "
                    f"{first.start_mark.line + 1} and line {key_node.start_mark.line + 1}); YAML would keep "
                    "only the last: keep one",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_undefined(self, node: yaml.Node) -> Any:
        """A tag plain YAML data has no reader for (``!!python/object/apply:os.system``, ``!foo``): refused
        saying what is read, where PyYAML said 'could not determine a constructor for the tag'."""
        tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
        raise yaml.constructor.ConstructorError(
            None, None, f"the tag {tag[:80]} is not read: ablate reads plain data only (text, numbers, "
            "true/false, null, lists, mappings), so that nothing in a file builds objects or runs code",
            node.start_mark)


    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """Digits are decimal, leading zeros or not (YAML 1.2); 0x, 0o and 0b as YAML 1.1 reads them."""
        text = str(self.construct_scalar(node)).replace("_", "")
        if re.fullmatch(r"[-+]?[0-9]+", text):
            return int(text)
        return int(super().construct_yaml_int(node))


_Loader.add_constructor(None, _Loader.construct_undefined)  # SafeLoader's is bound to its own method
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes the text ``_Loader`` would read as a number ('1e5')."""


# YAML 1.1's base-60 numbers (1:20 -> 80, 1:20.5 -> 80.5) are text to _Loader, as in YAML 1.2: its
# resolvers for int and float are rebuilt without them. _Dumper keeps YAML 1.1's, which only quote more.
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
# _Dumper quotes all that _Loader reads as an integer: YAML 1.1's own rule left '09' and '0o17' bare
for _kind in (_Loader, _Dumper):
    _kind.add_implicit_resolver(_INT, re.compile(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0o[0-7_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?[0-9][0-9_]*)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, re.compile(
    r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))
# YAML 1.2's floats that YAML 1.1 reads as text: an exponent without a dot or without a sign
# (1e-4, +5E3, 1.5e5, .5e3)
for _kind in (_Loader, _Dumper):
    _kind.add_implicit_resolver(
        _FLOAT, re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
        list("-+0123456789."))


def load(text: str, max_values: int = MAX_VALUES) -> Any:
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except RecursionError:  # PyYAML composes nested collections recursively: [[[[... (hand-made)
        raise TooLarge("nests collections deeper than a YAML reader can follow; a spec is a few levels "
                       "deep") from None
    check_size(data, max_values)
    return data


def reason(exc: yaml.YAMLError) -> str:
    """Why PyYAML refused a text, in one line: its problem, with what it was reading when the problem
    alone does not say (a second document: 'but found another document'), and what to do about a tab
    (PyYAML: "found character '\\t' that cannot start any token")."""
    problem = str(getattr(exc, "problem", None) or exc)
    context = getattr(exc, "context", None)
    if "'\\t'" in problem:
        return f"{problem}: YAML takes spaces, not tabs, to indent and to separate (replace the tab)"
    if context == "expected a single document in the stream":
        return f"{context}, {problem.removeprefix('but ')}: a line `---` starts a second one; keep one"
    return problem


def colon_hint(value: Any) -> str:
    """Where YAML read text where a mapping belongs (``epochs:1``: a key needs a space after its colon),
    what to write instead; "" otherwise."""
    if isinstance(value, str) and (found := re.match(r"([A-Za-z_][\w.-]*):(\S+)", value)):
        return f" (a key needs a space after its colon: {found[1]}: {found[2]}, not {found[0]})"
    return ""


def dump(data: Any, **options: Any) -> str:
    """``data`` as YAML that ``load`` reads back equal (``yaml.safe_dump``'s options)."""
    return yaml.dump(data, Dumper=_Dumper, **options)


def check_size(data: Any, max_values: int = MAX_VALUES) -> None:
    """TooLarge when walking ``data`` (every alias expanded) meets more than ``max_values`` values."""
    seen, stack = 0, [data]
    while stack:
        item = stack.pop()
        seen += 1
        if seen > max_values:
            raise TooLarge(f"expands to more than {max_values:,} values (YAML aliases?); a spec holds a few "
                           "dozen: write the values out, without anchors and aliases")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
