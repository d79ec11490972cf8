"""Candidate scoring: summed log-probabilities of responses given a prompt.

Every preference loss in recbench needs, for each prompt, ``log p(response | prompt)`` of several
responses (chosen + negatives in training, all candidates in evaluation).  Those responses share
one long prompt (~300-400 tokens of history and candidate titles) and are themselves short
(a title plus EOS), so the obvious way of scoring them -- one ``prompt + response`` sequence per
response -- spends almost all of its compute re-encoding the same prompt.  This module offers
two paths with the same API:

``plain`` (the reference)
    One right-padded sequence ``prompt + response`` per pair, the model's ordinary causal forward
    (``model(input_ids, attention_mask).logits``), float32 log-softmax, and the sum over the
    response tokens.  Deliberately naive so it can serve as the independent check of ``packed``.

``packed`` (the default)
    One row per example: ``[prompt, resp_1[:-1], resp_2[:-1], ...]``.  A block attention mask
    lets each response token see the whole prompt and the earlier tokens of its own response,
    never another response; the position ids of every response restart at ``P`` (the prompt
    length), so each response sees exactly the context it would see in ``plain``.  The last
    prompt position predicts the first token of every response, so its hidden state is gathered
    once per response.  The final token of a response (its EOS) is only ever a *target*: nothing
    after it is scored, so it is not fed to the model at all.  The cost is therefore
    ``P + sum(c_k - 1)`` tokens per example instead of ``sum(P + c_k)``.  The LM head and the
    log-softmax run only on the hidden states that predict response tokens, never on the full
    ``[B, L, vocab]`` logits.  The results equal ``plain`` up to float rounding, in values and
    gradients.

What a model needs for the ``packed`` path
------------------------------------------
* A decoder reachable with ``get_decoder()`` (or, for a peft ``PeftModel``, through
  ``get_base_model()``; LoRA layers are injected into the base model's modules, so they stay
  active) whose ``forward(input_ids=, attention_mask=, position_ids=, use_cache=)`` returns the
  final (normed) hidden states, and an LM head from ``get_output_embeddings()`` that maps them
  to logits with no further transformation (models with logit soft-capping or logit scaling
  are refused).
* An attention implementation that takes an explicit 4D mask.  In transformers 5.x
  ``masking_utils.create_causal_mask`` returns any 4D ``attention_mask`` *unchanged* (it also
  skips its packed-sequence detection from ``position_ids``), and the attention function then
  receives it as is:

  - ``eager`` *adds* the mask to the attention scores, so it must be an additive float mask
    (0 = attend, ``finfo(dtype).min`` = blocked) of shape ``[B, 1, Q, K]``.  A boolean mask
    would silently be added as 0/1 and give wrong results.
  - ``sdpa`` forwards it to ``torch.nn.functional.scaled_dot_product_attention``, which takes a
    boolean mask (True = attend) of shape ``[B, 1, Q, K]``; a boolean mask also avoids dtype
    mismatches under autocast.  A custom mask disables the ``is_causal`` fast path, which is
    why this module builds the causal structure itself.
  - flash-attention kernels ignore 4D masks (they only understand padding / packed
    ``position_ids``, which cannot express a shared prompt), and ``flex_attention`` expects a
    ``BlockMask``; these and any other implementation are refused with
    :class:`PackedScoringUnsupportedError` -- use ``mode="plain"`` or load the model with
    ``attn_implementation="sdpa"``.

  Padding query rows are allowed to attend to themselves so that no softmax row is fully
  masked (a fully masked row can produce NaNs whose gradients would poison the backward pass
  even though the padded outputs are discarded).
* No sliding-window attention shorter than the longest ``prompt + response`` (the window would
  be applied by ``plain`` but not by the custom mask), and no prompt-learning peft method
  (prefix/prompt tuning adds virtual tokens in ``PeftModel.forward``, which is bypassed).

Both paths compute the log-softmax in float32 even when the model runs in bf16/fp16, and both
can bound the work per forward call with ``max_tokens_per_forward``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.utils.checkpoint
from torch import nn

from recbench.errors import ModelError

ScoringMode = Literal["packed", "plain"]

#: Attention implementations known to honour a custom 4D mask passed as ``attention_mask``.
PACKED_ATTENTION_IMPLEMENTATIONS: tuple[str, ...] = ("eager", "sdpa")

# Config attributes of models whose causal-LM forward transforms the LM-head output further; the
# packed path applies the LM head itself and would silently skip that step.
_LOGIT_TRANSFORM_ATTRS: tuple[str, ...] = (
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
)

__all__ = [
    "PACKED_ATTENTION_IMPLEMENTATIONS",
    "PackedForward",
    "PackedScoringUnsupportedError",
    "ResponseScores",
    "ScoringMode",
    "check_packed_support",
    "encode_pairs",
    "score_responses",
]


class PackedScoringUnsupportedError(ModelError):
    """The model cannot run the packed path; the message says why and what to do instead."""


@dataclass(frozen=True)
class ResponseScores:
    """Scores of ``m`` candidate responses for each of ``b`` examples.

    Examples may have different numbers of responses; the result is padded to the largest
    number ``m``, and ``mask`` marks the real entries.  Padded entries have ``logps == -inf``
    (so ``logsumexp``/softmax over candidates ignore them) and ``lengths == 0``.

    Attributes:
        logps: float32 ``[b, m]``, summed log-probability of each response's tokens (EOS
            included, prompt excluded); differentiable w.r.t. the model parameters.
        lengths: long ``[b, m]``, number of scored tokens of each response.
        mask: bool ``[b, m]``, True where example ``i`` has a response ``k``.
    """

    logps: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor


@dataclass(frozen=True)
class PackedForward:
    """What one forward call of the packed path computed, kept for :mod:`recbench.decoding`.

    Row ``b`` of the call holds example ``rows[b].example``: its prompt at positions
    ``0 .. P-1``, then its responses.  ``cache`` holds every layer's keys and values of all
    ``seq_len`` positions of every row, and ``hidden`` the final hidden states ``[B, seq_len,
    H]``.  A prompt position sees only the prompt before it (the block mask), so its keys and
    values are those an ordinary causal forward of the prompt alone gives: a greedy
    continuation of the prompt can start from them without encoding the prompt again.
    """

    rows: tuple[_PackedRow, ...]
    seq_len: int
    cache: Any
    hidden: torch.Tensor


# --------------------------------------------------------------------------------------------
# Tokenisation
# --------------------------------------------------------------------------------------------


def encode_pairs(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[Sequence[str]],
    *,
    add_bos: bool,
    max_prompt_tokens: int | None = None,
) -> tuple[list[list[int]], list[list[list[int]]]]:
    """Tokenise prompts and their candidate responses separately, as :func:`score_responses` wants.

    Prompt and response are tokenised on their own and concatenated as ids (the TRL DPO
    convention), so a response always has the same ids whatever prompt it follows, and the
    prompt/response boundary is exact.  Responses are tokenised without special tokens and end
    with ``tokenizer.eos_token_id``, which is scored: the model must learn to *stop* after the
    title.  The prompt gets ``bos_token_id`` in front when ``add_bos`` is set and the tokenizer
    has one (leave it off when the prompt text already comes from a chat template that starts
    with its own special tokens).  A prompt longer than ``max_prompt_tokens`` loses tokens on the
    LEFT -- the oldest history, keeping the instruction and candidates at the end -- while the
    BOS token, if added, is kept and counts towards the limit.

    Returns:
        ``(prompt_ids, response_ids)``: ``prompt_ids[i]`` is a list of ids and
        ``response_ids[i][k]`` the ids of response ``k`` of example ``i``.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} response lists")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos_token_id; responses must end with EOS")
    if max_prompt_tokens is not None and max_prompt_tokens < 1:
        raise ValueError(f"max_prompt_tokens must be >= 1, got {max_prompt_tokens}")
    bos = tokenizer.bos_token_id if add_bos else None

    prompt_ids: list[list[int]] = []
    if prompts:
        encoded = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        for ids in encoded:
            head = [bos] if bos is not None else []
            if max_prompt_tokens is not None:
                keep = max(max_prompt_tokens - len(head), 0)
                ids = ids[max(len(ids) - keep, 0) :]
            prompt_ids.append(head + list(ids))

    flat = [text for group in responses for text in group]
    flat_ids = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    response_ids: list[list[list[int]]] = []
    pos = 0
    for group in responses:
        response_ids.append([list(ids) + [eos] for ids in flat_ids[pos : pos + len(group)]])
        pos += len(group)
    return prompt_ids, response_ids


