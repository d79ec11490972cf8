"""NAPO's auxiliary signals from a SASRec model: sequence representations and item scores.

NAPO chooses which negatives to share by the similarity of SASRec's sequence representations
and sets its margin from SASRec's scores of the negatives.  RecDPO and RecPO read scores too, but
from the data's ratings (:func:`rating_fields`), never from SASRec.  The SASRec is the core's own
(:mod:`recbench.seqrec`): released, recbench-trained or a checkpoint file, whatever plugins are
installed.  Both are tiny computations (one
64-wide transformer block over 10 positions), so they are computed per micro-batch from the
frozen SASRec rather than stored: nothing can go stale, and any checkpoint works unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from recbench.batches import PromptItem
from recbench.config import RunConfig
from recbench.data import movielens
from recbench.data.dataset import Dataset
from recbench.errors import UserError
from recbench.seqrec import sasrec, weights

AUX_FIELDS = frozenset({"seq_embeddings", "rejected_scores", "receiver_scores"})
#: RecDPO's and RecPO's s+ and s- (docs/losses.md): a loss that reads ``chosen_scores``
#: gets both from the dataset's ratings (:meth:`Dataset.item_scores`).
RATING_FIELDS = frozenset({"chosen_scores", "rejected_scores"})


def reads_ratings(loss_module) -> bool:
    """Whether the loss's scores come from ratings: only a loss that reads s+ pairs s- with it
    (NAPO's ``rejected_scores`` alone are SASRec's)."""
    return "chosen_scores" in loss_module.requires


def sasrec_fields(loss_module) -> frozenset[str]:
    """The fields a loss reads from the run's SASRec (none for RecDPO/RecPO)."""
    needs = loss_module.requires & AUX_FIELDS
    return needs - RATING_FIELDS if reads_ratings(loss_module) else needs


def check_item_scores(ds: Dataset, loss_module, key: str) -> None:
    """Fail before any LLM is loaded when a loss reads item scores the dataset lacks: one line,
    telling the user to rebuild where an earlier movielens build only lacks the ratings file."""
    if not reads_ratings(loss_module) or ds.has_item_scores:
        return
    what = f"loss {key} reads chosen_scores (per-item preference scores, see docs/losses.md)"
    if movielens.is_build(ds.spec):
        raise UserError(
            f"{what}, which this build of {ds.name} predates (it has no ratings file); "
            f"rebuild it with `recbench data build {movielens.NAME}` (split files unchanged)"
        )
    raise UserError(
        f"{what}, which dataset {ds.name} does not supply: only {movielens.NAME} "
        "(built with `recbench data build movielens`) has ratings"
    )


def rating_fields(ds: Dataset, items: Sequence[PromptItem], n_used: int) -> dict[str, torch.Tensor]:
    """``chosen_scores`` [b] and ``rejected_scores`` [b, n_used] of the items' first ``n_used``
    negatives, from the dataset's ratings (:mod:`recbench.data.item_scores`)."""
    pairs = [ds.item_scores(it.example, it.negatives[:n_used]) for it in items]
    return {
        "chosen_scores": torch.tensor([chosen for chosen, _ in pairs], dtype=torch.float32),
        "rejected_scores": torch.tensor([list(neg) for _, neg in pairs], dtype=torch.float32),
    }


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


AUX_CHOICES = ("default", "released", "trained")


def choice_for(ds: Dataset, config: RunConfig) -> str:
    """Which SASRec a run uses: "released", "trained" or a checkpoint path.

    ``default`` is the source's choice: the released SASRec where the training split is only a
    sample (steam), recbench's own trained SASRec elsewhere.
    """
    choice = config.settings.aux_checkpoint or "default"
    if choice == "default":
        return sasrec.default_checkpoint(ds)
    return choice


def _checked(model, choice: str, ds: Dataset) -> None:
    """A SASRec over this dataset's items, or a one-line error (never a shape crash later)."""
    if getattr(model, "kind", "sasrec") != "sasrec" or not hasattr(model, "represent"):
        kind = getattr(model, "kind", type(model).__name__)
        raise UserError(
            f"--aux-checkpoint {choice} holds a {kind} model; NAPO, ChatRec and LLaRA need a SASRec"
        )
    if model.num_items != ds.num_items:
        raise UserError(
            f"--aux-checkpoint {choice}: auxiliary SASRec has {model.num_items} items but "
            f"{ds.name} has {ds.num_items}"
        )


def _load(choice: str, ds: Dataset):
    """Load a released or file SASRec (both cheap: a few MB, no training)."""
    if choice == "released":
        return weights.load_released("sasrec", ds.name)
    path = Path(choice).expanduser()
    if not path.exists():
        raise UserError(
            f"--aux-checkpoint {choice}: no such file or directory (use "
            f"{', '.join(AUX_CHOICES)} or a directory holding {weights.WEIGHTS_FILE})"
        )
    try:
        return weights.load_weights(path)
    except UserError:
        raise
    except (ValueError, KeyError) as exc:  # a foreign settings file or tensor layout
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(
            f"--aux-checkpoint {choice}: not a readable SASRec checkpoint "
            f"({type(exc).__name__}: {first})"
        ) from None


def check_sasrec(ds: Dataset, config: RunConfig) -> None:
    """Fail before any LLM is loaded when the run's SASRec cannot be had.

    Released and file checkpoints are loaded and checked here (milliseconds); "trained" is
    trained on first use by :func:`load_sasrec` and needs nothing from the user.
    """
    choice = choice_for(ds, config)
    if choice != "trained":
        model, _ = _load(choice, ds)
        _checked(model, choice, ds)


def check_for_run(ds: Dataset, loss_module, config: RunConfig) -> None:
    """:func:`check_sasrec` for a loss that needs SASRec signals; nothing for the others."""
    if sasrec_fields(loss_module):
        check_sasrec(ds, config)


def load_sasrec(ds: Dataset, config: RunConfig) -> tuple[torch.nn.Module, str]:
    """The frozen SASRec of a run (NAPO's signals, ChatRec's suggestions, LLaRA's item tokens)
    in evaluation mode, and its identity ``choice:sha256-prefix`` for run keys and records."""
    choice = choice_for(ds, config)
    if choice == "trained":
        model, info = sasrec.trained_sasrec(ds)
    else:
        model, info = _load(choice, ds)
    _checked(model, choice, ds)
    return model.eval(), f"{choice}:{info.get('sha256', '')[:12]}"


def for_run(ds: Dataset, loss_module, config: RunConfig) -> AuxiliarySignals:
    """NAPO's signals: the run's SASRec read in the state the loss asks for."""
    model, description = load_sasrec(ds, config)
    state = getattr(loss_module.hparams, "sasrec_state", "last")
    return AuxiliarySignals(model=model, state=state, description=description)
