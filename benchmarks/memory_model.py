"""A memory model of a preference step, fitted at small shapes on the CPU, to predict large ones.

Why: whether a 7B LoRA run at the paper's settings fits a 24 GB GPU is a question this 2-core
laptop must answer without a 7B model.  A decoder layer's activations grow with the tokens it
processes and with its widths, so the memory a step adds is measured (``bench_nneg.py
--memory-model``) at shapes that fit here (random weights with Llama dimensions) and fitted to

* without checkpointing, every layer keeps its activations for the backward::

      step = N * L * (a * d + b * f) + c * R * V

* with checkpointing, every layer keeps only its bf16 input; one layer at a time is recomputed,
  and the LM head runs over chunks of at most ``HEAD_CHUNK_TOKENS`` response tokens::

      step = N * L * g * d + N * (a * d + b * f) + c * min(R, chunk) * V

where N is the padded tokens of the micro-batch (packed rows times their length), R the
response tokens whose log-probabilities are taken, L the layers, d the hidden size, f the MLP
size and V the vocabulary; a, b, c and g are bytes, fitted by least squares (a, b, c on the
runs without checkpointing, g on those with it).  The fixed part (frozen weights in their dtype,
the LoRA adapters, their gradients and AdamW's two moments in fp32) is counted exactly from
the parameter counts, not fitted.

The fit is checked on a shape it did not see before it predicts one it cannot measure.  What it
leaves out: the CUDA caching allocator's slack and the CUDA context (about 0.5-1 GB on a GPU),
and kernels whose workspace differs between the CPU and a GPU (flash attention keeps no
``N x N`` scores; the CPU's SDPA does at these lengths, so the model errs high on a GPU).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: The packed scorer's chunk of response tokens for the checkpointed LM head
#: (``recbench.scoring.HEAD_CHUNK_TOKENS``; repeated so this module imports nothing heavy).
HEAD_CHUNK_TOKENS = 1024
#: LoRA trains 7 linear maps per Llama layer (q, k, v, o, gate, up, down).
LORA_TARGETS = 7
#: Bytes per trainable parameter: fp32 weight, fp32 gradient, AdamW's two fp32 moments.
TRAINABLE_BYTES = 4 + 4 + 8
#: Bytes per frozen parameter.  nf4 quantises the decoder's linear maps only (4 bits, plus one
#: 8-bit scale per 64 weights and one fp32 scale per 256 of those: double quantisation); the
#: embeddings, norms and LM head stay bf16.
BASE_BYTES = {"fp32": 4.0, "bf16": 2.0}
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)


@dataclass(frozen=True)
class Dims:
    """The widths that decide a Llama's memory."""

    hidden: int  # d
    mlp: int  # f
    layers: int  # L
    vocab: int  # V
    kv_heads: int
    head_dim: int
    tied: bool

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> Dims:
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return cls(
            hidden=hidden,
            mlp=int(config["intermediate_size"]),
            layers=int(config["num_hidden_layers"]),
            vocab=int(config["vocab_size"]),
            kv_heads=int(config.get("num_key_value_heads", heads)),
            head_dim=int(config.get("head_dim", hidden // heads)),
            tied=bool(config.get("tie_word_embeddings", False)),
        )

    def linear_parameters(self) -> int:
        """The decoder layers' linear maps: q, k, v, o and the MLP's gate, up, down."""
        d, f, kv = self.hidden, self.mlp, self.kv_heads * self.head_dim
        attention = d * d * 2 + d * kv * 2  # q and o are d x d; k and v are d x kv
        return self.layers * (attention + 3 * d * f)

    def parameters(self) -> int:
        """Parameter count of the Llama: embeddings, linear maps, norms, LM head."""
        d = self.hidden
        head = 0 if self.tied else self.vocab * d
        return self.vocab * d + self.linear_parameters() + self.layers * 2 * d + d + head

    def lora_parameters(self, rank: int) -> int:
        """LoRA's A and B on the 7 linear maps of every layer: r * (in + out) each."""
        d, f, kv = self.hidden, self.mlp, self.kv_heads * self.head_dim
        per_layer = (d + d) + (d + kv) * 2 + (d + d) + (d + f) * 2 + (f + d)
        return self.layers * rank * per_layer


def base_bytes(dims: Dims, base: str) -> float:
    """The frozen weights in ``base``: fp32, bf16 or nf4."""
    if base == "nf4":
        linear = dims.linear_parameters()
        return linear * NF4_BYTES + (dims.parameters() - linear) * BASE_BYTES["bf16"]
    return dims.parameters() * BASE_BYTES[base]


def fixed_bytes(dims: Dims, base: str, lora_rank: int) -> float:
    """Weights, adapters, their gradients and optimizer state: what a step starts from."""
    return base_bytes(dims, base) + dims.lora_parameters(lora_rank) * TRAINABLE_BYTES


@dataclass(frozen=True)
class Measurement:
    """One measured step: the shape, its token counts, checkpointing, the bytes it added."""

    dims: Dims
    padded_tokens: int  # N
    response_tokens: int  # R
    checkpointing: bool
    step_bytes: float


def _plain_features(m: Measurement) -> list[float]:
    d = m.dims
    n, r = m.padded_tokens, m.response_tokens
    return [n * d.layers * d.hidden, n * d.layers * d.mlp, r * d.vocab]


@dataclass(frozen=True)
class MemoryModel:
    """Fitted bytes: per token, layer and hidden unit (a), MLP unit (b), per response token
    and vocabulary entry (c), and per token, layer and hidden unit kept when checkpointed (g)."""

    a: float
    b: float
    c: float
    g: float

    def step_bytes(self, dims: Dims, padded: int, response: int, checkpointing: bool) -> float:
        layer = self.a * dims.hidden + self.b * dims.mlp
        if not checkpointing:
            return padded * dims.layers * layer + self.c * response * dims.vocab
        head = self.c * min(response, HEAD_CHUNK_TOKENS) * dims.vocab
        return padded * dims.layers * self.g * dims.hidden + padded * layer + head


def fit(measurements: Iterable[Measurement]) -> MemoryModel:
    """Least squares: a, b, c on the runs without checkpointing, then g on those with it."""
    rows = list(measurements)
    plain = [m for m in rows if not m.checkpointing]
    checked = [m for m in rows if m.checkpointing]
    if len(plain) < 3 or not checked:
        raise ValueError("need 3 runs without checkpointing and 1 with it, at several shapes")
    x = np.array([_plain_features(m) for m in plain], dtype=float)
    y = np.array([m.step_bytes for m in plain], dtype=float)
    a, b, c = np.linalg.lstsq(x, y, rcond=None)[0]
    partial = MemoryModel(float(a), float(b), float(c), 0.0)
    kept = np.array([[m.padded_tokens * m.dims.layers * m.dims.hidden] for m in checked])
    rest = np.array(
        [
            m.step_bytes - partial.step_bytes(m.dims, m.padded_tokens, m.response_tokens, True)
            for m in checked
        ]
    )
    (g,) = np.linalg.lstsq(kept, rest, rcond=None)[0]
    return MemoryModel(float(a), float(b), float(c), float(g))


@dataclass(frozen=True)
class TokenShape:
    """Tokens of one training example: its prompt and each response (mean over examples), and
    how much longer the longest packed row of a micro-batch is than the mean (padding)."""

    prompt: float
    response: float
    padding: float = 1.0

    def padded(self, batch: int, n_neg: int) -> int:
        """N: one packed row per example (prompt once, then every response), padded."""
        return round(batch * (self.prompt + (1 + n_neg) * self.response) * self.padding)

    def responses(self, batch: int, n_neg: int) -> int:
        """R: the chosen and every rejected response of every example."""
        return round(batch * (1 + n_neg) * self.response)


def predict_peak(
    model: MemoryModel,
    dims: Dims,
    tokens: TokenShape,
    batch: int,
    n_neg: int,
    base: str,
    lora_rank: int,
    checkpointing: bool,
) -> float:
    """Predicted peak bytes of one preference step: the fixed part plus the step's own."""
    step = model.step_bytes(
        dims, tokens.padded(batch, n_neg), tokens.responses(batch, n_neg), checkpointing
    )
    return fixed_bytes(dims, base, lora_rank) + step


def relative_errors(model: MemoryModel, rows: Sequence[Measurement]) -> list[float]:
    """(predicted - measured) / measured step bytes, per measurement."""
    out = []
    for m in rows:
        predicted = model.step_bytes(m.dims, m.padded_tokens, m.response_tokens, m.checkpointing)
        out.append((predicted - m.step_bytes) / m.step_bytes)
    return out
