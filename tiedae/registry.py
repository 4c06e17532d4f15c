"""A registry of one extension point (protocols, objectives, ...): each option is a class in its
own module of the point's package, registered by name with the registry's decorator; importing
the package imports every module in it, so a new option is its module and its yaml alone."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> registered class, in the order the modules registered them."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str, default: T | None = None) -> T | None:
        return self._entries.get(name, default)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)


def import_modules(package: str, path: list[str], skip: frozenset[str] = frozenset()) -> list[str]:
    """Import every module of ``package`` (its ``__path__``) but private ones (``_*``) and those
    in ``skip``, so their registration decorators run; the names of the modules imported."""
    names = [
        module.name for module in pkgutil.iter_modules(path)
        if not module.name.startswith("_") and module.name not in skip
    ]  # fmt: skip
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
