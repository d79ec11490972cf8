"""Executing a :class:`~recbench.config.RunConfig`: validation first, then the work.

Every input is checked before anything heavy (model download, training) starts, so a typo costs
a second, not a failed hour.
"""

from __future__ import annotations

from recbench import models
from recbench.config import RunConfig
from recbench.data import load_dataset


def check_inputs(config: RunConfig) -> None:
    """Resolve every name in the config, raising one-line user errors."""
    config.validate()
    load_dataset(config.dataset).spec  # noqa: B018 - unknown names raise here
    if config.loss is not None:
        try:
            import losses
        except ImportError:  # pragma: no cover - the registry ships with recbench
            losses = None
        if losses is not None and hasattr(losses, "get_loss"):
            losses.get_loss(config.loss, **config.loss_params)
    models.check_name(config.model)


LLM_BASELINES = ("zero_shot", "sft")


def execute(config: RunConfig, progress: bool = True) -> dict:
    """Run a loss (SFT then preference optimisation) or a baseline, and store its records."""
    check_inputs(config)
    if config.baseline is not None and config.baseline not in LLM_BASELINES:
        import baselines

        return baselines.run_baseline(config, progress=progress)
    from recbench.pipeline import run_llm

    return run_llm(config, progress=progress)
