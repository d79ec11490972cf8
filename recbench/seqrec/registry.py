"""The baseline registry: the three sequential recommenders and their default settings.

The model sizes are those of the released checkpoints (d = 64, one block, one head, 16 filters of
heights 2-4).  The optimisation settings and dropout were chosen on lastfm's *validation* HR@1
(seed 0, batch 256, patience 4-5) within the 10-minute, 2-core CPU budget:

* GRU4Rec: lr 1e-3 / 3e-3 / 5e-3 gave 0.668 / 0.699 / 0.691; dropout 0.3 on the final state 0.698;
* Caser: lr 1e-3 / 3e-3 gave 0.661 / 0.668; with lr 3e-3, dropout 0.3 / 0.5 gave 0.670 / 0.659, so
  the released 0.1 is kept;
* SASRec: with the released dropout 0.1, lr 1e-3 / 2e-3 / 3e-3 gave 0.624 (cut by the time
  budget) / 0.640 / 0.625; with lr 3e-3, dropout 0.3 / 0.5 gave 0.673 / 0.718, the largest gain.

``benchmarks/bench_seqrec.py`` reproduces the resulting test numbers.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields, replace
from typing import Any

from recbench.errors import UserError
from recbench.registry import Registry, did_you_mean
from recbench.seqrec.models import MODEL_CLASSES, SequentialRecommender, build_model
from recbench.seqrec.training import TrainConfig


def _check_keys(given: dict[str, Any], allowed: list[str], what: str) -> None:
    for key in given:
        if key not in allowed:
            raise UserError(
                f"unknown {what} '{key}'{did_you_mean(key, allowed)}; known: {', '.join(allowed)}"
            )


@dataclass(frozen=True)
class BaselineSpec:
    """A registered baseline: model kind, default model sizes and default optimisation settings."""

    name: str
    kind: str
    description: str
    model: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def build(self, num_items: int, **overrides: Any) -> SequentialRecommender:
        """A freshly initialised model (seed the RNG first for reproducible weights)."""
        allowed = [
            p for p in inspect.signature(MODEL_CLASSES[self.kind]).parameters if p != "num_items"
        ]
        _check_keys(overrides, allowed, f"{self.name} model setting")
        return build_model(self.kind, num_items=num_items, **{**self.model, **overrides})

    def train_config(self, **overrides: Any) -> TrainConfig:
        """The default training settings with ``overrides`` applied (unknown keys are refused)."""
        _check_keys(overrides, [f.name for f in fields(TrainConfig)], "training setting")
        return replace(self.train, **overrides) if overrides else self.train


BASELINES: Registry[BaselineSpec] = Registry("baseline")


def _register(spec: BaselineSpec) -> None:
    if spec.kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model kind '{spec.kind}'")
    BASELINES.add(spec.name, spec)


_register(
    BaselineSpec(
        name="gru4rec",
        kind="gru4rec",
        description="GRU over the item sequence (Hidasi et al. 2016), final state scores items",
        model={"hidden_size": 64, "num_layers": 1, "dropout": 0.0},
        train=TrainConfig(),
    )
)
_register(
    BaselineSpec(
        name="caser",
        kind="caser",
        description="convolutional sequence embedding (Tang & Wang 2018): horizontal + vertical",
        model={"hidden_size": 64, "num_filters": 16, "filter_sizes": [2, 3, 4], "dropout": 0.1},
        train=TrainConfig(),
    )
)
_register(
    BaselineSpec(
        name="sasrec",
        kind="sasrec",
        description="self-attentive sequential recommendation (Kang & McAuley 2018), one block",
        model={"hidden_size": 64, "num_blocks": 1, "num_heads": 1, "dropout": 0.5},
        train=TrainConfig(),
    )
)


def list_baselines() -> list[dict[str, Any]]:
    """Name, description and default settings of every baseline (for ``recbench`` listings)."""
    return [
        {
            "name": spec.name,
            "description": spec.description,
            "model": dict(spec.model),
            "train": spec.train.to_dict(),
        }
        for spec in (BASELINES.get(name) for name in BASELINES.names())
    ]
