"""``recbench data fetch steam``: the full Steam training split, from the LLaRA authors' release.

recbench ships only a 1,000-row sample of steam's training split (about 151k rows): the full
file is not redistributable here.  Its authors publish it on the Hugging Face hub as the dataset
``joyliao7777/LLaRA`` (``steam/train_data.df``, a pickled pandas frame, at commit 88e1e386, the
2024-05 version whose val/test recbench ships); recbench records its size and sha256
(``recbench/data/files/PROVENANCE.md``).  This module

* downloads that file with ``huggingface_hub``, pinned to the commit, after a single quick probe
  of the hub, so that a machine without network fails in seconds (``hf_hub_download`` alone
  retries for about half a minute) with one line that says how to bring a copy by hand
  (``--file PATH``, checked the same way);
* checks size and sha256 against the recorded values **before** reading it: unpickling runs
  whatever code the file names, so only the recorded bytes are ever unpickled, and the bytes
  unpickled are the very bytes hashed (read once into memory; 7 MB), never the path again;
* converts the frame's ``seq``, ``len_seq`` and ``next`` columns to recbench's JSON Lines, row
  order kept, and validates the result with the reader every later load uses;
* installs ``train.jsonl`` and its record under ``$RECBENCH_HOME/fetched/steam`` atomically and
  under the name's lock (the staging, locking and renaming of :mod:`recbench.data.importer`),
  after which the built-in steam trains on it (:mod:`recbench.data.fetched`).

The file is the authors' own split, identified by its hash; the import's check that no row is
shared between splits is not applied (``recbench data audit steam`` reports such rows), since a
user could do nothing about a refusal of the recorded file.

The real download has not been tried on the machines recbench is developed on, which cannot
reach the hub; the tests use a local stand-in for it (``tests/test_data_fetch.py``).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from recbench.data import catalog, fetched, importer
from recbench.data.dataset import load_spec
from recbench.data.rows import read_rows, sha256_of
from recbench.errors import DataError

NAME = "steam"
SPLIT = "train"
REPO_ID = "joyliao7777/LLaRA"
REPO_TYPE = "dataset"
FILENAME = "steam/train_data.df"
REVISION = "88e1e386a7a15bb10f7d84ba5199f43b23b75377"
#: The recorded file (PROVENANCE.md); only a file with exactly these bytes is unpickled.
SIZE = 7_322_362
SHA256 = "90f8e2ec827427d271cf0b03db45ed5ac3231840fbd022ac57cfae6061ed5b63"
#: Seconds to wait for the hub's first answer; an unreachable hub fails after this, not after
#: huggingface_hub's retries.
PROBE_TIMEOUT_S = 5.0
ETAG_TIMEOUT_S = 10.0
OUTPUT = "train.jsonl"
URL = f"https://huggingface.co/datasets/{REPO_ID}/resolve/{REVISION}/{FILENAME}"
BY_HAND = (
    f"download {URL} on a machine that reaches the hub and run "
    f"`recbench data fetch {NAME} --file PATH`"
)


def fetch(file: Path | None = None, *, endpoint: str | None = None) -> fetched.FetchedSplit:
    """Install the full training split from ``file`` or, without one, from the hub.

    ``endpoint`` is the hub's address (default: huggingface_hub's, ``$HF_ENDPOINT``).  Every
    refusal is one :class:`DataError` line raised before anything is installed.
    """
    target = fetched.root() / NAME
    with (
        importer.exclusive_name(target, "fetch"),
        importer.staging_dir(target, "importing") as staging,
    ):
        if file is None:
            path, shown = download(staging / "download", endpoint), URL
            origin = hub_origin()
        else:
            path = shown = Path(file)
            origin = f"{Path(file).resolve()} (given with --file)"
        record = convert(read_verified(path, shown), shown, staging, origin)
        shutil.rmtree(staging / "download", ignore_errors=True)  # keep only what is used
        importer.install(staging, target)
    return record


def hub_origin() -> str:
    return f"Hugging Face dataset {REPO_ID} @ {REVISION[:8]}, {FILENAME}"


def download(directory: Path, endpoint: str | None) -> Path:
    """The hub's file, downloaded into ``directory``; any failure is one line with the way to
    bring the file by hand.  One HEAD request with a short timeout comes first, without retries,
    so that an unreachable hub is known in seconds."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    url = hf_hub_url(REPO_ID, FILENAME, repo_type=REPO_TYPE, revision=REVISION, endpoint=endpoint)
    try:
        get_hf_file_metadata(url, timeout=PROBE_TIMEOUT_S)  # one HEAD, no retries
        path = hf_hub_download(
            REPO_ID,
            FILENAME,
            repo_type=REPO_TYPE,
            revision=REVISION,
            local_dir=directory,
            endpoint=endpoint,
            etag_timeout=ETAG_TIMEOUT_S,
        )
    except Exception as exc:  # noqa: BLE001 - network, proxy, offline mode, hub errors alike
        raise DataError(
            f"cannot download {FILENAME} of {REPO_ID} from the Hugging Face hub "
            f"({type(exc).__name__}: {_first_line(exc)}); {BY_HAND}"
        ) from None
    return Path(path)


