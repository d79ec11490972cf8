"""The one method contract: every ``--baseline`` is a registered :class:`MethodSpec`.

A method is what ``recbench run --baseline NAME`` runs: zero-shot and SFT (here in the core),
the sequential recommenders, TALLRec, ChatRec, LLaRA, MoRec and the rule baselines (in
``baselines/``), or a plugin's.  Each registers itself with :func:`register_method`; nothing in
the core lists them, so the runner dispatches by lookup, never by name.  The core never imports
``baselines``: that package is a plugin of recbench's own, found like any other through the
``recbench.plugins`` entry point (:mod:`recbench.plugins`).

The contract is three callables, as narrow as lm-evaluation-harness's model contract:

* ``check(config)``: every cheap check (names, ranges, files the method needs), run before any
  model loads, raising one-line :class:`~recbench.errors.UserError`\\ s;
* ``run(config, progress)``: the work, which records its results in the store and returns the
  summary the CLI prints (``run_id``, ``evaluation`` by mode, ``timings``, ``results``);
* ``takes_checkpoint``: whether ``--checkpoint`` means anything to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recbench import plugins
from recbench.errors import UserError
from recbench.registry import Registry

if TYPE_CHECKING:
    from recbench.config import RunConfig

RunFn = Callable[["RunConfig", bool], dict[str, Any]]
CheckFn = Callable[["RunConfig"], None]

#: The families of methods, in the order tables list them.
FAMILIES = ("rule", "sequential", "llm_baseline", "loss")


def _no_check(config: RunConfig) -> None:
    del config


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: how to check and run it, and how tables group and order it."""

    name: str
    family: str
    summary: str
    run: RunFn
    check: CheckFn = _no_check
    takes_checkpoint: bool = False
    order: int = 1000  # position in listings and tables (built-ins first)


METHODS: Registry[MethodSpec] = Registry("baseline")


def register_method(
    name: str,
    *,
    family: str,
    summary: str,
    check: CheckFn | None = None,
    takes_checkpoint: bool = False,
    order: int = 1000,
) -> Callable[[RunFn], RunFn]:
    """Decorator on a method's ``run(config, progress)`` registering it as ``--baseline name``."""
    if family not in FAMILIES:
        raise ValueError(f"method '{name}': unknown family '{family}' (use {', '.join(FAMILIES)})")
    if "\n" in summary:
        raise ValueError(f"method '{name}': summary must be one line")

    def wrap(run: RunFn) -> RunFn:
        METHODS.add(
            name,
            MethodSpec(name=name, family=family, summary=summary, run=run,
                       check=check or _no_check, takes_checkpoint=takes_checkpoint,
                       order=order),
        )  # fmt: skip
        return run

    return wrap


def get_method(name: str) -> MethodSpec:
    """The method registered as ``name`` (plugins loaded first); unknown names: "did you mean"."""
    plugins.load_plugins()  # the installed ones (entry points); idempotent
    return METHODS.get(name)


def method_names() -> list[str]:
    """Every registered method, in listing order (family, then ``order``, then name)."""
    plugins.load_plugins()
    specs = [METHODS.get(name) for name in METHODS.names()]
    specs.sort(key=lambda s: (FAMILIES.index(s.family), s.order, s.name))
    return [s.name for s in specs]


def check_checkpoint(config: RunConfig) -> None:
    """``--checkpoint`` only for methods that take one."""
    if config.checkpoint is None:
        return
    takers = [n for n in method_names() if METHODS.get(n).takes_checkpoint]
    if config.baseline is None or not get_method(config.baseline).takes_checkpoint:
        raise UserError(
            f"--checkpoint selects a baseline's weights ({', '.join(takers)}); "
            f"{config.method} does not take one"
        )
