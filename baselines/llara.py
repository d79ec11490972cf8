"""LLaRA (Liao et al., SIGIR 2024) under recbench's protocol: ``recbench run --baseline llara``.

LLaRA represents each item in the prompt twice: by its title, and by one extra token whose
embedding is a sequential recommender's item embedding mapped into the LLM's embedding space
by a trained projector.  The LLM is fine-tuned with LoRA on the next-item response together with
the projector, with a curriculum that starts from text-only prompts and moves to hybrid ones.

Kept from LLaRA
    * the hybrid item representation for every history and candidate item (title, then one
      item token), the item token being ``projector(SASRec item embedding)`` -- SASRec's input
      embedding table, which is what LLaRA's ``cacu_x`` returns;
    * the projector's shape: Linear(64 -> hidden), GELU, Linear(hidden -> hidden);
    * a frozen SASRec, LoRA on every linear layer of the LLM, the language-modelling loss on
      the target title, and hybrid prompts for every evaluation prompt;
    * the curriculum: the probability of a hybrid prompt grows linearly with the training step.

Simplified or changed
    * the LLM is recbench's model (SmolLM2-135M by default) instead of Llama2-7B, and the
      prompts, candidates, response format, metrics, data subset and optimiser settings are
      recbench's (the SFT stage's: ``sft_epochs``, ``sft_learning_rate``, LoRA rank), so LLaRA
      differs from TALLRec/SFT only by its item tokens and the curriculum;
    * the curriculum reaches probability 1 after half of the optimizer steps
      (``CURRICULUM_RAMP``; LLaRA's code rises over the whole run), so the second half trains
      on the evaluation format; the draw is per example from a seeded generator (LLaRA draws
      once per batch from the global RNG), which keeps runs and ``--resume`` deterministic;
    * LLaRA's text-only prompts keep a placeholder token after each title; here they are the
      plain recbench prompt (exactly the SFT stage's token ids), and the projector simply gets
      no gradient from them;
    * the projector's output bias starts at the mean token embedding (``attach_hybrid``);
      LLaRA's default initialisation is affordable over thousands of 7B steps, not over the
      128 steps of the ``cpu`` profile;
    * the SASRec is the one NAPO uses (``aux_checkpoint``: recbench-trained for lastfm, the
      released checkpoint for steam, the packaged release in the ``smoke`` profile);
    * item tokens count towards ``max_prompt_tokens`` (left truncation, like every prompt).
The training objective is the SFT stage's (mean per-token NLL of title + EOS); ranking and
generation are evaluated on exactly ``LLMRun.eval_items``.  Model pieces and the curriculum are
in ``llara_model.py``, the hybrid token ids in ``llara_prompts.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from recbench.baselines.llara_model import (
    CURRICULUM_RAMP,
    CurriculumClock,
    HybridEmbedding,
    attach_hybrid,
    hybrid_probability,
    use_hybrid,
)
from recbench.baselines.llara_prompts import HybridEncoder
from tqdm.auto import tqdm

from recbench.auxiliary import check_sasrec, choice_for, load_sasrec
from recbench.batches import PromptItem, batched, candidate_texts
from recbench.config import RunConfig
from recbench.data import load_dataset
from recbench.data.dataset import Dataset, Example
from recbench.methods import Answers, Scores, register_method
from recbench.pipeline import LLMMethod, LLMRun
from recbench.scoring import score_responses
from recbench.trainer import Stage, add_lora

METHOD = "llara"


# ------------------------------------------------------------------------------- training
def train(llm: LLMRun, encoder: HybridEncoder, stage_dir: Path) -> dict:
    """LoRA + projector on the target title, text-only prompts giving way to hybrid ones."""
    s, seed = llm.settings, llm.config.seed
    stage = Stage(
        stage_dir,
        llm.stage_settings(METHOD, s.sft_epochs, s.sft_learning_rate),
        llm.accelerator,
    )
    total_steps = max(1, len(stage.micro_batches(len(llm.train_items))) // s.grad_accum)
    clock = CurriculumClock()

    def step(rows: list[int]):
        at = clock.tick() // s.grad_accum
        probability = hybrid_probability(at, total_steps)
        items = [llm.train_items[i] for i in rows]
        flags = [use_hybrid(seed, at, it.example.key, probability) for it in items]
        prompt_ids = encoder.prompts(items, flags)
        response_ids = encoder.responses([[it.chosen] for it in items])
        scores = score_responses(llm.model, prompt_ids, response_ids, pad_token_id=llm.pad)
        per_token = scores.logps[:, 0] / scores.lengths[:, 0]
        info = {"hybrid_probability": probability, "hybrid_fraction": float(np.mean(flags))}
        return -per_token.mean(), info

    summary = stage.fit(
        llm.model,
        len(llm.train_items),
        step,
        extra={"curriculum": clock},
        resume=llm.config.resume,
        progress=llm.progress,
    )
    llm.timings["train_seconds"] = summary["seconds"]
    return summary


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def rank_hybrid(
    llm: LLMRun, encoder: HybridEncoder, items: list[PromptItem]
) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-probability and length of all 20 candidates under hybrid prompts."""
    size = max(1, llm.settings.batch_size // 2)
    rows, lengths = [], []
    for chunk in tqdm(batched(items, size), desc="rank", disable=not llm.progress, leave=False):
        prompt_ids = encoder.prompts(chunk, [True] * len(chunk))
        response_ids = encoder.responses([candidate_texts(llm.ds, it.example) for it in chunk])
        scores = score_responses(llm.model, prompt_ids, response_ids, pad_token_id=llm.pad)
        rows.append(scores.logps.double().cpu().numpy())
        lengths.append(scores.lengths.cpu().numpy())
    return np.concatenate(rows), np.concatenate(lengths)


@torch.no_grad()
def generate_hybrid(llm: LLMRun, encoder: HybridEncoder, items: list[PromptItem]) -> list[str]:
    """Greedy answers to hybrid prompts (left-padded batches, only the new tokens decoded)."""
    s, pad = llm.settings, llm.pad
    device = llm.accelerator.device
    answers: list[str] = []
    for chunk in tqdm(
        batched(items, s.batch_size), desc="generate", disable=not llm.progress, leave=False
    ):
        prompt_ids = encoder.prompts(chunk, [True] * len(chunk))
        width = max(len(p) for p in prompt_ids)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
        output = llm.model.generate(
            input_ids=ids, attention_mask=mask.to(device), do_sample=False,
            max_new_tokens=s.max_new_tokens, pad_token_id=pad,
        )  # fmt: skip
        answers += llm.tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
    return answers


@register_method
class LLaRA(LLMMethod):
    """``recbench run --baseline llara``: LoRA + projector with the curriculum, then hybrid
    prompts for every evaluation prompt."""

    name, order, needs = METHOD, 4, "stages"
    summary = "hybrid item tokens from SASRec with a curriculum (LLaRA)"

    @classmethod
    def check(cls, config: RunConfig) -> None:
        super().check(config)
        check_sasrec(load_dataset(config.dataset), config)

    @classmethod
    def defining_settings(cls, config: RunConfig, ds: Dataset) -> dict:
        return {**super().defining_settings(config, ds), "sasrec": choice_for(ds, config),
                "ramp": CURRICULUM_RAMP}  # fmt: skip

    def prepare(self) -> None:
        llm, config = self.llm, self.run.config
        s = llm.settings
        sasrec, sasrec_id = load_sasrec(llm.ds, config)
        llm.model = add_lora(llm.model, s.lora_r, s.lora_alpha, config.seed)
        table = sasrec.item_embeddings.weight.detach().float()
        hybrid: HybridEmbedding = attach_hybrid(llm.model, table, config.seed)
        self.encoder = HybridEncoder(llm.tokenizer, llm.ds, hybrid.vocab_size, s.max_prompt_tokens)
        self.facts.summary["train"] = train(llm, self.encoder, self.run.run_dir / "train")
        self.facts.hparams = {"sasrec": sasrec_id, "curriculum_ramp": CURRICULUM_RAMP,
                              "projector": "linear-gelu-linear"}  # fmt: skip
        llm.record_facts(self.facts)
        llm.model.eval()

    def score(self, examples: Sequence[Example]) -> Scores:
        values, lengths = rank_hybrid(self.llm, self.encoder, self.llm.eval_items(examples))
        return Scores(values, lengths)

    def generate(self, examples: Sequence[Example]) -> Answers:
        return Answers(generate_hybrid(self.llm, self.encoder, self.llm.eval_items(examples)))
