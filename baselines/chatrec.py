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
import hashlib
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from baselines.evaluation import CandidateSet, candidate_scores
from recbench.auxiliary import load_sasrec
from recbench.batches import PromptItem
from recbench.config import MAX_NEGATIVES
from recbench.data import load_dataset
from recbench.data.dataset import Dataset
from recbench.errors import UserError
from recbench.metrics import ranking_metrics
from recbench.pipeline import LLMRun

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


def run(config: RunConfig, progress: bool = True) -> dict[str, Any]:
    """``recbench run --baseline chatrec``: hinted prompts, base model, both evaluation modes."""
    if config.checkpoint is not None:
        raise UserError("chatrec's recommender is chosen with --aux-checkpoint, not --checkpoint")
    k = _hint_k(config.loss_params)
    # NAPO's choice of SASRec (checked before the LLM loads); no loss, so the "last" state
    recommender, recommender_id = load_sasrec(load_dataset(config.dataset), config)
    llm = LLMRun(config, progress=progress)
    key = json.dumps([llm.run_key, k, recommender_id])
    run_id = f"{config.dataset}-{METHOD}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def work(output: dict[str, Any]) -> list[dict]:
        started = time.perf_counter()
        llm.eval_items, scores = with_hints(llm.ds, llm.eval_items, recommender, k)
        llm.timings["recommender_seconds"] = time.perf_counter() - started
        evaluation = output["evaluation"] = llm.evaluate()
        target = np.array([it.example.target_position for it in llm.eval_items])
        evaluation["hint"] = ranking_metrics(scores, target, ks=(k,))
        hparams = {"k": k, "recommender": recommender_id}
        return llm.records(METHOD, FAMILY, hparams, evaluation, run_id)

    return llm.execute(run_id, work)
