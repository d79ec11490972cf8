"""``recbench data import``: validate a user's dataset files and register them under a name.

Files are read in any supported format (JSON Lines, CSV, parquet; a pickled ``.df`` only with an
explicit opt-in), validated (ids in range, every id named, no empty split, no row shared between
splits, which would mean a user appears in two of them) and stored as JSON Lines with their
sha256 under ``$RECBENCH_HOME/datasets/NAME``, so that later loads are checked like built-ins.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from recbench import paths
from recbench.data import catalog
from recbench.data.dataset import SPLITS, DatasetSpec, SplitSpec, load_spec
from recbench.data.rows import SplitRows, read_item_names, read_rows, sha256_of
from recbench.errors import DataError, UserError


def _row_keys(rows: SplitRows) -> dict[tuple, int]:
    keys: dict[tuple, int] = {}
    for index in range(len(rows)):
        if rows.len_seq[index] >= 3:  # short rows are identical across users (mostly padding)
            key = (tuple(rows.seq[index].tolist()), int(rows.next[index]))
            keys.setdefault(key, index)
    return keys


def check_disjoint(splits: dict[str, SplitRows]) -> None:
    """Fail when a row (same history and target) occurs in two splits."""
    seen: dict[tuple, tuple[str, int]] = {}
    for split, rows in splits.items():
        for key, index in _row_keys(rows).items():
            if key in seen:
                other, other_index = seen[key]
                raise DataError(
                    f"row {index + 1} of {split} duplicates row {other_index + 1} of {other}: "
                    "splits must be disjoint by user"
                )
            seen[key] = (split, index)


def _write_jsonl(rows: SplitRows, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for seq, len_seq, nxt in zip(rows.seq, rows.len_seq, rows.next, strict=True):
            record = {"seq": seq.tolist(), "len_seq": int(len_seq), "next": int(nxt)}
            out.write(json.dumps(record) + "\n")


def import_dataset(
    name: str,
    files: dict[str, Path],
    item_names: Path,
    *,
    domain: str = "items",
    allow_pickle: bool = False,
    overwrite: bool = False,
    description: str = "",
) -> DatasetSpec:
    """Validate and register a dataset; returns its description."""
    paths.safe_name(name, "dataset name")
    if name in catalog.builtin_names():
        raise UserError(f"'{name}' is a built-in dataset; choose another name")
    missing = [split for split in SPLITS if split not in files]
    if missing:
        raise UserError(f"missing split file(s): {', '.join(missing)} (need train, val and test)")
    names = read_item_names(Path(item_names))
    num_items = len(names)
    splits = {
        split: read_rows(Path(files[split]), num_items, allow_pickle=allow_pickle)
        for split in SPLITS
    }
    for split, rows in splits.items():
        if not (rows.len_seq >= 3).any():
            raise DataError(f"{files[split]}: no row with len_seq >= 3, the split would be empty")
    check_disjoint(splits)

    target = catalog.imported_root() / name
    if target.exists() and not overwrite:
        raise UserError(f"dataset '{name}' already exists; pass --overwrite to replace it")
    staging = target.with_name(name + ".importing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    split_specs = {}
    for split, rows in splits.items():
        _write_jsonl(rows, staging / f"{split}.jsonl")
        split_specs[split] = SplitSpec(
            file=f"{split}.jsonl", sha256=sha256_of(staging / f"{split}.jsonl"), layout="sliding"
        )
    shutil.copyfile(item_names, staging / "id2name.txt")
    spec = DatasetSpec(
        name=name,
        domain=domain,
        num_items=num_items,
        item_names="id2name.txt",
        item_names_sha256=sha256_of(staging / "id2name.txt"),
        splits=split_specs,
        description=description or f"imported from {Path(files['train']).parent}",
        source="user import: " + ", ".join(str(Path(p).resolve()) for p in files.values()),
        notes=["imported by the user; layout assumed sliding-window (one row per prefix)"],
    )
    (staging / "dataset.json").write_text(json.dumps(spec.to_json(), indent=1) + "\n")
    load_spec(staging)  # round-trip check before it becomes visible
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    catalog.forget(name)
    return spec
