"""SASRec, GRU4Rec and Caser, written to be weight-compatible with the LLaRA releases.

The three models follow docs/data.md ('Sequential models') to the letter, including the behaviours of the
original code that a "clean" re-implementation would drop, because the released checkpoints were
trained with them and only reproduce their outputs when they are kept:

* the padding id is ``num_items`` and row ``num_items`` of the item embedding is an ordinary,
  trainable row (no ``padding_idx``); the models mask it out themselves where the original does;
* SASRec masks attention *keys* whose input vector sums to exactly zero (this is how the original
  recognises padding) and future positions with the finite constant ``-2**32 + 1`` rather than
  ``-inf``, so a fully masked row becomes a uniform average instead of NaN;
* SASRec zeroes attention rows whose (layer-normalised) query sums to exactly zero, divides the
  attention logits by the square root of the *full* hidden size, and adds the normalised queries,
  not the raw inputs, as the residual;
* the feed-forward layers are width-1 ``Conv1d`` modules (their weights are stored as
  ``[d, d, 1]``), and the last LayerNorm ``ln_3`` is applied to the masked block output;
* the SASRec sequence representation is read at position ``len_seq - 1``;
* GRU4Rec runs only over the first ``len_seq`` positions (a packed sequence);
* Caser zeroes padding embeddings before its horizontal (heights 2, 3, 4) and vertical
  convolutions.

Parameter names equal the tensor names of ``checkpoints/*.json`` so that the released weights
load with ``strict=True``.  Sizes (hidden size, blocks, heads, filters, dropout, state size) are
constructor arguments; the defaults are those of the releases.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

STATE_SIZE = 10
# The masking constant of the original TensorFlow-derived code (Python parses it as -(2**32) + 1).
MASK_VALUE = -(2.0**32) + 1.0


class SequentialRecommender(nn.Module):
    """Common interface: ``forward(seq [B, T], len_seq [B]) -> scores [B, num_items]``.

    ``seq`` holds item ids right-padded with ``num_items``; ``len_seq`` counts the real items
    (at least 1: rows with an empty history have ``len_seq == 1`` and an all-padding ``seq``).
    """

    kind: str = ""

    def __init__(self, num_items: int, hidden_size: int, state_size: int) -> None:
        super().__init__()
        if num_items < 1 or hidden_size < 1 or state_size < 1:
            raise ValueError("num_items, hidden_size and state_size must be positive")
        self.num_items = int(num_items)
        self.hidden_size = int(hidden_size)
        self.state_size = int(state_size)

    @property
    def padding_id(self) -> int:
        return self.num_items

    def config(self) -> dict[str, Any]:
        """Constructor arguments, enough to rebuild the model with :func:`build_model`."""
        raise NotImplementedError

    def _padding_mask(self, seq: torch.Tensor) -> torch.Tensor:
        """``[B, T, 1]`` float mask: 1 for real items, 0 for padding."""
        return (seq != self.num_items).unsqueeze(-1).to(self.item_embeddings.weight.dtype)


class MultiHeadAttention(nn.Module):
    """The attention of the released SASRec (names ``linear_q``, ``linear_k``, ``linear_v``).

    Queries come from the layer-normalised input, keys and values from the raw (masked) input.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by {num_heads} heads")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.linear_q = nn.Linear(hidden_size, hidden_size)
        self.linear_k = nn.Linear(hidden_size, hidden_size)
        self.linear_v = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)  # [B, h, T, d/h]

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        batch, length, _ = queries.shape
        q = self._split(self.linear_q(queries))
        k = self._split(self.linear_k(keys))
        v = self._split(self.linear_v(keys))
        # The original divides by sqrt of the full hidden size, not of the head size.
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.hidden_size)  # [B, h, Tq, Tk]
        # Padding is recognised by an input vector summing to exactly zero (x * m at padding).
        key_is_padding = (keys.sum(dim=-1) == 0)[:, None, None, :]
        future = torch.ones(length, keys.shape[1], dtype=torch.bool, device=keys.device)
        future = torch.triu(future, diagonal=1)[None, None]
        logits = logits.masked_fill(key_is_padding, MASK_VALUE).masked_fill(future, MASK_VALUE)
        weights = torch.softmax(logits, dim=-1)
        query_alive = (queries.sum(dim=-1) != 0).to(weights.dtype)[:, None, :, None]
        weights = self.dropout(weights * query_alive)
        out = (weights @ v).transpose(1, 2).reshape(batch, length, self.hidden_size)
        return out + queries  # residual of the *normalised* queries


