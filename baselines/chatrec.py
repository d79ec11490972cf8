"""Chat-Rec: the untrained LLM, prompted with a traditional recommender's suggestions.

Kept from Chat-Rec (Gao et al., 2023, "Chat-REC: Towards Interactive and Explainable
LLMs-Augmented Recommender System"): a conventional recommender narrows the choice and the LLM,
without any training, makes the final pick from a prompt that carries the user's history, the
candidate items and the recommender's suggestions (in-context augmentation).

Simplified: the candidates are the protocol's shared 20 (not the recommender's own retrieval), the
recommender is the SASRec NAPO uses (``--aux-checkpoint``: recbench-trained by default, released
for steam, released in the smoke profile), its suggestions are its top :data:`HINT_K` candidates,
added as one line to recbench's normal prompt, and there is no multi-turn dialogue, user profile
or explanation.  Both evaluation modes run through :meth:`recbench.pipeline.LLMRun.evaluate`,
so the only difference from ``zero_shot`` is the hint line.  The recommender's own ranking of the
same examples is recorded in mode ``hint`` (HR@1, HR@k: how often the target is suggested).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recbench.auxiliary import check_sasrec, choice_for, load_sasrec
from recbench.batches import PromptItem
from recbench.config import MAX_NEGATIVES
from recbench.data import load_dataset
from recbench.data.dataset import Dataset, Example
from recbench.errors import UserError
from recbench.methods import Answers, Scores, register_method
from recbench.metrics import ranking_metrics
from recbench.pipeline import LLMMethod
from recbench.seqrec.evaluation import CandidateSet, candidate_scores

if TYPE_CHECKING:
    from recbench.config import RunConfig

METHOD = "chatrec"
FAMILY = "llm_baseline"
#: How many of the recommender's best candidates the prompt names (``--param k=N`` overrides).
HINT_K = 5
HINT_LINE = "A recommender system trained on many users suggests, best first: {titles}."
ANSWER = "Answer:"  # every recbench template ends with it; the hint goes just before


def top_candidates(
    scores: np.ndarray, candidates: Sequence[Sequence[int]], k: int
) -> list[tuple[int, ...]]:
    """The ``k`` best candidate ids of each example, best first (ties: candidate order)."""
    order = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]
    return [tuple(int(cands[j]) for j in row) for cands, row in zip(candidates, order, strict=True)]


def hinted_prompt(prompt: str, titles: Sequence[str]) -> str:
    """``prompt`` with a line naming the suggested titles inserted before its final "Answer:"."""
    hint = HINT_LINE.format(titles=", ".join(titles))
    head, found, tail = prompt.rpartition(ANSWER)
    if not found:
        return f"{prompt}\n{hint}"
    return f"{head.rstrip()}\n{hint}\n{ANSWER}{tail}"


def with_hints(
    ds: Dataset, items: Sequence[PromptItem], model: torch.nn.Module, k: int = HINT_K
) -> tuple[list[PromptItem], np.ndarray]:
    """The items with hinted prompts, and the recommender's ``[N, 20]`` candidate scores."""
    scores = candidate_scores(model, CandidateSet.from_examples([it.example for it in items]))
    hints = top_candidates(scores, [it.example.candidates for it in items], k)
    names = ds.item_names
    hinted = [
        dataclasses.replace(it, prompt=hinted_prompt(it.prompt, [names[i] for i in hint]))
        for it, hint in zip(items, hints, strict=True)
    ]
    return hinted, scores


def _hint_k(params: dict[str, Any]) -> int:
    extra = sorted(set(params) - {"k"})
    if extra:
        raise UserError(f"chatrec: unknown --param {', '.join(extra)}; known: k")
    k = params.get("k", HINT_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_NEGATIVES + 1:
        raise UserError(f"chatrec: --param k must be an integer from 1 to 20, got {k}")
    return k


@register_method
class ChatRec(LLMMethod):
    """``recbench run --baseline chatrec``: hinted prompts, base model, both evaluation modes."""

    name, order = METHOD, 1
    summary = "zero-shot LLM with SASRec's top suggestions in the prompt (ChatRec)"

    @classmethod
    def check(cls, config: RunConfig) -> None:
        if config.checkpoint is not None:
            raise UserError(
                "chatrec's recommender is chosen with --aux-checkpoint, not --checkpoint"
            )
        _hint_k(config.loss_params)
        check_sasrec(load_dataset(config.dataset), config)

    @classmethod
    def defining_settings(cls, config: RunConfig, ds: Dataset) -> dict[str, Any]:
        return {**super().defining_settings(config, ds), "k": _hint_k(config.loss_params),
                "recommender": choice_for(ds, config)}  # fmt: skip

    def prepare(self) -> None:
        config = self.run.config
        self.k = _hint_k(config.loss_params)
        # NAPO's choice of SASRec; no loss, so the "last" state
        self.recommender, recommender_id = load_sasrec(self.run.dataset, config)
        self.facts.hparams = {"k": self.k, "recommender": recommender_id}
        self.llm.record_facts(self.facts)
        self._hinted: dict[tuple[str, ...], list[PromptItem]] = {}

    def _items(self, examples: Sequence[Example]) -> list[PromptItem]:
        """The hinted prompts (the recommender's ranking computed once, its metrics recorded as
        mode ``hint``: how often the target is among its suggestions)."""
        key = tuple(ex.key for ex in examples)
        if key not in self._hinted:
            started = time.perf_counter()
            items, scores = with_hints(self.run.dataset, self.llm.eval_items(examples),
                                       self.recommender, self.k)  # fmt: skip
            self.facts.timings["recommender_seconds"] = time.perf_counter() - started
            target = np.array([ex.target_position for ex in examples])
            self.facts.extra_modes["hint"] = ranking_metrics(scores, target, ks=(self.k,))
            self._hinted[key] = items
        return self._hinted[key]

    def score(self, examples: Sequence[Example]) -> Scores:
        return self.llm.score(self._items(examples))

    def generate(self, examples: Sequence[Example]) -> Answers:
        return self.llm.generate(self._items(examples))
