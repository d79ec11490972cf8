"""``precision=auto`` picks bf16 only where the hardware computes it natively.

On a CPU without bf16 instructions, bf16 autocast is emulated (measured on an AVX2-only x86_64
CPU: one SFT step took more than 200 s in bf16 against 30 s in fp32), so ``auto`` means fp32
there and an explicit ``bf16`` is kept but warned about.
"""

from __future__ import annotations

import pytest

from recbench import pipeline


@pytest.fixture()
def cpu_only(monkeypatch):
    monkeypatch.setattr(pipeline.torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_with_native_bf16(cpu_only, monkeypatch, native, expected):
    monkeypatch.setattr(pipeline, "cpu_has_bf16", lambda: native)
    assert pipeline._precision("auto") == expected


def test_explicit_bf16_without_native_support_is_kept_with_a_warning(cpu_only, monkeypatch):
    monkeypatch.setattr(pipeline, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="emulated"):
        assert pipeline._precision("bf16") == "bf16"
    assert pipeline._precision("fp32") == "fp32"


def test_cpu_has_bf16_answers_a_bool():
    assert isinstance(pipeline.cpu_has_bf16(), bool)
