"""A family of variants (triggers, actions) keyed by name, each registered once by its own module."""

import importlib
import pkgutil
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, Protocol, TypeVar


class Entry(Protocol):
    key: ClassVar[str]
    label: ClassVar[str]
    position: ClassVar[int]


T = TypeVar("T", bound=Entry)

# stored in a column, matched by OpenAPI patterns: `stage_entered`, `company.stage_entered`
KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")


class Registry(Generic[T]):
    """Entries by key, listed by `position` then key; `key_max_length` is the model column's width."""

    def __init__(self, what: str, *, key_max_length: int) -> None:
        self.what = what
        self.key_max_length = key_max_length
        self._entries: dict[str, T] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: add one instance of `cls` under its `key` (a key is registered once)."""
        key = cls.key
        if not KEY.fullmatch(key) or len(key) > self.key_max_length:
            raise ValueError(f"A {self.what} key is 1 to {self.key_max_length} of a-z, 0-9, _ and .: {key!r}.")
        if key in self._entries:
            raise ValueError(f"The {self.what} {key!r} is registered already.")
        self._entries[key] = cls()
        return cls

    def unregister(self, key: str) -> None:
        del self._entries[key]

    @contextmanager
    def registered(self, cls: type[T]) -> Iterator[T]:
        """Register `cls` for the duration of a block (tests)."""
        self.register(cls)
        try:
            yield self._entries[cls.key]
        finally:
            self.unregister(cls.key)

    def get(self, key: Any) -> T | None:
        return self._entries.get(key) if isinstance(key, str) else None

    def __iter__(self) -> Iterator[T]:
        return iter(sorted(self._entries.values(), key=lambda entry: (entry.position, entry.key)))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        return [entry.key for entry in self]

    def choices(self) -> list[tuple[str, str]]:
        return [(entry.key, entry.label) for entry in self]


def autodiscover(package: str) -> None:
    """Import every public module of `package`: each registers what it defines (`_private` ones are helpers)."""
    path = importlib.import_module(package).__path__
    for module in pkgutil.iter_modules(path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
