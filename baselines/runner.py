"""The sequential recommenders as methods: train or load, then score the candidates.

A sequential baseline either loads weights (``checkpoint="released"`` for the LLaRA / iLoRA
releases, or a path to a recbench-trained directory / ``.safetensors`` file) or trains the model
on the dataset's training split (model selection on the validation split) into its run
directory, then scores the shared 20 candidates of the examples the runner hands it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from recbench.batches import evaluation_examples
from recbench.data import load_dataset
from recbench.data.dataset import Dataset, Example
from recbench.errors import UserError
from recbench.evaluation import scores_report
from recbench.methods import Method, Scores
from recbench.outcomes import Outcomes
from recbench.seqrec.build import default_out_dir, resolve_checkpoint, train_baseline
from recbench.seqrec.evaluation import CandidateSet, candidate_scores
from recbench.seqrec.models import SequentialRecommender
from recbench.seqrec.registry import BASELINES
from recbench.seqrec.weights import WEIGHTS_FILE, file_sha256

__all__ = ["default_out_dir", "resolve_checkpoint", "train_baseline"]  # re-exported

if TYPE_CHECKING:
    from recbench.config import RunConfig

FAMILY = "sequential"


@dataclass
class BaselineRun:
    """What evaluating one baseline gave (nothing recorded)."""

    metrics: dict[str, float]
    settings: dict[str, Any]
    hparams: dict[str, Any]
    model: SequentialRecommender | None = field(default=None, repr=False)
    outcomes: Outcomes | None = field(default=None, repr=False)


def execute_baseline(
    name: str,
    dataset: str,
    *,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    out_dir: Path | str | None = None,
    epochs: int | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    split: str = "test",
    max_examples: int | None = None,
    train_rows: int | None = None,
    progress: bool = True,
    eval_rows: str = "all",
) -> BaselineRun:
    """Train (or load) and evaluate baseline ``name`` (gru4rec, caser or sasrec), recording
    nothing: the library call behind scripts and benchmarks (``recbench run --baseline NAME``
    goes through the runner, which records).

    ``checkpoint``: ``None`` trains with the registry defaults (``epochs``, ``model_overrides``
    and ``train_overrides`` adjust them; weights go to ``out_dir``); ``"released"`` loads the
    published ``NAME_DATASET`` weights; anything else is a path to saved weights.  The model
    ranks the 20 shared candidates of each ``split`` example of the ``eval_rows`` protocol
    (``max_examples``: the seeded subset every method of a profile is scored on) with the
    protocol's metric code.
    """
    ds = load_dataset(dataset)
    if split not in ("val", "test"):
        raise UserError(f"baselines are evaluated on 'val' or 'test', not '{split}'")
    if max_examples is not None and max_examples < 1:
        raise UserError("max_examples must be at least 1")
    overrides = dict(train_overrides or {})
    if epochs is not None:
        overrides["epochs"] = epochs
    model, settings, hparams, _ = obtain_model(
        name, ds, checkpoint=checkpoint, seed=seed, out_dir=out_dir,
        model_overrides=model_overrides, train_overrides=overrides, train_rows=train_rows,
        progress=progress,
    )  # fmt: skip
    examples = evaluation_examples(ds, eval_rows, max_examples, split)
    outcomes = Outcomes()
    scores = candidate_scores(model, CandidateSet.from_examples(examples))
    metrics = scores_report(ds, examples, scores, outcomes=outcomes)
    return BaselineRun(metrics=metrics, settings=settings, hparams=hparams, model=model,
                       outcomes=outcomes)  # fmt: skip


def obtain_model(
    name: str,
    ds: Dataset,
    *,
    checkpoint: str | Path | None,
    seed: int,
    out_dir: Path | str | None,
    model_overrides: Mapping[str, Any] | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    train_rows: int | None = None,
    progress: bool = True,
) -> tuple[SequentialRecommender, dict[str, Any], dict[str, Any], str]:
    """Load ``checkpoint`` or train baseline ``name``; returns the model, its settings, the
    hyper-parameters to record and a short identity of its weights."""
    spec = BASELINES.get(name)
    if checkpoint is not None:
        if train_overrides or model_overrides or train_rows is not None:
            raise UserError("training options have no effect when a checkpoint is given")
        model, settings, identity = resolve_checkpoint(spec, ds, checkpoint)
        return model, settings, {"model": settings["config"], "train": None}, identity
    model, settings = train_baseline(
        name, ds, seed=seed, out_dir=out_dir, model_overrides=model_overrides,
        train_overrides=train_overrides, train_rows=train_rows, progress=progress,
    )  # fmt: skip
    hparams = {"model": settings["config"], "train": settings["train"]}
    return model, settings, hparams, f"trained:{settings['sha256'][:12]}"


def training_plan(config: RunConfig) -> tuple[int | None, dict[str, Any]]:
    """How a run of ``config`` trains a baseline: the training rows it reads and the training
    overrides.  A profile's ``train_examples`` is a budget for LLM fine-tuning and does not
    shrink a baseline's training data (the published baselines use the whole training split);
    only an explicit ``--train-examples`` does, and a profile with ``baseline_train_steps``
    (smoke: a seconds-long end-to-end check) trains one short epoch on its few examples."""
    settings = config.settings
    train_rows = config.train_examples
    overrides: dict[str, Any] = {}
    if settings.baseline_train_steps is not None and config.checkpoint is None:
        train_rows = train_rows or settings.train_examples
        overrides = {"epochs": 1, "max_steps_per_epoch": settings.baseline_train_steps}
    return train_rows, overrides


class Sequential(Method):
    """``recbench run --baseline gru4rec|caser|sasrec``: fit (or load), then score."""

    family, needs, takes_checkpoint = FAMILY, "fit", True
    baseline: ClassVar[str] = ""

    @classmethod
    def recorded_seed(cls, config: RunConfig) -> int | None:
        """Released or given weights: no seed drew anything."""
        return config.seed if config.checkpoint is None else None

    @classmethod
    def defining_settings(cls, config: RunConfig, ds: Dataset) -> dict[str, Any]:
        s = config.settings
        out: dict[str, Any] = {
            "evaluation": {k: getattr(s, k) for k in ("eval_split", "eval_rows", "eval_examples")},
            "seed": cls.recorded_seed(config),
        }
        if config.checkpoint is None:
            out["train"] = training_plan(config)
        elif str(config.checkpoint) == "released":
            out["checkpoint"] = "released"
        else:  # a file's content, not its name
            out["checkpoint"] = weights_identity(Path(os.path.expanduser(str(config.checkpoint))))
        return out

    def prepare(self) -> None:
        config = self.run.config
        train_rows, overrides = training_plan(config)
        self.model, settings, hparams, identity = obtain_model(
            self.baseline, self.run.dataset, checkpoint=config.checkpoint, seed=config.seed,
            out_dir=None if config.checkpoint else self.run.run_dir,
            train_overrides=overrides or None, train_rows=train_rows, progress=self.run.progress,
        )  # fmt: skip
        train_result = settings.get("result") or {}
        self.facts.model, self.facts.hparams = identity, hparams
        self.facts.settings.update(
            checkpoint="trained" if config.checkpoint is None else str(config.checkpoint),
            weights=settings.get("path"), sha256=settings.get("sha256"),
            best_epoch=train_result.get("best_epoch"), **{"val_hr@1": train_result.get(
                "best_val_hr1")},
        )  # fmt: skip
        if train_result:
            self.facts.timings["train_seconds"] = float(train_result["seconds"])
        self.facts.summary["checkpoint"] = settings.get("path")

    def score(self, examples: Sequence[Example]) -> Scores:
        return Scores(candidate_scores(self.model, CandidateSet.from_examples(examples)))


def weights_identity(path: Path) -> str:
    """The sha256 of a weights file (or of the one in a weights directory); the path itself
    when it cannot be read (the run then fails on loading it, with its own message)."""
    target = path / WEIGHTS_FILE if path.is_dir() else path
    try:
        return file_sha256(target)
    except OSError:
        return str(path)
