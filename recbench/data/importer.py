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
(one line, exit code 2 on the command line) raised before anything is written.  The item-name
file is stored normalised (``id::name`` a line, UTF-8 without BOM).

Writing is atomic and exclusive (:func:`exclusive_name`, :func:`staging_dir`, :func:`install`):

* one import (or build) of a name at a time: the name's lock (under ``$RECBENCH_HOME/locks``) is
  taken before anything is read, and a second import of the same name fails at once with one
  line instead of writing into the first one's files;
* the dataset is assembled in a hidden directory of its own beside its final place
  (``.NAME.importing-PID-RANDOM``, never listed) and renamed into place only once complete;
  ``--overwrite`` moves the old copy aside only at that last step, so a failure (any exception,
  a full disk) removes the new files and leaves the old dataset as it was;
* what a killed import leaves (a staging directory, or an old copy moved aside whose successor
  never arrived) is cleaned up, or put back, by the next import of that name, under its lock.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from recbench import locks, paths
from recbench.data import catalog
from recbench.data.dataset import SPLITS, Dataset, DatasetSpec, SplitSpec, load_spec
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


def import_dataset(name: str, files: dict[str, Path], item_names: Path, **options) -> DatasetSpec:
    """Validate and register a dataset; returns its description (``options``: those of
    :func:`import_with_stats`)."""
    return import_with_stats(name, files, item_names, **options)[0]


def import_with_stats(
    name: str,
    files: dict[str, Path],
    item_names: Path,
    *,
    domain: str = "items",
    allow_pickle: bool = False,
    overwrite: bool = False,
    description: str = "",
    allow_duplicate_names: bool = False,
) -> tuple[DatasetSpec, dict]:
    """:func:`import_dataset`, and the counts of what it imported (``recbench data info``'s).

    The counts are read from the staged copy before it is installed: read by name afterwards,
    once the name's lock is released, they could come from a concurrent import of the same
    name that replaced this one in between (and fail its checksums halfway).
    """
    paths.safe_name(name, "dataset name")
    if name in catalog.builtin_names():
        raise UserError(f"'{name}' is a built-in dataset; choose another name")
    check_domain(domain)
    missing = [split for split in SPLITS if split not in files]
    if missing:
        raise UserError(f"missing split file(s): {', '.join(missing)} (need train, val and test)")
    target = catalog.imported_root() / name
    with exclusive_name(target, "import"):
        named = read_named_items(Path(item_names))
        if not allow_duplicate_names:
            check_distinct_names(named, Path(item_names))
        names = [item_name for item_name, _ in named]
        splits = {
            split: read_rows(Path(files[split]), len(names), allow_pickle=allow_pickle)
            for split in SPLITS
        }
        for split, rows in splits.items():
            if not (rows.len_seq >= MIN_LEN_SEQ).any():
                raise DataError(
                    f"{files[split]}: no row with len_seq >= {MIN_LEN_SEQ}, the split would be "
                    "empty"
                )
        check_disjoint(splits)
        if target.exists() and not overwrite:
            raise UserError(f"dataset '{name}' already exists; pass --overwrite to replace it")
        with staging_dir(target, "importing") as staging:
            spec = _write_staging(staging, name, files, splits, names, domain, description)
            stats = Dataset(spec, staging, builtin=False).stats()
            install(staging, target)
    return spec, stats


# ------------------------------------------------------------------ atomic, exclusive writes
_AFTERMATH = ("importing", "replaced")  # what staging_dir and install leave if killed
_OLD_LEFTOVERS = (".importing", ".replaced", ".building")  # the fixed names used before


@contextmanager
def exclusive_name(target: Path, action: str) -> Iterator[None]:
    """Hold the lock of dataset directory ``target`` while importing or building it.

    A second process that wants the same name fails at once with one line: waiting and then
    writing would replace the winner's dataset with no sign that two were imported.  The lock is
    released by the kernel if the process dies, so a killed import never blocks the next one.
    """
    lock_file = locks.lock_path(target)
    lock = FileLock(str(lock_file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(
            f"cannot {action} dataset '{target.name}': another process is importing or building "
            f"it (lock {lock_file}); wait for it to finish, then retry"
        ) from None
    try:
        _clean_aftermath(target)
        yield
    finally:
        lock.release()
        catalog.forget(target.name)


def _aftermath(target: Path) -> list[Path]:
    """Hidden directories a killed import or build of ``target`` left beside it."""
    kinds = "|".join(_AFTERMATH)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.({kinds})-[0-9]+-[0-9a-f]{{8}}")
    found = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]
    found += [target.with_name(f".{target.name}{end}") for end in _OLD_LEFTOVERS]
    return sorted((p for p in found if p.exists()), key=lambda p: p.stat().st_mtime)


def _clean_aftermath(target: Path) -> None:
    """Under the name's lock: put back an old copy whose replacement never arrived (killed
    between the two renames of :func:`install`), then remove every other leftover."""
    leftovers = _aftermath(target)
    if not target.exists():
        prefix = f".{target.name}.replaced"
        aside = [
            p for p in leftovers if p.name.startswith(prefix) and (p / "dataset.json").is_file()
        ]
        if aside:
            aside[-1].rename(target)
            leftovers.remove(aside[-1])
    for path in leftovers:
        _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _hidden_sibling(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


@contextmanager
def staging_dir(target: Path, kind: str) -> Iterator[Path]:
    """A new, empty hidden directory beside ``target`` (same file system, so that renaming it
    into place is atomic), removed when the block ends, however it ends.  ``OSError`` in the
    block (a full disk, no permission) becomes a one-line :class:`DataError`."""
    staging = _hidden_sibling(target, kind)
    try:
        staging.mkdir(parents=True)
        yield staging
    except OSError as exc:
        raise DataError(
            f"cannot write dataset '{target.name}' under {target.parent}: {exc.strerror or exc}; "
            "nothing was changed"
        ) from None
    finally:
        _remove(staging)  # gone after a success (renamed into place) or a failure


def install(staging: Path, target: Path) -> None:
    """Move the finished ``staging`` into place; an old ``target`` is moved aside only now and
    put back if the move fails, so readers see the old dataset or the new one, never a mix."""
    if not target.exists():
        staging.rename(target)
        return
    old = _hidden_sibling(target, "replaced")
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    _remove(old)


def _write_staging(
    staging: Path,
    name: str,
    files: dict[str, Path],
    splits: dict[str, SplitRows],
    names: list[str],
    domain: str,
    description: str,
) -> DatasetSpec:
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
