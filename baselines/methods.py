"""The baselines plugin: registers every baseline method and provides SASRec to the core.

recbench's core never imports ``baselines``; it loads this module through the
``recbench.plugins`` entry point (``pyproject.toml``), exactly as it loads a researcher's
plugin.  Importing it registers the sequential recommenders, TALLRec, ChatRec, LLaRA and MoRec
with :func:`recbench.methods.register_method`, and hands the core the SASRec it needs for NAPO,
ChatRec and LLaRA (:func:`recbench.auxiliary.provide_sasrec`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import baselines.rules  # noqa: F401  (registers the rule baselines: random, pop, markov, ...)
from baselines import chatrec, llara, morec, tallrec
from baselines.auxiliary import default_checkpoint, trained_sasrec
from baselines.registry import BASELINES
from baselines.runner import run_baseline
from baselines.weights import WEIGHTS_FILE, load_released, load_weights
from recbench import auxiliary
from recbench.data import load_dataset
from recbench.methods import register_method

if TYPE_CHECKING:
    from recbench.config import RunConfig
    from recbench.data.dataset import Dataset


def _needs_sasrec(config: RunConfig) -> None:
    """ChatRec and LLaRA are built on the run's SASRec: check it can be had, before any work."""
    auxiliary.check_sasrec(load_dataset(config.dataset), config)


# ------------------------------------------------------------- the sequential recommenders
def _sequential(name: str, order: int) -> None:
    def run(config: RunConfig, progress: bool = True) -> dict[str, Any]:
        return run_baseline(config, progress)

    summary = BASELINES.get(name).description.splitlines()[0]
    register_method(name, family="sequential", summary=summary, takes_checkpoint=True,
                    order=order)(run)  # fmt: skip


for _order, _name in enumerate(("gru4rec", "caser", "sasrec")):
    _sequential(_name, _order)

# --------------------------------------------------------------------- the LLM baselines
register_method(
    "morec", family="sequential", order=3,
    summary="SASRec over MiniLM embeddings of the item titles (MoRec)",
)(morec.run)  # fmt: skip
register_method(
    "chatrec", family="llm_baseline", order=1, check=_needs_sasrec,
    summary="zero-shot LLM with SASRec's top suggestions in the prompt (ChatRec)",
)(chatrec.run)  # fmt: skip
register_method(
    "tallrec", family="llm_baseline", order=3,
    summary="LoRA instruction tuning on the recommendation prompts (TALLRec = the SFT stage)",
)(tallrec.run)  # fmt: skip
register_method(
    "llara", family="llm_baseline", order=4, check=_needs_sasrec,
    summary="hybrid item tokens from SASRec with a curriculum (LLaRA)",
)(llara.run)  # fmt: skip


# ----------------------------------------------------------------- SASRec for the core
def _released(ds: Dataset):
    return load_released("sasrec", ds.name)


def _file(path: Path):
    return load_weights(path)


def _trained(ds: Dataset):
    return trained_sasrec(ds)


auxiliary.provide_sasrec(
    auxiliary.SasrecSource(
        default_checkpoint=default_checkpoint,
        load_released=_released,
        load_file=_file,
        trained=_trained,
        weights_file=WEIGHTS_FILE,
    )
)
