"""The prepared GPU check's code paths, run on the CPU at the tiny shape.

``benchmarks/gpu_check.sh`` only runs where a GPU is lent; so that it does not first fail
there, the bench options it uses (a bf16 base, checkpointed variants, throughput columns) and
the report that reads its CSV are run here with the tiny random model.  The GPU's own numbers
(FLOP fraction, CUDA memory) cannot be checked without one.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
from conftest import ROOT

BENCH = ROOT / "benchmarks"


def test_the_gpu_check_script_parses():
    result = subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_bf16_base_checkpointed_grid_writes_throughput_the_report_reads(model_home, tmp_path):
    csv = tmp_path / "gpu-check.csv"
    env_home = {"RECBENCH_HOME": str(model_home), "OMP_NUM_THREADS": "1"}
    common = [sys.executable, str(BENCH / "bench_nneg.py")]
    run = subprocess.run(
        [*common, "--device", "cpu", "--shapes", "tiny", "--kinds", "step", "--n-neg", "1,3",
         "--checkpointing", "--base-dtype", "bf16", "--precision", "bf16", "--reps", "1",
         "--batch", "2", "--no-isolate", "--out", str(csv)],
        capture_output=True, text=True, check=False, cwd=ROOT, env={**_env(), **env_home},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    df = pd.read_csv(csv)
    assert set(df.base_dtype) == {"bf16"} and "failed" not in set(df.metric)
    assert {"dpo", "dpo-gc", "napo-gc"} <= set(df.variant)
    rates = df[df.metric == "tokens_per_second"].value
    assert len(rates) == 16 and (rates > 0).all()  # 8 step variants x 2 n_neg

    report = subprocess.run(
        [sys.executable, str(BENCH / "nneg_report.py"), str(csv), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    text = (tmp_path / "r" / "gpu-check.md").read_text()
    assert "tokens / s" in text and "| dpo-gc | 3 |" in text
    assert "n/a" in text  # no FLOP fraction on a CPU, and no "failed" for it


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "RECBENCH_HOME"}
