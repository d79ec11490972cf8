"""The packed scorer equals the plain path on the embedded model (values and gradients)."""

from __future__ import annotations

import os

import pytest
import torch

from recbench import models
from recbench.batches import candidate_texts, render
from recbench.data import load_dataset
from recbench.scoring import encode_pairs, score_responses

pytestmark = pytest.mark.model


def test_packed_equals_plain_on_embedded_model(model_home, monkeypatch):
    monkeypatch.setenv("RECBENCH_HOME", str(model_home))
    assert os.environ["RECBENCH_HOME"] == str(model_home)
    model, tokenizer = models.load("smollm2-135m")
    model.eval()
    probes = [
        model.model.layers[0].self_attn.q_proj.weight,
        model.model.layers[-1].mlp.down_proj.weight,
    ]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in probes:
        p.requires_grad_(True)
    ds = load_dataset("lastfm")
    items = [render(ds, ex, seed=0) for ex in ds.examples("test")[:2]]
    prompt_ids, response_ids = encode_pairs(
        tokenizer,
        [it.prompt for it in items],
        [candidate_texts(ds, it.example)[:6] for it in items],
        add_bos=False,
        max_prompt_tokens=96,
    )
    results = {}
    for mode in ("packed", "plain"):
        model.zero_grad(set_to_none=True)
        scores = score_responses(model, prompt_ids, response_ids, mode=mode)
        torch.log_softmax(scores.logps, dim=-1)[:, 0].sum().backward()
        results[mode] = (scores.logps.detach(), [p.grad.clone() for p in probes])
    packed, plain = results["packed"], results["plain"]
    assert torch.isfinite(plain[0]).all() and plain[0].abs().min() > 1.0
    torch.testing.assert_close(packed[0], plain[0], rtol=1e-4, atol=1e-4)
    for g_packed, g_plain in zip(packed[1], plain[1], strict=True):
        assert g_plain.abs().max() > 0
        torch.testing.assert_close(g_packed, g_plain, rtol=1e-3, atol=1e-5)
