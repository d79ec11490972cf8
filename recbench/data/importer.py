"""``recbench data import``: validate a user's dataset files and register them under a name.

Files are read in any supported format (JSON Lines, CSV, parquet; a pickled ``.df`` only with an
explicit opt-in), validated (ids in range, every id named, no empty split, no row shared between
splits, which would mean a user appears in two of them) and stored as JSON Lines with their
sha256 under ``$RECBENCH_HOME/datasets/NAME``, so that later loads are checked like built-ins.

What the rows and names must satisfy beyond that (right padding, ``len_seq``, room for the 20
candidates, repeated rows, BOMs, binary files) is listed in :mod:`recbench.data.rows`.  On top of
it the import refuses:

* an unknown ``--domain`` (it picks the prompt templates; the known ones are
  :data:`recbench.data.prompts.DOMAINS`), with a "did you mean";
* two items with the same name, naming both ids and lines: generation-mode HR@1 finds the chosen
  candidate by its name, so two candidates with one name could never be told apart (the
  ``allow_duplicate_names`` argument of :func:`import_dataset` accepts them knowingly).

Every refusal is a :class:`~recbench.errors.DataError` or :class:`~recbench.errors.UserError`
(one line, exit code 2 on the command line) raised before anything is written.  The dataset is
assembled in a hidden ``.NAME.importing`` directory, which the catalog never lists, removed if
anything fails, and renamed into place only once complete, so a failed import leaves no trace;
the item-name file is stored normalised (``id::name`` a line, UTF-8 without BOM).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from recbench import paths
from recbench.data import catalog
from recbench.data.dataset import SPLITS, DatasetSpec, SplitSpec, load_spec
from recbench.data.prompts import DOMAINS
from recbench.data.rows import MIN_LEN_SEQ, SplitRows, read_named_items, read_rows, sha256_of
from recbench.errors import DataError, UnknownNameError, UserError
from recbench.registry import did_you_mean


def _row_keys(rows: SplitRows) -> dict[tuple, int]:
    keys: dict[tuple, int] = {}
    for index in range(len(rows)):
        # short rows are identical across users (mostly padding)
        if rows.len_seq[index] >= MIN_LEN_SEQ:
            key = (tuple(rows.seq[index].tolist()), int(rows.next[index]))
            keys.setdefault(key, index)
    return keys


def check_disjoint(splits: dict[str, SplitRows]) -> None:
    """Fail when a row (same history and target) occurs in two splits."""
    seen: dict[tuple, tuple[str, SplitRows, int]] = {}
    for split, rows in splits.items():
        for key, index in _row_keys(rows).items():
            if key in seen:
                other, other_rows, other_index = seen[key]
                raise DataError(
                    f"{rows.locate(index)}: this {split} row duplicates row {other_index + 1} "
                    f"of {other} ({other_rows.locate(other_index)}): "
                    "splits must be disjoint by user"
                )
            seen[key] = (split, rows, index)


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise UnknownNameError(
            f"unknown domain '{domain}'{did_you_mean(domain, list(DOMAINS))}; "
            f"known: {', '.join(DOMAINS)}"
        )
    return domain


def check_distinct_names(named: list[tuple[str, int]], path: Path) -> None:
    """Refuse two items with the same name (generation mode matches candidates by name)."""
    first: dict[str, int] = {}
    for item, (name, line) in enumerate(named):
        if name in first:
            other = first[name]
            raise DataError(
                f"{path}:{line}: item {item} has the same name as item {other} "
                f"(line {named[other][1]}): {name!r}; names must be distinct, since "
                "generation-mode HR@1 identifies the chosen candidate by its name"
            )
        first[name] = item


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
    allow_duplicate_names: bool = False,
) -> DatasetSpec:
    """Validate and register a dataset; returns its description."""
    paths.safe_name(name, "dataset name")
    if name in catalog.builtin_names():
        raise UserError(f"'{name}' is a built-in dataset; choose another name")
    check_domain(domain)
    missing = [split for split in SPLITS if split not in files]
    if missing:
        raise UserError(f"missing split file(s): {', '.join(missing)} (need train, val and test)")
    named = read_named_items(Path(item_names))
    if not allow_duplicate_names:
        check_distinct_names(named, Path(item_names))
    names = [item_name for item_name, _ in named]
    num_items = len(names)
    splits = {
        split: read_rows(Path(files[split]), num_items, allow_pickle=allow_pickle)
        for split in SPLITS
    }
    for split, rows in splits.items():
        if not (rows.len_seq >= MIN_LEN_SEQ).any():
            raise DataError(
                f"{files[split]}: no row with len_seq >= {MIN_LEN_SEQ}, the split would be empty"
            )
    check_disjoint(splits)

    root = catalog.imported_root()
    target = root / name
    if target.exists() and not overwrite:
        raise UserError(f"dataset '{name}' already exists; pass --overwrite to replace it")
    staging = root / f".{name}.importing"  # hidden: never listed, whatever happens
    try:
        spec = _write_staging(staging, name, files, splits, names, domain, description)
        _replace(staging, target)
    except OSError as exc:
        raise DataError(
            f"cannot write dataset '{name}' under {root}: {exc.strerror or exc}"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after a success (renamed) or a failure
    catalog.forget(name)
    return spec


def _write_staging(
    staging: Path,
    name: str,
    files: dict[str, Path],
    splits: dict[str, SplitRows],
    names: list[str],
    domain: str,
    description: str,
) -> DatasetSpec:
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    split_specs = {}
    for split, rows in splits.items():
        _write_jsonl(rows, staging / f"{split}.jsonl")
        split_specs[split] = SplitSpec(
            file=f"{split}.jsonl", sha256=sha256_of(staging / f"{split}.jsonl"), layout="sliding"
        )
    with open(staging / "id2name.txt", "w", encoding="utf-8", newline="\n") as out:
        out.writelines(f"{item}::{item_name}\n" for item, item_name in enumerate(names))
    spec = DatasetSpec(
        name=name,
        domain=domain,
        num_items=len(names),
        item_names="id2name.txt",
        item_names_sha256=sha256_of(staging / "id2name.txt"),
        splits=split_specs,
        description=description or f"imported from {Path(files['train']).parent}",
        source="user import: " + ", ".join(str(Path(p).resolve()) for p in files.values()),
        notes=["imported by the user; layout assumed sliding-window (one row per prefix)"],
    )
    (staging / "dataset.json").write_text(json.dumps(spec.to_json(), indent=1) + "\n")
    load_spec(staging)  # round-trip check before it becomes visible
    return spec


def _replace(staging: Path, target: Path) -> None:
    """Move the finished import into place; an old one is kept until the new one is there."""
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(f".{target.name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
