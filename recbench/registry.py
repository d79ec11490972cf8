"""A small generic name -> object registry with "did you mean" suggestions.

Losses, datasets, baselines and models are all looked up by a user-typed name, so they share this
one mechanism: registration by decorator, ordered listing, and a one-line error with the closest
names on a typo.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from recbench.errors import UnknownNameError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=2, cutoff=0.5)
    lookup = {c.lower(): c for c in choices}
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{lookup[c]}'" for c in close) + "?)"


class Registry(Generic[T]):
    """Maps names to objects of one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("napo")`` on a class or function."""

        def wrap(obj: T) -> T:
            self.add(name, obj)
            return obj

        return wrap

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self._items)
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, list(self._items))}; "
                f"known: {known}"
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