# --------------------------------------------------------------------------------------------
# Model introspection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PackedParts:
    decoder: nn.Module
    lm_head: nn.Module
    attn_implementation: str
    dtype: torch.dtype
    device: torch.device


def _unwrap_peft(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (adapter layers stay injected and active)."""
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        raise PackedScoringUnsupportedError(
            "packed scoring cannot run a prompt-learning peft model (its virtual tokens are "
            "added in PeftModel.forward); use mode='plain'"
        )
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _uses_sliding_window(config: Any) -> int | None:
    """The sliding-window size if any layer of the model uses one, else None."""
    window = getattr(config, "sliding_window", None)
    if not window:
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return int(window) if "sliding_attention" in layer_types else None
    return int(window) if getattr(config, "use_sliding_window", True) else None


def _packed_parts(model: nn.Module, longest_sequence: int) -> _PackedParts:
    base = _unwrap_peft(model)
    get_decoder = getattr(base, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else getattr(base, "model", None)
    get_head = getattr(base, "get_output_embeddings", None)
    lm_head = get_head() if callable(get_head) else getattr(base, "lm_head", None)
    if decoder is None or decoder is base or lm_head is None:
        raise PackedScoringUnsupportedError(
            f"{type(base).__name__} does not expose a decoder and an LM head "
            "(get_decoder()/get_output_embeddings()); use mode='plain'"
        )
    config = getattr(decoder, "config", None) or getattr(base, "config", None)
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if not isinstance(impl, str) or impl not in PACKED_ATTENTION_IMPLEMENTATIONS:
        raise PackedScoringUnsupportedError(
            f"packed scoring needs an attention that takes a custom 4D mask "
            f"({', '.join(PACKED_ATTENTION_IMPLEMENTATIONS)}), but the model uses {impl!r}; "
            "load it with attn_implementation='sdpa' or use mode='plain'"
        )
    base_config = getattr(base, "config", config)
    for attr in _LOGIT_TRANSFORM_ATTRS:
        value = getattr(base_config, attr, None)
        if value is not None and value != 1:
            raise PackedScoringUnsupportedError(
                f"{type(base).__name__} transforms its logits ({attr}={value}), which packed "
                "scoring does not reproduce; use mode='plain'"
            )
    window = _uses_sliding_window(config)
    if window is not None and longest_sequence > window:
        raise PackedScoringUnsupportedError(
            f"a prompt + response of {longest_sequence} tokens exceeds the model's sliding "
            f"window ({window}), which the packed mask does not model; use mode='plain'"
        )
    embed = decoder.get_input_embeddings() if hasattr(decoder, "get_input_embeddings") else None
    weight = getattr(embed, "weight", None)
    if weight is None:
        weight = next(decoder.parameters())
    return _PackedParts(decoder, lm_head, impl, weight.dtype, weight.device)


def check_packed_support(model: nn.Module) -> None:
    """Raise :class:`PackedScoringUnsupportedError` if ``model`` cannot use the packed path.

    Useful to fail (or pick ``mode="plain"``) before training starts.  The sliding-window check
    depends on the data and only runs inside :func:`score_responses`.
    """
    _packed_parts(model, longest_sequence=0)


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------


def _group_by_budget(lengths: Sequence[int], budget: int | None) -> list[list[int]]:
    """Split item indices into forward calls whose padded size ``rows * longest`` fits the budget.

    Items are taken longest first, which keeps the padding inside each call small.  An item that
    alone exceeds the budget gets a call of its own.
    """
    order = sorted(range(len(lengths)), key=lambda j: -lengths[j])
    if budget is None:
        return [order] if order else []
    groups: list[list[int]] = []
    current: list[int] = []
    for j in order:
        # sorted longest first, so the first item of `current` is its longest
        if current and (len(current) + 1) * lengths[current[0]] > budget:
            groups.append(current)
            current = []
        current.append(j)
    if current:
        groups.append(current)
    return groups


@dataclass(frozen=True)
class _PackedRow:
    """One packed row: an example's prompt followed by some (usually all) of its responses."""

    example: int
    responses: tuple[int, ...]
    length: int


def _plan_packed_rows(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[Sequence[int]]],
    budget: int | None,
) -> list[_PackedRow]:
    """Decide which responses go into which row.

    Normally one row per example.  When ``prompt + responses`` exceeds the budget, the responses
    are spread over several rows, each repeating the prompt (the only way to bound memory for a
    single huge example).  Empty responses need no compute and get no row.
    """
    rows: list[_PackedRow] = []
    for i, (prompt, responses) in enumerate(zip(prompt_ids, response_ids, strict=True)):
        base = len(prompt)
        chosen: list[int] = []
        length = base
        for k, response in enumerate(responses):
            if not response:
                continue
            cost = len(response) - 1  # the final token is only a target, never an input
            if budget is not None and chosen and length + cost > budget:
                rows.append(_PackedRow(i, tuple(chosen), length))
                chosen, length = [], base
            chosen.append(k)
            length += cost
        if chosen:
            rows.append(_PackedRow(i, tuple(chosen), length))
    return rows


