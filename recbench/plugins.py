"""Plugins: losses (or methods) registered from outside the recbench package.

A plugin is a Python module, or a ``.py`` file, that imports recbench's public API and registers
entries as it is imported, e.g. ``@losses.register_loss("my_loss", ...)`` on a
:class:`recbench.losses.PreferenceLoss` subclass.  :func:`load_plugins` imports, in this order:

1. installed packages' entry points in the group ``recbench.plugins`` (``[project.entry-points.
   "recbench.plugins"] my_plugin = "my_package.losses"``; an entry point naming a callable, e.g.
   ``"my_package:register"``, is called after its module is imported), except those named in
   ``$RECBENCH_DISABLE_PLUGINS``;
2. the paths or module names in ``$RECBENCH_PLUGINS``, separated by ``os.pathsep``;
3. the ``--plugin`` values of the command.

A value that ends in ``.py`` or names an existing file is imported from that file; any other value
is a module name.  Each plugin is imported once per process, however often it is named.  Every entry
a plugin registers records the plugin (:meth:`recbench.registry.Registry.origin`), and a run of a
plugin's loss stores the plugin's name, file and sha256 with its records (:func:`provenance`).
A plugin that cannot be imported, or that registers a name that already exists, is a
:class:`~recbench.registry.PluginError`: one line, exit code 2.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from recbench.registry import Plugin, PluginError, loading, registries

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "Plugin",
    "PluginError",
    "load_plugins",
    "loaded_plugins",
    "provenance",
    "run_provenance",
]

ENTRY_POINT_GROUP = "recbench.plugins"
ENV_VAR = "RECBENCH_PLUGINS"
DISABLE_VAR = "RECBENCH_DISABLE_PLUGINS"  # entry-point plugins not to load, by name
#: Registry kinds whose entries are methods a run names (besides losses).
METHOD_KINDS = ("method", "baseline")

#: Loaded plugins by identity ("module:NAME", or a resolved file path), in load order.
_LOADED: dict[str, Plugin] = {}


def load_plugins(extra: Sequence[str] = ()) -> list[Plugin]:
    """Import the entry-point plugins, then ``$RECBENCH_PLUGINS``, then ``extra`` (``--plugin``).

    Returns the plugins these sources name, in that order, each once; a plugin imported by an
    earlier call is not imported again.  Raises :class:`PluginError` (a ``UserError``).
    """
    plugins: list[Plugin] = []
    for entry_point in _entry_points():
        plugins.append(_load_entry_point(entry_point))
    for value in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if value.strip():
            plugins.append(_load(value.strip(), ENV_VAR))
    for value in extra:
        plugins.append(_load(value, "--plugin"))
    return list(dict.fromkeys(plugins))


def loaded_plugins() -> list[Plugin]:
    """Every plugin imported so far in this process, in load order."""
    return list(dict.fromkeys(_LOADED.values()))


def provenance(kind: str, key: str | None) -> dict[str, str | None] | None:
    """``{"name", "path", "sha256"}`` of the plugin that registered ``key`` in the registry of
    ``kind`` (e.g. ``"loss"``), or None when ``key`` is built in, unknown or None."""
    if key is None:
        return None
    for registry in registries():
        if registry.kind == kind and key in registry:
            plugin = registry.origin(key)
            return plugin.to_dict() if plugin is not None else None
    return None


def run_provenance(method: str | None) -> dict[str, str | None] | None:
    """What a record of ``method`` (a loss key, or a method such as a baseline) stores as
    ``settings["plugin"]``: the plugin that registered it, or None when it is built in."""
    found = provenance("loss", method)
    for kind in METHOD_KINDS:
        found = found or provenance(kind, method)
    return found


# ---------------------------------------------------------------------------------- loading
def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The installed entry points, less those named in ``$RECBENCH_DISABLE_PLUGINS`` (a broken
    plugin can be switched off without uninstalling it; ``baselines`` switches off recbench's
    own baselines, which the core does not need)."""
    disabled = {v.strip() for v in os.environ.get(DISABLE_VAR, "").split(os.pathsep)}
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    kept = [ep for ep in found if ep.name not in disabled]
    return sorted(kept, key=lambda ep: (ep.name, ep.value))


def _load_entry_point(entry_point: importlib.metadata.EntryPoint) -> Plugin:
    def run() -> None:
        target = entry_point.load()
        if callable(target) and not isinstance(target, ModuleType):
            target()  # "package.module:register"

    return _load_module(entry_point.name, entry_point.module, "entry point", run)


def _load(value: str, origin: str) -> Plugin:
    if value.endswith(".py") or Path(value).expanduser().is_file():
        return _load_file(value, origin)
    return _load_module(value, value, origin, lambda: importlib.import_module(value))


def _load_module(name: str, module: str, origin: str, run: Callable[[], object]) -> Plugin:
    key = f"module:{module}"
    if key in _LOADED:
        return _LOADED[key]
    pending = Plugin(name=name, origin=origin, path=None, sha256=None)
    _import_as(pending, run, module)
    # the file is known once the module is imported (finding it first could run a parent
    # package's code outside the plugin context)
    file = getattr(sys.modules.get(module), "__file__", None)
    plugin = _plugin(name, origin, str(Path(file).resolve()) if file else None)
    for registry in registries():
        registry.reassign(pending, plugin)
    _LOADED[key] = plugin
    if plugin.path is not None:
        _LOADED.setdefault(plugin.path, plugin)
    return plugin


def _load_file(value: str, origin: str) -> Plugin:
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise PluginError(f"plugin {value}{_named_in(origin)}: no such file ({path})")
    key = str(path)
    if key in _LOADED:
        return _LOADED[key]
    plugin = _plugin(path.name, origin, key)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    module_name = f"_recbench_plugin_{_identifier(path.stem)}_{digest}"

    def run() -> None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickle look the module up
        spec.loader.exec_module(module)

    _import_as(plugin, run, module_name)
    _LOADED[key] = plugin
    return plugin


def _import_as(plugin: Plugin, run: Callable[[], object], module: str) -> None:
    """Run ``plugin``'s import with its registrations attributed to it; undo it on failure."""
    before = set(sys.modules)
    try:
        with loading(plugin):
            run()
    except Exception as exc:
        for registry in registries():
            registry.reassign(plugin, None)
        for name in set(sys.modules) - before:
            if name == module or name.startswith(module + "."):
                del sys.modules[name]
        if isinstance(exc, PluginError):
            raise
        reason = _one_line(f"{type(exc).__name__}: {exc}")
        named = _named_in(plugin.origin)
        raise PluginError(f"{plugin.describe()}{named}: cannot import it ({reason})") from exc


def _named_in(origin: str) -> str:
    """Where a failing plugin was named, when the user may not remember having named it (an
    environment variable set long ago); ``--plugin`` is on the command line they just typed."""
    return f" (named in ${ENV_VAR})" if origin == ENV_VAR else ""


# ---------------------------------------------------------------------------------- helpers
def _plugin(name: str, origin: str, path: str | None) -> Plugin:
    sha256 = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    return Plugin(name=name, origin=origin, path=path, sha256=sha256)


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text) or "plugin"


def _one_line(text: str) -> str:
    return " ".join(text.split())
