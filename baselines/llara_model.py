"""LLaRA's model side: item tokens embedded by a projector, and the text-to-hybrid curriculum.

Item tokens get *virtual* ids ``vocab_size + item_id``.  :class:`HybridEmbedding` replaces the
LLM's input embedding module: ordinary ids go through the original table, virtual ids through
``projector(sasrec_item_embedding[item_id])``.  Everything downstream of the embedding (the
packed scorer, ``generate``, the trainer) then handles hybrid prompts as plain token-id lists.
The output side is untouched: the LM head keeps its own (tied) weight and the vocabulary size,
so a virtual id can be an input but never a prediction target.

The SASRec table is a non-persistent buffer (frozen, never checkpointed: it comes from the
SASRec checkpoint); the projector's parameters are trainable and live inside the model, so
:class:`recbench.trainer.Stage` optimises and checkpoints them with the LoRA weights.
"""

from __future__ import annotations

import random

import torch
from torch import nn

#: Fraction of the optimizer steps over which the hybrid-prompt probability rises from 0 to 1.
CURRICULUM_RAMP = 0.5


def make_projector(item_size: int, hidden_size: int) -> nn.Sequential:
    """LLaRA's projector: Linear(item -> hidden), GELU, Linear(hidden -> hidden)."""
    return nn.Sequential(
        nn.Linear(item_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size)
    )


class HybridEmbedding(nn.Module):
    """Input embedding for ids below ``vocab_size`` and projected SASRec rows for the rest."""

    def __init__(self, base: nn.Embedding, item_table: torch.Tensor, projector: nn.Module):
        super().__init__()
        self.base = base
        self.projector = projector
        self.vocab_size = int(base.num_embeddings)
        self.register_buffer("item_table", item_table.detach().clone(), persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        """The token table (tied to the LM head in SmolLM2), for code that reads it."""
        return self.base.weight

    def virtual_id(self, item: int) -> int:
        return self.vocab_size + int(item)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        virtual = input_ids >= self.vocab_size
        out = self.base(input_ids.masked_fill(virtual, 0))
        if not bool(virtual.any()):
            return out
        rows = self.item_table[input_ids[virtual] - self.vocab_size]
        first = next(self.projector.parameters())
        projected = self.projector(rows.to(first.dtype)).to(out.dtype)
        return out.index_put(virtual.nonzero(as_tuple=True), projected)


def attach_hybrid(model: nn.Module, item_table: torch.Tensor, seed: int) -> HybridEmbedding:
    """Install a :class:`HybridEmbedding` (seeded projector) as ``model``'s input embedding.

    The projector's output bias starts at the mean token embedding: a default-initialised
    projector yields vectors far from every token (SmolLM2's embeddings share a large common
    component), which raised SmolLM2's initial loss on hybrid prompts from 2.9 to 4.3 nats per
    token; with the mean as the starting point it is 2.9, as on text-only prompts.

    Call it *after* adding LoRA: peft's ``all-linear`` would otherwise put adapters into the
    projector's linear layers and freeze their weights.
    """
    get_base = getattr(model, "get_base_model", None)
    base_model = get_base() if callable(get_base) else model
    embed = base_model.get_input_embeddings()
    if isinstance(embed, HybridEmbedding):
        raise TypeError("the model already has a hybrid input embedding")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        projector = make_projector(item_table.shape[1], embed.embedding_dim)
    with torch.no_grad():  # start item tokens at the average token, not far outside the vocab
        projector[-1].bias.copy_(embed.weight.detach().float().mean(0))
    hybrid = HybridEmbedding(embed, item_table, projector).to(embed.weight.device)
    base_model.set_input_embeddings(hybrid)
    return hybrid


# ------------------------------------------------------------------------------ curriculum
def hybrid_probability(step: int, total_steps: int, ramp: float = CURRICULUM_RAMP) -> float:
    """Probability that an example of optimizer step ``step`` (0-based) gets a hybrid prompt.

    0 at step 0, rising linearly to 1 at ``ramp * total_steps`` and 1 from there on.
    """
    span = ramp * total_steps
    if span <= 0:
        return 1.0
    return min(1.0, max(0.0, step / span))


def use_hybrid(seed: int, step: int, key: str, probability: float) -> bool:
    """A seeded draw per (run seed, step, example): the same on every process and on resume."""
    if probability >= 1.0:
        return True
    if probability <= 0.0:
        return False
    return random.Random(f"llara-curriculum:{seed}:{step}:{key}").random() < probability


class CurriculumClock(nn.Module):
    """Counts the micro-batches trained so far; checkpointed as a Stage ``extra`` module.

    The step function only receives row indices, so the optimizer step the curriculum needs is
    derived from this counter; keeping it in the checkpoint makes ``--resume`` continue the
    schedule where the killed run stopped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("micro_batches", torch.zeros((), dtype=torch.long))

    def tick(self) -> int:
        """The index of the current micro-batch (then counts it)."""
        current = int(self.micro_batches)
        self.micro_batches.fill_(current + 1)
        return current
