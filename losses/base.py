"""Common behaviour of every loss module: input checks, dtype policy, negative slicing.

Subclasses implement :meth:`PreferenceLoss.compute` on a batch that is already validated, cast to
the compute dtype and (for pairwise losses) cut to the first negative, so each loss file contains
only its formula.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.stable import compute_dtype
from torch import Tensor, nn

from recbench.errors import UserError

#: Fields every loss needs.
BASE_FIELDS = frozenset({"chosen_logps", "rejected_logps"})
REFERENCE_FIELDS = frozenset({"ref_chosen_logps", "ref_rejected_logps"})
LENGTH_FIELDS = frozenset({"chosen_lengths", "rejected_lengths"})


class PreferenceLoss(nn.Module):
    """Base class; ``HParams`` is the loss's frozen hyper-parameter dataclass."""

    HParams: ClassVar[type]

    def __init__(self, hparams: Any, key: str | None = None) -> None:
        super().__init__()
        if not isinstance(hparams, self.HParams):
            raise TypeError(f"{type(self).__name__} expects {self.HParams.__name__}")
        self.hparams = hparams
        self.key = key or type(self).__name__

    # -- what the loss needs (class-level so a LossSpec can answer without an instance) --------
    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        """PreferenceBatch fields the loss reads with these hyper-parameters."""
        raise NotImplementedError

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        """True if every own negative is used; False if only ``rejected[:, :1]``."""
        raise NotImplementedError

    @property
    def requires(self) -> frozenset[str]:
        return self.required_fields(self.hparams)

    @property
    def uses_all_negatives(self) -> bool:
        return self.all_negatives(self.hparams)

    @property
    def needs_reference(self) -> bool:
        return bool(self.requires & REFERENCE_FIELDS)

    def should_update_state(self) -> bool:
        """Running statistics move only while training (or when asked to in evaluation)."""
        return self.training or bool(getattr(self.hparams, "update_stats_in_eval", False))

    # -- forward -------------------------------------------------------------------------------
    def forward(self, batch: PreferenceBatch) -> LossOutput:
        """Validate, upcast, slice, compute.  ``per_example`` is float64 for float64 inputs and
        float32 for every other input dtype (bf16/fp16/fp32)."""
        if not isinstance(batch, PreferenceBatch):
            raise UserError(f"loss '{self.key}' must be called on a losses.PreferenceBatch")
        batch.validate(self.requires, self.key)
        if self.requires & LENGTH_FIELDS:
            lengths = torch.cat(
                [batch.chosen_lengths.reshape(-1), batch.rejected_lengths.reshape(-1)]
            )
            if bool((lengths <= 0).any()):
                raise UserError(f"loss '{self.key}': response lengths must be positive")
        work = batch.to_dtype(compute_dtype(batch.chosen_logps))
        if not self.uses_all_negatives:
            work = work.first_negative()
        return self.compute(work)

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"key={self.key!r}, {self.hparams}"


def stateful_buffer(module: nn.Module, name: str, value: float) -> None:
    """Register a persistent float64 scalar buffer (saved in checkpoints).

    float64 because these are long-running averages of small batch statistics; the value is cast
    to the compute dtype when used.
    """
    module.register_buffer(name, torch.tensor(value, dtype=torch.float64), persistent=True)


def as_compute(buffer: Tensor, like: Tensor) -> Tensor:
    """A state buffer on ``like``'s device and dtype."""
    return buffer.to(device=like.device, dtype=like.dtype)
