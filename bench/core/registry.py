"""A small name -> object registry (in the spirit of fvcore's ``Registry``).

Two instances exist: :data:`methods.METHODS` and :data:`datasets.DATASETS`. Registration happens
through explicit imports in the packages' ``__init__`` modules.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bench.core.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; a duplicate name raises, an unknown name lists the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; raises ``KeyError`` if the name is taken."""
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def deco(obj: T) -> T:
            return self.add(name, obj)

        return deco

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name raises listing the choices."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise UsageError(f"unknown {self.kind} {name!r}; choose from: {known}") from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching an fnmatch ``pattern``."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
