"""benchmarks/preference_gradients.py: a preference stage's step log against the clipping limit."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import ROOT

PATH = ROOT / "benchmarks" / "preference_gradients.py"
spec = importlib.util.spec_from_file_location("preference_gradients", PATH)
preference_gradients = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preference_gradients)


def _log(home, run_id: str, norms: list[float], losses: list[float]) -> None:
    where = home / "runs" / run_id / "preference"
    where.mkdir(parents=True)
    lines = [json.dumps({"step": i + 1, "loss": loss, "grad_norm": norm, "rewards/chosen": -2.0})
             for i, (norm, loss) in enumerate(zip(norms, losses, strict=True))]  # fmt: skip
    (where / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_the_clip_is_the_trainers_and_steps_above_it_count_as_clipped(
    tmp_path, capsys, monkeypatch
):
    assert preference_gradients.CLIP == pytest.approx(1.0)  # trainer.StageSettings' default
    monkeypatch.setenv("RECBENCH_HOME", str(tmp_path))
    norms = [0.5] * 6 + [3.0] * 6  # 12 steps, the last 6 clipped
    losses = [0.7] * 2 + [0.5] * 10
    _log(tmp_path, "r", norms, losses)
    s = preference_gradients.summary(tmp_path / "runs" / "r" / "preference" / "metrics.jsonl")
    assert (s["steps"], s["clipped"]) == (12, 6)
    assert s["norm_mean"] == pytest.approx(1.75, abs=1e-12)  # (6 * 0.5 + 6 * 3) / 12
    assert s["applied_mean"] == pytest.approx(0.75, abs=1e-12)  # (6 * 0.5 + 6 * 1) / 12
    assert s["loss_first10"] == pytest.approx(0.54, abs=1e-12)  # (2 * 0.7 + 8 * 0.5) / 10
    assert s["loss_last10"] == pytest.approx(0.5, abs=1e-12)
    assert s["chosen_mean"] == pytest.approx(-2.0, abs=1e-12)
    assert preference_gradients.main(["r"]) == 0
    assert (
        "r | 12 | 6 | 0.50 / 1.75 / 3.00 | 0.750 | 0.540 → 0.500 | -2.000"
        in capsys.readouterr().out
    )
    assert preference_gradients.main(["missing"]) == 2
