"""The results store: long-format records, one per (run, metric), appended atomically.

Every table and plot is derived from these records, so each one carries everything needed to
interpret and repeat the number: dataset, method, loss and hyper-parameters, model, seed, profile,
hardware, package versions and time.  A run's records are written with one ``write`` call under an
exclusive lock, so a killed run never leaves a partial record and concurrent runs lose nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import time
import uuid
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from recbench import paths

RECORD_FIELDS = (
    "run_id",
    "time",
    "dataset",
    "method",
    "family",
    "model",
    "seed",
    "profile",
    "split",
    "mode",
    "metric",
    "value",
    "hparams",
    "settings",
    "hardware",
    "versions",
)


def default_store() -> Path:
    return paths.subdir("results") / "results.jsonl"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


def hardware() -> dict[str, object]:
    info: dict[str, object] = {
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "system": platform.system(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("recbench", "torch", "transformers", "peft", "accelerate"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def make_records(
    run: Mapping[str, object], metrics: Mapping[str, float], **per_metric: object
) -> list[dict]:
    """Expand one run's description and its metrics into long-format records.

    ``run`` holds the per-run fields (run_id, dataset, method, ...); ``per_metric`` fields such as
    ``split`` and ``mode`` apply to every metric of this call.
    """
    base = {name: run.get(name) for name in RECORD_FIELDS if name not in {"metric", "value"}}
    base.update(per_metric)
    base["time"] = base.get("time") or time.strftime("%Y-%m-%dT%H:%M:%S%z")
    base["hardware"] = base.get("hardware") or hardware()
    base["versions"] = base.get("versions") or versions()
    return [{**base, "metric": name, "value": float(value)} for name, value in metrics.items()]


def append_records(records: Iterable[Mapping[str, object]], store: Path | None = None) -> Path:
    """Append records atomically (one locked ``write``), creating the store if needed."""
    store = Path(store) if store else default_store()
    store.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in records).encode()
    if not payload:
        return store
    fd = os.open(store, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = os.write(fd, payload)
        if written != len(payload):  # pragma: no cover - regular files write fully
            raise OSError(f"short write to {store}")
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return store


def read_records(store: Path | None = None) -> list[dict]:
    store = Path(store) if store else default_store()
    if not store.is_file():
        return []
    with open(store, encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        lines = handle.read().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_frame(store: Path | None = None):
    """The store as a pandas DataFrame (one row per run and metric)."""
    import pandas as pd

    return pd.DataFrame.from_records(read_records(store), columns=list(RECORD_FIELDS))
