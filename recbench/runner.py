"""Executing a :class:`~recbench.config.RunConfig`: validation first, then the work.

Every input is checked before anything heavy (model download, training) starts, so a typo costs
a second, not a failed hour.
"""

from __future__ import annotations

import importlib.util

from recbench import models
from recbench.config import RunConfig
from recbench.data import load_dataset
from recbench.errors import UnknownNameError, UserError
from recbench.registry import did_you_mean


def check_inputs(config: RunConfig) -> None:
    """Resolve every name in the config, raising one-line user errors.

    Runs before any model is loaded or trained, so everything that can be known to fail from
    the config alone (names, ranges, paths, the SASRec a loss needs) fails here, in a second.
    """
    config.validate()
    ds = load_dataset(config.dataset)  # unknown names raise here
    if config.baseline is not None:
        check_baseline(config.baseline)
    if config.checkpoint is not None and config.baseline not in _sequential_names():
        raise UserError(
            "--checkpoint selects a sequential baseline's weights (gru4rec, caser, sasrec); "
            f"{config.method} does not take one"
        )
    if config.loss is not None:
        try:
            import losses
        except ImportError:  # pragma: no cover - the registry ships with recbench
            losses = None
        if losses is not None and hasattr(losses, "get_loss"):
            loss_module = losses.get_loss(config.loss, **config.loss_params)
            from recbench.auxiliary import check_for_run

            check_for_run(ds, loss_module, config)
    if config.baseline in SASREC_BASELINES:
        from recbench.auxiliary import check_sasrec

        check_sasrec(ds, config)
    models.check_name(config.model)


def _sequential_names() -> list[str]:
    from baselines import BASELINES

    return list(BASELINES.names())


def baseline_names() -> list[str]:
    """Every baseline ``--baseline`` accepts: sequential, LLM-pipeline and module baselines.

    Module baselines are named from :data:`MODULE_BASELINES` without importing them (they may
    be heavy, or not written yet).
    """
    return [*_sequential_names(), *LLM_BASELINES, *MODULE_BASELINES]


def check_baseline(name: str) -> None:
    """An unknown baseline fails with "did you mean" over all baselines, not only sequential."""
    known = baseline_names()
    if name not in known:
        raise UnknownNameError(
            f"unknown baseline '{name}'{did_you_mean(name, known)}; known: {', '.join(known)}"
        )
    module = MODULE_BASELINES.get(name)
    if module is not None and importlib.util.find_spec(module) is None:  # located, not imported
        raise UserError(f"baseline '{name}' is not available in this installation ({module})")


#: Baselines run by the LLM pipeline itself (no module of their own).
LLM_BASELINES = ("zero_shot", "sft")
#: Baselines with a module of their own under ``baselines/``; each module has
#: ``run(config: RunConfig, progress: bool) -> dict`` (the summary the CLI prints).
MODULE_BASELINES = {
    "tallrec": "baselines.tallrec",
    "llara": "baselines.llara",
    "morec": "baselines.morec",
    "chatrec": "baselines.chatrec",
}
#: Module baselines built on the run's SASRec (``--aux-checkpoint``), checked before any work.
SASREC_BASELINES = frozenset({"chatrec", "llara"})


def execute(config: RunConfig, progress: bool = True) -> dict:
    """Run a loss (SFT then preference optimisation) or a baseline, and store its records."""
    check_inputs(config)
    if config.baseline in MODULE_BASELINES:
        import importlib

        return importlib.import_module(MODULE_BASELINES[config.baseline]).run(config, progress)
    if config.baseline is not None and config.baseline not in LLM_BASELINES:
        import baselines

        return baselines.run_baseline(config, progress=progress)
    from recbench.pipeline import run_llm

    return run_llm(config, progress=progress)
