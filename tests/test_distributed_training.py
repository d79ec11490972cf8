"""One process and two processes (gloo on CPU) train NAPO identically through the trainer.

NAPO couples the examples of a micro-batch (neighbours, K, the batch margin), so a naive
data-parallel split would change the loss.  The trainer gathers the global micro-batch with
gradients and averages parameter gradients across processes; this test checks the end result:
the same per-step losses, running margin state and LoRA weights after two optimizer steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKER = Path(__file__).parent / "helpers" / "trainer_worker.py"
ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str]) -> None:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_match_one(tmp_path):
    _run([sys.executable, str(WORKER), str(tmp_path), "4"])
    _run([
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", "29531", str(WORKER), str(tmp_path), "2",
    ])  # fmt: skip
    one = json.loads((tmp_path / "result-1.json").read_text())
    two = json.loads((tmp_path / "result-2.json").read_text())
    assert len(one["losses"]) == len(two["losses"]) == 2
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    assert abs(two["M_run"] - one["M_run"]) < 1e-6 and one["M_run"] != 0.0
    moved = 0
    for name, value in one["weights"].items():
        np.testing.assert_allclose(two["weights"][name], value, rtol=1e-4, atol=1e-6)
        moved += "lora_B" in name and np.abs(value).max() > 0
    assert moved  # LoRA B starts at zero: the optimizer really updated it
