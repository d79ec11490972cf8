"""A small generic name -> object registry with "did you mean" suggestions.

Losses, datasets, baselines and models are all looked up by a user-typed name, so they share this
one mechanism: registration by decorator, ordered listing, and a one-line error with the closest
names on a typo.

Each entry also records where it came from: ``None`` for recbench's own entries, or the
:class:`Plugin` whose import registered it (see :mod:`recbench.plugins`, which activates a plugin
with :func:`loading` while importing it).  A plugin may not replace an existing entry.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from recbench.errors import UnknownNameError, UserError
from recbench.paths import safe_name

T = TypeVar("T")

#: Top-level packages whose modules' own registrations are built into recbench, even when a
#: plugin's import is what first imports them.
BUILTIN_PACKAGES = ("recbench",)


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin: how it was named, how it was found, and the file that was imported."""

    name: str  # as given: a module name, or a file's name
    origin: str  # "entry point", "RECBENCH_PLUGINS" or "--plugin"
    path: str | None  # the imported file (absolute), None for a module without one
    sha256: str | None  # of that file's bytes

    def describe(self) -> str:
        return f"plugin {self.name}"

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "path": self.path, "sha256": self.sha256}


class PluginError(UserError):
    """A plugin cannot be loaded (fails to import, or registers a name that exists)."""


_CURRENT: ContextVar[Plugin | None] = ContextVar("recbench_plugin", default=None)
_REGISTRIES: list[Registry[Any]] = []


@contextmanager
def loading(plugin: Plugin) -> Iterator[None]:
    """While active, entries registered by ``plugin``'s code record it as their origin."""
    token = _CURRENT.set(plugin)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def registries() -> list[Registry[Any]]:
    """Every registry created so far (losses, baselines, ...), in creation order."""
    return list(_REGISTRIES)


def _registering_plugin() -> Plugin | None:
    """The plugin being loaded, unless the registration runs in the import of one of recbench's
    own modules (a plugin that is the first to ``import losses`` does not own the built-ins)."""
    plugin = _CURRENT.get()
    if plugin is None:
        return None
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            module = str(frame.f_globals.get("__name__", ""))
            return None if module.split(".")[0] in BUILTIN_PACKAGES else plugin
        frame = frame.f_back
    return plugin


def describe_origin(origin: Plugin | None) -> str:
    return "built into recbench" if origin is None else f"from {origin.describe()}"


def did_you_mean(name: str, choices: list[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=2, cutoff=0.5)
    lookup = {c.lower(): c for c in choices}
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{lookup[c]}'" for c in close) + "?)"


class Registry(Generic[T]):
    """Maps names to objects of one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str, sort_key: Callable[[str, T], Any] | None = None) -> None:
        """``sort_key(name, obj)``, when given, orders :meth:`names` (else registration order)."""
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origins: dict[str, Plugin] = {}
        self._sort_key = sort_key
        _REGISTRIES.append(self)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("napo")`` on a class or function."""

        def wrap(obj: T) -> T:
            self.add(name, obj)
            return obj

        return wrap

    def add(self, name: str, obj: T) -> None:
        """Register ``obj``; a duplicate or an unsafe name is a ``ValueError`` (a
        :class:`PluginError` when a plugin registers it)."""
        plugin = _registering_plugin()
        self._check_name(name, plugin)
        if name in self._items:
            if plugin is not None:
                raise PluginError(
                    f"{plugin.describe()} registers {self.kind} '{name}', which already exists "
                    f"({describe_origin(self.origin(name))})"
                )
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj
        if plugin is not None:
            self._origins[name] = plugin

    def _check_name(self, name: object, plugin: Plugin | None) -> None:
        """Names become directory names (a run's directory is named after its loss or method),
        so they follow :func:`recbench.paths.safe_name`: ``../x`` or ``my/loss`` would write
        outside ``$RECBENCH_HOME``."""
        try:
            safe_name(name, f"{self.kind} name")  # type: ignore[arg-type]
        except UserError as exc:
            if plugin is not None:
                raise PluginError(f"{plugin.describe()} registers a bad name: {exc}") from None
            raise ValueError(str(exc)) from None

    def origin(self, name: str) -> Plugin | None:
        """The plugin that registered ``name``, or None when it is built into recbench."""
        self.get(name)  # unknown names raise
        return self._origins.get(name)

    def reassign(self, plugin: Plugin, new: Plugin | None) -> None:
        """Give ``plugin``'s entries to ``new`` (the same plugin, once its file is known), or,
        with ``new=None``, remove them (its import failed part-way)."""
        for name in [n for n, p in self._origins.items() if p is plugin]:
            if new is None:
                del self._items[name], self._origins[name]
            else:
                self._origins[name] = new

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown or blank name is a one-line user error (a
        blank one usually comes from an unset shell variable: ``--loss "$LOSS"``)."""
        if not isinstance(name, str) or not name.strip():
            raise UnknownNameError(
                f"empty name ({name!r}) given for a {self.kind}; known: {', '.join(self.names())}"
            )
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names())
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}; known: {known}"
            ) from None

    def names(self) -> list[str]:
        if self._sort_key is None:
            return list(self._items)
        key = self._sort_key
        return sorted(self._items, key=lambda name: key(name, self._items[name]))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