class PointwiseFeedForward(nn.Module):
    """Two width-1 convolutions (pointwise linear maps) with ReLU, dropout and post-LayerNorm."""

    def __init__(self, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.w_1 = nn.Conv1d(hidden_size, hidden_size, 1)
        self.w_2 = nn.Conv1d(hidden_size, hidden_size, 1)
        self.layer_norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = self.w_2(F.relu(self.w_1(h.transpose(1, 2)))).transpose(1, 2)
        return self.layer_norm(self.dropout(y) + h)


class SASRecBlock(nn.Module):
    """One self-attention block; used for blocks 2.. (block 1 lives on the model itself)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_size)
        self.mh_attn = MultiHeadAttention(hidden_size, num_heads, dropout)
        self.ln_2 = nn.LayerNorm(hidden_size)
        self.feed_forward = PointwiseFeedForward(hidden_size, dropout)


def _run_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    attended = block.mh_attn(block.ln_1(x), x)
    return block.feed_forward(block.ln_2(attended))


class SASRec(SequentialRecommender):
    """Self-attentive sequential recommendation, in the layout of the LLaRA checkpoints.

    The first block's modules (``ln_1``, ``mh_attn``, ``ln_2``, ``feed_forward``) are attributes
    of the model itself so that the released one-block state dicts load unchanged; further blocks
    (``num_blocks > 1``) live in ``extra_blocks`` and are applied to the masked output of the
    previous block.
    """

    kind = "sasrec"

    def __init__(
        self,
        num_items: int,
        hidden_size: int = 64,
        state_size: int = STATE_SIZE,
        num_blocks: int = 1,
        num_heads: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(num_items, hidden_size, state_size)
        if num_blocks < 1:
            raise ValueError("num_blocks must be at least 1")
        self.num_blocks = int(num_blocks)
        self.num_heads = int(num_heads)
        self.dropout_rate = float(dropout)
        self.item_embeddings = nn.Embedding(num_items + 1, hidden_size)
        self.positional_embeddings = nn.Embedding(state_size, hidden_size)
        self.emb_dropout = nn.Dropout(dropout)
        self.ln_1 = nn.LayerNorm(hidden_size)
        self.mh_attn = MultiHeadAttention(hidden_size, num_heads, dropout)
        self.ln_2 = nn.LayerNorm(hidden_size)
        self.feed_forward = PointwiseFeedForward(hidden_size, dropout)
        self.extra_blocks = nn.ModuleList(
            SASRecBlock(hidden_size, num_heads, dropout) for _ in range(num_blocks - 1)
        )
        self.ln_3 = nn.LayerNorm(hidden_size)
        self.s_fc = nn.Linear(hidden_size, num_items)
        nn.init.normal_(self.item_embeddings.weight, 0.0, 0.01)

    def config(self) -> dict[str, Any]:
        return {
            "num_items": self.num_items,
            "hidden_size": self.hidden_size,
            "state_size": self.state_size,
            "num_blocks": self.num_blocks,
            "num_heads": self.num_heads,
            "dropout": self.dropout_rate,
        }

    def hidden_states(self, seq: torch.Tensor) -> torch.Tensor:
        """The final hidden state of every position, ``[B, T, d]`` (after ``ln_3``)."""
        if seq.shape[1] != self.state_size:
            raise ValueError(f"SASRec expects {self.state_size} positions, got {seq.shape[1]}")
        positions = torch.arange(self.state_size, device=seq.device)
        x = self.item_embeddings(seq) + self.positional_embeddings(positions)
        x = self.emb_dropout(x)
        mask = self._padding_mask(seq)
        x = x * mask
        for block in [self, *self.extra_blocks]:
            x = _run_block(block, x) * mask
        return self.ln_3(x)

    def represent(
        self, seq: torch.Tensor, len_seq: torch.Tensor, state: str = "last"
    ) -> torch.Tensor:
        """The sequence representation ``[B, d]`` that NAPO uses for similarity.

        ``state="last"`` reads position ``len_seq - 1`` (the last real item, recbench's default);
        ``"padded_last"`` reads position ``T - 1`` whatever the length, reproducing the official
        NAPO preprocessing, where every sequence shorter than ``T`` gets the same vector.
        """
        hidden = self.hidden_states(seq)
        if state == "last":
            index = (len_seq.to(seq.device).long() - 1).clamp(min=0)
        elif state == "padded_last":
            index = torch.full_like(len_seq, self.state_size - 1, device=seq.device).long()
        else:
            raise ValueError(f"unknown state '{state}' (use 'last' or 'padded_last')")
        rows = torch.arange(seq.shape[0], device=seq.device)
        return hidden[rows, index]

    def forward(self, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        return self.s_fc(self.represent(seq, len_seq))


class GRU4Rec(SequentialRecommender):
    """A GRU over the first ``len_seq`` item embeddings; the final hidden state scores items."""

    kind = "gru4rec"

    def __init__(
        self,
        num_items: int,
        hidden_size: int = 64,
        state_size: int = STATE_SIZE,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(num_items, hidden_size, state_size)
        self.num_layers = int(num_layers)
        self.dropout_rate = float(dropout)
        self.item_embeddings = nn.Embedding(num_items + 1, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, num_layers=num_layers, batch_first=True)
        # Not in the releases (which had no dropout); applied to the final state only, so the
        # released state dict is unaffected.
        self.dropout = nn.Dropout(dropout)
        self.s_fc = nn.Linear(hidden_size, num_items)
        nn.init.normal_(self.item_embeddings.weight, 0.0, 0.01)

    def config(self) -> dict[str, Any]:
        return {
            "num_items": self.num_items,
            "hidden_size": self.hidden_size,
            "state_size": self.state_size,
            "num_layers": self.num_layers,
            "dropout": self.dropout_rate,
        }

    def represent(self, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        """The last layer's hidden state after the ``len_seq``-th item, ``[B, d]``."""
        emb = self.item_embeddings(seq)
        lengths = len_seq.detach().to("cpu", torch.int64).clamp(min=1, max=seq.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(
            emb, lengths, batch_first=True, enforce_sorted=False
        )
        _, hidden = self.gru(packed)
        return hidden[-1]

    def forward(self, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        return self.s_fc(self.dropout(self.represent(seq, len_seq)))


class Caser(SequentialRecommender):
    """Convolutional sequence embedding: horizontal (n-gram) and vertical convolutions."""

    kind = "caser"

    def __init__(
        self,
        num_items: int,
        hidden_size: int = 64,
        state_size: int = STATE_SIZE,
        num_filters: int = 16,
        filter_sizes: tuple[int, ...] | list[int] = (2, 3, 4),
        dropout: float = 0.1,
    ) -> None:
        super().__init__(num_items, hidden_size, state_size)
        self.num_filters = int(num_filters)
        self.filter_sizes = tuple(int(h) for h in filter_sizes)
        if not self.filter_sizes or not all(1 <= h <= state_size for h in self.filter_sizes):
            raise ValueError(f"filter heights must be in 1..{state_size}: {self.filter_sizes}")
        self.dropout_rate = float(dropout)
        self.item_embeddings = nn.Embedding(num_items + 1, hidden_size)
        self.horizontal_cnn = nn.ModuleList(
            nn.Conv2d(1, num_filters, (height, hidden_size)) for height in self.filter_sizes
        )
        self.vertical_cnn = nn.Conv2d(1, 1, (state_size, 1))
        self.dropout = nn.Dropout(dropout)
        self.s_fc = nn.Linear(num_filters * len(self.filter_sizes) + hidden_size, num_items)
        nn.init.normal_(self.item_embeddings.weight, 0.0, 0.01)
        for conv in [*self.horizontal_cnn, self.vertical_cnn]:
            nn.init.xavier_normal_(conv.weight)
            nn.init.constant_(conv.bias, 0.1)

    def config(self) -> dict[str, Any]:
        return {
            "num_items": self.num_items,
            "hidden_size": self.hidden_size,
            "state_size": self.state_size,
            "num_filters": self.num_filters,
            "filter_sizes": list(self.filter_sizes),
            "dropout": self.dropout_rate,
        }

    def represent(self, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        """Concatenated [horizontal max-pooled features, vertical features] (before dropout)."""
        if seq.shape[1] != self.state_size:
            raise ValueError(f"Caser expects {self.state_size} positions, got {seq.shape[1]}")
        image = (self.item_embeddings(seq) * self._padding_mask(seq)).unsqueeze(1)  # [B,1,T,d]
        pooled = [F.relu(conv(image)).squeeze(3).amax(dim=2) for conv in self.horizontal_cnn]
        vertical = F.relu(self.vertical_cnn(image)).reshape(seq.shape[0], self.hidden_size)
        return torch.cat([*pooled, vertical], dim=1)

    def forward(self, seq: torch.Tensor, len_seq: torch.Tensor) -> torch.Tensor:
        return self.s_fc(self.dropout(self.represent(seq, len_seq)))


MODEL_CLASSES: dict[str, type[SequentialRecommender]] = {
    "sasrec": SASRec,
    "gru4rec": GRU4Rec,
    "caser": Caser,
}


def build_model(kind: str, **config: Any) -> SequentialRecommender:
    """Instantiate one of the three models from its :meth:`~SequentialRecommender.config`."""
    try:
        cls = MODEL_CLASSES[kind]
    except KeyError:
        raise ValueError(f"unknown model kind '{kind}'") from None
    return cls(**config)
