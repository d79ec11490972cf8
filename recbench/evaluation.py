"""Evaluating an LLM recommender on the 20-candidate test examples, in both protocol modes.

* ranking: every candidate's title (+EOS) is scored under the prompt with the packed scorer and
  the arg-max is the recommendation; always valid, also gives NDCG@k.
* generation (the papers' metric): greedy decoding of at most ``max_new_tokens`` tokens, judged
  by the substring rule of :func:`recbench.metrics.judge_generation`.
Both report popularity bias of the recommended item.

Given a :class:`~recbench.journal.Journal`, each mode appends every batch's results as it
finishes and, run again after a kill, reuses the batches already done.

Ranking can also be *screened* (``eval_precision="screened"``, :func:`screened_rank`): a bf16
pass over a merged copy of the model scores every candidate, and only the examples whose top two
candidates are closer than :data:`SCREEN_MARGIN` are scored again in fp32.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from recbench import metrics
from recbench.batches import PromptItem, batched, candidate_texts
from recbench.data.dataset import Dataset, Example
from recbench.decoding import score_and_generate
from recbench.journal import Journal
from recbench.outcomes import Outcomes
from recbench.scoring import ResponseScores, encode_pairs, score_responses


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
    pad = _pad(tokenizer)

    def score(prompt_ids, response_ids) -> tuple[ResponseScores, dict]:
        return score_responses(model, prompt_ids, response_ids, pad_token_id=pad), {}

    values, lengths, _ = _ranking_pass(
        model, tokenizer, ds, items, score, batch_size=batch_size,
        max_prompt_tokens=max_prompt_tokens, progress=progress, journal=journal, desc="rank",
    )  # fmt: skip
    return values, lengths


@dataclass
class RankedAndAnswered:
    """:func:`rank_and_generate`'s result: the ranking's scores and the greedy answers, and
    the seconds this call spent decoding (journalled batches count their recorded time)."""

    values: np.ndarray
    lengths: np.ndarray
    answers: list[str]
    decode_seconds: float


def rank_and_generate(
    model,
    tokenizer,
    ds: Dataset,
    items: Sequence[PromptItem],
    *,
    batch_size: int = 4,
    max_new_tokens: int = 20,
    max_prompt_tokens: int | None = None,
    progress: bool = True,
    journal: Journal | None = None,
) -> RankedAndAnswered:
    """:func:`rank_candidates` and :func:`generate_answers` in one pass: each batch's greedy
    answers continue the prompts of its packed ranking forward (:mod:`recbench.decoding`)."""
    pad, eos = _pad(tokenizer), _eos_ids(model, tokenizer)

    def score(prompt_ids, response_ids) -> tuple[ResponseScores, dict]:
        scores, tokens, seconds = score_and_generate(
            model, prompt_ids, response_ids, max_new_tokens=max_new_tokens, eos_token_id=eos,
            pad_token_id=pad,
        )  # fmt: skip
        texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return scores, {"answers": texts, "decode_seconds": seconds}

    values, lengths, extras = _ranking_pass(
        model, tokenizer, ds, items, score, batch_size=batch_size,
        max_prompt_tokens=max_prompt_tokens, progress=progress, journal=journal,
        desc="rank+generate",
    )  # fmt: skip
    answers = [text for extra in extras for text in extra["answers"]]
    decode_seconds = sum(extra["decode_seconds"] for extra in extras)
    return RankedAndAnswered(values, lengths, answers, decode_seconds)


#: What a ranking journal entry holds besides the results a pass adds.
_RANKING_ENTRY = frozenset({"keys", "seconds", "logps", "lengths"})


def _ranking_pass(
    model,
    tokenizer,
    ds: Dataset,
    items: Sequence[PromptItem],
    score: Callable[[list, list], tuple[ResponseScores, dict]],
    *,
    batch_size: int,
    max_prompt_tokens: int | None,
    progress: bool,
    journal: Journal | None,
    desc: str,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Every batch's candidate scores through ``score``, journalled and resumed: the scores,
    the token counts and, per batch, the other results ``score`` gave (journalled with them)."""
    was_training = model.training
    model.eval()
    batches, done = _resume(items, batch_size, journal)
    rows = [np.array(entry["logps"], dtype=np.float64) for entry in done]
    lengths = [np.array(entry["lengths"], dtype=np.int64) for entry in done]
    extras = [{k: v for k, v in entry.items() if k not in _RANKING_ENTRY} for entry in done]
    bar = tqdm(batches[len(done) :], desc=desc, disable=not progress, leave=False,
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
        scores, extra = score(prompt_ids, response_ids)
        rows.append(scores.logps.double().cpu().numpy())
        lengths.append(scores.lengths.cpu().numpy().astype(np.int64))
        extras.append(extra)
        if journal is not None:
            journal.append(_keys(chunk), time.perf_counter() - started,
                           logps=rows[-1].tolist(), lengths=lengths[-1].tolist(),
                           **extra)  # fmt: skip
    model.train(was_training)
    return np.concatenate(rows, axis=0), np.concatenate(lengths, axis=0), extras


#: Screened ranking's margin in summed log-probability (nats, the units ranking compares): an
#: example whose bf16 top candidate leads the runner-up by less than this is scored again in
#: fp32.  bf16 can change an example's pick only where its error on the difference between the
#: top candidate and another one exceeds their bf16 gap, so the margin bounds that error.
#: Chosen on movielens *validation* examples outside those the agreement is measured on (never
#: on test; ``benchmarks/bench_fast_ranking.py --calibrate 150 --margin auto``, study profile
#: prompts, its SFT stage with ``sft_examples=256``): 2x the largest error seen between the top
#: candidate and any candidate within a nat of it (every error seen on any pair was under a nat,
#: so a candidate further away cannot swap with the top; far, improbable titles carry the
#: largest errors), rounded up to 0.05: 2 x 0.187 -> 0.4 on 150 examples, where bf16 alone
#: changed 3 picks, each with a bf16 gap under 0.03
#: (``benchmarks/results/fast-ranking-movielens-val.json``).  An empirical bound, not a
#: guarantee; changing it changes what ``"screened"`` evaluations give, so a new rule gets
#: another ``eval_precision`` name rather than a new number here.
SCREEN_MARGIN = 0.4


@dataclass
class ScreenedRanking:
    """Scores of a screened ranking: ``values`` and ``lengths`` as :func:`rank_candidates`
    returns them, the bf16 row replaced by its fp32 row where ``rescored``."""

    values: np.ndarray
    lengths: np.ndarray
    rescored: np.ndarray  # [N] bool: the example was scored again in fp32
    screen_values: np.ndarray  # the bf16 scores of every example (a diagnostic)
    seconds: dict[str, float] = field(default_factory=dict)  # "screen" and "rescore" passes

    @property
    def rescored_fraction(self) -> float:
        """The share of examples scored twice: what the screen costs on top of bf16."""
        return float(self.rescored.mean()) if self.rescored.size else 0.0


def top_two_gap(scores: np.ndarray) -> np.ndarray:
    """Top-1 minus runner-up score of each row (``inf`` where fewer than two are finite), in
    the scores' own units: how far bf16 would have to be off to change the pick."""
    finite = np.where(np.isfinite(scores), scores, -np.inf)
    if finite.shape[1] < 2:
        return np.full(finite.shape[0], np.inf)
    top2 = -np.sort(-finite, axis=1)[:, :2]
    with np.errstate(invalid="ignore"):
        gap = top2[:, 0] - top2[:, 1]
    return np.where(np.isfinite(top2[:, 1]), gap, np.inf)


def needs_rescoring(scores: np.ndarray, margin: float) -> np.ndarray:
    """Rows whose top two candidates are closer than ``margin`` (a tie at 0 is not, so margin 0
    keeps every bf16 pick)."""
    check_margin(margin)
    return top_two_gap(scores) < margin


def check_margin(margin: float) -> None:
    """A margin is a score difference >= 0 (``inf``: re-score all); a NaN or negative one
    would route every example silently one way."""
    if not isinstance(margin, int | float) or isinstance(margin, bool):
        raise TypeError(f"screening margin must be a number, got {margin!r}")
    if not margin >= 0:  # also NaN
        raise ValueError(f"screening margin must be >= 0 (inf: re-score all), got {margin!r}")


def bf16_scoring_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for bf16 scoring only: the LoRA merged into the base weights and
    every linear weight stored in bf16, so autocast neither re-casts the frozen weights on every
    call nor runs the adapter's two extra matmuls.  Embeddings and norms stay fp32 (a tied LM
    head gets its own bf16 weight), so the residual stream stays fp32 as under autocast.  A copy,
    not an in-place merge: un-merging is not exact in floating point, and the model is trained
    and evaluated again afterwards.  The copy of an fp32 model costs its memory once more while
    it is made, about half of it (bf16 linears, fp32 embeddings) while the screen runs."""
    fast = copy.deepcopy(model)
    merge = getattr(fast, "merge_and_unload", None)
    if callable(merge):
        fast = merge()
    for module in fast.modules():
        if isinstance(module, nn.Linear):
            module.weight = nn.Parameter(module.weight.detach().to(torch.bfloat16), False)
            if module.bias is not None:
                module.bias = nn.Parameter(module.bias.detach().to(torch.bfloat16), False)
    return fast.eval()


def _device_type(model: nn.Module) -> str:
    return next(model.parameters()).device.type


def screened_rank(
    model,
    tokenizer,
    ds: Dataset,
    items: Sequence[PromptItem],
    *,
    margin: float = SCREEN_MARGIN,
    batch_size: int = 4,
    max_prompt_tokens: int | None = None,
    progress: bool = True,
    journal: Journal | None = None,
    rescore_journal: Callable[[Sequence[PromptItem]], Journal | None] | None = None,
) -> ScreenedRanking:
    """:func:`rank_candidates` at about bf16's cost with fp32's decisions.

    A bf16 pass (:func:`bf16_scoring_copy`, autocast) scores every candidate; the examples whose
    top two candidates are closer than ``margin`` (:func:`needs_rescoring`) are scored again by
    ``model`` itself in fp32, and their fp32 scores replace the bf16 ones.  ``margin=0`` gives
    bf16's picks, ``margin=inf`` fp32's.  ``journal`` records the bf16 pass; ``rescore_journal``
    gives the fp32 pass's journal for the examples it re-scores.
    """
    check_margin(margin)
    args = {"batch_size": batch_size, "max_prompt_tokens": max_prompt_tokens}
    args["progress"] = progress
    started = time.perf_counter()
    fast = bf16_scoring_copy(model)
    with torch.autocast(_device_type(model), dtype=torch.bfloat16):
        screen, lengths = rank_candidates(fast, tokenizer, ds, items, journal=journal, **args)
    del fast
    seconds = {"screen": time.perf_counter() - started}
    rescored = needs_rescoring(screen, margin)
    rows = np.flatnonzero(rescored)
    values = screen.copy()
    started = time.perf_counter()
    if rows.size:
        subset = [items[i] for i in rows]
        again = rescore_journal(subset) if rescore_journal is not None else None
        with torch.autocast(_device_type(model), enabled=False):
            exact, exact_lengths = rank_candidates(
                model, tokenizer, ds, subset, journal=again, **args
            )
        values[rows] = exact
        lengths = lengths.copy()
        lengths[rows] = exact_lengths
    seconds["rescore"] = time.perf_counter() - started
    return ScreenedRanking(values, lengths, rescored, screen, seconds)


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


def _eos_ids(model, tokenizer) -> list[int]:
    """The ids greedy decoding stops at: the model's generation config's, where ``generate``
    finds them, else the tokenizer's EOS."""
    config = getattr(model, "generation_config", None)
    configured = getattr(config, "eos_token_id", None)
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    return ids or [tokenizer.eos_token_id]


def _pad(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
