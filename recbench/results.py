"""The results store: long-format records, one per (run, metric), appended atomically.

Every table and plot is derived from these records, so each one carries everything needed to
interpret and repeat the number: dataset, method, loss and hyper-parameters, model, seed, profile,
hardware, package versions and time.  A run's records are written with one ``write`` call under an
exclusive lock, so concurrent runs lose nothing and a killed run leaves at most one torn last line.

A damaged store never stops work.  :func:`read_records` skips, with one warning naming the file and
the line numbers, every line that is not a usable record: bytes that are not UTF-8, text that is
not JSON, JSON that is not an object, and objects without the fields the reports and the "already
run?" checks rely on (:data:`REQUIRED_FIELDS`: ``run_id``, ``dataset``, ``method``, ``mode`` and
``metric`` as strings, ``value`` as a number) or with one of :data:`TYPED_FIELDS` of the wrong type
(a ``seed`` that is not an integer, ``hparams``/``settings``/``hardware``/``versions`` that are not
objects).  Reading never writes: the damaged lines stay where they are for a person to look at.
Appending after a torn last line (a process killed mid-``write``) first ends that line, so the
torn fragment stays one damaged line and the new records stay whole.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from recbench import locks, paths
from recbench.outcomes import ExampleUsers, Outcomes, sha256

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
    "outcomes",
)
#: Fields every usable record has, with their types: what a report needs to place a number (its
#: run, dataset, method, mode:metric and value) and what ``already_recorded`` matches on (run_id).
REQUIRED_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "dataset": (str,),
    "method": (str,),
    "mode": (str,),
    "metric": (str,),
    "value": (int, float),
}
#: Fields that may be missing or null, but when present must have this type (the reports and the
#: sweep's "already stored?" check read them as such).
TYPED_FIELDS: dict[str, tuple[type, ...]] = {
    "seed": (int,),
    "hparams": (dict,),
    "settings": (dict,),
    "hardware": (dict,),
    "versions": (dict,),
    "outcomes": (dict,),
}
#: At most this many damaged line numbers are listed in the warning.
LISTED_LINES = 10

log = logging.getLogger(__name__)


def default_store() -> Path:
    """``$RECBENCH_HOME/results/results.jsonl`` (created by the first append, not by a read)."""
    return paths.home() / "results" / "results.jsonl"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


def hardware() -> dict[str, object]:
    info: dict[str, object] = {
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "system": platform.system(),
    }
    model = _cpu_model()
    if model:
        info["cpu_model"] = model
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        # whether bf16 runs natively: it decides what precision=auto trains in, and the speed
        info["cpu_bf16"] = cpu_has_bf16()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except (ImportError, AttributeError, RuntimeError):  # pragma: no cover - torch builds
        pass
    return info


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX, seen through oneDNN).

    Without it, bf16 autocast falls back to a reference GEMM: on an AVX2-only x86_64 CPU one
    SFT step (8 prompts of 250 tokens, one thread) took more than 200 s in bf16 against 30 s
    in fp32.
    """
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


@dataclass
class LoadMeter:
    """How much of the machine a run had, for its cost records: times carry their load.

    A run's wall times mean little without it: on a 2-core machine a second job, even a test
    suite, slowed a 2-thread training job severalfold.  Started with the run; :meth:`readings`
    at its end gives ``cpu_utilisation``, the process's CPU time over wall time times its torch
    threads (near 1 when the run had its cores, well below when it shared them; single-threaded
    phases such as tokenising keep an undisturbed run somewhat below 1), and ``load_average``,
    the machine's 15-minute load average at the end (its own threads included: about its thread
    count when it ran alone).  Time spent waiting for another process's lock (a shared SFT
    stage it was building) is left out of the wall time and reported as ``lock_wait``: the run
    was idle then, not slowed.  The names avoid the ``_seconds`` suffix of stage times.
    """

    wall: float = field(default_factory=time.perf_counter)
    cpu: float = field(default_factory=time.process_time)
    waited: float = field(default_factory=locks.waited_seconds)

    def readings(self) -> dict[str, float]:
        import torch

        waited = locks.waited_seconds() - self.waited
        wall = time.perf_counter() - self.wall - waited
        cpu = time.process_time() - self.cpu
        out: dict[str, float] = {"lock_wait": waited}
        if wall > 0:
            out["cpu_utilisation"] = cpu / (wall * max(1, torch.get_num_threads()))
        try:
            out["load_average"] = os.getloadavg()[2]
        except (AttributeError, OSError):  # pragma: no cover - platforms without it
            pass
        return out


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo); "" where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


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


