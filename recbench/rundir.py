"""A run directory belongs to exactly one run: what it holds is keyed by the run's identity.

A run directory holds a run's checkpoints, cached reference log-probs and answers.  Reusing it
for another run would resume the other run's adapter and record it under the new run's name,
so every run writes ``run.json`` (its run id and the settings that define it) into its
directory on first use, and a later run is refused there unless it is the same run.  The
default directories are named by the run id and so never collide; the check matters for
``--output-dir``.

The resume policy is explicit.  A run directory (or shared SFT stage) with an interrupted
stage is continued only with ``--resume`` (``RunConfig.resume``); without it the run stops and
says how to continue, so hours of training are never silently thrown away.  ``--resume`` with
nothing to continue says so instead of silently starting from scratch.  A sweep continues
whatever its killed points left (``resume="auto"``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from recbench.errors import UserError

IDENTITY_FILE = "run.json"
#: RunConfig fields that say where a run is stored or how it is started, not what it computes.
RUN_LOCATION_FIELDS = ("output_dir", "results", "resume", "rerun")


class RunDirectoryError(UserError):
    """A run directory that holds another run, or state the options do not allow using."""


def _read_identity(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("run_id"), str) else None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


#: What a run writes into its directory (besides ``run.json``).
RUN_STATE_NAMES = frozenset({"preference", "train", "answers.jsonl", IDENTITY_FILE + ".tmp",
                             "answers.jsonl.tmp", "evaluation"})  # fmt: skip


def holds_run_state(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a recbench run's state (with or without its ``run.json``)."""
    if not run_dir.is_dir():
        return False
    names = {p.name for p in run_dir.iterdir()}
    return IDENTITY_FILE in names or (bool(names) and names <= RUN_STATE_NAMES)


def claim(run_dir: Path, run_id: str, identity: dict, explicit: bool) -> None:
    """Make ``run_dir`` the directory of ``run_id``, or refuse with one line.

    ``explicit`` says the user chose the directory (``--output-dir``): a non-empty directory
    without a recbench run in it is then refused too, since it may hold anything.
    """
    run_dir = Path(run_dir)
    marker = run_dir / IDENTITY_FILE
    where = f"--output-dir {run_dir}" if explicit else str(run_dir)
    if marker.exists():
        held = _read_identity(marker)
        if held is None:
            warnings.warn(
                f"{marker} is damaged; rewriting it for run {run_id}", UserWarning, stacklevel=2
            )
        elif held["run_id"] != run_id:
            what = held.get("method", "another method")
            raise RunDirectoryError(
                f"{where} holds another run ({held['run_id']}, {what}); give each run its own "
                "--output-dir, or omit --output-dir to use one directory per run"
            )
        else:
            return
    elif explicit and run_dir.is_dir() and any(run_dir.iterdir()):
        if not holds_run_state(run_dir):
            raise RunDirectoryError(
                f"{where} is not empty and holds no recbench run; choose an empty or new directory"
            )
        warnings.warn(
            f"{marker} is missing; taking the run state in {run_dir} for run {run_id}",
            UserWarning, stacklevel=2,
        )  # fmt: skip
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirectoryError(f"cannot create run directory {run_dir}: {exc.strerror}") from None
    write_atomic(marker, json.dumps({"run_id": run_id, **identity}, sort_keys=True, default=str))


def progress(run_dir: Path) -> str | None:
    """What a started run has kept in ``run_dir``, in a few words; None when nothing.

    ``recbench sweep --dry-run`` shows it beside each point still to run, so hours of a long
    study are visible before a sweep is restarted: a training stage (a folder holding
    ``checkpoint/`` or ``final/``) is *done* or *at step N*; an evaluation mode has *K batches*
    in its journal (the newest journal of the mode: an older one belongs to other weights).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    parts = []
    for stage in sorted({p.parent for p in run_dir.rglob("*")
                         if p.is_dir() and p.name in ("checkpoint", "final")}):  # fmt: skip
        name = str(stage.relative_to(run_dir))
        if (stage / "final" / "done.json").is_file():
            parts.append(f"{name} done")
        else:
            parts.append(f"{name} at step {checkpoint_step(stage / 'checkpoint') or 0}")
    newest: dict[str, Path] = {}
    for journal in sorted((run_dir / "evaluation").glob("*.jsonl")):
        mode = journal.name.split("-", 1)[0]
        if mode not in newest or journal.stat().st_mtime > newest[mode].stat().st_mtime:
            newest[mode] = journal
    for mode, journal in sorted(newest.items()):
        with open(journal, "rb") as handle:
            batches = sum(1 for line in handle if line.endswith(b"\n"))
        parts.append(f"{mode} {batches} batches scored")
    return ", ".join(parts) or None


def checkpoint_step(checkpoint: Path) -> int | None:
    """The step a stage's resumable ``checkpoint`` folder holds; None when there is none.

    A damaged one counts as step 0: the stage starts over.  The trainer asks the same question
    before it continues a stage, and ``sweep --dry-run`` asks it without building the trainer.
    """
    try:
        return int(json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0 if checkpoint.is_dir() else None
