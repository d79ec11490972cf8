"""Which negatives a preference loss trains against: a registry axis of its own.

The papers mix two questions a benchmark keeps apart: *which loss* and *which negatives*.  A
strategy picks, for each training example, ``n`` negatives among the items the prompt does not
ask for; the loss then sees them exactly as it sees today's.  Every strategy is deterministic
for a seed, part of a run's identity (``--negatives KEY``) and recorded with its results.

A strategy is one small registered class (:class:`NegativeStrategy`); a plugin adds one the same
way.  What it needs beyond the data -- the auxiliary SASRec (``hard``) or the policy's own scores
at the start of the preference stage (``self``) -- comes through :class:`NegativeContext`, which
the LLM pipeline fills, so a strategy never loads a model itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recbench.data.dataset import Dataset, Example
from recbench.registry import Registry

DEFAULT = "random"
#: What a strategy needs besides the data.
NEEDS = ("nothing", "sasrec", "policy")


@dataclass(frozen=True)
class NegativeContext:
    """What a strategy may read: the data, the run's seed and, where it asks, candidate scores.

    ``sasrec_scores`` and ``policy_scores`` map examples to ``[len(examples), 20]`` scores of
    their candidates, in candidate order (higher: the model prefers it).
    """

    dataset: Dataset
    seed: int
    sasrec_scores: Callable[[Sequence[Example]], np.ndarray] | None = None
    policy_scores: Callable[[Sequence[Example]], np.ndarray] | None = None


class NegativeStrategy(ABC):
    """Picks ``n`` negatives for each example; subclasses set the class attributes."""

    key: ClassVar[str]
    summary: ClassVar[str]
    needs: ClassVar[str] = "nothing"

    @abstractmethod
    def pick(
        self, context: NegativeContext, examples: Sequence[Example], n: int
    ) -> list[tuple[int, ...]]:
        """``n`` distinct negative item ids for each example (never its target)."""


NEGATIVES: Registry[type[NegativeStrategy]] = Registry(
    "negative strategy", sort_key=lambda key, _: (key != DEFAULT, key)
)


def register_negatives(cls: type[NegativeStrategy]) -> type[NegativeStrategy]:
    """Class decorator registering a strategy under ``cls.key`` (``--negatives KEY``)."""
    if cls.needs not in NEEDS:
        raise ValueError(f"negatives '{cls.key}': needs must be one of {', '.join(NEEDS)}")
    if "\n" in cls.summary:
        raise ValueError(f"negatives '{cls.key}': summary must be one line")
    NEGATIVES.add(cls.key, cls)
    return cls


def get_strategy(key: str) -> type[NegativeStrategy]:
    """The strategy registered as ``key`` (unknown names: "did you mean")."""
    _load_builtin()
    return NEGATIVES.get(key)


def strategy_keys() -> list[str]:
    _load_builtin()
    return NEGATIVES.names()


def highest_scored(
    examples: Sequence[Example], scores: np.ndarray, n: int
) -> list[tuple[int, ...]]:
    """Each example's ``n`` non-target candidates with the highest scores (ties: smaller id)."""
    out = []
    for example, row in zip(examples, np.asarray(scores, dtype=np.float64), strict=True):
        ranked = sorted(
            (c for c in example.candidates if c != example.target),
            key=lambda c: (-row[example.candidates.index(c)], c),
        )
        out.append(tuple(ranked[:n]))
    return out


def _load_builtin() -> None:
    """Import the built-in strategies (each module registers itself)."""
    from recbench.negatives import catalog, hard, own, popular, uniform  # noqa: F401
