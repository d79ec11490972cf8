"""NAPO's auxiliary signals from a SASRec model: sequence representations and item scores.

NAPO chooses which negatives to share by the similarity of SASRec's sequence representations
and sets its margin from SASRec's scores of the negatives.  Both are tiny computations (one
64-wide transformer block over 10 positions), so they are computed per micro-batch from the
frozen SASRec rather than stored: nothing can go stale, and any checkpoint works unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recbench.batches import PromptItem
from recbench.config import RunConfig
from recbench.data.dataset import Dataset
from recbench.errors import UserError

AUX_FIELDS = frozenset({"seq_embeddings", "rejected_scores", "receiver_scores"})


@dataclass
class AuxiliarySignals:
    """A frozen SASRec and how to read it (``state``: "last" or the official "padded_last")."""

    model: torch.nn.Module
    state: str
    description: str

    @torch.no_grad()
    def fields(self, items: Sequence[PromptItem], needs: frozenset[str]) -> dict[str, torch.Tensor]:
        seq = torch.tensor([it.example.seq for it in items], dtype=torch.long)
        len_seq = torch.tensor([it.example.len_seq for it in items], dtype=torch.long)
        negatives = torch.tensor([it.negatives for it in items], dtype=torch.long)
        rep = self.model.represent(seq, len_seq, state=self.state).float()
        out: dict[str, torch.Tensor] = {}
        if "seq_embeddings" in needs:
            out["seq_embeddings"] = rep
        if "rejected_scores" in needs:
            scores = self.model.s_fc(rep)
            out["rejected_scores"] = scores.gather(1, negatives)
        if "receiver_scores" in needs:
            rows = F.normalize(self.model.s_fc.weight[negatives].float(), dim=-1)  # [b, n, d]
            users = F.normalize(rep, dim=-1)  # [b, d]
            out["receiver_scores"] = torch.einsum("ud,vnd->uvn", users, rows).clamp(-1.0, 1.0)
        return out


def for_run(ds: Dataset, loss_module, config: RunConfig) -> AuxiliarySignals:
    """The SASRec a run uses: ``config.aux_checkpoint`` or the dataset's default."""
    from baselines.weights import load_released, load_weights

    choice = config.resolved().get("aux_checkpoint") or "default"
    state = getattr(loss_module.hparams, "sasrec_state", "last")
    if choice == "default":
        choice = "released" if ds.name == "steam" else "trained"
    if choice == "released":
        model, info = load_released("sasrec", ds.name)
    elif choice == "trained":
        from baselines.auxiliary import trained_sasrec

        model, info = trained_sasrec(ds.name)
    else:
        model, info = load_weights(choice)
    if getattr(model, "kind", "sasrec") != "sasrec" or not hasattr(model, "represent"):
        raise UserError(f"auxiliary checkpoint {choice} is not a SASRec model")
    if model.num_items != ds.num_items:
        raise UserError(
            f"auxiliary SASRec has {model.num_items} items but {ds.name} has {ds.num_items}"
        )
    model.eval()
    return AuxiliarySignals(
        model=model, state=state, description=f"{choice}:{info.get('sha256', '')[:12]}"
    )
