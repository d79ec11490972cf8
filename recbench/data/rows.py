"""Reading and validating interaction rows (the LLaRA / S-DPO / NAPO row format).

A row is ``{"seq": [10 item ids, right-padded with the padding id], "len_seq": n, "next": id}``.
Rows of one split are held as numpy arrays so sequential models can batch them directly.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbench.errors import DataError

STATE_SIZE = 10


@dataclass(frozen=True)
class SplitRows:
    """All rows of one split, unfiltered, as arrays (``seq`` [N, 10], ``len_seq`` [N], ``next`` [N])."""

    seq: np.ndarray
    len_seq: np.ndarray
    next: np.ndarray

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
    if isinstance(value, bool):
        return False
    if isinstance(value, int | np.integer):
        return True
    if isinstance(value, str):
        return value.strip().lstrip("-").isdigit()
    if isinstance(value, float):
        return value.is_integer()
    return False


def _records(path: Path, allow_pickle: bool = False):
    """Yield (where, record) from a JSON Lines, CSV, parquet or (opt-in) pickled pandas file."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".json"}:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: malformed JSON ({exc.msg})") from None
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            for number, record in enumerate(csv.DictReader(handle), start=2):
                yield f"{path}:{number}", record
    elif suffix == ".parquet" or (suffix in {".df", ".pkl", ".pickle"} and allow_pickle):
        import pandas as pd

        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_pickle(path)  # only with the explicit --allow-pickle opt-in
        for number, record in enumerate(frame.to_dict("records"), start=1):
            if "seq" in record and not isinstance(record["seq"], str):
                record["seq"] = [int(x) for x in record["seq"]]
            yield f"{path}:row {number}", record
    elif suffix in {".df", ".pkl", ".pickle"}:
        raise DataError(
            f"{path}: refusing to load a pickle (loading one runs arbitrary code); "
            "convert it to JSON Lines or parquet, or pass --allow-pickle if you trust the file"
        )
    else:
        raise DataError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .csv or .parquet)")


def read_rows(path: Path, num_items: int, *, allow_pickle: bool = False) -> SplitRows:
    """Read and validate one split file; every error names the file and line."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    seqs: list[list[int]] = []
    lens: list[int] = []
    nexts: list[int] = []
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
        seqs.append(seq)
        lens.append(len_seq)
        nexts.append(nxt)
    if not nexts:
        raise DataError(f"{path}: the split is empty")
    return SplitRows(
        seq=np.asarray(seqs, dtype=np.int64),
        len_seq=np.asarray(lens, dtype=np.int64),
        next=np.asarray(nexts, dtype=np.int64),
    )


def read_item_names(path: Path) -> list[str]:
    """Read an ``id::name`` file whose ids are contiguous from 0."""
    if not path.is_file():
        raise DataError(f"item-name file not found: {path}")
    names: dict[int, str] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            key, sep, name = line.partition("::")
            if not sep or not key.strip().isdigit():
                raise DataError(f"{path}:{number}: expected 'id::name'")
            item = int(key)
            if item in names:
                raise DataError(f"{path}:{number}: item id {item} named twice")
            names[item] = name.strip()
    missing = sorted(set(range(len(names))) - set(names))
    if missing:
        raise DataError(f"{path}: item ids are not contiguous from 0 (missing id {missing[0]})")
    return [names[i] for i in range(len(names))]
