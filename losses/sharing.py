"""In-batch negative sharing (NAPO section 5.1): choose neighbours, pool their negatives.

Each example u borrows the n negatives of its K most similar *other* examples, so its softmax
compares the chosen item against n(1+K) negatives at no extra forward cost: the borrowed values
are the log-probabilities the neighbour already computed under its own prompt.

Rules fixed by the suite, and why:

* ``K = floor((b-1)*rho + 1e-9)``; the official ``int(rho*(b-1))`` can drop one neighbour when the
  product lands just below an integer (available as ``floor="int"``).
* Similarity is the plain inner product of the sequence embeddings.
* An example never shares with itself, nor with another row carrying the same ``example_id``
  (a duplicated sample would leak its own chosen-vs-negative structure).
* Ties are broken by ascending batch index (a stable sort), so the pool is reproducible.
* Neighbour selection is data, not model: it runs without gradient.

Everything returned is index-based, so any per-negative tensor (log-probs, reference log-probs,
lengths, owner scores, item ids) is pooled by the same gather and stays aligned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def num_shared_neighbours(batch_size: int, rho: float, floor: str = "robust") -> int:
    """K for a micro-batch of ``batch_size`` examples and sharing ratio ``rho`` in [0, 1]."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    others = batch_size - 1
    if floor == "int":
        k = int(rho * others)
    elif floor == "robust":
        k = math.floor(others * rho + 1e-9)
    else:
        raise ValueError(f"floor must be 'robust' or 'int', got {floor!r}")
    return max(0, min(k, others))


@dataclass(frozen=True)
class Neighbours:
    """Neighbour table of a batch: ``index`` [b, K] (long), ``valid`` [b, K] (bool).

    ``valid`` is false where fewer than K eligible examples exist (all others share the example's
    id); those slots point at an arbitrary row and are masked out of every pool.
    """

    index: Tensor
    valid: Tensor

    @property
    def k(self) -> int:
        return int(self.index.shape[1])

    @property
    def batch_size(self) -> int:
        return int(self.index.shape[0])

    @staticmethod
    def none(batch_size: int, device: torch.device | None = None) -> Neighbours:
        """The K = 0 table (no sharing)."""
        return Neighbours(
            index=torch.zeros((batch_size, 0), dtype=torch.long, device=device),
            valid=torch.zeros((batch_size, 0), dtype=torch.bool, device=device),
        )

    def shared(self, values: Tensor) -> Tensor:
        """Neighbours' per-negative values: [b, n, ...] -> [b, K*n, ...] (owner order kept)."""
        gathered = values[self.index]  # [b, K, n, ...]
        b, k, n = gathered.shape[:3]
        return gathered.reshape(b, k * n, *gathered.shape[3:])

    def pool(self, own: Tensor, shared_from: Tensor | None = None) -> Tensor:
        """Own values followed by the neighbours' values: [b, n] -> [b, n*(1+K)].

        ``shared_from`` (default ``own``) lets the caller pool a detached copy for the shared part
        only, which is how ``detach_negatives="shared"`` is implemented.
        """
        source = own if shared_from is None else shared_from
        return torch.cat([own, self.shared(source)], dim=1)

    def pool_mask(self, n: int) -> Tensor:
        """[b, n*(1+K)] bool: own entries always valid, shared entries valid with their slot."""
        own = torch.ones((self.batch_size, n), dtype=torch.bool, device=self.valid.device)
        return torch.cat([own, self.valid.repeat_interleave(n, dim=1)], dim=1)

    def pool_receiver(self, receiver_scores: Tensor) -> Tensor:
        """Receiver-paired scores of the pool: [b, b, n] -> [b, n*(1+K)].

        Entry [u, v, j] of the input scores v's j-th negative for user u; the pool of u takes
        [u, u, :] for its own negatives and [u, v, :] for each neighbour v (paper margin, Eq. 15).
        """
        b = receiver_scores.shape[0]
        rows = torch.arange(b, device=receiver_scores.device)
        own = receiver_scores[rows, rows]  # [b, n]
        shared = receiver_scores[rows[:, None], self.index]  # [b, K, n]
        return torch.cat([own, shared.reshape(b, -1)], dim=1)


def find_neighbours(
    seq_embeddings: Tensor, k: int, example_ids: Tensor | None = None
) -> Neighbours:
    """Top-``k`` other examples by inner product of ``seq_embeddings`` [b, d], stable ties."""
    b = int(seq_embeddings.shape[0])
    if k < 0 or k > max(b - 1, 0):
        raise ValueError(f"k must be in [0, {max(b - 1, 0)}] for a batch of {b}, got {k}")
    if k == 0:
        return Neighbours.none(b, seq_embeddings.device)
    with torch.no_grad():
        emb = seq_embeddings.detach()
        if not emb.is_floating_point() or emb.dtype in (torch.float16, torch.bfloat16):
            emb = emb.float()
        sim = emb @ emb.T
        excluded = torch.eye(b, dtype=torch.bool, device=emb.device)
        if example_ids is not None:
            excluded |= example_ids[:, None] == example_ids[None, :]
        sim = sim.masked_fill(excluded, float("-inf"))
        order = torch.sort(sim, dim=1, descending=True, stable=True).indices[:, :k]
        valid = ~torch.gather(excluded, 1, order)
    return Neighbours(index=order, valid=valid)
