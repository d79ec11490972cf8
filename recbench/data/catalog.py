"""Finding datasets by name: built-in ones shipped in the package, then the user's imports."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from recbench import paths
from recbench.data import fetched
from recbench.data.dataset import Dataset, load_spec
from recbench.errors import UnknownNameError
from recbench.registry import did_you_mean

BUILTIN_ROOT = Path(__file__).parent / "files"

# Datasets recbench can build or accept but does not ship; shown by `recbench data list`.
NOT_SHIPPED = {
    "goodreads": "not distributable here: import your copy with `recbench data import goodreads`",
    "movielens": (
        "ML-100K, not shipped (GroupLens terms forbid redistribution): build it locally "
        "with `recbench data build movielens`"
    ),
}


#: The order reports list datasets in: the paper's three, then the ones recbench builds;
#: any other dataset follows by name.
REPORT_ORDER = ("lastfm", "goodreads", "steam", "movielens")


def builtin_names() -> list[str]:
    return sorted(p.name for p in BUILTIN_ROOT.iterdir() if (p / "dataset.json").is_file())


def imported_root() -> Path:
    return paths.subdir("datasets")


def imported_names() -> list[str]:
    """Imported datasets; hidden entries (an import in progress, ``.NAME.importing``) are not."""
    root = imported_root()
    return sorted(
        p.name
        for p in root.iterdir()
        if not p.name.startswith(".") and (p / "dataset.json").is_file()
    )


def known_names() -> list[str]:
    return builtin_names() + [n for n in imported_names() if n not in builtin_names()]


def _stamp(path: Path | None) -> object:
    """What changes when ``path`` is replaced or edited (``None`` if it is absent)."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _load(name: str, root: str, builtin: bool) -> Dataset:
    """The dataset in ``root``, cached until its ``dataset.json`` (or, for a built-in dataset,
    the record of its fetched training split) changes: a dataset re-imported or re-fetched
    (by this process or another) is read anew, never served from the cache of its old rows."""
    record = fetched.record_path(name) if builtin else None
    key = (_stamp(Path(root, "dataset.json")), _stamp(record))
    return _load_stamped(name, root, builtin, key, None if record is None else str(record))


@cache
def _load_stamped(
    name: str, root: str, builtin: bool, stamp: object, record: str | None
) -> Dataset:
    del stamp  # part of the cache key only
    directory = Path(root)
    spec = load_spec(directory)
    if record is not None:  # the full training split fetched by `recbench data fetch`
        spec = fetched.apply(spec, fetched.read_record(Path(record)), Path(record).parent)
    return Dataset(spec, directory, builtin=builtin)


def load_dataset(name: str) -> Dataset:
    """The dataset called ``name`` (built-in first, then imported); files are read lazily."""
    if name in builtin_names():
        return _load(name, str(BUILTIN_ROOT / name), True)
    if name in imported_names():
        return _load(name, str(imported_root() / name), False)
    if name in NOT_SHIPPED:  # known to recbench but not installed: say how to get it
        raise UnknownNameError(f"dataset '{name}' is not installed: {NOT_SHIPPED[name]}")
    known = known_names()
    hint = did_you_mean(name, known + list(NOT_SHIPPED))
    raise UnknownNameError(f"unknown dataset '{name}'{hint}; known: {', '.join(known)}")


def forget(name: str) -> None:
    """Drop cached dataset objects (after an import replaced files)."""
    _load_stamped.cache_clear()