def _packed_attention_mask(
    segment: torch.Tensor, position: torch.Tensor, impl: str, dtype: torch.dtype
) -> torch.Tensor:
    """The ``[B, 1, L, L]`` block mask of packed rows, in the form ``impl`` expects.

    ``segment`` is -1 for padding, 0 for the prompt and ``s >= 1`` for the s-th response of the
    row.  Query q may see key j iff both are real tokens, ``position[j] <= position[q]`` and key j
    is in the prompt or in q's own response.  Prompt queries therefore see only the causal
    prompt prefix (response positions start at P), and responses never see each other.
    """
    length = segment.shape[1]
    real = segment >= 0
    seg_q, seg_k = segment[:, :, None], segment[:, None, :]
    allowed = (
        real[:, :, None]
        & real[:, None, :]
        & (position[:, None, :] <= position[:, :, None])
        & ((seg_k == 0) | (seg_k == seg_q))
    )
    # let padding queries attend to themselves: no fully masked softmax row, hence no NaN
    allowed |= torch.eye(length, dtype=torch.bool, device=segment.device)
    allowed = allowed[:, None]
    if impl == "sdpa":
        return allowed
    additive = torch.zeros(allowed.shape, dtype=dtype, device=segment.device)
    return additive.masked_fill(~allowed, torch.finfo(dtype).min)


