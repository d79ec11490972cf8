"""Rule baselines: five scorers with no trained parameters, run as ``--baseline NAME``.

Each rule ranks the 20 shared candidates of exactly the test examples every other method of the
profile is evaluated on (``pick_examples(ds.examples("test"), eval_examples, EVAL_SEED)``, as the
sequential baselines), and the ranking goes through the same metric code
(:func:`recbench.metrics.ranking_metrics`, :func:`recbench.metrics.popularity_bias`), so its
HR@1, HR@k, NDCG@k and popularity bias are computed exactly as theirs.  Records carry
``family="rule"`` (their own group in Table 2) and ``model="rule"``.

Statistics, all from the dataset's training split (never validation or test):

* **popularity** ``pop(i)``: the number of training rows whose target (``next``) is ``i``, over
  the unfiltered split (:meth:`recbench.data.dataset.Dataset.popularity`, the popularity of the
  pop-bias metric).
* **transitions** ``T(a, b)``: how often ``b`` directly follows ``a`` in the training users'
  sequences.  A row is a window ``history + [next]`` (history: the real ids of ``seq``, at most
  10).  A row that *continues the row above it* (its history is the row above's
  ``history + [next]``, cut to the last 10 items) adds only its one new pair
  ``(last history item, next)``; any other row adds every consecutive pair of its window.  In a
  sliding-window split (every prefix of every user is a row, each user's chain starting with an
  all-padding row) each consecutive pair of each user is thus counted exactly once, although it
  lies inside up to 10 rows' windows; a one-row-per-user split counts every pair of each window
  once.  In a split that is a random sample of sliding rows (steam ships 1,000 of them) two rows
  of one user that are not adjacent may share pairs, which are then counted twice.  Pairs
  ``(a, a)`` are counted but never matter (the candidates exclude the history).

The rules (higher key = ranked higher; the tie-breaks make every ranking strict, so the metric's
own tie rule, candidate order, never decides):

* ``random``: a uniformly random permutation of each example's candidates, drawn from
  ``random.Random(f"rule-random:{seed}:{example.key}")`` with the run's seed: the same seed gives
  the same ranking of an example whatever subset is evaluated; HR@1 has expectation 1/20 = 0.05.
* ``pop``: key ``pop(c)``; ties: smallest item id first.
* ``markov``: key ``T(last history item, c)``; ties: ``pop(c)``, then smallest id.
* ``cooc``: key ``sum over the history items h (each occurrence) of T(h, c)``; ties: ``pop(c)``,
  then smallest id.
* ``order``: one global order of all items from the distinct transition edges ``a -> b``
  (``a != b``) by Kahn's topological sort, always taking the ready item (no unplaced
  predecessor) with the smallest id; when none is ready (a cycle), the unplaced item with the
  fewest edges from unplaced items is placed next (ties: smallest id), as if those edges were
  dropped.  Items without any transition are ready from the start.  With ``p`` the position in
  that order and ``l`` the last history item, a candidate after ``l`` ranks above every candidate
  before it; among those after, the nearest (smallest ``p(c) - p(l)``) first; among those before,
  the nearest (largest ``p(c) - p(l)``) first.  Positions are distinct, so there are no ties.

``random`` records the run's seed; the other rules are deterministic and record ``seed=None``
(one run is the whole result; repeating it with other seeds gives the same numbers).
"""

from __future__ import annotations

import heapq
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recbench.data import Example
from recbench.data.dataset import Dataset
from recbench.data.rows import SplitRows
from recbench.errors import UserError
from recbench.methods import Method, Scores, register_method
from recbench.metrics import popularity_bias, ranking_metrics, target_ranks
from recbench.outcomes import Outcomes

if TYPE_CHECKING:
    from recbench.config import RunConfig

FAMILY = "rule"
MODEL = "rule"
DEFAULT_KS = (5, 10)
#: name -> the one-line definition shown by ``recbench run --help`` listings and recorded.
RULES: dict[str, str] = {
    "random": "a seeded uniformly random ranking of the 20 candidates (HR@1 expectation 0.05)",
    "pop": "the most popular candidate (training rows with that target) first; ties: smallest id",
    "markov": "most training transitions from the last history item; ties: popularity, id",
    "cooc": "most training transitions from the history items, summed; ties: popularity, id",
    "order": "soonest after the last history item in a global order (Kahn's sort of transitions)",
}


