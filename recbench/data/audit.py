"""``recbench data audit``: checks of a dataset's splits that decide what its numbers can mean.

Every check returns a value, the threshold it is judged against and a verdict (``flagged``), plus
a one-line detail with the counts behind the value.  All checks are pure functions of a
:class:`~recbench.data.dataset.Dataset` and run in seconds on the built-in datasets.  "Test
examples" are the test rows with ``len_seq >= 3`` (the ones every method is evaluated on).

Sequences.  The LLaRA row format has no user id.  A *sequence* is rebuilt from consecutive rows
of a split file: row ``r`` continues row ``r - 1`` when its history is the last 10 items of row
``r - 1``'s history followed by its target (how a sliding-window chain is written); otherwise it
starts a new sequence (its history followed by its target).  In a ``sliding`` split every
sequence is one user's; in a ``last_row`` or ``sample`` split a sequence is usually one row.

Checks (the thresholds are the module constants below):

``shared_users``
    Users shared between splits, found by long shared runs of items: a val or test row with at
    least ``SHARED_RUN`` (8) history items is *shared* when ``SHARED_RUN`` consecutive items of its
    history occur consecutively in a training sequence.  Value: the share of such rows that are
    shared; flagged above ``SHARED_MAX``.  Shorter runs occur by chance (on LastFM, whose
    sequences follow one global order, 5% of rows share a run of 5 with training; 0.2% a run
    of 8), a user present in two splits shares every window.
``test_pairs_in_train``
    Test examples whose (history, target) is a training row, exactly (same padded ``seq``, same
    ``next``).  Value: their share; flagged above ``PAIRS_MAX``.
``target_in_history``
    Test examples whose target is already in their own history.  The 20 candidates draw their
    negatives outside the history, so such a target is the only candidate that appears in the
    history: a rule wins the row for free.  Value: their share; flagged above 0.
``item_order``
    Build the directed graph of consecutive training transitions (``a -> b`` for each adjacent
    pair of a training sequence).  An item *fits one global order* when it lies on no cycle of
    that graph: it is alone in its strongly connected component and has no self-loop.  The items
    that fit can be placed in one order (a topological order of the condensation) that respects
    every transition touching them; when all items fit, every training sequence is a
    subsequence of one global order of the items.  Value: fitting items / items seen in
    transitions.  The same count is made after shuffling each training sequence (seeded, default
    seed 0), which keeps each sequence's items and the number of transitions but not their
    order.  Flagged when the value is at least ``ORDER_FIT_MIN`` (0.99) while the shuffled value
    is lower by at least ``ORDER_SHUFFLE_GAP`` (0.10), over at least ``ORDER_MIN_ITEMS`` items:
    nearly every item fits, and it would not by chance.  Real time order leaves few items outside
    cycles (MovieLens-100K: 5 of 1,550; the Steam sample: 10%, against 7% shuffled).
``reversed_pairs``
    Of the item pairs seen as a transition, the share seen in both orders (``a -> b`` and
    ``b -> a``), against the same share after shuffling.  Flagged when it is below
    ``REVERSED_RATIO`` (a tenth) of the shuffled share and the shuffled graph has at least
    ``REVERSED_MIN`` (10) such pairs: transitions (almost) never go both ways, a second sign of
    an imposed order.
``pop_top1pct`` / ``pop_top20`` / ``pop_gini``
    Popularity concentration, with popularity as the benchmark defines it (training rows whose
    target is the item, :meth:`Dataset.popularity`; ties by smaller id): the share of test
    targets among the top 1% of items (flagged above ``TOP1PCT_MAX``) and among the 20 most
    popular items (flagged above ``TOP20_MAX``), each only when also at least ``POP_LIFT_MIN``
    times the share a uniform draw of targets would give (20 items of a small catalogue), and the Gini coefficient of the popularity of
    all items (flagged above ``GINI_MAX``).  A training split that is a sample (layout
    ``sample``, such as Steam's 1,000 rows) makes popularity noisy and inflates the Gini; every
    check that reads the training split says so in its detail.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from recbench.data.dataset import Dataset, user_runs
from recbench.data.rows import MIN_LEN_SEQ, STATE_SIZE, SplitRows

SHARED_RUN = 8
SHARED_MAX = 0.01
PAIRS_MAX = 0.01
ORDER_FIT_MIN = 0.99
ORDER_SHUFFLE_GAP = 0.10
ORDER_MIN_ITEMS = 20
REVERSED_RATIO = 0.1
REVERSED_MIN = 10
TOP1PCT_MAX = 0.5
TOP20_MAX = 0.25
POP_LIFT_MIN = 2.0  # and at least twice the share of a uniform draw (small catalogues)
GINI_MAX = 0.9
EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None  # None: nothing to measure (said in the detail)
    threshold: str
    flagged: bool
    detail: str

    def to_json(self) -> dict:
        value = None if self.value is None else round(float(self.value), 6)
        return {
            "name": self.name,
            "value": value,
            "threshold": self.threshold,
            "flagged": bool(self.flagged),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class OrderStats:
    items: int  # items seen in a transition
    fitting: int  # of those, items on no cycle
    pairs: int  # unordered item pairs seen as a transition (a != b)
    reversed: int  # of those, pairs seen in both orders

    @property
    def share(self) -> float:
        return self.fitting / self.items if self.items else 0.0

    @property
    def reversed_share(self) -> float:
        return self.reversed / self.pairs if self.pairs else 0.0


# ------------------------------------------------------------------------------ sequences
def histories(rows: SplitRows, padding_id: int) -> list[list[int]]:
    """Each row's history, unpadded, oldest first."""
    return [[x for x in seq if x != padding_id] for seq in rows.seq.tolist()]


