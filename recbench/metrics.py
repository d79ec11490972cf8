"""Evaluation metrics shared by every method (LLM losses and traditional baselines alike).

Ranking mode scores all 20 candidates; generation mode parses free text with the published rule
(docs/data.md, 'Metrics'): a candidate counts when its title occurs as a case-sensitive substring of
the generated selection, the output is valid iff exactly one candidate occurs, and a hit iff it is
valid and that candidate is the target.  Invalid outputs stay in the denominator of both ratios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def target_ranks(scores: np.ndarray, target_pos: np.ndarray) -> np.ndarray:
    """1-based rank of the target among the candidates of each row.

    Ties are resolved against the target's favour only by candidate order: a candidate with the
    same score ranks ahead of the target when it comes earlier in the list, which is what
    ``argmax`` (first maximum) does.  A model that scores all candidates equally therefore hits
    only when the target happens to be listed first, i.e. at chance level.
    """
    scores = np.asarray(scores, dtype=np.float64)
    target_pos = np.asarray(target_pos, dtype=np.int64)
    rows = np.arange(scores.shape[0])
    target_score = scores[rows, target_pos][:, None]
    columns = np.arange(scores.shape[1])[None, :]
    ahead = (scores > target_score) | ((scores == target_score) & (columns < target_pos[:, None]))
    return 1 + ahead.sum(axis=1)


def ranking_metrics(
    scores: np.ndarray, target_pos: np.ndarray, ks: Sequence[int] = (5, 10)
) -> dict[str, float]:
    """HR@1 and HR@k / NDCG@k over the candidate lists (one row per example)."""
    ranks = target_ranks(scores, target_pos)
    out = {"hr@1": float((ranks == 1).mean()), "n_examples": float(len(ranks))}
    for k in ks:
        out[f"hr@{k}"] = float((ranks <= k).mean())
        gains = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
        out[f"ndcg@{k}"] = float(gains.mean())
    return out


@dataclass(frozen=True)
class Selection:
    """How one generated answer is judged."""

    valid: bool
    hit: bool
    item: int | None  # the recommended candidate when valid


def judge_generation(
    text: str, candidates: Sequence[int], titles: Sequence[str], target: int
) -> Selection:
    """Apply the published substring rule to one generated selection.

    ``titles`` are the candidate titles in candidate order.  A title that is a substring of another
    candidate's title makes a correct answer invalid; this is kept on purpose for comparability.
    """
    found = [item for item, title in zip(candidates, titles, strict=True) if title in text]
    if len(found) != 1:
        return Selection(valid=False, hit=False, item=None)
    return Selection(valid=True, hit=found[0] == target, item=found[0])


def generation_metrics(selections: Sequence[Selection]) -> dict[str, float]:
    n = len(selections)
    if n == 0:
        return {"hr@1": 0.0, "valid_ratio": 0.0, "n_examples": 0.0}
    return {
        "hr@1": sum(s.hit for s in selections) / n,
        "valid_ratio": sum(s.valid for s in selections) / n,
        "n_examples": float(n),
    }


def popularity_bias(
    recommended: Sequence[int | None],
    histories: Sequence[Sequence[int]],
    popularity: np.ndarray,
) -> dict[str, float]:
    """Mean of LogPop(recommended) - mean LogPop(history) over valid recommendations.

    LogPop(i) = ln(1 + Pop(i)) with Pop from the unfiltered training split (paper Appendix D).
    """
    log_pop = np.log1p(np.asarray(popularity, dtype=np.float64))
    values = [
        log_pop[item] - log_pop[list(history)].mean()
        for item, history in zip(recommended, histories, strict=True)
        if item is not None and len(history) > 0
    ]
    return {
        "pop_bias": float(np.mean(values)) if values else math.nan,
        "pop_bias_n_valid": float(len(values)),
        "pop_bias_n_invalid": float(len(recommended) - len(values)),
    }


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (HR@1 over n examples)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
