"""Reading and validating interaction rows (the LLaRA / S-DPO / NAPO row format).

A row is ``{"seq": [10 item ids, right-padded with the padding id], "len_seq": n, "next": id}``.
Rows of one split are held as numpy arrays so sequential models can batch them directly.

Every file is checked for what later code assumes, and every refusal names the file and line
(``path:line``; ``path:row N`` for parquet and pickles, which have no lines):

* text files (``.jsonl``, ``.csv``, the ``id::name`` file) must be UTF-8; a leading byte-order
  mark is **dropped** (editors on Windows write one), undecodable bytes or a NUL byte are refused
  as a binary file; lines may end in ``\n``, ``\r\n`` or a lone ``\r`` (old Mac files); a parquet or pickle that cannot be read is refused with the reader's reason;
* ``seq`` holds the history first and the padding id (= the number of items) after it: a real id
  after padding is refused (left padding or a hole in the history), as is a ``len_seq`` other than
  the number of real ids (1 for the all-padding row that starts each user's chain);
* every row that becomes an example (``len_seq >= 3``) must leave 19 negatives outside its
  history and target, the 20-candidate rule of docs/data.md: a dataset whose item count
  is too small for a row is refused at that row;
* duplicate rows: identical rows are legitimate in sliding-window data (two users who share a
  prefix; lastfm's training split has 16 such rows with ``len_seq >= 3``) and are **kept**, but a
  row with a real item that repeats the row directly above it (impossible within one user's
  chain, whose history grows or shifts) and a file whose second half repeats its first half are
  refused as copying mistakes;
* item names must be non-empty (after stripping white space).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recbench.data.candidates import NUM_CANDIDATES
from recbench.errors import DataError

STATE_SIZE = 10
MIN_LEN_SEQ = 3  # rows with len_seq >= this become examples (every reference release)
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class SplitRows:
    """All rows of one split, unfiltered, as arrays (``seq`` [N, 10], ``len_seq`` [N], ``next`` [N])."""

    seq: np.ndarray
    len_seq: np.ndarray
    next: np.ndarray
    # where each row came from ("path:line" or "path:row N"), for messages; empty if unknown
    where: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def locate(self, index: int) -> str:
        return self.where[index] if self.where else f"row {index + 1}"

    def __len__(self) -> int:
        return int(self.next.shape[0])


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _row_values(record: dict, where: str) -> tuple[list[int], int, int]:
    try:
        seq, len_seq, nxt = record["seq"], record["len_seq"], record["next"]
    except (KeyError, TypeError):
        raise DataError(f"{where}: a row needs the fields seq, len_seq and next") from None
    if isinstance(seq, str):  # CSV stores the list as text
        try:
            seq = json.loads(seq)
        except json.JSONDecodeError:
            raise DataError(f"{where}: seq is not a list of item ids") from None
    if not isinstance(seq, list | tuple) or not all(_is_int(x) for x in seq):
        raise DataError(f"{where}: seq must be a list of integer item ids")
    if not _is_int(len_seq) or not _is_int(nxt):
        raise DataError(f"{where}: len_seq and next must be integers")
    return [int(x) for x in seq], int(len_seq), int(nxt)


def _is_int(value: object) -> bool:
    if type(value) is int:  # the common case, first: loading a split checks ~500k values
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int | np.integer):
        return True
    if isinstance(value, str):
        return _INTEGER.fullmatch(value.strip()) is not None
    if isinstance(value, float):
        return value.is_integer()
    return False


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (readers' messages can span lines)."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 text file; a leading BOM is dropped, binary refused."""
    try:
        with open(path, "rb") as handle:
            yield from _decoded_lines(path, handle)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({_reason(exc)})") from None


def _raw_lines(handle) -> Iterator[bytes]:
    """The file's lines ending in ``\n``, ``\r\n`` or a lone ``\r`` (old Mac files): a binary
    handle splits at ``\n`` only, so a CR-only file would read as one line."""
    for raw in handle:
        if b"\r" in raw:
            yield from raw.splitlines(keepends=True)  # bytes split at \n, \r\n and \r only
        else:
            yield raw


