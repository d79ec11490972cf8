"""NAPO's auxiliary SASRec signals, computed once per (dataset, split, checkpoint) and cached.

NAPO (LOSSES.md section 5) needs, for every training example u:

* the SASRec sequence representation SR-EMB(s_u) (``[d]``), whose inner products choose the
  in-batch neighbours whose negatives are shared;
* the raw SASRec score of each candidate item (``s_fc`` applied to SR-EMB), from which the
  official dynamic margin is computed (the example's own negatives are a subset of its
  20 candidates, so scores of all 20 cover every draw of negatives);
* for the paper-style margin, the cosine between SR-EMB(s_u) and the item's row of the output
  layer, also for items owned by *other* examples ("receiver pairing"), which is why the output
  layer itself (``item_weight``, ``item_bias``) is kept alongside.

These values depend only on the SASRec weights and the data, never on the LLM being trained, so
they are computed once and stored as safetensors under ``$RECBENCH_HOME/aux/DATASET/``.  The file
name carries the split, the representation position and the sha256 of the weights, and its
metadata the sha256 of the split file, so a retrained model or edited data can never be served a
stale cache.

Which SASRec: by default one trained by recbench on the dataset's own training split (trained on
first use with the registry defaults, seed 0, and kept under ``$RECBENCH_HOME/aux/DATASET/``).
Where the training split is only a sample (steam), the released checkpoint is the default, as a
model trained on 1,000 rows would give meaningless similarities.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.nn import functional as F

from baselines.evaluation import CandidateSet
from baselines.models import SASRec
from baselines.registry import BASELINES
from baselines.runner import resolve_checkpoint, train_baseline
from baselines.weights import CHECKPOINT_DIR, WEIGHTS_FILE, load_weights, released_name
from recbench import locks, paths
from recbench.data import load_dataset
from recbench.data.dataset import Dataset
from recbench.errors import ModelError, UserError

FORMAT_VERSION = "1"
STATES = ("last", "padded_last")
TRAINED_SEED = 0
_BATCH = 4096


@dataclass(frozen=True)
class AuxiliarySignals:
    """SASRec signals for every example of one split, indexed by ``Example.index``."""

    dataset: str
    split: str
    checkpoint: str  # identity of the SASRec weights, e.g. "trained:1a2b3c4d5e6f"
    state: str  # "last" or "padded_last"
    representation: torch.Tensor  # [N, d] SR-EMB
    candidates: torch.Tensor  # [N, 20] the candidate ids, in list order
    candidate_scores: torch.Tensor  # [N, 20] raw SASRec scores of the candidates
    candidate_cosine: torch.Tensor  # [N, 20] cos(SR-EMB, output-layer row of the candidate)
    item_weight: torch.Tensor  # [num_items, d] output layer (s_fc) rows
    item_bias: torch.Tensor  # [num_items]
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.representation.shape[0])

    def scores(self, examples: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Raw score of ``items[i, ...]`` under example ``examples[i]`` (shape of ``items``)."""
        rep = self.representation[examples]
        flat = items.reshape(items.shape[0], -1)
        out = torch.einsum("bd,bkd->bk", rep, self.item_weight[flat]) + self.item_bias[flat]
        return out.reshape(items.shape)

    def cosine(self, examples: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Cosine of each example's SR-EMB with its ``items``' output rows (shape of ``items``)."""
        rep = F.normalize(self.representation[examples], dim=-1)
        flat = items.reshape(items.shape[0], -1)
        weights = F.normalize(self.item_weight[flat], dim=-1)
        return torch.einsum("bd,bkd->bk", rep, weights).reshape(items.shape)

    def receiver_scores(
        self, examples: torch.Tensor, items: torch.Tensor, kind: str = "cosine"
    ) -> torch.Tensor:
        """``[b, b, n]``: entry ``[u, v, j]`` scores example v's j-th item under u's sequence.

        ``items`` is ``[b, n]`` (e.g. each example's own negatives); ``kind`` is ``"cosine"``
        (the paper margin's normalised score) or ``"raw"``.
        """
        rep = self.representation[examples]
        weights = self.item_weight[items]  # [b, n, d]
        if kind == "cosine":
            return torch.einsum(
                "ud,vnd->uvn", F.normalize(rep, dim=-1), F.normalize(weights, dim=-1)
            )
        if kind == "raw":
            return torch.einsum("ud,vnd->uvn", rep, weights) + self.item_bias[items][None]
        raise ValueError(f"unknown score kind '{kind}' (use 'cosine' or 'raw')")

    def similarity(self, examples: torch.Tensor) -> torch.Tensor:
        """``[b, b]`` inner products of the examples' representations (NAPO's Eq. 14)."""
        rep = self.representation[examples]
        return rep @ rep.T


def default_checkpoint(ds: Dataset) -> str:
    """``"released"`` where the training split is only a sample and a release exists."""
    released = CHECKPOINT_DIR / f"{released_name('sasrec', ds.name)}.safetensors"
    if ds.split_spec("train").layout == "sample" and released.is_file():
        return "released"
    return "trained"


def _load_cached(directory: Path) -> tuple[SASRec | None, dict[str, Any]]:
    """The kept trained SASRec, or None when absent or damaged (then it is trained again)."""
    if not (directory / WEIGHTS_FILE).is_file():
        return None, {}
    try:
        return load_weights(directory)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file is retrained, not fatal
        warnings.warn(
            f"retraining the damaged auxiliary SASRec in {directory} ({exc})", stacklevel=3
        )
        return None, {}


def trained_model_dir(dataset: str) -> Path:
    """Where the recbench-trained auxiliary SASRec of ``dataset`` is kept."""
    return paths.subdir("aux", paths.safe_name(dataset, "dataset"), f"sasrec-seed{TRAINED_SEED}")


def trained_sasrec(dataset: str | Dataset, progress: bool = True) -> tuple[SASRec, dict[str, Any]]:
    """recbench's own SASRec for ``dataset``: loaded if present, else trained now and kept.

    Trained on the dataset's training split with the registry defaults and seed 0 (model
    selection on validation), stored under ``$RECBENCH_HOME/aux/DATASET/sasrec-seed0``.  A lock
    makes concurrent first uses train once.  Returns the model (evaluation mode) and its
    settings, whose ``sha256`` identifies the weights.
    """
    ds = load_dataset(dataset) if isinstance(dataset, str) else dataset
    directory = trained_model_dir(ds.name)
    with locks.exclusive(directory, f"the auxiliary SASRec of {ds.name}"):
        model, settings = _load_cached(directory)
        if model is None:
            model, settings = train_baseline(
                "sasrec", ds, seed=TRAINED_SEED, out_dir=directory, progress=progress
            )
    if not isinstance(model, SASRec) or model.num_items != ds.num_items:
        raise ModelError(f"{directory} does not hold a SASRec for '{ds.name}'; delete it")
    model.eval()
    return model, settings


def _sasrec_for(ds: Dataset, checkpoint: str | Path, progress: bool) -> tuple[SASRec, str]:
    """The SASRec named by ``checkpoint`` and its identity (trained on first use if needed)."""
    if str(checkpoint) == "trained":
        model, settings = trained_sasrec(ds, progress=progress)
        return model, f"trained:{settings['sha256'][:16]}"
    model, settings, _ = resolve_checkpoint(BASELINES.get("sasrec"), ds, checkpoint)
    origin = "released" if str(checkpoint) == "released" else "file"
    assert isinstance(model, SASRec)  # resolve_checkpoint checked the kind
    return model, f"{origin}:{settings['sha256'][:16]}"


@torch.no_grad()
def compute_auxiliary(
    model: SASRec, data: CandidateSet, state: str = "last"
) -> dict[str, torch.Tensor]:
    """Representations, candidate scores and cosines for every example of ``data``."""
    model.eval()
    weight = model.s_fc.weight.detach().clone()
    bias = model.s_fc.bias.detach().clone()
    reps: list[torch.Tensor] = []
    scores: list[torch.Tensor] = []
    cosine: list[torch.Tensor] = []
    for i in range(0, len(data), _BATCH):  # batches keep the [n, 20, d] gather small
        rep = model.represent(data.seq[i : i + _BATCH], data.len_seq[i : i + _BATCH], state=state)
        cand = data.candidates[i : i + _BATCH]
        cand_w = weight[cand]  # [n, 20, d]
        reps.append(rep)
        scores.append(torch.einsum("nd,nkd->nk", rep, cand_w) + bias[cand])
        cosine.append(
            torch.einsum("nd,nkd->nk", F.normalize(rep, dim=-1), F.normalize(cand_w, dim=-1))
        )
    return {
        "representation": torch.cat(reps).contiguous(),
        "candidates": data.candidates.clone(),
        "candidate_scores": torch.cat(scores).contiguous(),
        "candidate_cosine": torch.cat(cosine).contiguous(),
        "item_weight": weight.contiguous(),
        "item_bias": bias.contiguous(),
    }


def _read_cache(path: Path, expected: dict[str, str]) -> dict[str, torch.Tensor] | None:
    """The cached tensors if the file exists and its metadata matches, else ``None``."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if any(meta.get(key) != value for key, value in expected.items()):
                return None
            return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError):  # a truncated or foreign file is rebuilt, not trusted
        return None