def run_records(
    run: Mapping[str, object],
    evaluation: Mapping[str, Mapping[str, float]],
    cost: Mapping[str, float],
    split: str = "test",
) -> list[dict]:
    """All records of one run, the same way for every method: its metrics by evaluation mode
    (scored on ``split``) and its cost (wall time per stage, memory) as mode ``cost``."""
    rows: list[dict] = []
    for mode, values in evaluation.items():
        rows += make_records(run, values, split=split, mode=mode)
    return rows + make_records(run, cost, split="train", mode="cost")


def outcomes_path(store: Path, run_id: str) -> Path:
    """Where the per-example outcomes of ``run_id`` live: ``STORE_STEM.outcomes/RUN_ID.jsonl``."""
    return store.parent / f"{store.stem}.outcomes" / f"{run_id}.jsonl"


def _write_outcomes(store: Path, records: list[dict], outcomes: Outcomes) -> None:
    """Write the outcomes file (atomically) and point the evaluation records at it.

    Written before the records are appended: a killed run leaves at most an outcomes file that
    no record names (rewritten by the rerun), never a record naming a missing file.
    """
    run_ids = {r["run_id"] for r in records}
    if len(run_ids) != 1:
        raise ValueError(f"outcomes belong to one run; these records have {sorted(run_ids)}")
    path = outcomes_path(store, run_ids.pop())
    path.parent.mkdir(parents=True, exist_ok=True)
    data = outcomes.to_jsonl()
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    reference = {
        "file": path.relative_to(store.parent).as_posix(),
        "sha256": sha256(data),
        "examples": len(outcomes),
    }
    modes = outcomes.modes
    for record in records:
        if record.get("mode") in modes:
            record["outcomes"] = dict(reference)


def read_outcomes(record: Mapping[str, object], store: Path | None = None) -> Outcomes | None:
    """The per-example outcomes a record points to, or None when it points to none.

    A missing file, or one whose sha256 is not the record's, is a :class:`ValueError` naming the
    file: paired statistics from the wrong outcomes would be silently wrong numbers.
    """
    reference = record.get("outcomes")
    if not isinstance(reference, Mapping):
        return None
    store = Path(store) if store else default_store()
    path = store.parent / str(reference.get("file"))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: outcomes of run {record.get('run_id')} unreadable "
                         f"({exc.strerror or exc})") from None  # fmt: skip
    if sha256(data) != reference.get("sha256"):
        raise ValueError(f"{path}: outcomes of run {record.get('run_id')} do not match the "
                         "sha256 in the store (the file was changed or replaced)")  # fmt: skip
    return Outcomes.from_jsonl(data)


def users_path(store: Path, dataset: str, split: str) -> Path:
    """Where a store keeps the users of a split's examples: ``STORE_STEM.outcomes/users-...``."""
    return store.parent / f"{store.stem}.outcomes" / f"users-{dataset}-{split}.json"


