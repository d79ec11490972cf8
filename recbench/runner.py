"""Executing a :class:`~recbench.config.RunConfig`: validation first, then the work.

Every input is checked before anything heavy (model download, training) starts, so a typo costs
a second, not a failed hour.
"""

from __future__ import annotations

import time

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


def execute(config: RunConfig) -> dict:
    """For now: load the data and the model and summarise them (training lands next)."""
    check_inputs(config)
    settings = config.resolved()
    started = time.perf_counter()
    ds = load_dataset(config.dataset)
    test = ds.examples("test")
    model, tokenizer = models.load(config.model)
    n_params = sum(p.numel() for p in model.parameters())
    from recbench.api import prompt_for

    prompt = prompt_for(ds, test[0], config.seed)
    return {
        "dataset": ds.name,
        "train_examples": len(ds.examples("train")),
        "test_examples": len(test),
        "model": config.model,
        "model_class": type(model).__name__,
        "parameters": n_params,
        "first_prompt_tokens": len(tokenizer(prompt)["input_ids"]),
        "profile": settings["name"],
        "seconds": round(time.perf_counter() - started, 2),
    }
