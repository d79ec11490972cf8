"""Per-item preference scores from ratings: RecDPO's and RecPO's s+ and s- (docs/losses.md).

The released code (HoytWen/RecPO ``data/movielens_data.py``) scores a training example's
candidates with ``decay_fn``: s = rating / (1 + step) ** 0.5, rounded to 4 decimals, where
``step`` is the candidate's position among the user's next 10 interactions after the prompt's
history (``follow_seq``; step 0 is the next item); a random negative, not among them, gets
rating 3 at step 10.  Its candidate list is that future plus random items, ranked by score.

recbench keeps its own protocol (the target is the row's next item, the negatives come from the
prompt's 19 shared candidates), so the rule is adapted, not copied:

* s+ is the target's score: its rating at step 0 (3, 4 or 5: the build keeps ratings >= 3);
* s-_j = rating / (1 + k) ** 0.5 when negative j is the user's k-th later interaction,
  1 <= k < ``HORIZON`` (the released ``follow_seq`` holds the next 10 items, steps 0..9);
* every other negative scores 3 / (1 + 10) ** 0.5 = 0.9045, as the released random negatives;
  so does an item the user rated earlier, or beyond the horizon, which the released code would
  also have drawn as a random negative.

"Interactions" are the build's kept ones (rating >= 3, by timestamp, ties by item id), the very
sequence the split's rows are cut from; a film the user rated 1 or 2 later is not in it and
scores as unseen.  Only training rows have scores: the losses train on them alone (the released
code gives validation rows no score list at all).

What the scores need is one file beside the splits, one JSON line per training user in the
order of the training split: ``{"items": [...], "ratings": [...]}`` (recbench item ids and the
ratings of the user's kept films, in time order).  A row of the split is located in it by
walking both in order (:func:`locate_rows`), which also proves that the file and the split
describe the same sequences.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbench.data.rows import STATE_SIZE, SplitRows
from recbench.errors import DataError

FILE = "train_ratings.jsonl"
SPLIT = "train"  # the only split with scores
DECAY = 0.5
HORIZON = 10  # the released follow_seq: the next 10 interactions, steps 0..9
UNSEEN_RATING = 3.0
UNSEEN_STEP = 10


def decayed(rating: float, step: int, decay: float = DECAY) -> float:
    """The released ``decay_fn``: rating / (1 + step) ** decay, rounded to 4 decimals.

    ``np.round`` (round half to even on the scaled value), not Python's ``round``, so that a
    score is the very float the released code computes.
    """
    return float(np.round(rating / (1 + step) ** decay, 4))


UNSEEN_SCORE = decayed(UNSEEN_RATING, UNSEEN_STEP)


@dataclass(frozen=True)
class UserRatings:
    """One training user's kept items (recbench ids) and their ratings, in time order."""

    items: tuple[int, ...]
    ratings: tuple[float, ...]


def example_scores(
    user: UserRatings, position: int, negatives: Sequence[int]
) -> tuple[float, tuple[float, ...]]:
    """s+ of the item at ``position`` of the user's sequence (the row's target) and s- of each
    of ``negatives`` (module docstring)."""
    end = min(position + HORIZON, len(user.items))
    future = {
        user.items[at]: decayed(user.ratings[at], at - position) for at in range(position + 1, end)
    }
    chosen = decayed(user.ratings[position], 0)
    return chosen, tuple(future.get(int(item), UNSEEN_SCORE) for item in negatives)


# ---------------------------------------------------------------------------------- the file
def _number(rating: float) -> int | float:
    """A rating as JSON writes it shortest: ML-100K's are whole stars."""
    return int(rating) if float(rating).is_integer() else float(rating)


def write_user_ratings(users: Iterable[UserRatings], path: Path) -> None:
    """One line per user, ``json.dumps`` defaults (the split files' serialisation)."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for user in users:
            line = {"items": list(user.items), "ratings": [_number(r) for r in user.ratings]}
            out.write(json.dumps(line) + "\n")


def _parse_line(line: str, where: str, num_items: int) -> UserRatings:
    try:
        value = json.loads(line)
        items = tuple(int(i) for i in value["items"])
        ratings = tuple(float(r) for r in value["ratings"])
    except (ValueError, TypeError, KeyError):
        raise DataError(f"{where}: not a line {{'items': [...], 'ratings': [...]}}") from None
    if len(items) != len(ratings) or not items:
        raise DataError(f"{where}: items and ratings differ in length or are empty")
    if not all(0 <= i < num_items for i in items) or not all(r > 0 for r in ratings):
        raise DataError(f"{where}: item id out of range or rating not positive")
    return UserRatings(items, ratings)


def read_user_ratings(path: Path, num_items: int) -> list[UserRatings]:
    """The file's users, each line checked (ids in range, positive ratings)."""
    with open(path, encoding="utf-8") as lines:
        return [
            _parse_line(line, f"{path}:{number}", num_items)
            for number, line in enumerate(lines, start=1)
            if line.strip()
        ]


# ------------------------------------------------------------------------- rows to users
def _row_of(user: UserRatings, position: int, padding_id: int) -> tuple[tuple[int, ...], int]:
    """The sliding row the build cuts at ``position`` (its padded history window, its target)."""
    window = list(user.items[max(0, position - STATE_SIZE) : position])
    return tuple(window + [padding_id] * (STATE_SIZE - len(window))), user.items[position]


def locate_rows(users: Sequence[UserRatings], rows: SplitRows, padding_id: int) -> np.ndarray:
    """``[rows, 2]``: the user (index into ``users``) and position in that user's sequence of
    every row of the split, or a :class:`DataError` when the file and split disagree.

    The split holds each user's sliding rows in order, less the few the build dropped as
    repeats of another split's rows (``recbench.data.movielens.drop_repeats``), so one walk
    over both finds every row: a position whose row is not the split's next one was dropped.
    """
    seqs, targets = rows.seq.tolist(), rows.next.tolist()
    where = np.empty((len(targets), 2), dtype=np.int64)
    cursor = 0
    for index, user in enumerate(users):
        for position in range(len(user.items)):
            if cursor == len(targets):
                break
            seq, target = _row_of(user, position, padding_id)
            if targets[cursor] == target and tuple(seqs[cursor]) == seq:
                where[cursor] = (index, position)
                cursor += 1
    if cursor != len(targets):
        raise DataError(
            f"the item ratings do not describe the {SPLIT} split (row {cursor} has no user)"
        )
    return where


class ItemScores:
    """The scores of one dataset's training examples: :meth:`for_row` per split row."""

    def __init__(self, users: Sequence[UserRatings], rows: SplitRows, padding_id: int) -> None:
        self._users = list(users)
        self._where = locate_rows(self._users, rows, padding_id)

    def for_row(self, row: int, negatives: Sequence[int]) -> tuple[float, tuple[float, ...]]:
        """s+ of row ``row``'s target (the row's index in the unfiltered split file) and s- of
        each of ``negatives``."""
        user, position = (int(x) for x in self._where[row])
        return example_scores(self._users[user], position, negatives)
