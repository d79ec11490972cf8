"""TALLRec: LoRA instruction tuning of the LLM on recommendation prompts, nothing more.

Kept from TALLRec (Bao et al., RecSys 2023, "TALLRec: An Effective and Efficient Tuning Framework
to Align Large Language Model with Recommendation"): a parameter-efficient LoRA adapter is tuned
with the language-modelling loss on instructions built from the user's history, with no
preference stage afterwards.

Simplified: TALLRec asks a binary question ("will the user enjoy this item? Yes/No") about one
item at a time, built from liked and disliked items, and samples few-shot training sets.  recbench
tunes on its shared 20-candidate prompts with the target title as the response, so that every
method answers the same question on the same examples; TALLRec then *is* recbench's SFT stage.
The stage is cached (keyed by model, data, seed and SFT settings), so a run after any loss run of
the same settings only evaluates; its numbers equal the ``sft`` rows and are recorded under their
own method name so that tables list the baseline by the name the papers use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recbench.errors import UserError
from recbench.pipeline import LLMRun

if TYPE_CHECKING:
    from recbench.config import RunConfig

METHOD = "tallrec"
FAMILY = "llm_baseline"


def run(config: RunConfig, progress: bool = True) -> dict[str, Any]:
    """``recbench run --baseline tallrec``: the (cached) SFT stage, evaluated in both modes."""
    if config.checkpoint is not None or config.loss_params:
        raise UserError("tallrec takes no --checkpoint or --param; its settings are the profile's")
    llm = LLMRun(config, progress=progress)
    # keyed by the SFT stage like the ``sft`` baseline: the same training gives the same run
    run_id = f"{config.dataset}-{METHOD}-{llm.sft_key}-{config.profile}"

    def work(output: dict[str, Any]) -> list[dict]:
        output["sft"] = llm.sft()
        evaluation = output["evaluation"] = llm.evaluate()
        s = llm.settings
        hparams = {"lora_r": s.lora_r, "lora_alpha": s.lora_alpha,
                   "learning_rate": s.sft_learning_rate, "epochs": s.sft_epochs}  # fmt: skip
        return llm.records(METHOD, FAMILY, hparams, evaluation, run_id)

    return llm.execute(run_id, work)