def _first_line(exc: BaseException) -> str:
    """The start of an exception's message: the refusal must stay one readable line."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else "no message"
    return line if len(line) <= 160 else line[:157].rstrip() + "..."


def read_verified(path: Path, shown: Path | str | None = None) -> bytes:
    """The bytes of ``path`` if they are the recorded file; refused otherwise, unread by pickle.

    The size is checked first (a wrong file of any size is refused without reading it), then
    the sha256 of the bytes read, which are the bytes :func:`unpickle` will see.  ``shown``
    names the file in messages (the URL for a download, whose local copy is temporary).
    """
    shown = path if shown is None else shown
    if not path.is_file():
        raise DataError(f"{shown}: no such file (expected the LLaRA Steam training split)")
    try:
        size = path.stat().st_size
        if size != SIZE:
            raise _refusal(shown, f"{size:,} bytes")
        with open(path, "rb") as handle:
            data = handle.read(SIZE + 1)
    except OSError as exc:
        raise DataError(f"{shown}: cannot read the file ({exc.strerror or exc})") from None
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != SIZE or actual != SHA256:
        raise _refusal(shown, f"{len(data):,} bytes, sha256 {_short(actual)}")
    return data


def _short(digest: str) -> str:
    return f"{digest[:8]}...{digest[-6:]}"


def _refusal(shown: Path | str, found: str) -> DataError:
    return DataError(
        f"{shown}: not the recorded LLaRA Steam training split ({found}; expected {SIZE:,} "
        f"bytes, sha256 {_short(SHA256)}); refused without unpickling it"
    )


def convert(data: bytes, source: Path | str, staging: Path, origin: str) -> fetched.FetchedSplit:
    """Write the verified pickle ``data`` as ``train.jsonl`` and its record into ``staging``."""
    output = staging / OUTPUT
    write_jsonl(frame_rows(unpickle(data, source), source), output)
    num_items = load_spec(catalog.BUILTIN_ROOT / NAME).num_items  # the shipped spec's
    rows = read_rows(output, num_items)  # the checks every later load of the split makes
    record = fetched.FetchedSplit(
        split=SPLIT,
        file=OUTPUT,
        sha256=sha256_of(output),
        rows=len(rows),
        layout="sliding",
        note=(
            f"the full training split of the LLaRA release ({len(rows):,} rows), installed by "
            f"`recbench data fetch {NAME}` in $RECBENCH_HOME/fetched/{NAME} (delete that folder "
            "to train on the shipped sample again)"
        ),
        source=f"{origin} (sha256 {_short(SHA256)}), converted to JSON Lines",
    )
    fetched.write_record(record, staging)
    return record


def unpickle(data: bytes, source: Path | str):
    """The pandas frame pickled in ``data``: call only with bytes :func:`read_verified` passed."""
    import pandas as pd

    try:
        frame = pd.read_pickle(io.BytesIO(data), compression=None)
    except Exception as exc:  # noqa: BLE001 - unpickling raises anything
        raise DataError(f"{source}: not a readable pandas pickle ({_first_line(exc)})") from None
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: the pickle holds a {type(frame).__name__}, not a DataFrame")
    missing = [c for c in ("seq", "len_seq", "next") if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: the frame lacks the column(s) {', '.join(missing)}")
    return frame


def frame_rows(frame, source: Path | str) -> Iterator[dict]:
    """recbench's rows from the frame's ``seq``, ``len_seq`` and ``next``, in the frame's order
    (other columns are left out); ids become plain ints, as the shipped files hold them."""
    columns = zip(frame["seq"], frame["len_seq"], frame["next"], strict=True)
    for number, (seq, len_seq, nxt) in enumerate(columns, start=1):
        where = f"{source}:row {number}"
        yield {
            "seq": [_as_int(x, where) for x in seq],
            "len_seq": _as_int(len_seq, where),
            "next": _as_int(nxt, where),
        }


def _as_int(value: object, where: str) -> int:
    """``value`` as an int: ints of any kind, and floats without a fraction (pandas turns an
    int column with gaps into floats); anything else is refused at its row."""
    if isinstance(value, bool):
        raise DataError(f"{where}: {value!r} is not an item id or length")
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise DataError(f"{where}: {value!r} is not an item id or length") from None
    if number != value:
        raise DataError(f"{where}: {value!r} is not an item id or length")
    return number


def write_jsonl(rows: Iterable[dict], path: Path) -> None:
    """One ``{"seq": ..., "len_seq": ..., "next": ...}`` a line, as the shipped files are."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)
