"""The loss input (:class:`PreferenceBatch`) and output (:class:`LossOutput`).

Losses never see token ids or logits: the trainer reduces every response to one summed
log-probability (prompt masked, EOS included) plus optional side information.  Keeping the loss
interface at that level is what lets one batch object feed DPO, SimPO, S-DPO, alpha-DPO and the
NAPO family, and lets the tests drive the losses from the spec's fixtures without a model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor

from recbench.errors import UserError

#: Fields holding one value per (example, own negative); sliced together by ``first_negative``.
NEGATIVE_FIELDS = ("rejected_logps", "ref_rejected_logps", "rejected_lengths", "rejected_scores")

#: Fields that hold real numbers (cast to the compute dtype); ids are left alone.
FLOAT_FIELDS = (
    "chosen_logps",
    "rejected_logps",
    "ref_chosen_logps",
    "ref_rejected_logps",
    "chosen_lengths",
    "rejected_lengths",
    "seq_embeddings",
    "rejected_scores",
    "receiver_scores",
    "chosen_scores",
)


@dataclass
class PreferenceBatch:
    """One (global) micro-batch of b examples with n own negatives each.

    Shapes: ``chosen_logps`` [b] and ``rejected_logps`` [b, n] are policy log-probabilities summed
    over response tokens (gradients flow through them).  Optional: ``ref_*`` the same under the
    frozen reference model; ``*_lengths`` response token counts incl. EOS; ``seq_embeddings``
    [b, d] sequential-recommender representation of each user (for neighbour search);
    ``rejected_scores`` [b, n] the recommender's score of each own negative for its owner (NAPO's
    default margin); ``receiver_scores`` [b, b, n] where entry [u, v, j] scores example v's j-th
    negative for user u, already in [-1, 1] (NAPO's paper margin); ``example_ids`` [b] to exclude
    duplicates of an example from its own neighbours; ``chosen_item_ids`` [b] and
    ``rejected_item_ids`` [b, n] only for ``mask_shared_equal_to_positive``; ``chosen_scores`` [b]
    a preference-intensity score of each chosen item (RecDPO/RecPO's s+, with ``rejected_scores``
    as their s-; docs/losses.md).
    """

    chosen_logps: Tensor
    rejected_logps: Tensor
    ref_chosen_logps: Tensor | None = None
    ref_rejected_logps: Tensor | None = None
    chosen_lengths: Tensor | None = None
    rejected_lengths: Tensor | None = None
    seq_embeddings: Tensor | None = None
    rejected_scores: Tensor | None = None
    receiver_scores: Tensor | None = None
    example_ids: Tensor | None = None
    chosen_item_ids: Tensor | None = None
    rejected_item_ids: Tensor | None = None
    chosen_scores: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.chosen_logps.shape[0])

    @property
    def num_negatives(self) -> int:
        return int(self.rejected_logps.shape[-1])

    def present(self) -> frozenset[str]:
        """Names of the fields that are set."""
        return frozenset(
            f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None
        )

    def first_negative(self) -> PreferenceBatch:
        """The batch restricted to each example's first negative (pairwise losses, App. B)."""
        if self.num_negatives == 1:
            return self
        updates: dict[str, Tensor] = {}
        for name in (*NEGATIVE_FIELDS, "rejected_item_ids"):
            value = getattr(self, name)
            if value is not None:
                updates[name] = value[:, :1]
        if self.receiver_scores is not None:
            updates["receiver_scores"] = self.receiver_scores[:, :, :1]
        return dataclasses.replace(self, **updates)

    def to_dtype(self, dtype: torch.dtype) -> PreferenceBatch:
        """Cast the real-valued fields (lengths too) to ``dtype``; autograd follows the cast."""
        updates = {}
        for name in FLOAT_FIELDS:
            value = getattr(self, name)
            if value is not None and value.dtype != dtype:
                updates[name] = value.to(dtype)
        return dataclasses.replace(self, **updates) if updates else self

    def validate(self, required: frozenset[str], loss_key: str) -> None:
        """Raise :class:`UserError` for a missing required field or an inconsistent shape."""
        missing = sorted(required - self.present())
        if missing:
            raise UserError(
                f"loss '{loss_key}' needs PreferenceBatch field(s) {', '.join(missing)}, "
                "which the batch does not provide"
            )
        if self.chosen_logps.dim() != 1:
            raise UserError(
                f"chosen_logps must have shape [b], got {list(self.chosen_logps.shape)}"
            )
        if self.rejected_logps.dim() != 2 or self.rejected_logps.shape[1] < 1:
            raise UserError(
                f"rejected_logps must have shape [b, n] with n >= 1, "
                f"got {list(self.rejected_logps.shape)}"
            )
        b, n = self.batch_size, self.num_negatives
        if b < 1:
            raise UserError("the batch is empty")
        expected = {
            "rejected_logps": (b, n),
            "ref_chosen_logps": (b,),
            "ref_rejected_logps": (b, n),
            "chosen_lengths": (b,),
            "rejected_lengths": (b, n),
            "rejected_scores": (b, n),
            "receiver_scores": (b, b, n),
            "example_ids": (b,),
            "chosen_item_ids": (b,),
            "rejected_item_ids": (b, n),
            "chosen_scores": (b,),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != shape:
                raise UserError(
                    f"PreferenceBatch.{name} must have shape {list(shape)} (b={b}, n={n}), "
                    f"got {list(value.shape)}"
                )
        emb = self.seq_embeddings
        if emb is not None and (emb.dim() != 2 or emb.shape[0] != b):
            raise UserError(f"seq_embeddings must have shape [b={b}, d], got {list(emb.shape)}")


@dataclass
class LossOutput:
    """What a loss returns.

    ``loss`` is the mean of ``per_example`` over the batch (what to back-propagate in a single
    process); ``per_example`` [b] lets a distributed trainer pick its local rows (see
    :mod:`recbench.losses.distributed`); ``metrics`` holds detached diagnostics (0-d tensors or numbers)
    so logging never forces a device sync inside the loss.
    """

    loss: Tensor
    per_example: Tensor
    metrics: dict[str, float | int | Tensor] = field(default_factory=dict)
