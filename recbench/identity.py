"""What a run *is*: one digest of everything its numbers depend on, and its run id.

A run id is made here and nowhere else (:func:`run_id`).  It is a digest of the method, its
resolved settings and parameters, the model, the seed, the plugin file that provides the method,
and the *content* of the dataset (:func:`data_digest`: the sha256 of every split file and of the
item names).  Re-importing a dataset under the same name with other rows therefore gives other
run ids, run directories and caches: nothing computed from the old rows is found again.

The same identity names what a run may reuse: its run directory, and (through the SFT key in
:mod:`recbench.pipeline`) the cached SFT stage and reference log-probs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from recbench.data.dataset import SPLITS, Dataset

#: Bumped when what a digest covers changes, so an old digest never matches a new one by chance.
IDENTITY_VERSION = 2


def digest(value: object, length: int = 12) -> str:
    """A short sha256 of ``value`` as canonical JSON (sorted keys); stable across processes."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def data_digest(ds: Dataset) -> str:
    """The content of a dataset: its split files' and item names' sha256 (from its spec).

    The spec's hashes are those the files are checked against when read, so a digest names the
    exact bytes a run trains and is scored on.
    """
    files = {split: ds.split_spec(split).sha256 for split in SPLITS}
    files["item_names"] = ds.spec.item_names_sha256
    return digest(files, 16)


def run_id(dataset: str, method: str, identity: Mapping[str, object]) -> str:
    """The id of the run defined by ``identity``: ``DATASET-METHOD-DIGEST``.

    ``identity`` must hold everything the run's numbers depend on (see :func:`recbench.runner.
    identity_of`); where a run is stored, or whether it is resumed, is not part of it.
    """
    return f"{dataset}-{method}-{digest({'v': IDENTITY_VERSION, **identity})}"


def retrained_id(base: str, weights: str) -> str:
    """The id of a run whose trained weights differ from those recorded under ``base``.

    A stage trained again on other hardware can give other weights (bf16 kernels differ between
    CPUs); its evaluation is then another run, recorded beside the first, never merged with it.
    """
    return f"{base}-w{weights[:8]}"
