"""The results store: long-format records, one per (run, metric), appended atomically.

Every table and plot is derived from these records, so each one carries everything needed to
interpret and repeat the number: dataset, method, loss and hyper-parameters, model, seed, profile,
hardware, package versions and time.  A run's records are written as one payload under an
exclusive lock, so concurrent runs lose nothing and a killed run leaves at most one torn last line.

A damaged store never stops work.  :func:`read_records` skips, with one warning naming the file and
the line numbers, every line that is not a usable record: bytes that are not UTF-8, text that is
not JSON, JSON that is not an object, and objects without the fields the reports and the "already
run?" checks rely on (:data:`REQUIRED_FIELDS`: ``run_id``, ``dataset``, ``method``, ``mode`` and
``metric`` as strings, ``value`` as a number) or with one of :data:`TYPED_FIELDS` of the wrong type
(a ``seed`` that is not an integer, ``hparams``/``settings``/``hardware``/``versions`` that are not
objects) or with a ``value`` outside its metric's domain (:func:`value_problem`: a rate such as
``hr@1`` outside [0, 1], a negative count or cost, anything not finite; such a value would crash
the reports or silently skew them).  Reading never writes: the damaged lines stay where they are
for a person to look at.  Appending after a torn last line (a process killed mid-``write``) first
ends that line, so the torn fragment stays one damaged line and the new records stay whole.

A store is shared and committed, so it is untrusted input.  An outcomes reference is followed
only to a regular file inside the store's own outcomes folder, of at most
:data:`MAX_OUTCOMES_BYTES` (:func:`read_outcomes`), never to a device, a FIFO or a path outside.

An append is all or nothing: a run's records are appended under the lock and the file is cut back
to its previous size on any failure (a full disk), and its outcomes file is removed
again, so a failed run never leaves some of its records for a sweep to count as done.

Times are instants in UTC with an explicit offset (``2026-12-05T06:51:57+00:00``, :func:`now`),
and "latest" is decided by :func:`instant`, never by comparing the text.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import platform
import re
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from recbench import locks, paths
from recbench.errors import UserError
from recbench.outcomes import ExampleUsers, Outcomes, sha256
from recbench.records import RECORD_FIELDS, RECORD_VERSION, Record, record_version

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
#: Metrics that are shares of the examples, in [0, 1]: hit rates and NDCG at a cutoff (also
#: ranked per token), and ratios and rates such as ``valid_ratio``.
RATE_METRICS = re.compile(
    r"(hr|ndcg|recall|precision|mrr|map)(@\d+)?(_per_token)?|\w*_(ratio|rate)"
)
#: Metrics that are counts or costs, >= 0: example counts (``n_examples``, ``pop_bias_n_valid``),
#: seconds, megabytes, and the load readings of :class:`LoadMeter`.  Every ``cost`` record is
#: one too.  Other metrics (``pop_bias``, signed) need only be finite.
COUNT_METRICS = re.compile(
    r"n_\w+|\w+_n_\w+|\w+_(seconds|mb|bytes|count)|lock_wait|load_average|cpu_utilisation"
)
#: The largest outcomes (or users map) file that is read.  A run's outcomes take about 36 bytes
#: per example (10,675 bytes for 300), so this holds some 1.8 million examples, far beyond any
#: split (movielens test: 8,350); it bounds what a hostile store can make ``compare`` read.
MAX_OUTCOMES_BYTES = 64 * 2**20

log = logging.getLogger(__name__)


def default_store() -> Path:
    """``$RECBENCH_HOME/results/results.jsonl`` (created by the first append, not by a read)."""
    return paths.home() / "results" / "results.jsonl"


def now() -> str:
    """This instant in UTC, ISO 8601 with its offset: ``2026-12-05T06:51:57+00:00``.

    Local time would order a run recorded later in another time zone, or after a clock change,
    before an earlier one.
    """
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    base["time"] = base.get("time") or now()
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


def outcomes_folder(store: Path) -> Path:
    """The folder of a store's per-example outcomes: ``STORE_STEM.outcomes`` beside it."""
    return store.parent / f"{store.stem}.outcomes"


def outcomes_path(store: Path, run_id: str) -> Path:
    """Where the per-example outcomes of ``run_id`` live: ``STORE_STEM.outcomes/RUN_ID.jsonl``."""
    return outcomes_folder(store) / f"{run_id}.jsonl"


