"""Inter-process locks for what several runs may build or use at the same time.

Two runs that need the same uncached stage (an SFT adapter, reference log-probabilities, the
trained SASRec) must not both build it, and must not read it half-written: the first takes the
lock and builds, the second waits on the lock and then finds the stage done.  ``filelock`` does
the locking (``fcntl`` on POSIX); the lock is released by the kernel when its process dies, so a
killed run never leaves a stale lock behind.

With several accelerate processes in one run, only the main process takes the lock and the
others wait at a barrier: the processes of one run train a stage together, so a lock per
process would deadlock them against each other.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from recbench import paths


def lock_path(target: Path) -> Path:
    """The lock file guarding ``target`` (a file or directory), under ``$RECBENCH_HOME/locks``.

    Kept in one place rather than beside ``target``, so that taking a lock writes nothing into
    a user's directories (a refused ``--output-dir`` is left exactly as it was).
    """
    resolved = Path(target).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    return paths.subdir("locks") / f"{resolved.name[:48]}-{digest}.lock"


_waited = [0.0]  # seconds this process has spent waiting for locks held by others


def waited_seconds() -> float:
    """How long this process has waited for other processes' locks so far: a run that waited
    for another to build a shared stage was idle, not slowed (see ``results.LoadMeter``)."""
    return _waited[0]


@contextmanager
def exclusive(target: Path, what: str, quiet: bool = False) -> Iterator[None]:
    """Hold the lock of ``target``; say once on stderr when another process makes us wait."""
    path = lock_path(target)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not quiet:
            print(f"waiting for another process that is building {what} ({path})",
                  file=sys.stderr, flush=True)  # fmt: skip
        started = time.perf_counter()
        try:
            lock.acquire()
        finally:
            _waited[0] += time.perf_counter() - started
    try:
        yield
    finally:
        lock.release()


@contextmanager
def exclusive_for_run(target: Path, what: str, accelerator, quiet: bool = False) -> Iterator[None]:
    """:func:`exclusive` taken by the main process of a (possibly multi-process) run."""
    if accelerator is None or accelerator.num_processes == 1:
        with exclusive(target, what, quiet):
            yield
        return
    if accelerator.is_main_process:
        with exclusive(target, what, quiet):
            accelerator.wait_for_everyone()
            yield
            accelerator.wait_for_everyone()
    else:
        accelerator.wait_for_everyone()
        yield
        accelerator.wait_for_everyone()
