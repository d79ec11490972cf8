"""Ranking the shared 20 candidates with a sequential model's item scores.

Traditional recommenders are evaluated on exactly the examples and candidate lists that every LLM
method sees (``Dataset.examples(split)``): the model scores all items, the 20 candidates' scores
are gathered, and the shared metric code ranks them (HR@1, HR@k, NDCG@k, ties resolved by
candidate order as ``argmax`` would) and measures the popularity bias of the top-1 pick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recbench.data import Example
from recbench.metrics import popularity_bias, ranking_metrics, target_ranks
from recbench.outcomes import Outcomes

DEFAULT_KS = (5, 10)


@dataclass(frozen=True)
class CandidateSet:
    """The model inputs and candidate lists of a split's examples, as tensors (built once)."""

    seq: torch.Tensor  # [N, T] long
    len_seq: torch.Tensor  # [N] long
    candidates: torch.Tensor  # [N, 20] long
    target_position: np.ndarray  # [N]
    histories: tuple[tuple[int, ...], ...]
    keys: tuple[str, ...] = ()  # the examples' keys, for per-example outcomes

    @classmethod
    def from_examples(cls, examples: Sequence[Example]) -> CandidateSet:
        if len(examples) == 0:
            raise ValueError("no examples to evaluate")
        return cls(
            seq=torch.tensor([e.seq for e in examples], dtype=torch.long),
            len_seq=torch.tensor([e.len_seq for e in examples], dtype=torch.long),
            candidates=torch.tensor([e.candidates for e in examples], dtype=torch.long),
            target_position=np.asarray([e.target_position for e in examples], dtype=np.int64),
            histories=tuple(e.history for e in examples),
            keys=tuple(e.key for e in examples),
        )

    def __len__(self) -> int:
        return int(self.seq.shape[0])


@torch.no_grad()
def item_scores(
    model: torch.nn.Module, seq: torch.Tensor, len_seq: torch.Tensor, batch_size: int = 2048
) -> torch.Tensor:
    """All-item scores ``[N, num_items]`` in evaluation mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        parts = [
            model(seq[i : i + batch_size], len_seq[i : i + batch_size])
            for i in range(0, seq.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(parts)


@torch.no_grad()
def candidate_scores(
    model: torch.nn.Module, data: CandidateSet, batch_size: int = 2048
) -> np.ndarray:
    """The raw item scores of each example's 20 candidates, ``[N, 20]`` float32, in list order."""
    was_training = model.training
    model.eval()
    try:
        parts = []
        for i in range(0, len(data), batch_size):
            scores = model(data.seq[i : i + batch_size], data.len_seq[i : i + batch_size])
            parts.append(scores.gather(1, data.candidates[i : i + batch_size]))
    finally:
        model.train(was_training)
    return torch.cat(parts).cpu().numpy()


def evaluate_model(
    model: torch.nn.Module,
    data: CandidateSet,
    popularity: np.ndarray | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 2048,
    outcomes: Outcomes | None = None,
) -> dict[str, float]:
    """HR@1, HR@k, NDCG@k and (given ``popularity``) the popularity bias of the top-1 pick;
    each example's target rank is added to ``outcomes`` when given."""
    scores = candidate_scores(model, data, batch_size)
    metrics = ranking_metrics(scores, data.target_position, ks)
    if outcomes is not None:
        outcomes.add_ranks(data.keys, target_ranks(scores, data.target_position))
    if popularity is not None:
        # argmax takes the first maximum, the same tie rule as the rank computation.
        picks = data.candidates.numpy()[np.arange(len(data)), scores.argmax(axis=1)]
        metrics.update(popularity_bias([int(p) for p in picks], data.histories, popularity))
    return metrics