# ---------------------------------------------------------------------------- store paths
def check_store_path(store: Path | str | None = None, *, writing: bool = True) -> None:
    """Refuse, before any work, a store path that cannot hold a store; one-line UserError.

    A store is a regular file or does not exist yet: appending to ``/dev/null`` would "record"
    a run that no read finds, and a FIFO would block.  With ``writing``, the store's folder
    must be creatable and writable, and its outcomes folder (``STORE_STEM.outcomes``) must be a
    folder or not exist.  ``store`` None is the default store.  Creates nothing.
    """
    path = Path(store) if store is not None else default_store()
    label = f"--results {store}" if store is not None else f"the results store {path}"
    try:
        mode: int | None = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None  # not there yet (or under a file: said below when writing)
    except OSError as exc:
        raise UserError(f"{label} cannot be read ({exc.strerror or exc})") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise UserError(f"{label} is a directory; give a results store (a .jsonl file)")
    if mode is not None and not stat.S_ISREG(mode):
        raise UserError(
            f"{label} is not a regular file (a device, FIFO or socket); "
            "a results store must be a regular file or not exist yet"
        )
    if writing:
        _check_writable(path, mode is not None, label)


def _check_writable(path: Path, exists: bool, label: str) -> None:
    """The store (or the nearest folder that exists on its way) and its outcomes folder can be
    written: a file where a folder must be, or a read-only place, fails here, not after a run."""
    probe = path if exists else _nearest_existing(path.parent)
    if not exists and not probe.is_dir():
        raise UserError(f"{label} cannot be created: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK if exists else os.W_OK | os.X_OK):
        raise UserError(f"{label} is not writable ({probe} is read-only)")
    folder = outcomes_folder(path)
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise UserError(f"{label} cannot keep its outcomes: {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"{label} cannot keep its outcomes: {folder} is read-only")
    elif path.parent.is_dir() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise UserError(f"{label} cannot keep its outcomes: {path.parent} is read-only")


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists (a file there blocks the store)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


# ------------------------------------------------------------------------------- outcomes
@dataclass(frozen=True)
class _WrittenOutcomes:
    """An outcomes file an append wrote, to remove again when its records cannot be appended."""

    path: Path
    new: bool  # False: these very bytes were there before (records may name them): kept

    def remove(self) -> None:
        if self.new:
            with contextlib.suppress(OSError):
                self.path.unlink()


def _write_outcomes(store: Path, records: list[dict], outcomes: Outcomes) -> _WrittenOutcomes:
    """Write the outcomes file (atomically) and point the evaluation records at it.

    Written before the records are appended: a killed run leaves at most an outcomes file that
    no record names (rewritten by the rerun), never a record naming a missing file.
    """
    run_ids = {r["run_id"] for r in records}
    if len(run_ids) != 1:
        raise ValueError(f"outcomes belong to one run; these records have {sorted(run_ids)}")
    path = outcomes_path(store, run_ids.pop())
    data = outcomes.to_jsonl()
    there = _holds(path, data)
    if not there:
        _write_atomically(path, data)
    reference = {
        "file": path.relative_to(store.parent).as_posix(),
        "sha256": sha256(data),
        "examples": len(outcomes),
    }
    modes = outcomes.modes
    for record in records:
        if record.get("mode") in modes:
            record["outcomes"] = dict(reference)
    return _WrittenOutcomes(path, new=not there)


def _holds(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file with exactly ``data`` (its size checked first)."""
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, flush it to disk and rename it to ``path``: ``path``
    is never half-written, and the temporary file is removed when anything fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # one per process
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def read_outcomes(record: Mapping[str, object], store: Path | None = None) -> Outcomes | None:
    """The per-example outcomes a record points to, or None when it points to none.

    A missing file, one outside the store's outcomes folder, one that is not a regular file or
    is larger than :data:`MAX_OUTCOMES_BYTES`, or one whose sha256 is not the record's, is a
    :class:`ValueError` naming the file and the run: paired statistics from the wrong outcomes
    would be silently wrong numbers, and a record is untrusted (it could name ``/dev/zero``).
    """
    reference = record.get("outcomes")
    if not isinstance(reference, Mapping):
        return None
    store = Path(store) if store else default_store()
    path = store.parent / str(reference.get("file"))
    what = f"{path}: outcomes of run {record.get('run_id')}"
    try:
        data = _read_inside(path, outcomes_folder(store))
    except FileNotFoundError as exc:
        raise ValueError(f"{what} unreadable ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ValueError(f"{what} {exc}") from None
    if sha256(data) != reference.get("sha256"):
        raise ValueError(f"{what} do not match the sha256 in the store "
                         "(the file was changed or replaced)")  # fmt: skip
    try:
        return Outcomes.from_jsonl(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{what} are not outcomes ({exc})") from None


def _read_inside(path: Path, folder: Path) -> bytes:
    """The bytes of ``path``, which must resolve to a regular file inside ``folder``.

    Symbolic links are followed, but where they lead must be inside ``folder`` (itself not a
    link).  The file is checked before it is opened, and opened non-blocking without following
    a link, so a FIFO swapped in meanwhile cannot block; reading stops past
    :data:`MAX_OUTCOMES_BYTES`.  Raises FileNotFoundError when it is missing, else ValueError
    saying why it is refused.
    """
    inside = folder.parent.resolve() / folder.name
    resolved = Path(os.path.realpath(path))
    if inside not in resolved.parents:
        raise ValueError(f"are outside the store's outcomes folder {folder}; not read")
    try:
        _check_regular(os.lstat(resolved))  # a device is refused before it is ever opened
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(f"unreadable ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        _check_regular(os.fstat(fd))  # swapped since the check
        data = handle.read(MAX_OUTCOMES_BYTES + 1)
    if len(data) > MAX_OUTCOMES_BYTES:
        raise ValueError(f"are larger than {MAX_OUTCOMES_BYTES >> 20} MiB; not read")
    return data


def _check_regular(info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("are not a regular file (a device, FIFO or socket); not read")


def users_path(store: Path, dataset: str, split: str) -> Path:
    """Where a store keeps the users of a split's examples: ``STORE_STEM.outcomes/users-...``."""
    return outcomes_folder(store) / f"users-{dataset}-{split}.json"


def write_example_users(store: Path, users: ExampleUsers) -> Path | None:
    """Keep ``users`` beside the store's outcomes (atomically), unless the store has them.

    A map already there from another version of the split (another sha256) is kept, and a
    :class:`ValueError` says so: the store's outcomes were clustered by it.  Returns the path
    written, or None when the same map was there.
    """
    path = users_path(store, users.dataset, users.split)
    data = users.to_json()
    if path.exists() or path.is_symlink():
        try:
            existing = _read_inside(path, outcomes_folder(store))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is there but cannot be read ({exc}); left as it is") from None
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
    _write_atomically(path, data)
    return path


def read_example_users(store: Path, dataset: str, split: str) -> ExampleUsers | None:
    """The users of a split's examples kept beside the store, or None when there are none.

    An unreadable or inconsistent file, or one that is not a regular file inside the store's
    outcomes folder, is a :class:`ValueError` naming it.
    """
    path = users_path(store, dataset, split)
    try:
        data = _read_inside(path, outcomes_folder(store))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    try:
        users = ExampleUsers.from_json(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if (users.dataset, users.split) != (dataset, split):
        raise ValueError(f"{path}: holds {users.dataset} {users.split}, not {dataset} {split}")
    return users


# ------------------------------------------------------------------------------- appending
def append_records(
    records: Iterable[Mapping[str, object]],
    store: Path | None = None,
    outcomes: Outcomes | None = None,
) -> Path:
    """Append records atomically (one payload under a lock), creating the store if needed.

    ``outcomes`` (per-example outcomes of the run) are written first, to the file
    :func:`outcomes_path` names, and the records of the modes they cover point to it.
    If the store does not end in a newline (a writer was killed mid-``write``), the payload starts
    with one, so the torn fragment stays a line of its own instead of swallowing a new record.
    All or nothing: when the append fails (a full disk), the store is cut back to its size
    before and the outcomes file written for it is removed, and a :class:`UserError` says so,
    so a sweep never counts a point done on some of its records.
    """
    check_store_path(store or None)
    store = Path(store) if store else default_store()
    records = [r.to_json() if isinstance(r, Record) else dict(r) for r in records]
    what = _describe_runs(records)
    written: _WrittenOutcomes | None = None
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        if outcomes is not None and len(outcomes) and records:
            written = _write_outcomes(store, records, outcomes)
        payload = "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in records).encode()
        if payload:
            _append(store, payload)
    except BaseException as exc:
        if written is not None:
            written.remove()
        if isinstance(exc, OSError):
            raise UserError(
                f"could not record {what} in {store} ({exc.strerror or exc}); "
                "nothing of it was recorded"
            ) from None
        raise
    return store


def _describe_runs(records: list[dict]) -> str:
    run_ids = sorted({str(r.get("run_id")) for r in records})
    shown = ", ".join(run_ids[:3]) + (", ..." if len(run_ids) > 3 else "")
    return f"run{'s' if len(run_ids) > 1 else ''} {shown}"


def _append(store: Path, payload: bytes) -> None:
    """Append ``payload`` under an exclusive lock, whole or not at all.

    Any failure (``ENOSPC`` mid-write, a failed ``fsync``) cuts the file back to its size
    before, still under the lock, so no reader or writer sees part of the payload.
    """
    fd = os.open(store, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for a device since checked
            raise UserError(f"{store} is not a regular file; nothing was recorded")
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        try:
            if size and os.pread(fd, 1, size - 1) != b"\n":
                payload = b"\n" + payload
            _write_all(fd, payload)
            os.fsync(fd)
        except BaseException:
            _cut_back(fd, size, store)
            raise
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a write may be short on a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - regular files write or raise
            raise OSError(f"write to fd {fd} wrote nothing")
        view = view[written:]


def _cut_back(fd: int, size: int, store: Path) -> None:
    """Truncate the store back to ``size`` bytes after a failed append."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - truncating frees space; only a dead disk fails
        log.error("error: %s: could not cut a failed append back to %d bytes (%s); lines past "
                  "it may be partial", store, size, exc.strerror or exc)  # fmt: skip


# -------------------------------------------------------------------------------- reading
def value_problem(mode: object, metric: object, value: object) -> str | None:
    """Why ``value`` cannot be a value of ``metric`` (in ``mode``), or None when it can.

    Rates (:data:`RATE_METRICS`) lie in [0, 1]; counts and costs (:data:`COUNT_METRICS`, every
    ``cost`` record) are >= 0; no value is infinite.  An HR@1 of 41.4 would crash the
    intervals of ``compare`` (a math domain error), and an infinite time would skew a table.
    NaN is what recbench itself writes where a signed metric is undefined (the popularity bias
    of a run without one valid answer), and every reader takes it as missing: it is kept there,
    and refused for rates, counts and costs, which are always defined.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return f"has a '{metric}' value that is not a finite number"
    name = str(metric)
    bounded = RATE_METRICS.fullmatch(name) or COUNT_METRICS.fullmatch(name) or mode == "cost"
    if math.isnan(number) and not bounded:
        return None
    if not math.isfinite(number):
        return f"has a '{metric}' value of {number}, not a finite number"
    if RATE_METRICS.fullmatch(name) and not 0.0 <= number <= 1.0:
        return f"has a '{metric}' value of {number:g}, outside [0, 1]"
    if (mode == "cost" or COUNT_METRICS.fullmatch(name)) and number < 0.0:
        return f"has a '{metric}' value of {number:g}, below 0"
    return None


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
    return value_problem(value["mode"], value["metric"], value["value"])


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
    records: list[Record] = field(default_factory=list)
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
    if not store.is_file():  # missing, or a folder, device or FIFO: nothing to read
        return out
    fd = os.open(store, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO cannot block
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the check
            return out
        fcntl.flock(fd, fcntl.LOCK_SH)
        data = handle.read()
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        record, reason = _parse_line(raw)
        if record is None:
            out.damaged.append((number, str(reason)))
        else:
            _check_version(store, number, record)
            out.records.append(Record.from_json(record))
    return out


class StoreVersionError(UserError):
    """A store holding records of a newer recbench, whose fields this one may misread."""


def _check_version(store: Path, number: int, record: Mapping[str, object]) -> None:
    version = record_version(record)
    if version > RECORD_VERSION:
        raise StoreVersionError(
            f"{store} line {number} holds a record of version {version}, written by a newer "
            f"recbench (this one reads versions 1 to {RECORD_VERSION}); upgrade recbench"
        )


# (path, damaged line numbers) already warned about in this process: a sweep reads the store
# before every point, and one damaged line must not print one warning per point.
_warned: set[tuple[str, int]] = set()


def read_records(store: Path | None = None) -> list[Record]:
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

    rows = [record.to_json() for record in read_records(store)]
    return pd.DataFrame.from_records(rows, columns=list(RECORD_FIELDS))