def _decoded_lines(path: Path, handle) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(_raw_lines(handle), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(
                f"{path}:{number}: not UTF-8 text (is it a binary file?); save it as UTF-8"
            ) from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        if "\x00" in text:
            raise DataError(f"{path}:{number}: contains a NUL byte (is it a binary file?)")
        yield number, text


def _read_frame(path: Path, suffix: str):
    import pandas as pd

    kind = "parquet" if suffix == ".parquet" else "pickle"
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_pickle(path)  # only with the explicit --allow-pickle opt-in
    except ImportError as exc:
        raise DataError(f"{path}: reading {kind} needs an extra package ({_reason(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - readers raise anything (ArrowInvalid, EOFError...)
        raise DataError(f"{path}: not a readable {kind} file ({_reason(exc)})") from None
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path}: the pickle holds a {type(frame).__name__}, not a DataFrame")
    return frame


def _records(path: Path, allow_pickle: bool = False):
    """Yield (where, record) from a JSON Lines, CSV, parquet or (opt-in) pickled pandas file."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".json"}:
        for number, line in _text_lines(path):
            if not line.strip():
                continue
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: malformed JSON ({exc.msg})") from None
            except RecursionError:
                raise DataError(f"{path}:{number}: malformed JSON (nested too deeply)") from None
    elif suffix == ".csv":
        reader = csv.DictReader(text for _, text in _text_lines(path))
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
            yield f"{path}:{reader.line_num}", record
    elif suffix == ".parquet" or (suffix in {".df", ".pkl", ".pickle"} and allow_pickle):
        frame = _read_frame(path, suffix)
        for number, record in enumerate(frame.to_dict("records"), start=1):
            seq = record.get("seq")
            if isinstance(seq, np.ndarray):  # parquet list columns come back as arrays
                record["seq"] = seq.tolist()
            yield f"{path}:row {number}", record
    elif suffix in {".df", ".pkl", ".pickle"}:
        raise DataError(
            f"{path}: refusing to load a pickle (loading one runs arbitrary code); "
            "convert it to JSON Lines or parquet, or pass --allow-pickle if you trust the file"
        )
    else:
        raise DataError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .csv or .parquet)")


def _check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise DataError(f"{what} is a directory, not a file: {path}")
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")


def _check_history(where: str, seq: list[int], len_seq: int, nxt: int, num_items: int) -> int:
    """Padding after the history only, ``len_seq`` = its length, room for 19 negatives."""
    padding = num_items
    real = seq.index(padding) if padding in seq else STATE_SIZE
    after = next((i for i in range(real, STATE_SIZE) if seq[i] != padding), None)
    if after is not None:
        raise DataError(
            f"{where}: padding inside the history: item id {seq[after]} at position {after + 1} "
            f"follows the padding id {padding} at position {real + 1}; seq must hold the "
            "history first, then padding (right-padded)"
        )
    if len_seq != max(real, 1):
        expected = "1 (an all-padding row)" if real == 0 else str(real)
        raise DataError(
            f"{where}: len_seq {len_seq} disagrees with seq, which holds {real} item id(s) "
            f"before the padding (expected len_seq {expected})"
        )
    if len_seq >= MIN_LEN_SEQ and num_items < STATE_SIZE + NUM_CANDIDATES:
        used = len(set(seq[:real]) | {nxt})
        if num_items - used < NUM_CANDIDATES - 1:
            raise DataError(
                f"{where}: too few items for the {NUM_CANDIDATES} candidates: this row's history "
                f"and target use {used} ids, so the dataset needs at least "
                f"{used + NUM_CANDIDATES - 1} items (the target and {NUM_CANDIDATES - 1} "
                f"negatives outside the history), but it has {num_items}"
            )
    return real


def read_rows(path: Path, num_items: int, *, allow_pickle: bool = False) -> SplitRows:
    """Read and validate one split file; every error names the file and line."""
    _check_file(path, "data file")
    seqs: list[list[int]] = []
    lens: list[int] = []
    nexts: list[int] = []
    wheres: list[str] = []
    previous: tuple | None = None
    for where, record in _records(path, allow_pickle):
        seq, len_seq, nxt = _row_values(record, where)
        if len(seq) != STATE_SIZE:
            raise DataError(f"{where}: seq has {len(seq)} ids, expected {STATE_SIZE}")
        if not 1 <= len_seq <= STATE_SIZE:
            raise DataError(f"{where}: len_seq {len_seq} outside 1..{STATE_SIZE}")
        bad = [x for x in seq if not 0 <= x <= num_items]
        if bad:
            raise DataError(
                f"{where}: item id {bad[0]} out of range 0..{num_items - 1} "
                f"(padding id {num_items})"
            )
        if not 0 <= nxt < num_items:
            raise DataError(f"{where}: next id {nxt} out of range 0..{num_items - 1}")
        real = _check_history(where, seq, len_seq, nxt, num_items)
        current = (seq, len_seq, nxt)
        if real and current == previous:
            raise DataError(
                f"{where}: repeats the row directly above it ({wheres[-1]}); a user's "
                "consecutive rows always differ, so this looks like a copying mistake"
            )
        previous = current
        seqs.append(seq)
        lens.append(len_seq)
        nexts.append(nxt)
        wheres.append(where)
    if not nexts:
        raise DataError(f"{path}: the split is empty")
    rows = SplitRows(
        seq=np.asarray(seqs, dtype=np.int64),
        len_seq=np.asarray(lens, dtype=np.int64),
        next=np.asarray(nexts, dtype=np.int64),
        where=tuple(wheres),
    )
    half = len(rows) // 2
    if (
        half
        and len(rows) % 2 == 0
        and (rows.len_seq[:half] >= MIN_LEN_SEQ).any()
        and np.array_equal(rows.seq[:half], rows.seq[half:])
        and np.array_equal(rows.len_seq[:half], rows.len_seq[half:])
        and np.array_equal(rows.next[:half], rows.next[half:])
    ):
        raise DataError(
            f"{wheres[half]}: this row and all after it repeat the file's first {half} rows "
            "(was the file written twice?)"
        )
    return rows


def read_named_items(path: Path) -> list[tuple[str, int]]:
    """``(name, line number)`` of every item of an ``id::name`` file, ids contiguous from 0."""
    _check_file(path, "item-name file")
    names: dict[int, tuple[str, int]] = {}
    for number, line in _text_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        key, sep, name = line.partition("::")
        if not sep or not key.strip().isascii() or not key.strip().isdigit():
            raise DataError(f"{path}:{number}: expected 'id::name'")
        item = int(key)
        if item in names:
            raise DataError(
                f"{path}:{number}: item id {item} named twice (first on line {names[item][1]})"
            )
        if not name.strip():
            raise DataError(f"{path}:{number}: item {item} has an empty name")
        names[item] = (name.strip(), number)
    missing = sorted(set(range(len(names))) - set(names))
    if missing:
        raise DataError(f"{path}: item ids are not contiguous from 0 (missing id {missing[0]})")
    return [names[i] for i in range(len(names))]


def read_item_names(path: Path) -> list[str]:
    """Read an ``id::name`` file whose ids are contiguous from 0 (names non-empty)."""
    return [name for name, _ in read_named_items(path)]
