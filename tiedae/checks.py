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


def is_list(value: Any) -> bool:
    """A list of values (a Python or an OmegaConf list), not a string."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def class_list(problems: list[str], key: str, classes: Any, count: int | None) -> bool:
    """At least two distinct class ids in 0..count-1 (any when count is None, checked when the
    data loads); True when ``classes`` is such a list."""
    if (
        not is_list(classes) or len(classes) < 2 or len(set(classes)) != len(classes)
        or not all(is_int(c) and c >= 0 and (count is None or c < count) for c in classes)
    ):  # fmt: skip
        upper = "k-1" if count is None else count - 1
        problems.append(
            f"{key}={classes!r} must list at least two distinct class ids in 0..{upper}, "
            "e.g. [5, 6]"
        )
        return False
    return True
