"""Traditional sequential recommenders (GRU4Rec, Caser, SASRec) for recbench.

They serve two purposes: as baselines evaluated on exactly the same 20-candidate test examples as
the LLM methods, and (SASRec) as the source of NAPO's auxiliary signals.  The architectures load
the released LLaRA checkpoints unchanged (``checkpoints/``, see its PROVENANCE.md).

Entry points: :func:`execute_baseline` (train or load, evaluate, record; :func:`run_baseline`
takes the CLI's ``RunConfig``), :data:`BASELINES` (the
registry with default settings) and :func:`trained_sasrec` (recbench's own SASRec of a dataset,
trained on first use).
"""

from baselines.auxiliary import default_checkpoint, trained_sasrec
from baselines.evaluation import CandidateSet, candidate_scores, evaluate_model
from baselines.models import Caser, GRU4Rec, SASRec, SequentialRecommender, build_model
from baselines.registry import BASELINES, BaselineSpec, list_baselines
from baselines.runner import (
    BaselineRun,
    execute_baseline,
    run_baseline,
    train_baseline,
)
from baselines.training import TrainConfig, TrainingRows, TrainResult, fit
from baselines.weights import load_released, load_weights, released_names, save_weights

__all__ = [
    "BASELINES",
    "BaselineRun",
    "BaselineSpec",
    "CandidateSet",
    "Caser",
    "GRU4Rec",
    "SASRec",
    "SequentialRecommender",
    "TrainConfig",
    "TrainResult",
    "TrainingRows",
    "build_model",
    "candidate_scores",
    "default_checkpoint",
    "evaluate_model",
    "execute_baseline",
    "fit",
    "list_baselines",
    "load_released",
    "load_weights",
    "released_names",
    "run_baseline",
    "save_weights",
    "train_baseline",
    "trained_sasrec",
]
