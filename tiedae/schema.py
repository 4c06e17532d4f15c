"""Typed schemas: a config section's settings declared once, with their types and ranges, and
one checker that turns them into ``validate``'s one-line messages.

A schema is a frozen dataclass; a field's annotation says what the value may be (``bool``,
``int``, ``float``, a ``Literal`` of allowed values, ``| None``), its ``setting(...)`` metadata
the range. ``check(problems, "runtime", cfg.runtime, RuntimeSettings)`` appends a message per
invalid value; ``read`` gives the section as the typed, read-only object. Rules that join two
settings (``labels.count`` with ``labels.fraction``) stay beside the schema as its ``rules``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import field
from typing import Any, Literal, Union

from tiedae.checks import is_int, is_number

_NO_DEFAULT = dataclasses.MISSING


def setting(
    default: Any = _NO_DEFAULT,
    *,
    minimum: float | None = None,
    positive: bool = False,
    maximum: float | None = None,
    below: float | None = None,
    allowed: tuple[Any, ...] | None = None,
    means: str = "",
    says: str = "",
    own_rule: bool = False,
) -> Any:
    """A field of a schema: its default, its range (``minimum``, ``positive``: > 0,
    ``maximum``: <=, ``below``: <), the allowed values when they are computed (a registry's
    names), and what the value means where the type alone does not say (shown in the
    message); ``says``: the message's "must be ..." in full, where the words built from the
    type would read worse;
    ``own_rule``: the schema's code checks the value (a range that depends on its kind)."""
    rules = {"minimum": minimum, "positive": positive, "maximum": maximum,
             "below": below, "allowed": allowed, "means": means, "says": says,
             "own_rule": own_rule}  # fmt: skip
    return field(default=default, metadata=rules)


def check(
    problems: list[str], prefix: str, section: Mapping[str, Any] | None, schema: type
) -> None:
    """Append a one-line message for each value of ``section`` its ``schema`` refuses: the key,
    the value and what is allowed. A key the section lacks takes the field's default."""
    section = section or {}
    hints = typing.get_type_hints(schema)
    for spec in dataclasses.fields(schema):
        if spec.metadata.get("own_rule"):
            continue
        value = section.get(spec.name, spec.default)
        if value is _NO_DEFAULT:
            key = _key(prefix, spec.name)
            problems.append(f"{key} is missing; set {key}=...")
            continue
        problem = _check_value(value, hints[spec.name], spec.metadata)
        if problem:
            problems.append(f"{_key(prefix, spec.name)}={value!r} {problem}")
    for rule in getattr(schema, "rules", ()):
        rule(problems, section)


def _key(prefix: str, name: str) -> str:
    """The setting's dotted key (``prefix`` empty: a top-level key such as ``seed``)."""
    return f"{prefix}.{name}" if prefix else name


def read(section: Mapping[str, Any] | None, schema: type) -> Any:
    """The section as its schema's frozen dataclass (keys it does not declare are left out)."""
    section = section or {}
    names = [spec.name for spec in dataclasses.fields(schema)]
    return schema(**{name: section[name] for name in names if name in section})


def _options(annotation: Any) -> tuple[list[Any], bool]:
    """The annotation's alternatives (a union's members), and whether None is one."""
    origin = typing.get_origin(annotation)
    members = typing.get_args(annotation) if origin in (Union, types.UnionType) else (annotation,)
    return [m for m in members if m is not type(None)], type(None) in members


def _check_value(value: Any, annotation: Any, rules: Mapping[str, Any]) -> str | None:
    members, optional = _options(annotation)
    if value is None:
        return None if optional else _expected(members, rules, optional)
    allowed = rules.get("allowed")
    if allowed is not None:
        return None if value in allowed else _unknown(allowed)
    literals = [v for m in members if typing.get_origin(m) is Literal for v in typing.get_args(m)]
    kinds = [m for m in members if typing.get_origin(m) is not Literal]
    if not isinstance(value, bool) and value in literals:
        return None
    if any(_fits(value, kind, rules) for kind in kinds):
        return None
    return _expected(members, rules, optional) if kinds else _unknown(tuple(literals))


def _fits(value: Any, kind: type, rules: Mapping[str, Any]) -> bool:
    if kind not in (bool, str, int, float):  # a list, a tuple: the schema's own rules check it
        return True
    if kind is bool or kind is str:
        return isinstance(value, kind)
    number = is_int(value) if kind is int else is_number(value)
    return number and _in_range(value, rules)


def _in_range(value: float, rules: Mapping[str, Any]) -> bool:
    low, high = rules.get("minimum"), rules.get("maximum")
    return (
        (low is None or value >= low)
        and (not rules.get("positive") or value > 0)
        and (high is None or value <= high)
        and (rules.get("below") is None or value < rules["below"])
    )


def _unknown(allowed: tuple[Any, ...]) -> str:
    return f"is unknown; allowed: {', '.join(map(str, allowed))}"


def _expected(members: list[Any], rules: Mapping[str, Any], optional: bool) -> str:
    """'must be ...' from the annotation and the range, in the words the messages use."""
    if rules.get("says"):
        return f"must be {rules['says']}"
    words = []
    for member in members:
        if member is bool:
            words.append("true or false")
        elif typing.get_origin(member) is Literal:
            words.extend(repr(v) if isinstance(v, str) else str(v) for v in typing.get_args(member))
        elif member in (int, float):
            words.append(_number_words(member, rules))
        elif member is str:
            words.append("a string")
    if optional:
        words.append("null")
    if rules.get("means"):
        words[-1] += f" ({rules['means']})"
    return "must be " + (", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0])


def _number_words(kind: type, rules: Mapping[str, Any]) -> str:
    noun = "integer" if kind is int else "number"
    low, high = rules.get("minimum"), rules.get("maximum")
    if rules.get("positive") or (kind is int and low == 1 and high is None):
        text = f"a positive {noun}"
    elif low is not None and high is not None:
        text = f"a{'n' if noun == 'integer' else ''} {noun} in [{low:g}, {high:g}]"
    elif low is not None:
        text = f"a{'n' if noun == 'integer' else ''} {noun} >= {low:g}"
    else:
        text = f"a{'n' if noun == 'integer' else ''} {noun}"
    if rules.get("positive") and high is not None:
        text = f"a {noun} in (0, {high:g}]"
    return text
