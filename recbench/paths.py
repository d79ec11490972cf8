"""Where recbench keeps what it downloads, converts, imports and produces.

Everything lives under one directory, ``$RECBENCH_HOME`` (default: ``~/.cache/recbench``, or
``$XDG_CACHE_HOME/recbench``), so that a user can inspect, move or delete it in one place.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from recbench.errors import UserError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def home() -> Path:
    """The recbench cache directory (created on first use)."""
    root = os.environ.get("RECBENCH_HOME")
    if root:
        path = Path(root).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(cache) / "recbench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def subdir(*parts: str) -> Path:
    """A directory under :func:`home`, created on demand."""
    path = home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(name: str, what: str = "name") -> str:
    """Reject names that would escape a directory when used as a file name.

    Dataset, run and model names become directory names; allowing ``..`` or ``/`` would let a
    name write outside the cache.
    """
    if not _SAFE_NAME.match(name) or name in {".", ".."}:
        raise UserError(
            f"invalid {what} '{name}': use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
