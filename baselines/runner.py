"""The Python API behind ``recbench run --baseline NAME``: train or load, evaluate, record.

A baseline run either loads weights (``checkpoint="released"`` for the LLaRA / iLoRA releases, or
a path to a recbench-trained directory / ``.safetensors`` file) or trains the model on the
dataset's training split (model selection on the validation split), then ranks the shared
20 candidates of every test example and writes long-format result records through
:mod:`recbench.results`.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from baselines.evaluation import CandidateSet, evaluate_model
from baselines.models import SequentialRecommender
from baselines.registry import BASELINES, BaselineSpec
from baselines.training import TrainingRows, fit
from baselines.weights import (
    RELEASED_CAVEATS,
    file_sha256,
    load_released,
    load_weights,
    released_name,
    save_weights,
)
from recbench import paths, results, rundir
from recbench.batches import EVAL_SEED, pick_examples
from recbench.data import load_dataset
from recbench.data.dataset import Dataset
from recbench.errors import ModelError, UserError
from recbench.outcomes import Outcomes

if TYPE_CHECKING:
    from recbench.config import RunConfig

FAMILY = "sequential"


@dataclass
class BaselineRun:
    """Everything one baseline run produced."""

    run_id: str
    metrics: dict[str, float]
    records: list[dict]
    settings: dict[str, Any]
    store: Path | None = None
    model: SequentialRecommender | None = field(default=None, repr=False)


def default_out_dir(name: str, dataset: str, seed: int) -> Path:
    """Where a trained baseline goes when the caller names no directory."""
    paths.safe_name(name, "baseline")
    paths.safe_name(dataset, "dataset")
    return paths.subdir("baselines", dataset, f"{name}-seed{seed}")


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
    out = Path(out_dir) if out_dir is not None else default_out_dir(name, ds.name, seed)
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
    write_records: bool = True,
    store: Path | None = None,
    run_id: str | None = None,
    profile: str | None = None,
    eval_rows: str = "all",
) -> BaselineRun:
    """Train (or load) and evaluate baseline ``name`` (gru4rec, caser or sasrec) on ``dataset``.

    ``checkpoint``: ``None`` trains with the registry defaults (``epochs``, ``model_overrides``
    and ``train_overrides`` adjust them; weights go to ``out_dir``, default
    ``$RECBENCH_HOME/baselines/DATASET/NAME-seedSEED``); ``"released"`` loads the published
    ``NAME_DATASET`` weights; anything else is a path to saved weights.  The model ranks the 20
    shared candidates of each ``split`` example of the ``eval_rows`` protocol (``max_examples``:
    the seeded subset the LLM pipeline evaluates); metrics: ``hr@1``, ``hr@k``, ``ndcg@k``
    (k = 5, 10), ``n_examples`` and the top-1 popularity bias ``pop_bias``.  Result records are
    appended to the results store unless ``write_records`` is false.

    ``train_rows`` limits training to the first rows of the training split (smoke runs only).
    """
    load = results.LoadMeter()
    spec = BASELINES.get(name)
    ds = load_dataset(dataset)
    if split not in ("val", "test"):
        raise UserError(f"baselines are evaluated on 'val' or 'test', not '{split}'")
    if max_examples is not None and max_examples < 1:
        raise UserError("max_examples must be at least 1")
    train_overrides = dict(train_overrides or {})
    if epochs is not None:
        train_overrides["epochs"] = epochs
    if checkpoint is not None:
        if train_overrides or model_overrides or train_rows is not None:
            raise UserError("training options have no effect when a checkpoint is given")
        model, settings, identity = resolve_checkpoint(spec, ds, checkpoint)
        hparams: dict[str, Any] = {"model": settings["config"], "train": None}
    else:
        model, settings = train_baseline(
            name,
            ds,
            seed=seed,
            out_dir=out_dir,
            model_overrides=model_overrides,
            train_overrides=train_overrides,
            train_rows=train_rows,
            progress=progress,
        )
        identity = f"trained:{settings['sha256'][:12]}"
        hparams = {"model": settings["config"], "train": settings["train"]}
    # The same seeded subset the LLM pipeline evaluates (all examples when max_examples is None).
    examples = pick_examples(ds.protocol_examples(split, eval_rows), max_examples, EVAL_SEED)
    started = time.perf_counter()
    outcomes = Outcomes()
    metrics = evaluate_model(
        model, CandidateSet.from_examples(examples), ds.popularity(), outcomes=outcomes
    )
    eval_seconds = time.perf_counter() - started
    run_id = run_id or results.new_run_id()
    train_result = settings.get("result") or {}
    run = {
        "run_id": run_id,
        "dataset": ds.name,
        "method": name,
        "family": FAMILY,
        "model": identity,
        "seed": seed if checkpoint is None else None,
        "profile": profile,
        "hparams": hparams,
        "settings": {
            "checkpoint": "trained" if checkpoint is None else str(checkpoint),
            "weights": settings.get("path"),
            "sha256": settings.get("sha256"),
            "best_epoch": train_result.get("best_epoch"),
            "val_hr@1": train_result.get("best_val_hr1"),
            "train_seconds": train_result.get("seconds"),
            "eval_seconds": eval_seconds,
            "eval_rows": eval_rows,
            "eval_split": split,
            "dataset_files": _dataset_fingerprint(ds, (split,)),
        },
    }
    # Cost records, named like the LLM pipeline's timings.
    cost = {"eval_ranking_seconds": eval_seconds}
    if train_result:
        cost = {"train_seconds": float(train_result["seconds"]), **cost}
    cost.update(load.readings())
    records = results.run_records(run, {"ranking": metrics}, cost, split=split)
    written = results.append_records(records, store, outcomes) if write_records else None
    return BaselineRun(
        run_id=run_id,
        metrics=metrics,
        records=records,
        settings=settings,
        store=written,
        model=model,
    )


def run_baseline(config: RunConfig, progress: bool = True) -> dict[str, Any]:
    """``recbench run --baseline NAME``: run from a :class:`~recbench.config.RunConfig`.

    Uses the config's dataset, seed, checkpoint, output directory and results store.  The test
    examples are the profile's ``eval_examples`` subset, the very examples the LLM methods of the
    same profile are scored on.  A profile's ``train_examples`` is a budget for LLM fine-tuning
    and does not shrink a baseline's training data (the published baselines use the whole
    training split); only an explicit ``--train-examples`` does, and a profile with
    ``baseline_train_steps`` (smoke: a seconds-long end-to-end check) trains one short epoch on
    its few examples.
    Returns the summary the CLI prints: run id, ``evaluation`` by mode, timings, results path.
    """
    if config.baseline is None:
        raise UserError("no baseline given (--baseline NAME)")
    settings = config.settings
    rundir.claim_output_dir(config)
    train_rows = config.train_examples
    train_overrides: dict[str, Any] = {}
    if settings.baseline_train_steps is not None and config.checkpoint is None:
        train_rows = train_rows or settings.train_examples
        train_overrides = {"epochs": 1, "max_steps_per_epoch": settings.baseline_train_steps}
    run = execute_baseline(
        config.baseline,
        config.dataset,
        checkpoint=config.checkpoint,
        seed=config.seed,
        out_dir=config.output_dir,
        train_overrides=train_overrides or None,
        train_rows=train_rows,
        max_examples=settings.eval_examples,
        progress=progress,
        store=config.results,
        profile=config.profile,
        eval_rows=settings.eval_rows,
        split=settings.eval_split,
    )
    timings = {
        r["metric"]: r["value"]
        for r in run.records
        if r["mode"] == "cost" and r["metric"].endswith("_seconds")
    }
    return {
        "run_id": run.run_id,
        "evaluation": {"ranking": run.metrics},
        "timings": timings,
        "checkpoint": run.settings.get("path"),
        "results": str(run.store) if run.store else None,
    }
