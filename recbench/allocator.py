"""Run the ``recbench`` command under a memory allocator that does not fragment (issue 36).

Why: a training step allocates and frees gigabytes of activations of changing sizes.  glibc's
malloc keeps much of what is freed, in pieces it cannot reuse for the next step's sizes: a
SimS-DPO step with 19 negatives really uses about 6.2 GB at its peak, yet the process held 9.1-9.4
GB after 3-4 steps, still growing, and the study's records reach 9.6-18.3 GB.  tcmalloc, or
jemalloc with purging off, kept the same steps flat (7.0 and 6.9 GB) and ran them faster (32 s
instead of 49 s for four steps); jemalloc with its default purging was slower than glibc (issue
36's measurements).  With gradient checkpointing as well, a short SimS-DPO run peaks at 2.7 GB
instead of 9.9 (``benchmarks/memory_before_after.sh``, docs/performance.md).

An allocator is chosen when the process starts: the dynamic loader reads ``LD_PRELOAD`` before
any of Python runs.  So the CLI, when such a library is installed and the process does not
already run under one, executes itself again, once, with ``LD_PRELOAD`` naming it (same process
id, same arguments, same open files).  ``RECBENCH_ALLOCATOR`` chooses:

* ``auto`` (the default): tcmalloc, else jemalloc, else the system's allocator, silently;
* ``system``: never re-execute;
* ``tcmalloc`` or ``jemalloc``: that one; a one-line error when it is not installed.

On Debian and Ubuntu: ``apt-get install libtcmalloc-minimal4`` (or ``libjemalloc2``).

The decision is pure (:func:`choose`, :func:`command_line`); only :func:`reexecute` looks at the
process and replaces it.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
import sysconfig
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recbench.errors import UserError

#: The setting: auto, system, tcmalloc or jemalloc.
ENV = "RECBENCH_ALLOCATOR"
#: Set in the re-executed process (to the allocator it preloads): it never re-executes again,
#: even where the preload failed, and nor do the processes it starts.
REEXECUTED_ENV = "RECBENCH_ALLOCATOR_PRELOADED"
CHOICES = ("auto", "system", "tcmalloc", "jemalloc")
#: Tried in this order by ``auto``: both were measured flat and fast; tcmalloc needs no tuning.
PREFERENCE = ("tcmalloc", "jemalloc")
#: Shared-library files of each allocator, the preferred first.
LIBRARY_FILES: dict[str, tuple[str, ...]] = {
    # the minimal build: the allocator without the heap profiler (libtcmalloc-minimal4)
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2",),
}
#: The names ``ctypes.util.find_library`` knows them by (the search the loader itself makes).
LIBRARY_NAMES: dict[str, tuple[str, ...]] = {
    "tcmalloc": ("tcmalloc_minimal", "tcmalloc"),
    "jemalloc": ("jemalloc",),
}
#: Variables each allocator is started with, unless the user set them.
ALLOCATOR_ENV: dict[str, dict[str, str]] = {
    # tcmalloc reports every allocation over 1 GiB on stderr by default, which larger batches,
    # models and vocabularies reach; a command's stderr is for its one-line errors
    "tcmalloc": {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(2**62)},
    # purging off: with its default decay jemalloc hands pages back and takes them again every
    # step, which measured slower than glibc (60.5 s against 49.2 s)
    "jemalloc": {"MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"},
}
INSTALL = {"tcmalloc": "libtcmalloc-minimal4", "jemalloc": "libjemalloc2"}


@dataclass(frozen=True)
class Preload:
    """The allocator to start under: its name, its library and the environment to add."""

    name: str
    library: str
    env: dict[str, str] = field(default_factory=dict)


def requested(env: Mapping[str, str]) -> str:
    """``RECBENCH_ALLOCATOR`` (default ``auto``); an unknown value is a one-line error."""
    value = env.get(ENV, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise UserError(f"{ENV}={env.get(ENV)}: unknown allocator; use {', '.join(CHOICES)}")
    return value


def choose(
    env: Mapping[str, str], found: Mapping[str, str], loaded: Collection[str] = ()
) -> Preload | None:
    """What to preload given the environment, the libraries installed (name -> path) and the
    allocators already in the process; None: run on as the process is.

    Never twice (``REEXECUTED_ENV``), never over an allocator already loaded (a user's own
    ``LD_PRELOAD``), never on ``system``.  An allocator asked for by name and not installed is
    a one-line error rather than a silent fallback: the user asked for it.
    """
    wanted = requested(env)
    if wanted == "system" or env.get(REEXECUTED_ENV) or loaded:
        return None
    for name in PREFERENCE if wanted == "auto" else (wanted,):
        library = found.get(name)
        if library:
            extra = {k: v for k, v in ALLOCATOR_ENV[name].items() if k not in env}
            preload = ":".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
            return Preload(name, library, {**extra, "LD_PRELOAD": preload, REEXECUTED_ENV: name})
    if wanted != "auto":
        raise UserError(
            f"{ENV}={wanted}: {wanted} is not installed (on Debian or Ubuntu: "
            f"apt-get install {INSTALL[wanted]}); or set {ENV}=system"
        )
    return None


#: The subcommands that train or evaluate models: only they are worth a second start (about
#: 0.4 s), the others allocate little.
HEAVY_COMMANDS = frozenset({"run", "sweep"})


def command_line(orig_argv: Sequence[str], cli_file: str | Path) -> list[str] | None:
    """The command to execute again: the original one when it runs a training or evaluating
    subcommand (:data:`HEAVY_COMMANDS`) of the recbench CLI (the ``recbench`` script,
    ``python -m recbench.cli`` or the file ``cli_file``), else None.

    None for anything else that calls ``main()`` (``python -c``, pytest): its own state would
    not survive an exec, and re-running it is not what it asked for.
    """
    args = list(orig_argv[1:])
    takes_value = {"-X", "-W", "--check-hash-based-pycs"}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m":
            is_cli = args[i + 1 : i + 2] == ["recbench.cli"]
            return list(orig_argv) if is_cli and _heavy(args[i + 2 :]) else None
        if arg in ("-c", "-"):
            return None
        if arg.startswith("-"):
            i += 2 if arg in takes_value else 1
            continue
        script = Path(arg)
        is_cli = script.name == "recbench" or _same_file(script, Path(cli_file))
        return list(orig_argv) if is_cli and _heavy(args[i + 1 :]) else None
    return None


def _heavy(cli_args: Sequence[str]) -> bool:
    """Whether the CLI's first word (after its options) is a training subcommand."""
    word = next((a for a in cli_args if not a.startswith("-")), None)
    return word in HEAVY_COMMANDS


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def find_libraries(ask_loader: bool = False) -> dict[str, str]:
    """The allocators installed here: name -> library path (or a name the loader finds).

    The directories distributions and conda install them in are looked at first; the loader's
    own cache (``ctypes.util.find_library``, which runs ``ldconfig``, about 50 ms a name) only
    with ``ask_loader``, when the user named an allocator: every command would pay it on a
    machine that has none.
    """
    if not sys.platform.startswith("linux"):
        return {}  # LD_PRELOAD is the ELF loader's
    multiarch = sysconfig.get_config_var("MULTIARCH")
    dirs = [
        Path(sys.prefix) / "lib",  # a conda environment's own (conda install gperftools)
        *(Path(root) / multiarch for root in ("/usr/lib", "/lib") if multiarch),
        *(Path(d) for d in ("/usr/lib64", "/usr/lib", "/usr/local/lib")),
    ]
    found: dict[str, str] = {}
    for name in PREFERENCE:
        path = next((d / f for f in LIBRARY_FILES[name] for d in dirs if (d / f).is_file()), None)
        if path is not None:
            found[name] = str(path)
            continue
        for short in LIBRARY_NAMES[name] if ask_loader else ():
            soname = ctypes.util.find_library(short)
            if soname:
                found[name] = soname
                break
    return found


def loaded_allocators(maps: Path = Path("/proc/self/maps")) -> set[str]:
    """The allocators mapped into this process (from ``LD_PRELOAD`` or linked in)."""
    try:
        text = maps.read_text()
    except OSError:
        return set()
    return {name for name in PREFERENCE if f"lib{name}" in text}


def reexecute(argv: Sequence[str] | None = None) -> None:
    """Execute this process again under the chosen allocator; returns when there is none to
    choose, when it already runs under one, or when the exec fails (it then runs on as it is).

    ``argv``: the command to execute (default: :func:`command_line` of this process).
    """
    wanted = requested(os.environ)  # a mistyped setting is an error whatever the command
    command = list(argv) if argv is not None else command_line(sys.orig_argv, _cli_file())
    if command is None or wanted == "system":
        return
    choice = choose(os.environ, find_libraries(ask_loader=wanted != "auto"), loaded_allocators())
    if choice is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, command, {**os.environ, **choice.env})
    except OSError:
        return  # the system allocator works, only worse


def _cli_file() -> str:
    return str(Path(__file__).with_name("cli.py"))
