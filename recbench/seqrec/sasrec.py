"""The SASRec behind NAPO's signals, ChatRec's suggestions and LLaRA's item tokens.

The core computes NAPO's signals per micro-batch from a frozen SASRec (``recbench.auxiliary``);
this module provides that SASRec.  Which one: by default one trained by recbench on the
dataset's own training split (trained on first use with the registry defaults, seed 0, and kept
under ``$RECBENCH_HOME/aux/DATASET/sasrec-seed0``).  Where the training split is only a sample
(steam), the released checkpoint is the default, as a model trained on 1,000 rows would give
meaningless similarities.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from recbench import locks, paths
from recbench.data import load_dataset
from recbench.data.dataset import Dataset
from recbench.errors import ModelError
from recbench.identity import data_digest
from recbench.seqrec.build import train_baseline
from recbench.seqrec.models import SASRec
from recbench.seqrec.weights import CHECKPOINT_DIR, WEIGHTS_FILE, load_weights, released_name

TRAINED_SEED = 0


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


def trained_model_dir(ds: Dataset) -> Path:
    """Where the recbench-trained auxiliary SASRec of ``ds`` is kept: named by the data's
    content, so that a dataset re-imported with other rows never finds the old model."""
    folder = f"{paths.safe_name(ds.name, 'dataset')}-{data_digest(ds)}"
    return paths.subdir("aux", folder, f"sasrec-seed{TRAINED_SEED}")


def trained_sasrec(dataset: str | Dataset, progress: bool = True) -> tuple[SASRec, dict[str, Any]]:
    """recbench's own SASRec for ``dataset``: loaded if present, else trained now and kept.

    Trained on the dataset's training split with the registry defaults and seed 0 (model
    selection on validation), stored under ``$RECBENCH_HOME/aux/DATASET-DATA/sasrec-seed0``.  A lock
    makes concurrent first uses train once.  Returns the model (evaluation mode) and its
    settings, whose ``sha256`` identifies the weights.
    """
    ds = load_dataset(dataset) if isinstance(dataset, str) else dataset
    directory = trained_model_dir(ds)
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