def sequences(rows: SplitRows, padding_id: int) -> list[list[int]]:
    """The item sequences a split's rows were cut from (see the module docstring)."""
    history, targets = histories(rows, padding_id), rows.next.tolist()
    return [
        [*history[run[0]], *(targets[i] for i in run)]
        for run in user_runs(rows, padding_id, STATE_SIZE)
    ]


def shuffled(seqs: Iterable[Sequence[int]], seed: int = 0) -> list[list[int]]:
    """Each sequence with its items in a random order (one seeded generator for all)."""
    rng = random.Random(seed)
    return [rng.sample(list(seq), len(seq)) for seq in seqs]


def order_stats(seqs: Iterable[Sequence[int]]) -> OrderStats:
    """How many items of the transition graph of ``seqs`` lie on no cycle (see ``item_order``)."""
    import networkx as nx  # a dependency of torch; imported here to keep `import recbench` light

    edges = {(a, b) for seq in seqs for a, b in itertools.pairwise(seq)}
    graph = nx.DiGraph()
    graph.add_edges_from(edges)
    on_cycle = set(nx.nodes_with_selfloops(graph))
    for component in nx.strongly_connected_components(graph):  # iterative in networkx
        if len(component) > 1:
            on_cycle.update(component)
    pairs = {(min(a, b), max(a, b)) for a, b in edges if a != b}
    both = sum(1 for a, b in edges if a < b and (b, a) in edges)
    n = graph.number_of_nodes()
    return OrderStats(items=n, fitting=n - len(on_cycle), pairs=len(pairs), reversed=both)


