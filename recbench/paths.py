"""Where recbench keeps what it downloads, converts, imports and produces.

Everything lives under one directory, ``$RECBENCH_HOME`` (default: ``~/.cache/recbench``, or
``$XDG_CACHE_HOME/recbench``), so that a user can inspect, move or delete it in one place.

The directory must be usable: one that is a file, cannot be created, or is not writable (a
read-only directory or file system) is refused with one line naming it, before any command
relies on it, rather than with a traceback half-way through writing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from recbench.errors import UserError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def home() -> Path:
    """The recbench cache directory (created on first use; refused if unusable)."""
    root = os.environ.get("RECBENCH_HOME")
    if root:
        path = Path(root).expanduser()
        label = f"RECBENCH_HOME={root}"
    else:
        try:
            cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        except RuntimeError:  # no home directory to expand
            raise UserError("cannot locate a cache directory: set RECBENCH_HOME") from None
        path = Path(cache) / "recbench"
        label = f"the recbench cache {path} (set RECBENCH_HOME to use another)"
    return usable_directory(path, label)


def usable_directory(path: Path, label: str) -> Path:
    """Create ``path`` if needed and check that it is a writable directory; ``label`` names it."""
    problem = None
    try:
        if path.exists() and not path.is_dir():
            problem = "it exists and is not a directory"
        else:
            path.mkdir(parents=True, exist_ok=True)
            if not os.access(path, os.W_OK | os.X_OK):
                problem = "it is not writable"
    except OSError as exc:
        problem = f"cannot create it ({exc.strerror or exc})"
    if problem:
        raise UserError(f"{label} is not a usable directory: {problem}")
    return path


def subdir(*parts: str) -> Path:
    """A directory under :func:`home`, created on demand."""
    base = home()
    path = base.joinpath(*parts)
    return usable_directory(path, f"{path} (inside the recbench cache {base})")


def safe_name(name: str, what: str = "name") -> str:
    """Reject names that would escape a directory when used as a file name.

    Dataset, run and model names become directory names; allowing ``..`` or ``/`` would let a
    name write outside the cache.
    """
    # fullmatch, not match: "$" also matches before a final newline, so "x\n" would pass
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or name in {".", ".."}:
        shown = name if isinstance(name, str) and name.isprintable() else repr(name)
        raise UserError(  # a name with a newline is quoted, so the message stays one line
            f"invalid {what} '{shown}': use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
