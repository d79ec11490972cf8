"""The 20-candidate rule and the preference-training negatives (docs/data.md).

Candidate sets must be identical for every method and equal to the published ones, so the rule
mirrors the source releases' use of Python's ``random`` module exactly, but on private
``random.Random`` instances so that global random state is never touched.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

NUM_CANDIDATES = 20


def candidate_pool(history: Sequence[int], target: int, num_items: int) -> list[int]:
    """Eligible negatives: every item id, ascending, except the history items and the target."""
    keep = np.ones(num_items, dtype=bool)
    keep[list(history)] = False
    keep[target] = False
    return np.flatnonzero(keep).tolist()


def build_candidates(
    history: Sequence[int], target: int, num_items: int, size: int = NUM_CANDIDATES
) -> tuple[int, ...]:
    """The target plus ``size - 1`` seeded negatives, shuffled (seed = target id)."""
    pool = candidate_pool(history, target, num_items)
    negatives = random.Random(target).sample(pool, size - 1)
    candidates = negatives + [target]
    random.Random(target).shuffle(candidates)
    return tuple(candidates)


def sample_negatives(
    candidates: Sequence[int], target: int, n_neg: int, seed: int, key: str
) -> tuple[int, ...]:
    """``n_neg`` distinct non-target candidates, reproducible from ``(seed, key)``.

    ``key`` identifies the example (e.g. ``"train:17"``) so that each example gets its own draw
    while the whole set is fixed by one seed, as in the reference implementations where the
    negatives are drawn once at preprocessing.
    """
    others = [c for c in candidates if c != target]
    if not 0 < n_neg <= len(others):
        raise ValueError(f"n_neg must be in 1..{len(others)}, got {n_neg}")
    return tuple(random.Random(f"negatives:{seed}:{key}").sample(others, n_neg))