def load_auxiliary(
    dataset: str,
    split: str = "train",
    *,
    checkpoint: str | Path | None = None,
    state: str = "last",
    rebuild: bool = False,
    progress: bool = True,
) -> AuxiliarySignals:
    """NAPO's SASRec signals for every example of ``dataset``'s ``split`` (cached).

    ``checkpoint``: ``None`` (the dataset's default, see :func:`default_checkpoint`),
    ``"trained"`` (recbench's own SASRec, trained on the training split on first use),
    ``"released"`` (the published ``sasrec_DATASET``) or a path to saved SASRec weights.
    ``state``: ``"last"`` (position len_seq - 1) or ``"padded_last"`` (the official artefact).
    Row ``i`` of every tensor belongs to ``ds.examples(split)[i]``.
    """
    if state not in STATES:
        raise UserError(f"unknown SASRec state '{state}' (use one of: {', '.join(STATES)})")
    ds = load_dataset(dataset)
    split_sha = ds.split_spec(split).sha256  # also rejects unknown splits
    chosen = default_checkpoint(ds) if checkpoint is None else checkpoint
    cache_dir = paths.subdir("aux", paths.safe_name(ds.name, "dataset"))
    with locks.exclusive(cache_dir, f"the SASRec signals of {ds.name}"):
        model, identity = _sasrec_for(ds, chosen, progress)
        origin, digest = identity.split(":")
        path = cache_dir / f"{split}-{state}-{origin}-{digest}.safetensors"
        expected = {
            "format": FORMAT_VERSION,
            "dataset": ds.name,
            "split": split,
            "split_sha256": split_sha,
            "state": state,
            "checkpoint": identity,
        }
        tensors = None if rebuild else _read_cache(path, expected)
        if tensors is None:
            examples = ds.examples(split)
            tensors = compute_auxiliary(model, CandidateSet.from_examples(examples), state)
            meta = {**expected, "examples": str(len(examples)), "created": time.ctime()}
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            save_file(tensors, str(tmp), metadata=meta)
            tmp.replace(path)
    return AuxiliarySignals(
        dataset=ds.name, split=split, checkpoint=identity, state=state, path=path, **tensors
    )
