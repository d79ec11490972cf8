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
import tomllib
from pathlib import Path

from conftest import ROOT

LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def installed_layout(target: Path) -> Path:
    """The source tree as it is installed: ``losses/`` and ``baselines/`` under ``recbench/``
    (setuptools maps them there), the layout the contracts are written for.  ``lint-imports``
    walks a package's own folder, so it is given this copy rather than the repository."""
    ignore = shutil.ignore_patterns("*.jsonl", "*.safetensors", "__pycache__")
    shutil.copytree(ROOT / "recbench", target / "recbench", ignore=ignore)
    for package in ("losses", "baselines"):
        shutil.copytree(ROOT / package, target / "recbench" / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_import_contracts_hold(tmp_path):
    result = lint(installed_layout(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_a_core_module_importing_baselines_breaks_a_contract(tmp_path):
    installed_layout(tmp_path)
    results = tmp_path / "recbench" / "results.py"
    results.write_text(
        results.read_text() + "\n\ndef _violation():\n    import recbench.baselines\n"
    )
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "the core never imports the baselines plugin BROKEN" in result.stdout
    assert "recbench.results -> recbench.baselines" in result.stdout


def test_every_core_module_is_bound_by_the_plugin_contract():
    """A new core module must be listed, or it could import the baselines plugin unchecked."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"]
                    if c["name"] == "the core never imports the baselines plugin")  # fmt: skip
    core = {
        f"recbench.{p.stem}"
        for p in (ROOT / "recbench").iterdir()
        if p.name != "__init__.py" and (p.suffix == ".py" or (p / "__init__.py").is_file())
    }
    core.add("recbench.losses")
    assert core - set(contract["source_modules"]) == set()
