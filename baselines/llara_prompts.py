"""LLaRA's hybrid prompts as token ids: the recbench prompt with an item token after each title.

The text prompt is tokenised exactly as every other recbench method tokenises it (one call over
the whole prompt, no special tokens), and the virtual id of each history and candidate item is
inserted right after the last token of its title, located with the tokenizer's offset mapping.
Dropping the virtual ids therefore gives back *exactly* the token ids of the text-only prompt
(``recbench.scoring.encode_pairs``), so the text-only prompts of the curriculum are the very
prompts SFT and TALLRec see.  A token that straddles the end of a title (a title ending in
punctuation merged with the following ", ") keeps the item token after it.

Where the titles end is found by re-rendering the prompt from the domain's templates with the
same code path as ``recbench.data.prompts.render_prompt`` and checking the result against the
:class:`~recbench.batches.PromptItem`'s text, so a template change can never misplace a token.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from recbench.batches import PromptItem
from recbench.data.dataset import Dataset
from recbench.data.prompts import templates_for
from recbench.scoring import encode_pairs


def _render_with_marks(
    template: str, titles: dict[str, Sequence[str]], items: dict[str, Sequence[int]]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered prompt and ``(character offset just past the title, item id)`` pairs."""
    parts: list[str] = []
    marks: list[tuple[int, int]] = []
    length = 0
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        parts.append(literal)
        length += len(literal)
        if field is None:
            continue
        for k, (title, item) in enumerate(zip(titles[field], items[field], strict=True)):
            if k:
                parts.append(", ")
                length += 2
            parts.append(title)
            length += len(title)
            marks.append((length, item))
    return "".join(parts), marks


def title_marks(ds: Dataset, item: PromptItem) -> list[tuple[int, int]]:
    """Where each title of ``item``'s prompt ends, with its item id, in text order."""
    example = item.example
    names = ds.item_names
    items = {"history": example.history, "candidates": example.candidates}
    titles = {field: [names[i] for i in ids] for field, ids in items.items()}
    for template in templates_for(ds.domain):
        text, marks = _render_with_marks(template, titles, items)
        if text == item.prompt:
            return marks
    raise ValueError(f"prompt of {example.key} does not come from a {ds.domain} template")


class HybridEncoder:
    """Prompt and response token ids for LLaRA (item ids become ``vocab_size + item``)."""

    def __init__(
        self, tokenizer, ds: Dataset, vocab_size: int, max_prompt_tokens: int | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.ds = ds
        self.vocab_size = vocab_size
        self.max_prompt_tokens = max_prompt_tokens

    def hybrid_ids(self, items: Sequence[PromptItem]) -> list[list[int]]:
        """Untruncated hybrid prompts: text tokens with one virtual id after every title."""
        encoded = self.tokenizer(
            [it.prompt for it in items], add_special_tokens=False, return_offsets_mapping=True
        )
        out = []
        for item, ids, offsets in zip(
            items, encoded["input_ids"], encoded["offset_mapping"], strict=True
        ):
            marks = title_marks(self.ds, item)
            hybrid: list[int] = []
            k = 0
            for token, (start, _end) in zip(ids, offsets, strict=True):
                while k < len(marks) and start >= marks[k][0]:
                    hybrid.append(self.vocab_size + marks[k][1])
                    k += 1
                hybrid.append(token)
            hybrid.extend(self.vocab_size + item_id for _, item_id in marks[k:])
            out.append(hybrid)
        return out

    def prompts(self, items: Sequence[PromptItem], hybrid: Sequence[bool]) -> list[list[int]]:
        """Prompt ids, hybrid or text-only per item, left-truncated like ``encode_pairs``."""
        out = []
        for ids, is_hybrid in zip(self.hybrid_ids(items), hybrid, strict=True):
            if not is_hybrid:
                ids = [t for t in ids if t < self.vocab_size]
            if self.max_prompt_tokens is not None:
                ids = ids[max(len(ids) - self.max_prompt_tokens, 0) :]
            out.append(ids)
        return out

    def responses(self, groups: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        """Response ids (title tokens + EOS) by recbench's own convention."""
        return encode_pairs(self.tokenizer, [""] * len(groups), groups, add_bos=False)[1]
