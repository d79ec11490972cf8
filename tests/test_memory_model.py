"""The memory model of benchmarks/memory_model.py: parameter counts, the fit, the prediction.

Parameter counts are checked against the counts the models' authors and peft publish (not
against the module's own arithmetic); the fit is checked to recover coefficients it did not
choose from measurements made with them, and to refuse too few measurements.
"""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from memory_model import (
    HEAD_CHUNK_TOKENS,
    Dims,
    Measurement,
    MemoryModel,
    TokenShape,
    fit,
    fixed_bytes,
    predict_peak,
    relative_errors,
)

LLAMA2_7B = Dims(hidden=4096, mlp=11008, layers=32, vocab=32000, kv_heads=32, head_dim=128,
                 tied=False)  # fmt: skip
SMOLLM2_135M = Dims(hidden=576, mlp=1536, layers=30, vocab=49152, kv_heads=3, head_dim=64,
                    tied=True)  # fmt: skip
SMOLLM2_360M = Dims(hidden=960, mlp=2560, layers=32, vocab=49152, kv_heads=5, head_dim=64,
                    tied=True)  # fmt: skip


def test_parameter_counts_are_the_published_ones():
    # Llama-2-7B: 6,738,415,616 parameters (its model card's count); LoRA r=8 on all 7
    # linear maps of Llama-2-7B: peft's "trainable params: 19,988,480"
    assert LLAMA2_7B.parameters() == 6_738_415_616
    assert LLAMA2_7B.lora_parameters(8) == 19_988_480


@pytest.mark.model
def test_the_embedded_models_parameter_count(model_home, monkeypatch):
    """SmolLM2-135M counted from its shape equals the count of its loaded weights."""
    from recbench import models

    monkeypatch.setenv("RECBENCH_HOME", str(model_home))
    models.prepare_embedded("smollm2-135m")
    model, _ = models.load("smollm2-135m")
    assert SMOLLM2_135M.parameters() == sum(p.numel() for p in model.parameters())


def test_fixed_memory_of_a_7b_base_by_dtype():
    """bf16 halves fp32; nf4 is about a quarter of bf16 (its embeddings and head stay bf16)."""
    gib = 2**30
    fp32, bf16 = fixed_bytes(LLAMA2_7B, "fp32", 0), fixed_bytes(LLAMA2_7B, "bf16", 0)
    nf4 = fixed_bytes(LLAMA2_7B, "nf4", 0)
    assert fp32 / gib == pytest.approx(25.10, abs=0.01)  # 6.738e9 * 4 bytes
    assert bf16 / gib == pytest.approx(12.55, abs=0.01)
    assert 3.5 < nf4 / gib < 4.0  # 6.48e9 linear weights at ~0.52 bytes + 0.26e9 at 2 bytes
    # r=16 adapters: 39,976,960 fp32 weights, gradients and two AdamW moments, 16 bytes each
    assert fixed_bytes(LLAMA2_7B, "bf16", 16) - bf16 == pytest.approx(39_976_960 * 16)


def _synthetic(truth: MemoryModel) -> list[Measurement]:
    out = []
    for dims in (SMOLLM2_135M, SMOLLM2_360M, LLAMA2_7B):
        for padded, response in ((300, 60), (1300, 250), (5000, 1800)):
            for checkpointing in (False, True):
                value = truth.step_bytes(dims, padded, response, checkpointing)
                out.append(Measurement(dims, padded, response, checkpointing, value))
    return out


def test_the_fit_recovers_the_coefficients_the_measurements_were_made_with():
    truth = MemoryModel(a=20.0, b=8.0, c=10.0, g=2.0)
    fitted = fit(_synthetic(truth))
    for name in ("a", "b", "c", "g"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=1e-6)
    assert max(abs(e) for e in relative_errors(fitted, _synthetic(truth))) < 1e-6


def test_checkpointing_keeps_one_layer_and_one_head_chunk():
    model = MemoryModel(a=20.0, b=8.0, c=10.0, g=2.0)
    d = SMOLLM2_135M
    plain = model.step_bytes(d, 4000, 3000, checkpointing=False)
    checked = model.step_bytes(d, 4000, 3000, checkpointing=True)
    # by hand: 4000 * 30 * (20 * 576 + 8 * 1536) + 10 * 3000 * 49152
    assert plain == pytest.approx(4000 * 30 * 23808 + 10 * 3000 * 49152)
    # 4000 * 30 * 2 * 576 + 4000 * 23808 + 10 * 1024 * 49152
    assert checked == pytest.approx(4000 * 30 * 1152 + 4000 * 23808 + 10 * 1024 * 49152)
    assert HEAD_CHUNK_TOKENS == 1024


def test_the_fit_refuses_too_few_measurements():
    few = _synthetic(MemoryModel(20.0, 8.0, 10.0, 2.0))[:2]
    with pytest.raises(ValueError, match="need 3 runs"):
        fit(few)


def test_tokens_and_peak_grow_with_the_batch_and_the_negatives():
    tokens = TokenShape(prompt=200.0, response=10.0, padding=1.1)
    assert tokens.padded(4, 3) == round(4 * (200 + 40) * 1.1)
    assert tokens.responses(4, 3) == 160
    model = MemoryModel(20.0, 8.0, 10.0, 2.0)
    peaks = [predict_peak(model, LLAMA2_7B, tokens, b, n, "bf16", 16, True)
             for b, n in ((1, 1), (1, 19), (16, 1), (16, 19))]  # fmt: skip
    assert peaks == sorted(peaks) and peaks[0] > fixed_bytes(LLAMA2_7B, "bf16", 16)
