"""recbench losses: preference-optimisation objectives for LLM recommenders.

Usage::

    import losses
    loss_fn = losses.get_loss("napo", rho=0.7)          # a torch.nn.Module
    out = loss_fn(losses.PreferenceBatch(chosen_logps=..., rejected_logps=..., ...))
    out.loss.backward(); log(out.metrics)

Formulas, defaults and presets follow the suite specification (LOSSES.md).  Every loss reduces
to the stable primitive in :mod:`losses.stable`; batch-coupled pieces live in
:mod:`losses.sharing` (neighbours, pools), :mod:`losses.margins` (adaptive margins, running
state) and :mod:`losses.distributed` (global micro-batch and the gradient rule).

Adding a loss = one file + one test: write ``losses/<name>.py`` with a hyper-parameter
dataclass (fields made with :func:`losses.hparams.hp`) and a :class:`PreferenceLoss` subclass
decorated with ``@register_loss("<key>", summary=..., description=...)``; add its import to the
list below (registration happens when the module is imported, nowhere else); add
``tests/test_losses_<name>.py``.
"""

from __future__ import annotations

# Loss modules: importing them registers their keys; the order here is the listing order.
# isort: off
from losses import dpo  # noqa: F401
from losses import simpo  # noqa: F401
from losses import softmax_dpo  # noqa: F401
from losses import alpha_dpo  # noqa: F401
from losses import napo  # noqa: F401
from losses import napo_appendix_b  # noqa: F401

# isort: on
from losses.base import PreferenceLoss
from losses.batch import LossOutput, PreferenceBatch
from losses.distributed import gather_batch, gather_with_grad, local_rows
from losses.registry import LossSpec, get_loss, get_spec, list_specs, loss_keys, register_loss
from losses.sharing import Neighbours, find_neighbours, num_shared_neighbours
from losses.stable import lse_with_zero

__all__ = [
    "LossOutput",
    "LossSpec",
    "Neighbours",
    "PreferenceBatch",
    "PreferenceLoss",
    "find_neighbours",
    "gather_batch",
    "gather_with_grad",
    "get_loss",
    "get_spec",
    "list_specs",
    "local_rows",
    "loss_keys",
    "lse_with_zero",
    "num_shared_neighbours",
    "register_loss",
]
