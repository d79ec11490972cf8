"""Prompt templates written for recbench, one small family per domain.

A prompt lists the user's history titles and the 20 candidate titles (both joined with ", ") and
asks for the next item; it ends with "Answer:" and the response is " " + title + EOS, so that the
title is tokenised as it would appear in running text.  The template of an example is drawn by a
generator seeded with ``(seed, split, index)``: a run is reproducible and examples vary.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

# Each template has {history} and {candidates}; keep them short: small models read every token.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "music": (
        (
            "This user has listened to these artists, in order: {history}. "
            "Which one of these artists will the user listen to next? {candidates}. Answer:"
        ),
        (
            "Listening history: {history}. Candidate artists: {candidates}. "
            "Pick the one artist from the candidates that this listener plays next. Answer:"
        ),
        (
            "A listener recently played {history}. From the list {candidates}, "
            "name the artist they are most likely to play next. Answer:"
        ),
    ),
    "games": (
        (
            "This user has played these games, in order: {history}. "
            "Which one of these games will the user play next? {candidates}. Answer:"
        ),
        (
            "Games played so far: {history}. Candidate games: {candidates}. "
            "Pick the one game from the candidates that this player picks up next. Answer:"
        ),
        (
            "A player recently played {history}. From the list {candidates}, "
            "name the game they are most likely to play next. Answer:"
        ),
    ),
    "movies": (
        (
            "This user has watched these movies, in order: {history}. "
            "Which one of these movies will the user watch next? {candidates}. Answer:"
        ),
        (
            "Watched so far: {history}. Candidate movies: {candidates}. "
            "Pick the one movie from the candidates that this viewer watches next. Answer:"
        ),
        (
            "A viewer recently watched {history}. From the list {candidates}, "
            "name the movie they are most likely to watch next. Answer:"
        ),
    ),
    "books": (
        (
            "This user has read these books, in order: {history}. "
            "Which one of these books will the user read next? {candidates}. Answer:"
        ),
        (
            "Books read so far: {history}. Candidate books: {candidates}. "
            "Pick the one book from the candidates that this reader reads next. Answer:"
        ),
        (
            "A reader recently finished {history}. From the list {candidates}, "
            "name the book they are most likely to read next. Answer:"
        ),
    ),
}
GENERIC = (
    (
        "This user interacted with these items, in order: {history}. "
        "Which one of these items will the user choose next? {candidates}. Answer:"
    ),
)
GENERIC_DOMAIN = "items"
# Every domain a dataset may declare (``recbench data import --domain``); "items" is the generic one.
DOMAINS: tuple[str, ...] = (*TEMPLATES, GENERIC_DOMAIN)


def templates_for(domain: str) -> tuple[str, ...]:
    return TEMPLATES.get(domain, GENERIC)


def choose_template(domain: str, seed: int, key: str, fixed: int | None = None) -> str:
    """The template for one example: ``fixed`` index if given, else a seeded draw."""
    family = templates_for(domain)
    if fixed is not None:
        return family[fixed % len(family)]
    return family[random.Random(f"template:{seed}:{key}").randrange(len(family))]


def render_prompt(template: str, history: Sequence[str], candidates: Sequence[str]) -> str:
    return template.format(history=", ".join(history), candidates=", ".join(candidates))


def render_response(title: str) -> str:
    """The response text for an item (the caller appends the tokenizer's EOS token)."""
    return " " + title