#: Response tokens per chunk of the checkpointed LM head: 1,024 x 49,152 float32 logits are
#: 0.2 GB, the most one chunk holds at a time in the forward or the backward.
HEAD_CHUNK_TOKENS = 1024


def _token_logps(lm_head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) for each row of ``hidden`` ``[N, H]``; float32 log-softmax over the vocab."""
    logits = lm_head(hidden).float()
    return torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)


def _response_token_logps(
    lm_head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, checkpoint: bool = False
) -> torch.Tensor:
    """log p(target) for each row of ``hidden`` ``[N, H]``.

    With ``checkpoint`` (the decoder is gradient-checkpointed and gradients are taken), the
    head runs over chunks of :data:`HEAD_CHUNK_TOKENS` rows, each checkpointed: the backward
    would otherwise keep ``[N, vocab]`` bf16 logits, their float32 copy and the log-softmax
    for every response token of the batch (0.35 GB for a SimS-DPO micro-batch with 19
    negatives on the 135M model), where a chunk keeps only its hidden rows and recomputes the
    rest.  Each row's value is the same computation either way (a row's logits do not depend
    on the other rows), so the gradients are equal (``tests/test_memory.py``).
    """
    if not checkpoint:
        return _token_logps(lm_head, hidden, targets)
    parts = [
        torch.utils.checkpoint.checkpoint(_token_logps, lm_head, h, t, use_reentrant=False)
        for h, t in zip(
            hidden.split(HEAD_CHUNK_TOKENS), targets.split(HEAD_CHUNK_TOKENS), strict=True
        )
    ]
    return torch.cat(parts)


def _decoder_checkpointed(decoder: nn.Module) -> bool:
    """Whether the decoder recomputes its layers in this backward (transformers' own flag:
    set by :func:`recbench.trainer.set_gradient_checkpointing`, honoured only in training)."""
    return bool(getattr(decoder, "gradient_checkpointing", False)) and decoder.training


# --------------------------------------------------------------------------------------------
# The two paths
# --------------------------------------------------------------------------------------------


def _score_packed(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[Sequence[int]]],
    width: int,
    pad_token_id: int,
    budget: int | None,
    keep: list[PackedForward] | None = None,
) -> torch.Tensor:
    longest = max(
        (len(p) + max((len(r) for r in rs), default=0) for p, rs in zip(prompt_ids, response_ids)),
        default=0,
    )
    parts = _packed_parts(model, longest)
    device = parts.device
    checkpointed = _decoder_checkpointed(parts.decoder)
    flat = torch.zeros(len(prompt_ids) * width, dtype=torch.float32, device=device)
    rows = _plan_packed_rows(prompt_ids, response_ids, budget)

    for group in _group_by_budget([row.length for row in rows], budget):
        batch = [rows[j] for j in group]
        seq_len = max(row.length for row in batch)
        input_ids = [[pad_token_id] * seq_len for _ in batch]
        segment = [[-1] * seq_len for _ in batch]
        position = [[0] * seq_len for _ in batch]
        source: list[int] = []  # flat index (b * seq_len + t) of the predicting hidden state
        target: list[int] = []  # the token it predicts
        dest: list[int] = []  # flat index (example * width + response) of the score
        for b, row in enumerate(batch):
            prompt = prompt_ids[row.example]
            n_prompt = len(prompt)
            offset = b * seq_len
            input_ids[b][:n_prompt] = prompt
            segment[b][:n_prompt] = [0] * n_prompt
            position[b][:n_prompt] = range(n_prompt)
            cursor = n_prompt
            for slot, k in enumerate(row.responses, start=1):
                response = response_ids[row.example][k]
                body = len(response) - 1
                input_ids[b][cursor : cursor + body] = response[:-1]
                segment[b][cursor : cursor + body] = [slot] * body
                position[b][cursor : cursor + body] = range(n_prompt, n_prompt + body)
                # token 0 is predicted by the last prompt token, token t by response token t-1
                source.append(offset + n_prompt - 1)
                source.extend(range(offset + cursor, offset + cursor + body))
                target.extend(response)
                dest.extend([row.example * width + k] * len(response))
                cursor += body

        ids_t = torch.tensor(input_ids, dtype=torch.long, device=device)
        seg_t = torch.tensor(segment, dtype=torch.long, device=device)
        pos_t = torch.tensor(position, dtype=torch.long, device=device)
        mask = _packed_attention_mask(seg_t, pos_t, parts.attn_implementation, parts.dtype)
        out = parts.decoder(
            input_ids=ids_t, attention_mask=mask, position_ids=pos_t, use_cache=keep is not None
        )
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        if keep is not None:
            keep.append(PackedForward(tuple(batch), seq_len, _returned_cache(out), hidden))
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(
            0, torch.tensor(source, dtype=torch.long, device=device)
        )
        token_logps = _response_token_logps(
            parts.lm_head,
            picked,
            torch.tensor(target, dtype=torch.long, device=device),
            checkpoint=checkpointed and torch.is_grad_enabled(),
        )
        flat = flat.index_add(0, torch.tensor(dest, dtype=torch.long, device=device), token_logps)
    return flat


def _returned_cache(out: Any) -> Any:
    """The key/value cache a decoder call returned (``cache`` in newer transformers outputs,
    ``past_key_values`` before, a name newer ones still answer with a deprecation warning)."""
    for name in ("cache", "past_key_values"):
        cache = getattr(out, name, None)
        if cache is not None:
            return cache
    raise PackedScoringUnsupportedError(
        f"{type(out).__name__} returned no key/value cache; generation cannot reuse the prompt"
    )


def _score_plain(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[Sequence[int]]],
    width: int,
    pad_token_id: int,
    budget: int | None,
) -> torch.Tensor:
    device = _model_device(model)
    flat = torch.zeros(len(prompt_ids) * width, dtype=torch.float32, device=device)
    pairs = [
        (i, k)
        for i, responses in enumerate(response_ids)
        for k, response in enumerate(responses)
        if response
    ]
    lengths = [len(prompt_ids[i]) + len(response_ids[i][k]) for i, k in pairs]

    for group in _group_by_budget(lengths, budget):
        seq_len = max(lengths[j] for j in group)
        input_ids = [[pad_token_id] * seq_len for _ in group]
        attention = [[0] * seq_len for _ in group]
        scored = [[False] * (seq_len - 1) for _ in group]
        dest = []
        for b, j in enumerate(group):
            i, k = pairs[j]
            prompt, response = prompt_ids[i], response_ids[i][k]
            n_prompt, total = len(prompt), lengths[j]
            input_ids[b][:total] = [*prompt, *response]
            attention[b][:total] = [1] * total
            # logits at t predict token t + 1: response tokens are n_prompt .. total - 1
            scored[b][n_prompt - 1 : total - 1] = [True] * len(response)
            dest.append(i * width + k)

        ids_t = torch.tensor(input_ids, dtype=torch.long, device=device)
        attn_t = torch.tensor(attention, dtype=torch.long, device=device)
        logits = model(input_ids=ids_t, attention_mask=attn_t, use_cache=False).logits
        logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        token_logps = logps.gather(-1, ids_t[:, 1:, None]).squeeze(-1)
        scored_t = torch.tensor(scored, dtype=torch.bool, device=device)
        sums = torch.where(scored_t, token_logps, torch.zeros_like(token_logps)).sum(-1)
        flat = flat.index_add(0, torch.tensor(dest, dtype=torch.long, device=device), sums)
    return flat


def score_responses(
    model: nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[Sequence[int]]],
    *,
    mode: ScoringMode = "packed",
    pad_token_id: int = 0,
    max_tokens_per_forward: int | None = None,
    keep_forwards: list[PackedForward] | None = None,
) -> ResponseScores:
    """Summed log-probability and token count of every candidate response of every prompt.

    Args:
        model: a transformers causal LM, or a peft ``PeftModel`` around one.  Its train/eval
            mode is left alone; compare the two paths only without dropout.
        prompt_ids: ``b`` prompts as token ids (non-empty: the last prompt token predicts the
            first response token).
        response_ids: for each prompt its responses as token ids, normally ending with EOS (see
            :func:`encode_pairs`).  The number of responses may differ between prompts (see
            :class:`ResponseScores`); an empty response scores 0 with length 0.
        mode: ``"packed"`` (shared prompt, see the module docstring) or ``"plain"`` (one
            sequence per pair; the reference).
        pad_token_id: id written at padded positions.  Padding is always masked out, so any
            valid id works.
        max_tokens_per_forward: bound on ``rows * padded_length`` of every forward call, which
            bounds activation memory.  Forward calls are formed greedily, longest rows first;
            in packed mode an example whose responses do not fit together is split over several
            rows that each repeat the prompt.  A single ``prompt + response`` longer than the
            budget still runs, alone.  ``None`` puts everything into one call.
        keep_forwards: packed mode only: each forward call's rows, key/value cache and hidden
            states are appended to this list (:class:`PackedForward`), for a greedy
            continuation of the prompts that reuses them (:mod:`recbench.decoding`).

    Returns:
        :class:`ResponseScores` with ``logps`` (float32, differentiable), ``lengths`` and
        ``mask``, each ``[b, max number of responses]``.
    """
    if mode not in ("packed", "plain"):
        raise ValueError(f"unknown scoring mode {mode!r}; expected 'packed' or 'plain'")
    if len(prompt_ids) != len(response_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(response_ids)} response lists")
    if max_tokens_per_forward is not None and max_tokens_per_forward < 1:
        raise ValueError(f"max_tokens_per_forward must be >= 1, got {max_tokens_per_forward}")
    for i, prompt in enumerate(prompt_ids):
        if not prompt:
            raise ValueError(f"prompt {i} is empty; scoring needs at least one prompt token")

    width = max((len(responses) for responses in response_ids), default=0)
    args = (model, prompt_ids, response_ids, width, pad_token_id, max_tokens_per_forward)
    if mode == "packed":
        flat = _score_packed(*args, keep=keep_forwards)
    elif keep_forwards is not None:
        raise ValueError("keep_forwards needs mode='packed'")
    else:
        flat = _score_plain(*args)

    device = flat.device
    b = len(prompt_ids)
    lengths = torch.zeros(b, width, dtype=torch.long)
    mask = torch.zeros(b, width, dtype=torch.bool)
    for i, responses in enumerate(response_ids):
        mask[i, : len(responses)] = True
        lengths[i, : len(responses)] = torch.tensor([len(r) for r in responses], dtype=torch.long)
    mask, lengths = mask.to(device), lengths.to(device)
    logps = flat.view(b, width).masked_fill(~mask, float("-inf"))
    return ResponseScores(logps=logps, lengths=lengths, mask=mask)
