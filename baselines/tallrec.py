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

from recbench.methods import register_method
from recbench.pipeline import Sft


@register_method
class TallRec(Sft):
    """``recbench run --baseline tallrec``: the (cached) SFT stage, evaluated in both modes."""

    name, order, reference = "tallrec", 3, False
    summary = "LoRA instruction tuning on the recommendation prompts (TALLRec = the SFT stage)"

    def prepare(self) -> None:
        super().prepare()
        s = self.run.settings
        self.facts.hparams = {"lora_r": s.lora_r, "lora_alpha": s.lora_alpha,
                              "learning_rate": s.sft_learning_rate, "epochs": s.sft_epochs}  # fmt: skip
