"""Training or loading a sequential recommender: the core's own, for the auxiliary SASRec of
NAPO, ChatRec and LLaRA, and for the sequential baselines.

A trained model is saved with its settings (``model.json``: model and training settings,
per-epoch history, the dataset files' sha256) beside its weights; a loaded one is checked to be
the right kind of model over the right items.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from recbench import paths
from recbench.data import load_dataset
from recbench.data.dataset import Dataset
from recbench.errors import ModelError
from recbench.identity import data_digest
from recbench.seqrec.evaluation import CandidateSet
from recbench.seqrec.models import SequentialRecommender
from recbench.seqrec.registry import BASELINES, BaselineSpec
from recbench.seqrec.training import TrainingRows, fit
from recbench.seqrec.weights import (
    RELEASED_CAVEATS,
    file_sha256,
    load_released,
    load_weights,
    released_name,
    save_weights,
)


def default_out_dir(name: str, ds: Dataset, seed: int) -> Path:
    """Where a trained baseline goes when the caller names no directory: named by the data's
    content, so that a re-imported dataset never finds the model trained on its old rows."""
    paths.safe_name(name, "baseline")
    paths.safe_name(ds.name, "dataset")
    return paths.subdir("baselines", f"{ds.name}-{data_digest(ds)}", f"{name}-seed{seed}")


def _dataset_fingerprint(ds: Dataset, splits: tuple[str, ...]) -> dict[str, str]:
    return {split: ds.split_spec(split).sha256 for split in splits}


def train_baseline(
    name: str,
    dataset: str | Dataset,
    *,
    seed: int = 0,
    out_dir: Path | str | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    train_rows: int | None = None,
    progress: bool = True,
) -> tuple[SequentialRecommender, dict[str, Any]]:
    """Train baseline ``name`` on ``dataset``'s training split and save it to ``out_dir``.

    Writes ``model.safetensors`` and ``model.json`` (model and training settings, per-epoch
    history, the dataset files' sha256) and returns the trained model (best validation state,
    evaluation mode) with those settings.
    """
    spec: BaselineSpec = BASELINES.get(name)
    ds = load_dataset(dataset) if isinstance(dataset, str) else dataset
    config = spec.train_config(**{"progress": progress, **dict(train_overrides or {})})
    if ds.split_spec("train").layout == "sample":
        warnings.warn(
            f"dataset '{ds.name}': the training split is only a sample "
            f"({len(ds.rows('train'))} rows); a model trained on it is not comparable with the "
            "published baselines (use checkpoint='released' where one exists)",
            stacklevel=2,
        )
    rows_np = ds.rows("train")
    end = len(rows_np) if train_rows is None else max(1, train_rows)
    rows = TrainingRows.from_arrays(
        rows_np.seq[:end], rows_np.len_seq[:end], rows_np.next[:end], config.min_len_seq
    )
    val = CandidateSet.from_examples(ds.examples("val"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # parameter initialisation
        model = spec.build(ds.num_items, **dict(model_overrides or {}))
    outcome = fit(model, rows, val, config, seed=seed)
    out = Path(out_dir) if out_dir is not None else default_out_dir(name, ds, seed)
    settings = {
        "baseline": name,
        "dataset": ds.name,
        "dataset_files": _dataset_fingerprint(ds, ("train", "val")),
        "seed": seed,
        "train_rows": len(rows),
        "train": config.to_dict(),
        "result": outcome.to_dict(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    weights = save_weights(model, out, settings)
    settings = {**settings, "kind": model.kind, "config": model.config()}
    settings["sha256"] = file_sha256(weights)
    settings["path"] = str(weights)
    return model, settings


def resolve_checkpoint(
    spec: BaselineSpec, ds: Dataset, checkpoint: str | Path
) -> tuple[SequentialRecommender, dict[str, Any], str]:
    """Load ``"released"`` or a path; check it is the right model for this dataset.

    Returns the model, its settings and a short identity for result records.
    """
    if str(checkpoint) == "released":
        model, settings = load_released(spec.kind, ds.name)
        identity = f"released:{released_name(spec.kind, ds.name)}"
        caveat = RELEASED_CAVEATS.get(released_name(spec.kind, ds.name))
        if caveat:
            warnings.warn(f"released {identity[9:]}: {caveat}", stacklevel=2)
    else:
        path = Path(os.path.expanduser(str(checkpoint)))
        model, settings = load_weights(path)
        identity = f"file:{settings['sha256'][:12]}"
    if model.kind != spec.kind:
        raise ModelError(f"checkpoint {checkpoint} holds a {model.kind} model, not {spec.kind}")
    if model.num_items != ds.num_items:
        raise ModelError(
            f"checkpoint {checkpoint} scores {model.num_items} items but dataset '{ds.name}' "
            f"has {ds.num_items}"
        )
    return model, settings, identity
