"""One training loop for SASRec, GRU4Rec and Caser.

Objective: cross-entropy of the next item over *all* items (a softmax over ``num_items`` scores),
optimised with Adam.  Model selection uses the validation split only: after every epoch the model
ranks each validation example's 20 shared candidates, the state with the best validation HR@1 is
kept, and training stops once it has not improved for ``patience`` epochs (or the epoch / time
budget is spent).  The test split is never read here.

Determinism: parameter initialisation, dropout and the batch order all derive from ``seed``.  The
global torch RNG is used inside :func:`torch.random.fork_rng`, so a caller's random state is left
untouched, and the batch order comes from a private generator.  For a fixed seed, thread count and
torch build, two runs produce identical weights.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from recbench.errors import UserError
from recbench.seqrec.evaluation import CandidateSet, evaluate_model
from recbench.seqrec.models import SequentialRecommender


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (model sizes are the model's own constructor arguments)."""

    epochs: int = 100  # upper bound; early stopping usually ends training sooner
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 5  # epochs without a validation HR@1 improvement before stopping
    min_len_seq: int = 1  # training rows kept: len_seq >= this (1 = every row of the split)
    max_seconds: float | None = 540.0  # wall-clock budget; checked after every epoch
    max_steps_per_epoch: int | None = None  # cap on batches per epoch (smoke runs, tests)
    eval_batch_size: int = 2048
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise UserError("epochs, batch_size and patience must be at least 1")
        if not self.lr > 0 or self.weight_decay < 0:
            raise UserError("lr must be positive and weight_decay non-negative")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise UserError("max_steps_per_epoch must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """What :func:`fit` did: per-epoch history, the selected epoch and its validation HR@1."""

    best_epoch: int
    best_val_hr1: float
    epochs_run: int
    seconds: float
    stopped_by: str  # "patience", "epochs" or "time"
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingRows:
    """Training inputs as tensors: ``seq`` [N, T], ``len_seq`` [N], ``next`` [N]."""

    seq: torch.Tensor
    len_seq: torch.Tensor
    next: torch.Tensor

    @classmethod
    def from_arrays(
        cls, seq: np.ndarray, len_seq: np.ndarray, nxt: np.ndarray, min_len_seq: int = 1
    ) -> TrainingRows:
        keep = np.asarray(len_seq) >= min_len_seq
        if not keep.any():
            raise ValueError(f"no training rows with len_seq >= {min_len_seq}")
        return cls(
            seq=torch.as_tensor(np.asarray(seq)[keep], dtype=torch.long),
            len_seq=torch.as_tensor(np.asarray(len_seq)[keep], dtype=torch.long),
            next=torch.as_tensor(np.asarray(nxt)[keep], dtype=torch.long),
        )

    def __len__(self) -> int:
        return int(self.next.shape[0])


def _train_epoch(
    model: SequentialRecommender,
    rows: TrainingRows,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    order_generator: torch.Generator,
) -> float:
    model.train()
    order = torch.randperm(len(rows), generator=order_generator)
    total, count = 0.0, 0
    for step, start in enumerate(range(0, len(rows), config.batch_size)):
        if config.max_steps_per_epoch is not None and step >= config.max_steps_per_epoch:
            break
        index = order[start : start + config.batch_size]
        logits = model(rows.seq[index], rows.len_seq[index])
        loss = F.cross_entropy(logits, rows.next[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(index)
        count += len(index)
    return total / max(count, 1)


def fit(
    model: SequentialRecommender,
    rows: TrainingRows,
    val: CandidateSet,
    config: TrainConfig,
    seed: int = 0,
) -> TrainResult:
    """Train ``model`` in place and leave it holding the best-validation state (eval mode).

    Returns the history: mean training loss, validation HR@1, and elapsed wall-clock and CPU
    seconds per epoch.
    """
    started = time.perf_counter()
    cpu_started = time.process_time()
    # Late in training some Adam moments and gradients of rarely seen items become subnormal
    # floats, which the CPU processes ~100x slower (epochs went from 4 s to 100 s on lastfm).
    # Flushing them to zero changes nothing measurable and keeps epochs flat.
    torch.set_flush_denormal(True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        order_generator = torch.Generator().manual_seed(seed + 1)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        best_state = copy.deepcopy(model.state_dict())
        best_hr1, best_epoch, stale = -math.inf, 0, 0
        history: list[dict[str, float]] = []
        stopped_by = "epochs"
        bar = tqdm(
            range(1, config.epochs + 1),
            desc=f"train {model.kind}",
            unit="epoch",
            disable=not config.progress,
        )
        for epoch in bar:
            loss = _train_epoch(model, rows, optimizer, config, order_generator)
            hr1 = evaluate_model(model, val, batch_size=config.eval_batch_size)["hr@1"]
            elapsed = time.perf_counter() - started
            history.append(
                {
                    "epoch": epoch,
                    "loss": loss,
                    "val_hr@1": hr1,
                    "seconds": elapsed,
                    "cpu_seconds": time.process_time() - cpu_started,
                }
            )
            if hr1 > best_hr1:
                best_hr1, best_epoch, stale = hr1, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            bar.set_postfix(loss=f"{loss:.3f}", val_hr1=f"{hr1:.4f}", best=f"{best_hr1:.4f}")
            if stale >= config.patience:
                stopped_by = "patience"
                break
            if config.max_seconds is not None and elapsed >= config.max_seconds:
                stopped_by = "time"
                break
        bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        best_epoch=best_epoch,
        best_val_hr1=best_hr1,
        epochs_run=len(history),
        seconds=time.perf_counter() - started,
        stopped_by=stopped_by,
        history=history,
    )