# ------------------------------------------------------------------------------ helpers
def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _pct(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({100 * part / whole:.1f}%)" if whole else f"{part:,} of 0"


def _train_caveat(ds: Dataset) -> str:
    """'' for a complete training split; a warning prefix for a sampled one."""
    spec = ds.split_spec("train")
    if spec.layout != "sample":
        return ""
    return f"train is a {len(ds.rows('train')):,}-row sample, not the full split; "


def _examples_mask(rows: SplitRows) -> np.ndarray:
    return rows.len_seq >= MIN_LEN_SEQ


def _eval_splits(ds: Dataset) -> list[str]:
    return [split for split in EVAL_SPLITS if split in ds.spec.splits]


# ------------------------------------------------------------------------------ checks
def check_shared_users(ds: Dataset, run: int = SHARED_RUN) -> Check:
    grams: set[tuple[int, ...]] = set()
    for seq in sequences(ds.rows("train"), ds.padding_id):
        grams.update(tuple(seq[i : i + run]) for i in range(len(seq) - run + 1))
    checked = shared = 0
    per_split = []
    for split in _eval_splits(ds):
        split_checked = split_shared = 0
        for history in histories(ds.rows(split), ds.padding_id):
            if len(history) < run:
                continue
            split_checked += 1
            windows = (tuple(history[i : i + run]) for i in range(len(history) - run + 1))
            split_shared += any(window in grams for window in windows)
        per_split.append(f"{split} {split_shared:,}/{split_checked:,}")
        checked += split_checked
        shared += split_shared
    value = _share(shared, checked)
    detail = (
        f"{_train_caveat(ds)}{_pct(shared, checked)} val/test rows with >= {run} history items "
        f"share a run of {run} consecutive items with a training sequence "
        f"({', '.join(per_split)})"
    )
    if not checked:
        detail = f"no val/test row has {run} history items to compare"
    return Check(
        "shared_users", value, f"> {SHARED_MAX:g}", value is not None and value > SHARED_MAX,
        detail,
    )  # fmt: skip


def check_test_pairs_in_train(ds: Dataset) -> Check:
    train = ds.rows("train")
    keys = {
        (tuple(seq), nxt) for seq, nxt in zip(train.seq.tolist(), train.next.tolist(), strict=True)
    }
    test = ds.rows("test")
    mask = _examples_mask(test)
    found = sum(
        (tuple(seq), nxt) in keys
        for seq, nxt in zip(test.seq[mask].tolist(), test.next[mask].tolist(), strict=True)
    )
    total = int(mask.sum())
    value = _share(found, total)
    detail = (
        f"{_train_caveat(ds)}{_pct(found, total)} test examples are a training row "
        "(same history, same target)"
    )
    return Check(
        "test_pairs_in_train", value, f"> {PAIRS_MAX:g}", value is not None and value > PAIRS_MAX,
        detail,
    )  # fmt: skip


def check_target_in_history(ds: Dataset) -> Check:
    counts = {}
    for split in ds.spec.splits:
        rows = ds.rows(split)
        mask = _examples_mask(rows)
        hits = (rows.seq[mask] == rows.next[mask][:, None]).any(axis=1)
        counts[split] = (int(hits.sum()), int(mask.sum()))
    found, total = counts.get("test", (0, 0))
    others = ", ".join(f"{s} {f:,}/{t:,}" for s, (f, t) in counts.items() if s != "test")
    detail = (
        f"{_pct(found, total)} test examples have their target in their own history "
        f"({others}); such a target is the only candidate in the history"
    )
    value = _share(found, total)
    return Check("target_in_history", value, "> 0", found > 0, detail)


def check_item_order(ds: Dataset, seed: int = 0) -> list[Check]:
    seqs = sequences(ds.rows("train"), ds.padding_id)
    real = order_stats(seqs)
    chance = order_stats(shuffled(seqs, seed))
    caveat = _train_caveat(ds)
    flagged = (
        real.items >= ORDER_MIN_ITEMS
        and real.share >= ORDER_FIT_MIN
        and chance.share <= real.share - ORDER_SHUFFLE_GAP
    )
    order = Check(
        "item_order",
        real.share if real.items else None,
        f">= {ORDER_FIT_MIN:g}, shuffled <= value - {ORDER_SHUFFLE_GAP:g}",
        flagged,
        f"{caveat}{_pct(real.fitting, real.items)} items in training transitions fit one "
        f"global order (on no cycle); shuffled (seed {seed}): "
        f"{_pct(chance.fitting, chance.items)}; {len(seqs):,} training sequences",
    )
    reversed_flag = (
        chance.reversed >= REVERSED_MIN
        and real.reversed_share < REVERSED_RATIO * chance.reversed_share
    )
    reversed_pairs = Check(
        "reversed_pairs",
        real.reversed_share if real.pairs else None,
        f"< {REVERSED_RATIO:g} x shuffled",
        reversed_flag,
        f"{caveat}{_pct(real.reversed, real.pairs)} item pairs seen as a training transition "
        f"are seen in both orders; shuffled (seed {seed}): "
        f"{_pct(chance.reversed, chance.pairs)}",
    )
    return [order, reversed_pairs]


def gini(counts: np.ndarray) -> float:
    """The Gini coefficient of non-negative counts (0: all equal, near 1: one item has all)."""
    values = np.sort(np.asarray(counts, dtype=float))
    n, total = len(values), values.sum()
    if n == 0 or total == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1).dot(values) / (n * total))


def check_popularity(ds: Dataset) -> list[Check]:
    popularity = ds.popularity()
    ranked = np.argsort(-popularity, kind="stable")  # most popular first, ties by smaller id
    test = ds.rows("test")
    targets = test.next[_examples_mask(test)]
    caveat = _train_caveat(ds)
    checks = []
    top_k = max(1, math.ceil(0.01 * ds.num_items))
    for name, k, limit, label in (
        ("pop_top1pct", top_k, TOP1PCT_MAX, f"the top 1% ({top_k:,} items)"),
        ("pop_top20", min(20, ds.num_items), TOP20_MAX, "the 20 most popular items"),
    ):
        inside = int(np.isin(targets, ranked[:k]).sum())
        value = _share(inside, len(targets))
        uniform = k / ds.num_items
        lift = f", {value / uniform:.1f}x a uniform draw" if value is not None else ""
        flagged = value is not None and value > limit and value >= POP_LIFT_MIN * uniform
        checks.append(
            Check(
                name,
                value,
                f"> {limit:g} and >= {POP_LIFT_MIN:g}x uniform",
                flagged,
                f"{caveat}{_pct(inside, len(targets))} test targets are among {label} by "
                f"training popularity{lift}",
            )
        )
    value = gini(popularity)
    seen = int((popularity > 0).sum())
    checks.append(
        Check(
            "pop_gini",
            value,
            f"> {GINI_MAX:g}",
            value > GINI_MAX,
            f"{caveat}Gini of training popularity over {ds.num_items:,} items "
            f"({seen:,} are the target of a training row; {int(popularity.sum()):,} rows)",
        )
    )
    return checks


def audit(ds: Dataset, seed: int = 0) -> dict:
    """Every check of the module docstring: ``{"dataset": name, "checks": [...]}``."""
    checks = [
        check_shared_users(ds),
        check_test_pairs_in_train(ds),
        check_target_in_history(ds),
        *check_item_order(ds, seed),
        *check_popularity(ds),
    ]
    return {"dataset": ds.name, "checks": [check.to_json() for check in checks]}
