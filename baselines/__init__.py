"""recbench's own baselines, a plugin of the core: the rules, the sequential recommenders,
MoRec, TALLRec, ChatRec and LLaRA as methods (``recbench run --baseline NAME``).

The sequential models themselves (GRU4Rec, Caser, SASRec: architectures, training, weights) are
the core's (:mod:`recbench.seqrec`), since NAPO needs a SASRec whatever plugins are installed;
they are re-exported here for scripts, with :func:`execute_baseline` (train or load and
evaluate, recording nothing).
"""

from recbench.baselines.runner import BaselineRun, execute_baseline, train_baseline

from recbench.seqrec.evaluation import CandidateSet, candidate_scores, evaluate_model
from recbench.seqrec.models import Caser, GRU4Rec, SASRec, SequentialRecommender, build_model
from recbench.seqrec.registry import BASELINES, BaselineSpec, list_baselines
from recbench.seqrec.sasrec import default_checkpoint, trained_sasrec
from recbench.seqrec.training import TrainConfig, TrainingRows, TrainResult, fit
from recbench.seqrec.weights import load_released, load_weights, released_names, save_weights

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
    "save_weights",
    "train_baseline",
    "trained_sasrec",
]
