"""Datasets, examples, candidates, negatives and prompts (the start of recbench's data flow)."""

from recbench.data.candidates import NUM_CANDIDATES, build_candidates, sample_negatives
from recbench.data.catalog import builtin_names, known_names, load_dataset
from recbench.data.dataset import Dataset, DatasetSpec, Example, SplitSpec
from recbench.data.rows import SplitRows

__all__ = [
    "NUM_CANDIDATES",
    "Dataset",
    "DatasetSpec",
    "Example",
    "SplitRows",
    "SplitSpec",
    "build_candidates",
    "builtin_names",
    "known_names",
    "load_dataset",
    "sample_negatives",
]