# ---------------------------------------------------------------------- training statistics
def training_transitions(rows: SplitRows, padding_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Sources and targets of the training transitions, one entry per counted pair (module doc)."""
    seq = np.asarray(rows.seq, dtype=np.int64)
    nxt = np.asarray(rows.next, dtype=np.int64)
    n_rows, width = seq.shape
    if n_rows == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    length = (seq != padding_id).sum(axis=1)  # real ids (right-padded, checked on reading)
    window = np.full((n_rows, width + 1), padding_id, dtype=np.int64)
    window[:, :width] = seq
    window[np.arange(n_rows), length] = nxt  # history + [next], then padding
    # The history the row above continues into: its window, cut to the last `width` items.
    previous, prev_length = window[:-1], length[:-1]
    expected = np.where(
        (prev_length + 1 > width)[:, None], previous[:, 1 : width + 1], previous[:, :width]
    )
    continues = np.zeros(n_rows, dtype=bool)
    continues[1:] = (seq[1:] == expected).all(axis=1)
    column = np.arange(width)[None, :]
    pair = column < length[:, None]  # window[j] and window[j + 1] both real
    pair &= ~continues[:, None] | (column == (length - 1)[:, None])
    return window[:, :width][pair], window[:, 1:][pair]


@dataclass(frozen=True)
class GlobalOrder:
    """Every item's position in the global order of the ``order`` rule."""

    position: np.ndarray  # [num_items] int64, a permutation of 0..num_items-1
    cycle_breaks: int  # how often no item was ready (0: the transitions are acyclic)


def global_order(sources: np.ndarray, targets: np.ndarray, num_items: int) -> GlobalOrder:
    """Kahn's topological sort of the distinct edges, cycles broken as the module doc says."""
    keep = sources != targets
    edges = np.unique(sources[keep] * num_items + targets[keep])
    tails, heads = edges // num_items, edges % num_items  # sorted by tail
    indegree = np.bincount(heads, minlength=num_items).astype(np.int64)
    starts = np.searchsorted(tails, np.arange(num_items + 1))
    heads_list = heads.tolist()
    placed = np.zeros(num_items, dtype=bool)
    ready = np.flatnonzero(indegree == 0).tolist()  # ascending, a valid heap
    order: list[int] = []
    breaks = 0
    blocked = np.iinfo(np.int64).max
    while len(order) < num_items:
        if ready:
            item = heapq.heappop(ready)
        else:  # a cycle: fewest incoming edges from unplaced items, then smallest id
            item = int(np.where(placed, blocked, indegree).argmin())
            breaks += 1
        placed[item] = True
        order.append(item)
        for head in heads_list[starts[item] : starts[item + 1]]:
            if not placed[head]:
                indegree[head] -= 1
                if indegree[head] == 0:
                    heapq.heappush(ready, head)
    position = np.empty(num_items, dtype=np.int64)
    position[np.asarray(order, dtype=np.int64)] = np.arange(num_items)
    return GlobalOrder(position=position, cycle_breaks=breaks)


@dataclass
class TrainingStats:
    """Popularity and transition counts of a training split (the rules' only inputs)."""

    num_items: int
    popularity: np.ndarray  # [num_items]
    sources: np.ndarray  # one entry per counted transition
    targets: np.ndarray
    _keys: np.ndarray = field(init=False, repr=False)
    _counts: np.ndarray = field(init=False, repr=False)
    _order: GlobalOrder | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._keys, self._counts = np.unique(
            self.sources * self.num_items + self.targets, return_counts=True
        )

    @classmethod
    def from_rows(cls, rows: SplitRows, num_items: int) -> TrainingStats:
        """Statistics of one split's rows; the padding id is ``num_items``, as everywhere."""
        sources, targets = training_transitions(rows, num_items)
        popularity = np.bincount(np.asarray(rows.next, dtype=np.int64), minlength=num_items)
        return cls(num_items, popularity, sources, targets)

    @classmethod
    def from_dataset(cls, ds: Dataset) -> TrainingStats:
        return cls.from_rows(ds.rows("train"), ds.num_items)

    @property
    def n_transitions(self) -> int:
        return int(self.sources.shape[0])

    def transitions(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``T(a, b)`` elementwise for arrays of sources and targets of one shape."""
        query = np.asarray(sources, dtype=np.int64) * self.num_items + np.asarray(targets)
        if self._keys.size == 0:
            return np.zeros(query.shape, dtype=np.int64)
        index = np.minimum(np.searchsorted(self._keys, query), self._keys.size - 1)
        return np.where(self._keys[index] == query, self._counts[index], 0)

    @property
    def order(self) -> GlobalOrder:
        if self._order is None:
            self._order = global_order(self.sources, self.targets, self.num_items)
        return self._order


# ---------------------------------------------------------------------------- scoring
def _strict_ranks(candidates: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """Scores 0..19 per row (19 = ranked first): by ``keys`` (most significant first,
    descending), then by smallest item id."""
    n_rows, width = candidates.shape
    row = np.repeat(np.arange(n_rows), width)
    # np.lexsort: the last key is the primary one; ascending order, so the best comes last.
    sort_keys = [-candidates.ravel(), *(np.asarray(k).ravel() for k in reversed(keys)), row]
    flat = np.lexsort(sort_keys)
    scores = np.empty(n_rows * width, dtype=np.float64)
    scores[flat] = np.tile(np.arange(width, dtype=np.float64), n_rows)
    return scores.reshape(n_rows, width)


def rule_scores(
    rule: str, examples: Sequence[Example], stats: TrainingStats, seed: int = 0
) -> np.ndarray:
    """The ``[len(examples), 20]`` score matrix of ``rule``: a strict ranking per example."""
    if rule not in RULES:
        raise UserError(f"unknown rule '{rule}'; known: {', '.join(RULES)}")
    if len(examples) == 0:
        raise ValueError("no examples to score")
    candidates = np.asarray([e.candidates for e in examples], dtype=np.int64)
    if rule == "random":
        scores = np.empty(candidates.shape, dtype=np.float64)
        for i, example in enumerate(examples):
            permutation = list(range(candidates.shape[1]))
            random.Random(f"rule-random:{seed}:{example.key}").shuffle(permutation)
            scores[i] = permutation
        return scores
    popularity = stats.popularity[candidates]
    if rule == "pop":
        return _strict_ranks(candidates, popularity)
    last = np.asarray([e.history[-1] if e.history else -1 for e in examples], dtype=np.int64)
    if rule == "markov":
        counts = np.where(
            last[:, None] >= 0, stats.transitions(np.maximum(last, 0)[:, None], candidates), 0
        )
        return _strict_ranks(candidates, counts, popularity)
    if rule == "cooc":
        summed = np.zeros(candidates.shape, dtype=np.int64)
        for i, example in enumerate(examples):
            for item in example.history:
                summed[i] += stats.transitions(np.full(candidates.shape[1], item), candidates[i])
        return _strict_ranks(candidates, summed, popularity)
    # order: after the last item (nearest first) above before it (nearest first)
    position = stats.order.position
    offset = position[candidates] - np.where(last >= 0, position[np.maximum(last, 0)], -1)[:, None]
    key = np.where(offset > 0, stats.num_items - offset, offset)
    return _strict_ranks(candidates, key)


def evaluate_scores(
    scores: np.ndarray,
    examples: Sequence[Example],
    popularity: np.ndarray | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    outcomes: Outcomes | None = None,
) -> dict[str, float]:
    """HR@1, HR@k, NDCG@k and the top-1 popularity bias, as the sequential baselines compute
    them (:func:`recbench.seqrec.evaluation.evaluate_model`) from their candidate scores; each
    example's target rank is added to ``outcomes`` when given."""
    target_position = np.asarray([e.target_position for e in examples], dtype=np.int64)
    metrics = ranking_metrics(scores, target_position, ks)
    if outcomes is not None:
        outcomes.add_ranks([e.key for e in examples], target_ranks(scores, target_position))
    if popularity is not None:
        best = scores.argmax(axis=1)
        picks = [int(e.candidates[j]) for e, j in zip(examples, best, strict=True)]
        metrics.update(popularity_bias(picks, [e.history for e in examples], popularity))
    return metrics


# ------------------------------------------------------------------------------ the method
class Rule(Method):
    """A rule as a method: training-split statistics, then a ranking of the candidates."""

    family = FAMILY
    rule: ClassVar[str] = ""

    @classmethod
    def recorded_seed(cls, config: RunConfig) -> int | None:
        """Only ``random`` draws anything; the other rules give one result for every seed."""
        return config.seed if cls.rule == "random" else None

    @classmethod
    def defining_settings(cls, config: RunConfig, ds: Dataset) -> dict[str, Any]:
        s = config.settings
        return {"evaluation": {k: getattr(s, k) for k in ("eval_split", "eval_rows",
                                                          "eval_examples")},
                "seed": cls.recorded_seed(config)}  # fmt: skip

    def prepare(self) -> None:
        ds = self.run.dataset
        layout = ds.split_spec("train").layout
        if layout == "sample" and self.rule != "random":
            warnings.warn(
                f"dataset '{ds.name}': the training split is only a sample "
                f"({len(ds.rows('train'))} rows); the {self.rule} rule's counts come from it",
                stacklevel=2,
            )
        started = time.perf_counter()
        self.stats = TrainingStats.from_dataset(ds)
        cycle_breaks = self.stats.order.cycle_breaks if self.rule == "order" else None
        self.facts.timings["train_seconds"] = time.perf_counter() - started
        self.facts.model = MODEL
        self.facts.settings.update(
            rule=RULES[self.rule], train_layout=layout, train_rows=len(ds.rows("train")),
            transitions=self.stats.n_transitions, order_cycle_breaks=cycle_breaks,
        )  # fmt: skip

    def score(self, examples: Sequence[Example]) -> Scores:
        return Scores(rule_scores(self.rule, examples, self.stats, self.run.config.seed))


for _order, (_name, _summary) in enumerate(RULES.items()):
    register_method(
        type(
            f"Rule[{_name}]",
            (Rule,),
            {"name": _name, "rule": _name, "summary": _summary, "order": _order},
        )
    )
