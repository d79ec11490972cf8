"""Evaluating an LLM recommender on the 20-candidate test examples, in both protocol modes.

* ranking: every candidate's title (+EOS) is scored under the prompt with the packed scorer and
  the arg-max is the recommendation; always valid, also gives NDCG@k.
* generation (the papers' metric): greedy decoding of at most ``max_new_tokens`` tokens, judged
  by the substring rule of :func:`recbench.metrics.judge_generation`.
Both report popularity bias of the recommended item.

Given a :class:`~recbench.journal.Journal`, each mode appends every batch's results as it
finishes and, run again after a kill, reuses the batches already done.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from recbench import metrics
from recbench.batches import PromptItem, batched, candidate_texts
from recbench.data.dataset import Dataset, Example
from recbench.journal import Journal
from recbench.outcomes import Outcomes
from recbench.scoring import encode_pairs, score_responses


@torch.no_grad()
def rank_candidates(
    model,
    tokenizer,
    ds: Dataset,
    items: Sequence[PromptItem],
    *,
    batch_size: int = 4,
    max_prompt_tokens: int | None = None,
    progress: bool = True,
    journal: Journal | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-probability and token count of every candidate, each ``[N, 20]``."""
    was_training = model.training
    model.eval()
    batches, done = _resume(items, batch_size, journal)
    rows = [np.array(entry["logps"], dtype=np.float64) for entry in done]
    lengths = [np.array(entry["lengths"], dtype=np.int64) for entry in done]
    bar = tqdm(batches[len(done) :], desc="rank", disable=not progress, leave=False,
               initial=len(done), total=len(batches))  # fmt: skip
    for chunk in bar:
        started = time.perf_counter()
        prompt_ids, response_ids = encode_pairs(
            tokenizer,
            [item.prompt for item in chunk],
            [candidate_texts(ds, item.example) for item in chunk],
            add_bos=False,
            max_prompt_tokens=max_prompt_tokens,
        )
        scores = score_responses(model, prompt_ids, response_ids, pad_token_id=_pad(tokenizer))
        rows.append(scores.logps.double().cpu().numpy())
        lengths.append(scores.lengths.cpu().numpy().astype(np.int64))
        if journal is not None:
            journal.append(_keys(chunk), time.perf_counter() - started,
                           logps=rows[-1].tolist(), lengths=lengths[-1].tolist())  # fmt: skip
    model.train(was_training)
    return np.concatenate(rows, axis=0), np.concatenate(lengths, axis=0)


def ranking_report(
    ds: Dataset,
    items: Sequence[PromptItem],
    scores: np.ndarray,
    lengths: np.ndarray,
    outcomes: Outcomes | None = None,
) -> dict:
    """:func:`scores_report` of prompt items (their examples)."""
    return scores_report(ds, [item.example for item in items], scores, lengths, outcomes)


def scores_report(
    ds: Dataset,
    examples: Sequence[Example],
    scores: np.ndarray,
    lengths: np.ndarray | None = None,
    outcomes: Outcomes | None = None,
) -> dict:
    """Ranking metrics of candidate scores, the same for every method: HR@1, HR@k, NDCG@k
    (k = 5, 10) and the top-1 popularity bias; the arg-max (first maximum) is the pick.

    ``lengths`` (an LLM's token counts) adds ``hr@1_per_token``, which ranks by the mean
    log-probability per token instead: a diagnostic of how much the summed score's preference
    for short titles costs.  Each example's target rank is added to ``outcomes`` when given.
    """
    scores = np.asarray(scores)
    target_pos = np.array([example.target_position for example in examples])
    if outcomes is not None:
        keys = [example.key for example in examples]
        outcomes.add_ranks(keys, metrics.target_ranks(scores, target_pos))
    out = metrics.ranking_metrics(scores, target_pos)
    if lengths is not None:
        per_token = metrics.ranking_metrics(scores / np.maximum(lengths, 1), target_pos)
        out["hr@1_per_token"] = per_token["hr@1"]
    picks = [int(ex.candidates[int(i)]) for ex, i in zip(examples, scores.argmax(1), strict=True)]
    out.update(metrics.popularity_bias(picks, [ex.history for ex in examples], ds.popularity()))
    return out


@torch.no_grad()
def generate_answers(
    model,
    tokenizer,
    items: Sequence[PromptItem],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 20,
    max_prompt_tokens: int | None = None,
    progress: bool = True,
    journal: Journal | None = None,
) -> list[str]:
    """Greedy continuations of every prompt (only the new tokens, decoded)."""
    was_training = model.training
    model.eval()
    pad = _pad(tokenizer)
    batches, done = _resume(items, batch_size, journal)
    answers: list[str] = [text for entry in done for text in entry["answers"]]
    bar = tqdm(batches[len(done) :], desc="generate", disable=not progress, leave=False,
               initial=len(done), total=len(batches))  # fmt: skip
    for chunk in bar:
        started = time.perf_counter()
        prompt_ids, _ = encode_pairs(
            tokenizer, [i.prompt for i in chunk], [[] for _ in chunk], add_bos=False,
            max_prompt_tokens=max_prompt_tokens,
        )  # fmt: skip
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompt_ids])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids])
        device = next(model.parameters()).device
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
        )
        new_tokens = output[:, width:]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        answers.extend(texts)
        if journal is not None:
            journal.append(_keys(chunk), time.perf_counter() - started, answers=texts)
    model.train(was_training)
    return answers


def generation_report(
    ds: Dataset,
    items: Sequence[PromptItem],
    answers: Sequence[str],
    outcomes: Outcomes | None = None,
) -> dict:
    """:func:`answers_report` of prompt items (their examples)."""
    return answers_report(ds, [item.example for item in items], answers, outcomes)


def answers_report(
    ds: Dataset,
    examples: Sequence[Example],
    answers: Sequence[str],
    outcomes: Outcomes | None = None,
) -> dict:
    """Generation metrics of free-text answers (each judge's verdict added to ``outcomes``)."""
    selections = [
        metrics.judge_generation(
            text,
            example.candidates,
            [ds.item_names[i] for i in example.candidates],
            example.target,
        )
        for example, text in zip(examples, answers, strict=True)
    ]
    if outcomes is not None:
        outcomes.add_selections([example.key for example in examples], selections)
    out = metrics.generation_metrics(selections)
    out.update(
        metrics.popularity_bias(
            [s.item for s in selections], [ex.history for ex in examples], ds.popularity()
        )
    )
    return out


def _keys(chunk: Sequence[PromptItem]) -> list[str]:
    return [item.example.key for item in chunk]


def _resume(
    items: Sequence[PromptItem], batch_size: int, journal: Journal | None
) -> tuple[list[list[PromptItem]], list[dict]]:
    """The batches of ``items`` and the journal's entries for the first of them."""
    batches = [list(chunk) for chunk in batched(items, batch_size)]
    done = journal.resume([_keys(chunk) for chunk in batches]) if journal is not None else []
    return batches, done


def _pad(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
