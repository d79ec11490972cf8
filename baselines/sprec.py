"""SPRec (Gao et al., WWW 2025, "SPRec: Self-Play to Debias LLM-based Recommendation") under
recbench's protocol: ``recbench run --baseline sprec``.

Kept from SPRec's released loop: starting from the SFT model, each iteration

1. samples a fresh set of training prompts and lets the current model answer each greedily;
   its answers become the rejected responses (self-play: the model's own favourites are what it
   learns to move away from);
2. trains one SFT epoch on the prompts' positives (the target titles);
3. trains one DPO epoch (beta = 0.1, sigmoid loss) of the positive against the model's own
   answer, the reference being the model as the epoch starts.

Changed: the sizes are the profile's (``train_examples`` prompts per iteration, its SFT and
preference learning rates, LoRA on recbench's model); ``--param iterations=N`` sets the number
of iterations (default :data:`ITERATIONS`).  An answer equal to the target title is dropped
from that iteration's DPO epoch, and the run records how many were: the released code keeps
such pairs, whose chosen and rejected responses are the same text and so carry no gradient.
Each iteration's answers, stages and reference log-probs are kept in the run directory, so an
interrupted run resumes at the iteration (and step) it reached.

Its control, ``recbench run --baseline sprec_sft``: the same iterations' SFT epochs, on the same
fresh prompts, without the answers and the DPO epochs.  Each iteration adds an SFT epoch on
``train_examples`` prompts the SFT stage mostly never saw, and where SFT is short of data that
alone moves HR@1; ``sprec - sprec_sft`` (a default paired test) is what self-play adds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import torch

from recbench import losses, rundir
from recbench.batches import PromptItem, pick_examples, render
from recbench.config import RunConfig
from recbench.data.dataset import Dataset
from recbench.errors import UserError
from recbench.identity import digest
from recbench.methods import register_method
from recbench.pipeline import LLMMethod, LLMRun
from recbench.scoring import score_responses
from recbench.stage_files import discard_journal, read_reference, write_reference
from recbench.trainer import Stage

METHOD = "sprec"
ITERATIONS = 2
BETA = 0.1  # SPRec's DPO beta


def _iterations(params: dict[str, Any]) -> int:
    extra = sorted(set(params) - {"iterations"})
    if extra:
        raise UserError(f"sprec: unknown --param {', '.join(extra)}; known: iterations")
    n = params.get("iterations", ITERATIONS)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 20:
        raise UserError(f"sprec: --param iterations must be an integer from 1 to 20, got {n}")
    return n


def iteration_examples(config: RunConfig, ds: Dataset, iteration: int) -> list:
    """The fresh training prompts of one iteration: a seeded sample of the training split."""
    seed = int(digest({"sprec": config.seed, "iteration": iteration}), 16) % 2**32
    return pick_examples(ds.examples("train"), config.settings.train_examples, seed)


def self_play_pairs(
    items: Sequence[PromptItem], answers: Sequence[str]
) -> tuple[list[PromptItem], int]:
    """Each item with the model's answer as its one rejected response, less the answers equal
    to the target (no gradient: chosen and rejected would be one text); and how many those are."""
    kept = [replace(it, negatives=(), rejected=(" " + answer.strip(),))
            for it, answer in zip(items, answers, strict=True)
            if answer.strip() != it.chosen.strip()]  # fmt: skip
    return kept, len(items) - len(kept)


@register_method
class SPRec(LLMMethod):
    name, order, needs = METHOD, 5, "stages"
    summary = "self-play: the model's own greedy answers as DPO negatives, SFT and DPO per round"
    compared_with = ("sprec_sft",)
    #: False: only each iteration's SFT epoch (the control, :class:`SPRecSFT`)
    self_play: ClassVar[bool] = True

    @classmethod
    def check(cls, config: RunConfig) -> None:
        _iterations(config.loss_params)

    def prepare(self) -> None:
        llm, config = self.llm, self.run.config
        self.facts.summary["sft"] = llm.sft()
        loss = losses.get_loss("dpo", beta=BETA)
        iterations = _iterations(config.loss_params)
        dropped, seconds = [], 0.0
        for iteration in range(iterations):
            where = self.run.run_dir / f"iteration-{iteration}"
            items = [render(llm.ds, ex, config.seed, history_items=llm.settings.history_items)
                     for ex in iteration_examples(config, llm.ds, iteration)]  # fmt: skip
            pairs: list[PromptItem] = []
            if self.self_play:  # the answers of the model as the iteration starts
                pairs, equal = self_play_pairs(items, self._answers(items, where))
                dropped.append(equal)
            s = llm.settings
            sft = Stage(where / "sft", llm.stage_settings("sft", 1, s.sft_learning_rate),
                        llm.accelerator)  # fmt: skip
            summary = sft.fit(llm.model, len(items), self._sft_step(items), resume="auto",
                              progress=self.run.progress)  # fmt: skip
            seconds += summary["seconds"]
            if pairs:
                reference = self._reference(pairs, where)
                dpo = Stage(where / "dpo", llm.stage_settings("dpo", 1, s.learning_rate),
                            llm.accelerator)  # fmt: skip
                summary = dpo.fit(llm.model, len(pairs), self._dpo_step(pairs, reference, loss),
                                  extra={"loss": loss}, resume="auto",
                                  progress=self.run.progress)  # fmt: skip
                seconds += summary["seconds"]
        self.facts.timings["self_play_seconds"] = seconds
        if not self.self_play:
            self.facts.hparams = {"iterations": iterations}
        else:
            self.facts.hparams = {"iterations": iterations, "beta": BETA}
            self.facts.settings["answers_equal_to_target"] = dropped
        if any(dropped):
            self.facts.summary["note"] = (
                f"sprec: {sum(dropped)} answers equal to their target were dropped from the DPO "
                f"epochs ({dropped} by iteration); the released code keeps them without gradient"
            )
        llm.record_facts(self.facts)
        llm.model.eval()

    def _answers(self, items: list[PromptItem], where) -> list[str]:
        """The current model's greedy answers, kept so a resumed run reuses them."""
        path = where / "answers.json"
        if path.is_file():
            kept = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(kept, list) and len(kept) == len(items):
                return [str(a) for a in kept]
        answers = self.llm.generate(items).texts
        where.mkdir(parents=True, exist_ok=True)
        rundir.write_atomic(path, json.dumps(answers))
        return answers

    def _reference(self, pairs: list[PromptItem], where) -> torch.Tensor:
        """Log-probs of chosen and rejected under the model as the DPO epoch starts."""
        path = where / "reference.safetensors"
        logps = read_reference(path, len(pairs), 2)
        if logps is None:
            partial = self.llm.partial_journal(where / "reference.partial.jsonl")
            logps = self.llm.policy_logps(pairs, 1, journal=partial)
            write_reference(path, logps)
            discard_journal(partial)
        return logps

    def _sft_step(self, items: list[PromptItem]):
        llm: LLMRun = self.llm

        def step(rows: list[int]):
            prompt_ids, response_ids = llm.encode([items[i] for i in rows], 0)
            scores = score_responses(llm.model, prompt_ids, response_ids, pad_token_id=llm.pad)
            return -(scores.logps[:, 0] / scores.lengths[:, 0]).mean(), {}

        return step

    def _dpo_step(self, pairs: list[PromptItem], reference: torch.Tensor, loss):
        llm: LLMRun = self.llm

        def step(rows: list[int]):
            prompt_ids, response_ids = llm.encode([pairs[i] for i in rows], 1)
            scores = score_responses(llm.model, prompt_ids, response_ids, pad_token_id=llm.pad)
            ref = reference[rows].to(scores.logps.device)
            batch = losses.PreferenceBatch(
                chosen_logps=scores.logps[:, 0], rejected_logps=scores.logps[:, 1:],
                ref_chosen_logps=ref[:, 0], ref_rejected_logps=ref[:, 1:],
            )  # fmt: skip
            out = loss(losses.gather_batch(batch))
            return out.loss, {}

        return step


@register_method
class SPRecSFT(SPRec):
    """SPRec's control: its iterations' SFT epochs alone, on the same prompts (same seeds)."""

    name, order = "sprec_sft", 6
    summary = "SPRec's control: the SFT epochs of its iterations, on the same prompts, no DPO"
    compared_with = ()
    self_play = False