def write_example_users(store: Path, users: ExampleUsers) -> Path | None:
    """Keep ``users`` beside the store's outcomes (atomically), unless the store has them.

    A map already there from another version of the split (another sha256) is kept, and a
    :class:`ValueError` says so: the store's outcomes were clustered by it.  Returns the path
    written, or None when the same map was there.
    """
    path = users_path(store, users.dataset, users.split)
    data = users.to_json()
    if path.is_file():
        existing = path.read_bytes()
        if existing == data:
            return None
        try:
            other = ExampleUsers.from_json(existing).split_sha256[:12]
        except ValueError:
            other = "unreadable"
        raise ValueError(
            f"{path} maps the examples of another {users.dataset} {users.split} file "
            f"({other}, this one {users.split_sha256[:12]}); left as it is"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # one per process
    partial.write_bytes(data)
    os.replace(partial, path)
    return path


def read_example_users(store: Path, dataset: str, split: str) -> ExampleUsers | None:
    """The users of a split's examples kept beside the store, or None when there are none.

    An unreadable or inconsistent file is a :class:`ValueError` naming it.
    """
    path = users_path(store, dataset, split)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path}: unreadable ({exc.strerror or exc})") from None
    try:
        users = ExampleUsers.from_json(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if (users.dataset, users.split) != (dataset, split):
        raise ValueError(f"{path}: holds {users.dataset} {users.split}, not {dataset} {split}")
    return users


def append_records(
    records: Iterable[Mapping[str, object]],
    store: Path | None = None,
    outcomes: Outcomes | None = None,
) -> Path:
    """Append records atomically (one locked ``write``), creating the store if needed.

    ``outcomes`` (per-example outcomes of the run) are written first, to the file
    :func:`outcomes_path` names, and the records of the modes they cover point to it.
    If the store does not end in a newline (a writer was killed mid-``write``), the payload starts
    with one, so the torn fragment stays a line of its own instead of swallowing a new record.
    """
    store = Path(store) if store else default_store()
    store.parent.mkdir(parents=True, exist_ok=True)
    records = [dict(r) for r in records]
    if outcomes is not None and len(outcomes) and records:
        _write_outcomes(store, records, outcomes)
    payload = "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in records).encode()
    if not payload:
        return store
    fd = os.open(store, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            payload = b"\n" + payload
        written = os.write(fd, payload)
        if written != len(payload):  # pragma: no cover - regular files write fully
            raise OSError(f"short write to {store}")
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return store


def check_record(value: object) -> str | None:
    """Why ``value`` (one parsed line) is not a usable record, or None when it is one."""
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string"}.get(type(value), "a bare value")
        return f"is JSON {kind}, not an object"
    for name, types in REQUIRED_FIELDS.items():
        if name not in value or value[name] is None:
            return f"has no '{name}'"
        if isinstance(value[name], bool) or not isinstance(value[name], types):
            return f"has a '{name}' that is not a {'number' if name == 'value' else 'string'}"
    for name, types in TYPED_FIELDS.items():
        item = value.get(name)
        if item is not None and (isinstance(item, bool) or not isinstance(item, types)):
            return f"has a '{name}' that is not {'an integer' if name == 'seed' else 'an object'}"
    return None


def _parse_line(raw: bytes) -> tuple[dict | None, str | None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError; RecursionError: absurd nesting
        return None, "is not valid JSON"
    reason = check_record(value)
    return (None, reason) if reason else (value, None)


@dataclass
class StoreContents:
    """What :func:`read_store` found: the usable records and the damaged lines (1-based)."""

    path: Path
    records: list[dict] = field(default_factory=list)
    damaged: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def warning(self) -> str:
        """One line naming the file and the damaged lines ("" when nothing is damaged)."""
        if not self.damaged:
            return ""
        numbers = [str(n) for n, _ in self.damaged[:LISTED_LINES]]
        if len(self.damaged) > LISTED_LINES:
            numbers.append("...")
        first_line, first_reason = self.damaged[0]
        count, kept = len(self.damaged), len(self.records)
        return (
            f"warning: {self.path}: skipped {count} damaged line{'s' if count > 1 else ''} "
            f"({', '.join(numbers)}): line {first_line} {first_reason}; the other "
            f"{kept} record{'s' if kept != 1 else ''} are used and the file is left as it is"
        )


def read_store(store: Path | None = None) -> StoreContents:
    """Every usable record of the store and the damaged lines; the file is only read."""
    store = Path(store) if store else default_store()
    out = StoreContents(store)
    if not store.is_file():
        return out
    with open(store, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        data = handle.read()
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        record, reason = _parse_line(raw)
        if record is None:
            out.damaged.append((number, str(reason)))
        else:
            out.records.append(record)
    return out


# (path, damaged line numbers) already warned about in this process: a sweep reads the store
# before every point, and one damaged line must not print one warning per point.
_warned: set[tuple[str, int]] = set()


def read_records(store: Path | None = None) -> list[dict]:
    """The usable records of the store, skipping damaged lines with one warning (see above).

    The warning goes to the ``recbench.results`` logger (printed as one line on stderr when
    logging is not configured), once per process for the same file and damaged lines.
    """
    contents = read_store(store)
    if contents.damaged:
        key = (str(contents.path.resolve()), hash(tuple(n for n, _ in contents.damaged)))
        if key not in _warned:
            _warned.add(key)
            log.warning("%s", contents.warning())
    return contents.records


def load_frame(store: Path | None = None):
    """The store as a pandas DataFrame (one row per run and metric)."""
    import pandas as pd

    return pd.DataFrame.from_records(read_records(store), columns=list(RECORD_FIELDS))
