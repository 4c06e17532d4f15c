"""The value checks every settings section shares: each appends the one-line problem it finds
(``key=value must be ...``) to ``problems``, so a config's every mistake is reported at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(problems: list[str], key: str, value: Any) -> None:
    if not is_int(value) or value < 1:
        problems.append(f"{key}={value!r} must be a positive integer")


def positive_number(problems: list[str], key: str, value: Any) -> None:
    if not is_number(value) or value <= 0:
        problems.append(f"{key}={value!r} must be a positive number")


def non_negative(problems: list[str], key: str, value: Any) -> None:
    if not is_number(value) or value < 0:
        problems.append(f"{key}={value!r} must be a number >= 0")


def open_fraction(problems: list[str], key: str, value: Any) -> None:
    if not is_number(value) or not 0 < value < 1:
        problems.append(f"{key}={value!r} must be a number in (0, 1)")


def boolean(problems: list[str], key: str, value: Any) -> None:
    if not isinstance(value, bool):
        problems.append(f"{key}={value!r} must be true or false")


def one_of(problems: list[str], key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        problems.append(f"{key}={value!r} is unknown; allowed: {', '.join(allowed)}")
