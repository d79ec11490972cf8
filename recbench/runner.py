"""Executing a :class:`~recbench.config.RunConfig`: validation first, then the work.

Every input is checked before anything heavy (model download, training) starts, so a typo costs
a second, not a failed hour.  A run trains a loss (:func:`recbench.pipeline.run_llm`) or runs a
registered method (``--baseline NAME``, :mod:`recbench.methods`); methods are found in the
registry, filled by the core and by plugins (``baselines`` among them), never by name here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import losses
from recbench import auxiliary, models, paths, plugins, results
from recbench.config import RunConfig
from recbench.data import load_dataset
from recbench.methods import check_checkpoint, get_method, method_names
from recbench.pipeline import run_llm

log = logging.getLogger(__name__)


def check_inputs(config: RunConfig) -> None:
    """Resolve every name in the config, raising one-line user errors.

    Runs before any model is loaded or trained, so everything that can be known to fail from
    the config alone (names, ranges, paths, the SASRec a loss needs) fails here, in a second.
    """
    config.validate()
    paths.home()  # an unusable RECBENCH_HOME fails now, not after training
    plugins.load_plugins()  # the installed ones (entry points); idempotent
    ds = load_dataset(config.dataset)  # unknown names raise here
    if config.baseline is not None:
        method = get_method(config.baseline)  # unknown names: "did you mean", all methods
        check_checkpoint(config)
        method.check(config)
    else:
        check_checkpoint(config)
    if config.loss is not None:
        loss_module = losses.get_loss(config.loss, **config.loss_params)
        auxiliary.check_for_run(ds, loss_module, config)
    models.check_name(config.model)


def baseline_names() -> list[str]:
    """Every method ``--baseline`` accepts (registered by the core and by plugins)."""
    plugins.load_plugins()
    return method_names()


def execute(config: RunConfig, progress: bool = True) -> dict:
    """Run a loss (SFT then preference optimisation) or a method, and store its records."""
    check_inputs(config)
    if config.baseline is not None:
        output = get_method(config.baseline).run(config, progress)
    else:
        output = run_llm(config, progress=progress)
    keep_example_users(config.results or results.default_store(), config.dataset,
                       config.settings.eval_split)  # fmt: skip
    return output


def keep_example_users(store: Path, dataset: str, split: str) -> Path | None:
    """Keep the users of ``split``'s examples beside the store's outcomes, once, so that
    ``recbench compare`` clusters its paired tests by user from the store alone.

    A store holding another version of the split's map keeps it, with one warning line: the
    run's records are what matter here, not the map.  Returns the path written, if any.
    """
    if not store.is_file():
        return None
    try:
        return results.write_example_users(store, load_dataset(dataset).example_users(split))
    except ValueError as exc:
        log.warning("warning: %s", exc)
        return None
