"""An evaluation's journal: each batch's results, appended as it finishes, so that a killed
evaluation continues where it stopped instead of starting over.

Scoring 1,000 test examples takes more than twenty minutes on a 2-core CPU; without a journal a
run killed near its end loses all of it.  One JSON line per batch holds the batch's example keys,
its results and the seconds it took.  When the evaluation runs again, the longest prefix of
complete lines whose keys match the batches of this evaluation is reused; a torn last line (a
kill mid-write) and everything after the first mismatch are cut off, and scoring goes on from
there.  Reused results are the very numbers the first attempt computed (floats round-trip
exactly through JSON), and batches keep the same composition, so a continued evaluation gives the
numbers an uninterrupted one would.

A journal belongs to one model state and one way of scoring: its file is named by a digest of
the trainable weights, the settings that shape the scores and the evaluated examples, so a
retrained model or other settings never read another evaluation's results.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch


def _hash_named(digest, named: Iterable[tuple[str, torch.Tensor]]) -> None:
    for name, tensor in sorted(named, key=lambda pair: pair[0]):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())


def _hash_trainable(digest, model: torch.nn.Module) -> None:
    _hash_named(digest, ((n, p) for n, p in model.named_parameters() if p.requires_grad))


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of the trainable weights alone: the identity of a trained stage.

    Two stages trained with the same settings and seed on different CPUs (AMX against AVX512
    bf16 kernels, say) are different models; this digest tells them apart where settings cannot.
    """
    digest = hashlib.sha256()
    _hash_trainable(digest, model)
    return digest.hexdigest()[:16]


def saved_weights_digest(path: Path) -> str:
    """:func:`weights_digest` of the model that the trainable state saved at ``path`` (a
    stage's ``adapter.safetensors``) loads into, read from the file alone: a planner learns
    which stage is built here without loading a model.

    Hashing the 20 MB file takes a fraction of a second, and a sweep plans every point, so
    the digest is kept per file version (path, size and modification time): a stage trained
    again in place is hashed again.
    """
    stat = path.stat()
    return _file_digest(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    _hash_named(digest, load_file(path).items())
    return digest.hexdigest()[:16]


def fingerprint(model: torch.nn.Module, settings: Mapping[str, object], keys: Iterable[str]) -> str:
    """A digest of what decides an evaluation's numbers: trainable weights, settings, examples."""
    digest = hashlib.sha256()
    _hash_trainable(digest, model)
    digest.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    for key in keys:
        digest.update(key.encode() + b"\n")
    return digest.hexdigest()[:16]


class Journal:
    """The per-batch results of one evaluation mode, in ``path`` (JSON Lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reused: list[dict] = []

    def resume(self, batches: Sequence[Sequence[str]]) -> list[dict]:
        """The stored entries that match the first batches (their example keys, in order).

        The file is cut back to them, so what is appended next follows the last good line.
        """
        entries, good_bytes = [], 0
        if self.path.is_file():
            data = self.path.read_bytes()
            for line in data.split(b"\n")[:-1]:  # the piece after the last newline is torn
                try:
                    entry = json.loads(line)
                except ValueError:
                    break
                index = len(entries)
                if (
                    not isinstance(entry, dict)
                    or index >= len(batches)
                    or entry.get("keys") != list(batches[index])
                ):
                    break
                entries.append(entry)
                good_bytes += len(line) + 1
            if good_bytes < len(data):
                with open(self.path, "r+b") as handle:
                    handle.truncate(good_bytes)
        self.reused = entries
        return entries

    @property
    def reused_seconds(self) -> float:
        """The time the reused batches took when they were computed."""
        return sum(float(entry.get("seconds", 0.0)) for entry in self.reused)

    def append(self, keys: Sequence[str], seconds: float, **results: object) -> None:
        """Add one finished batch (flushed and synced: it survives a kill right after)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"keys": list(keys), "seconds": seconds, **results}) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


__all__ = ["Journal", "fingerprint", "weights_digest"]
