"""The files the LLM pipeline keeps beside its stages, and how each is read back or repaired.

Two passes over the preference examples run once per SFT stage and are cached for every loss
run on it: the reference log-probs (safetensors) and the negatives a strategy picked (JSON).
While one runs, its finished batches go to a journal beside the cache (``*.partial.jsonl``), so a
killed pass continues instead of starting over; the journal is removed once the cache is
written.  A preference stage records which SFT stage it trains from, so it is never continued on
another.  Every reader treats a damaged file as absent (recomputed, or refused with one line
where recomputing would mix two models), never as fatal.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import torch

from recbench import rundir
from recbench.journal import Journal

STARTED_FROM = "sft_weights.txt"  # in a preference stage: the SFT stage it trains on


def check_started_from(stage_dir: Path, sft_weights: str | None) -> None:
    """A preference stage continues only on the SFT stage it started from.

    Its checkpoints hold an adapter trained from that stage; resumed after the stage was
    trained again into other weights (another machine), the run would record the new stage
    while holding the old one's descendant.  Refused with one line; nothing is deleted.  The
    record is written atomically, so no kill damages it; a damaged one (a disk error) leaves
    the lineage unknown, and the stage is discarded with a warning and trained again, as a
    damaged checkpoint is.  A stage without the record (written before it existed) continues.
    """
    if sft_weights is None:
        return
    marker = stage_dir / STARTED_FROM
    if marker.is_file():
        started = marker.read_text(encoding="utf-8", errors="replace").strip()
        if not re.fullmatch(r"[0-9a-f]{16}", started):  # damaged: its lineage is unknown
            warnings.warn(
                f"preference: discarding {stage_dir}, whose record of the SFT stage it "
                "trains on is damaged; the stage is trained again from the start",
                UserWarning,
                stacklevel=3,
            )
            shutil.rmtree(stage_dir)
        elif started != sft_weights:
            raise rundir.RunDirectoryError(
                f"{stage_dir} holds a preference stage trained from the SFT stage with weights "
                f"{started}, but that stage now has weights {sft_weights} (trained again "
                f"elsewhere?): continuing would mix two models; remove {stage_dir} to retrain it"
            )
        else:
            return
    stage_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_atomic(marker, sft_weights + "\n")


def read_reference(path: Path, rows: int, columns: int) -> torch.Tensor | None:
    """The cached reference log-probs, or None when absent or damaged (then recomputed)."""
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        logps = load_file(str(path))["logps"]
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is recomputed
        warnings.warn(f"recomputing the damaged cache {path} ({type(exc).__name__})", stacklevel=3)
        return None
    if tuple(logps.shape) != (rows, columns) or not torch.isfinite(logps).all():
        warnings.warn(f"recomputing the cache {path}: unexpected shape or values", stacklevel=3)
        return None
    return logps


def partial_path(cache: Path) -> Path:
    """Where the journal of the pass that fills ``cache`` lives until ``cache`` is written."""
    return cache.with_name(cache.name.split(".")[0] + ".partial.jsonl")


def discard_journal(journal: Journal | None) -> None:
    """Remove a finished pass's journal: its complete result is cached now."""
    if journal is not None:
        journal.path.unlink(missing_ok=True)


def write_reference(path: Path, logps: torch.Tensor) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"logps": logps.contiguous()}, str(tmp))
    tmp.replace(path)


def read_negatives(path: Path, rows: int) -> list[tuple[int, ...]] | None:
    """The cached pick, or None when absent or damaged (then picked again)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(value, list) or len(value) != rows:
        return None
    return [tuple(int(i) for i in row) for row in value]
