"""Running the batch-coupled losses under data parallelism.

NAPO (and every loss with sharing or batch statistics) couples the examples of a micro-batch:
neighbours, K, the margin statistic and the alpha-DPO z-scores all depend on the whole batch.
The suite therefore defines these losses on the **global micro-batch** (all examples on all
processes) and the trainer builds it with :func:`gather_batch`, which concatenates every rank's
rows in rank order *keeping the autograd graph* (``torch.distributed.nn.functional.all_gather``).
Every rank then computes the identical loss, margin and state update, so gamma and the running
buffers never diverge across processes.

The gradient rule.  The backward of the autograd all_gather *sums* the gradients that all ranks
send to each rank's slice.  Hence, with W processes and global batch mean L:

* if each rank back-propagates ``out.loss`` (or the mean of its own rows,
  ``out.per_example[local_rows(b_local)].mean()`` - both give the same result), its local inputs
  receive ``W * dL/dx_local``; DDP's averaging of parameter gradients over the W ranks divides by
  W again, so the update equals that of one process running the whole global batch;
* without gradient averaging (or to compare input gradients directly) back-propagate
  ``out.per_example[local_rows(b_local)].sum() / b_global`` - the local share of L - and each
  local input receives exactly ``dL/dx_local``.

All ranks must call the loss (and backward) the same number of times, as for any collective, and
every rank must contribute tensors of the same shape.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist
from recbench.losses.batch import PreferenceBatch
from torch import Tensor


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, differentiably.

    Identity when ``torch.distributed`` is not initialised or the world has one process, so the
    same training code runs unchanged on one device.
    """
    if _world_size() <= 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def gather_batch(batch: PreferenceBatch) -> PreferenceBatch:
    """The global micro-batch: every field gathered row-wise with :func:`gather_with_grad`.

    ``receiver_scores`` is gathered along its first (receiver) axis too, so each rank must supply
    it as [b_local, b_global, n]: its own users scored against every negative of the global batch.
    """
    if _world_size() <= 1:
        return batch
    updates = {}
    for f in dataclasses.fields(batch):
        value = getattr(batch, f.name)
        if value is not None:
            updates[f.name] = gather_with_grad(value)
    return dataclasses.replace(batch, **updates)


def local_rows(local_batch_size: int) -> slice:
    """Rows of the global micro-batch that belong to this rank (rank-major concatenation)."""
    rank = dist.get_rank() if _world_size() > 1 else 0
    return slice(rank * local_batch_size, (rank + 1) * local_batch_size)
