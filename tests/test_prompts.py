"""Prompts: every candidate appears in order, templates are drawn reproducibly."""

from __future__ import annotations

from recbench import api
from recbench.data import load_dataset
from recbench.data.prompts import TEMPLATES, choose_template


def test_prompt_lists_history_and_candidates_in_order():
    ds = load_dataset("lastfm")
    example = ds.examples("test")[3]
    prompt = api.prompt_for(ds, example, seed=0)
    titles = [ds.item_names[i] for i in example.candidates]
    assert ", ".join(titles) in prompt
    assert ", ".join(ds.item_names[i] for i in example.history) in prompt
    assert prompt.endswith("Answer:")


def test_template_draw_is_seeded_and_varies():
    draws = {choose_template("music", 0, f"train:{i}") for i in range(50)}
    assert draws == set(TEMPLATES["music"])
    assert choose_template("music", 3, "train:7") == choose_template("music", 3, "train:7")
    assert choose_template("games", 0, "x", fixed=1) == TEMPLATES["games"][1]
