"""DynamicPO's choice of boundary negatives and their per-negative beta (docs/losses.md).

Per example, on detached *policy* log-probs (never on reference log-ratios):

1. the violators {j : l-_j >= l+} are the boundary set B; if there are none, B is the k-means
   cluster (k <= 3) of the negatives' log-probs with the largest mean;
2. the other negatives (or B itself if nothing is left) form the discriminative set D, with mean m;
3. each j in B gets beta_j = beta * (1 + tanh((a_j - b_j - M) / (|a_j| + |b_j|)) / 2), where
   a_j = l+ - l-_j is its distance to the chosen item and b_j = l-_j - m its distance above D.

So a negative close to the chosen item but far above the easy ones gets a larger beta.  The
clustering runs on the CPU in float64 Python numbers; none of it carries gradient.

k-means rules: ``"sklearn"`` reproduces the released call (one k-means++ start, seed 42) with k
limited to the number of distinct values, which avoids the released code's empty-cluster crash on
duplicates; ``"exact"`` is the global optimum of 1-D k-means, which the single start misses on
about a third of the larger fallbacks.
"""

from __future__ import annotations

import math
from itertools import combinations, pairwise

import torch
from torch import Tensor

from recbench.errors import UserError

KMEANS_RULES = ("sklearn", "exact")
MAX_CLUSTERS = 3


def _sse(values: list[float], counts: list[int]) -> float:
    """Within-group sum of squared deviations, each distinct value weighted by its count."""
    total = sum(counts)
    mean = sum(v * c for v, c in zip(values, counts, strict=True)) / total
    return sum(c * (v - mean) ** 2 for v, c in zip(values, counts, strict=True))


def exact_top_cluster(values: list[float]) -> list[int]:
    """Indices in the highest group of the optimal 1-D k-means, k = min(3, #distinct values).

    Optimal 1-D clusters are contiguous in sorted order, so every split of the sorted distinct
    values into k groups is tried.  Equal values are never split.  Of partitions whose SSE ties
    the minimum within 1e-12 * (1 + SSE), the one with the smallest top group wins.
    """
    distinct = sorted(set(values))
    k = min(MAX_CLUSTERS, len(distinct))
    if k <= 1:
        return list(range(len(values)))
    counts = [values.count(v) for v in distinct]
    candidates: list[tuple[float, int]] = []  # (SSE, index of the top group's lowest value)
    for cuts in combinations(range(1, len(distinct)), k - 1):
        bounds = (0, *cuts, len(distinct))
        sse = sum(_sse(distinct[lo:hi], counts[lo:hi]) for lo, hi in pairwise(bounds))
        candidates.append((sse, cuts[-1]))
    best = min(sse for sse, _ in candidates)
    start = max(cut for sse, cut in candidates if sse <= best + 1e-12 * (1.0 + best))
    lowest = distinct[start]
    return [j for j, v in enumerate(values) if v >= lowest]


def sklearn_top_cluster(values: list[float]) -> list[int]:
    """The released ``_cluster_high_reward_indices`` with k = min(3, n, #distinct values).

    ``n_init=1`` is what scikit-learn >= 1.4 means by its default ``'auto'`` for k-means++
    (DynamicPO pins 1.5.1); giving it explicitly keeps older versions from running ten starts.
    """
    k = min(MAX_CLUSTERS, len(values), len(set(values)))
    if k <= 1:
        return list(range(len(values)))
    try:
        import numpy as np
        from sklearn.cluster import KMeans
    except ImportError as err:
        raise UserError(
            "DynamicPO losses with kmeans='sklearn' need scikit-learn (pip install "
            "scikit-learn); kmeans='exact' needs nothing"
        ) from err
    data = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    labels = KMeans(n_clusters=k, n_init=1, random_state=42).fit(data).labels_
    means = [float(data[labels == c].mean()) for c in range(k)]
    top = int(np.argmax(means))
    return [j for j in range(len(values)) if labels[j] == top]


def _dynamic_beta(beta: float, margin: float, a: float, b: float) -> float:
    """beta * (1 + tanh((a - b - M)/(|a| + |b|))/2); 0/0 (only when M = 0) counts as 0."""
    numerator, denominator = (a - b) - margin, abs(b) + abs(a)
    if denominator == 0.0:
        ratio = 0.0 if numerator == 0.0 else math.copysign(math.inf, numerator)
    else:
        ratio = numerator / denominator
    return beta * (1.0 + math.tanh(ratio) * 0.5)


@torch.no_grad()
def boundary_selection(
    chosen: Tensor, rejected: Tensor, *, beta: float, margin: float, kmeans: str
) -> tuple[Tensor, Tensor]:
    """Boundary mask [b, n] (bool) and per-negative beta [b, n] (0 outside the mask).

    ``chosen`` [b] and ``rejected`` [b, n] are the policy's log-probs; the results are on their
    device, the betas in their dtype.
    """
    if kmeans not in KMEANS_RULES:
        raise ValueError(f"unknown k-means rule {kmeans!r}")
    cluster = sklearn_top_cluster if kmeans == "sklearn" else exact_top_cluster
    pos_rows = chosen.detach().double().cpu().tolist()
    neg_rows = rejected.detach().double().cpu().tolist()
    mask = torch.zeros(rejected.shape, dtype=torch.bool)
    betas = torch.zeros(rejected.shape, dtype=torch.float64)
    for u, (pos, neg) in enumerate(zip(pos_rows, neg_rows, strict=True)):
        boundary = [j for j, v in enumerate(neg) if v >= pos] or cluster(neg)
        others = [j for j in range(len(neg)) if j not in boundary] or boundary
        floor = sum(neg[j] for j in others) / len(others)
        for j in boundary:
            mask[u, j] = True
            betas[u, j] = _dynamic_beta(beta, margin, pos - neg[j], neg[j] - floor)
    return mask.to(rejected.device), betas.to(device=rejected.device, dtype=rejected.dtype)
