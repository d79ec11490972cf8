"""Greedy answers that continue the ranking pass's prompts instead of encoding them again.

Evaluation ranks the 20 candidate titles of a prompt with one packed forward
(:mod:`recbench.scoring`) and then, in generation mode, decodes a greedy answer to the same
prompt.  Encoding the prompt (about 300 tokens) is almost all of generation's cost: the answer
is a title of a few tokens.  The packed forward already holds every prompt's keys and values
(a prompt position sees only the prompt before it), so :func:`score_and_generate` keeps its
cache and decodes from it: each new token attends to its own prompt's positions
``0 .. P-1`` and to the tokens generated so far, never to the candidate titles packed after
the prompt, and takes position ``P + t`` as it would after the prompt alone.

The answers are those of ordinary greedy decoding (``model.generate`` with ``do_sample=False``)
up to float rounding: the prompt's keys come from another batch shape, so a near tie between two
next tokens can fall the other way (``benchmarks/bench_generation_cache.py`` counts how often).
Like ``generate``, a row stops at its first EOS, which is kept out of the decoded text, and
decoding stops when every row has stopped or ``max_new_tokens`` are out.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from recbench.scoring import (
    PackedForward,
    ResponseScores,
    _packed_parts,
    score_responses,
)

__all__ = ["ScoresAndAnswers", "score_and_generate"]


class ScoresAndAnswers(NamedTuple):
    """Every response's packed score, each prompt's greedy token ids (EOS left out) and the
    seconds spent decoding after the packed forward."""

    scores: ResponseScores
    tokens: list[list[int]]
    decode_seconds: float


@torch.no_grad()
def score_and_generate(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[Sequence[int]]],
    *,
    max_new_tokens: int,
    eos_token_id: int | Sequence[int],
    pad_token_id: int = 0,
) -> ScoresAndAnswers:
    """Packed scores of every response (as :func:`recbench.scoring.score_responses`) and each
    prompt's greedy continuation of at most ``max_new_tokens`` token ids (without the EOS;
    ``eos_token_id`` may name several, as a generation config can)."""
    eos = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    kept: list[PackedForward] = []
    scores = score_responses(model, prompt_ids, response_ids, pad_token_id=pad_token_id,
                             keep_forwards=kept)  # fmt: skip
    started = time.perf_counter()
    answers: list[list[int] | None] = [None] * len(prompt_ids)
    parts = _packed_parts(model, 0)
    for forward in kept:
        lengths = [len(prompt_ids[row.example]) for row in forward.rows]
        for row, tokens in zip(forward.rows, _decode(parts, forward, lengths, max_new_tokens,
                                                     eos), strict=True):  # fmt: skip
            if answers[row.example] is not None:
                raise ValueError(f"example {row.example} was split over several packed rows")
            answers[row.example] = tokens
    missing = [i for i, a in enumerate(answers) if a is None]
    if missing:
        raise ValueError(f"examples {missing} have no response to score, hence no packed row")
    tokens = [a for a in answers if a is not None]
    return ScoresAndAnswers(scores, tokens, time.perf_counter() - started)


def _decode(
    parts,
    forward: PackedForward,
    prompt_lengths: list[int],
    max_new_tokens: int,
    eos: list[int],
) -> list[list[int]]:
    """Greedy tokens of each row of one packed forward, from its cache."""
    device = forward.hidden.device
    prompts = torch.tensor(prompt_lengths, dtype=torch.long, device=device)
    rows = torch.arange(len(prompt_lengths), device=device)
    last = forward.hidden[rows, prompts - 1]  # the hidden state after each row's prompt
    token = parts.lm_head(last).float().argmax(-1)
    out: list[list[int]] = [[] for _ in prompt_lengths]
    stopped = [False] * len(prompt_lengths)
    cache = forward.cache
    cache_name = _cache_argument(parts.decoder)
    for step in range(max_new_tokens):
        for b, value in enumerate(token.tolist()):
            stopped[b] = stopped[b] or value in eos
            if not stopped[b]:
                out[b].append(value)
        if all(stopped) or step == max_new_tokens - 1:
            break
        keys = torch.arange(forward.seq_len + step + 1, device=device)
        # a row's own prompt, then the tokens generated after the packed sequence
        allowed = (keys[None, :] < prompts[:, None]) | (keys[None, :] >= forward.seq_len)
        mask = allowed[:, None, None, :]
        if parts.attn_implementation != "sdpa":  # eager adds the mask to the scores
            mask = torch.zeros(mask.shape, dtype=parts.dtype, device=device).masked_fill(
                ~mask, torch.finfo(parts.dtype).min
            )
        result = parts.decoder(
            input_ids=token[:, None], attention_mask=mask, position_ids=(prompts + step)[:, None],
            use_cache=True, **{cache_name: cache},
        )  # fmt: skip
        hidden = result.last_hidden_state if hasattr(result, "last_hidden_state") else result[0]
        token = parts.lm_head(hidden[:, -1]).float().argmax(-1)
    return out


def _cache_argument(decoder: nn.Module) -> str:
    """The decoder's name for a key/value cache argument (``cache`` in newer transformers,
    ``past_key_values`` before)."""
    parameters = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
