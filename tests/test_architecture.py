"""Imports point one way (issue 13, item 4): the ``import-linter`` contracts in pyproject.toml.

The core (``recbench``) never imports the ``baselines`` plugin, losses stand on the core's
errors and registry only, and inside the core ``cli -> api -> sweep -> runner -> pipeline ->
methods/trainer/evaluation/auxiliary``.  The contracts hold on the real tree, and a deliberate
violation on a copy of it is caught.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_the_import_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_a_core_module_importing_baselines_breaks_a_contract(tmp_path):
    for package in ("recbench", "losses", "baselines"):
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("*.jsonl", "*.safetensors", "__pycache__"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")  # fmt: skip
    results = tmp_path / "recbench" / "results.py"
    results.write_text(results.read_text() + "\n\ndef _violation():\n    import baselines\n")
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "the core never imports the baselines plugin BROKEN" in result.stdout
    assert "recbench.results -> baselines" in result.stdout
