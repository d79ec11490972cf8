"""recbench losses: preference-optimisation objectives for LLM recommenders.

Usage::

    from recbench import losses
    loss_fn = losses.get_loss("napo", rho=0.7)          # a torch.nn.Module
    out = loss_fn(losses.PreferenceBatch(chosen_logps=..., rejected_logps=..., ...))
    out.loss.backward(); log(out.metrics)

Formulas, defaults and presets are documented in docs/losses.md.  Every loss reduces
to the stable primitive in :mod:`recbench.losses.stable`; batch-coupled pieces live in
:mod:`recbench.losses.sharing` (neighbours, pools), :mod:`recbench.losses.margins` (adaptive margins, running
state) and :mod:`recbench.losses.distributed` (global micro-batch and the gradient rule).

Adding a loss = one file + one test: write ``losses/<name>.py`` with a hyper-parameter
dataclass (fields made with :func:`hp`) and a :class:`PreferenceLoss` subclass decorated with
``@register_loss("<key>", summary=..., description=..., family=..., order=...)``, and add
``tests/test_losses_<name>.py`` (and the key to ``tests/golden/loss_keys.txt``).  Every module of
this package is imported below, so registration needs no import list; ``order`` sets the listing
order.  Outside the package, the same file is a plugin: ``recbench run --plugin my_loss.py``
(see :mod:`recbench.plugins`).
"""

from __future__ import annotations

import importlib
import pkgutil

from recbench.losses.base import BASE_FIELDS, LENGTH_FIELDS, REFERENCE_FIELDS, PreferenceLoss
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.distributed import gather_batch, gather_with_grad, local_rows
from recbench.losses.hparams import hp
from recbench.losses.registry import (
    LOSS_FAMILIES,
    LossSpec,
    get_loss,
    get_spec,
    list_specs,
    loss_keys,
    loss_origin,
    register_loss,
)
from recbench.losses.sharing import Neighbours, find_neighbours, num_shared_neighbours
from recbench.losses.sources import LossSource
from recbench.losses.stable import lse_with_zero


def _import_loss_modules() -> None:
    """Import every module of the package: the loss modules register their keys as they are
    imported; the infrastructure modules (base, batch, registry, ...) register nothing."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_loss_modules()

__all__ = [
    "BASE_FIELDS",
    "LENGTH_FIELDS",
    "LOSS_FAMILIES",
    "REFERENCE_FIELDS",
    "LossOutput",
    "LossSource",
    "LossSpec",
    "Neighbours",
    "PreferenceBatch",
    "PreferenceLoss",
    "find_neighbours",
    "gather_batch",
    "gather_with_grad",
    "get_loss",
    "get_spec",
    "hp",
    "list_specs",
    "local_rows",
    "loss_keys",
    "loss_origin",
    "lse_with_zero",
    "num_shared_neighbours",
    "register_loss",
]
