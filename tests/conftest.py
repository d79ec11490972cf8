"""Shared test fixtures: an isolated RECBENCH_HOME and a CLI runner that goes through main()."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def recbench_home(tmp_path, monkeypatch) -> Path:
    """A private cache so tests never touch (or depend on) the user's."""
    home = tmp_path / "home"
    monkeypatch.setenv("RECBENCH_HOME", str(home))
    return home


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``recbench ARGS`` in a subprocess exactly as a user would (through ``main``)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "recbench.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture()
def cli(recbench_home):
    def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return run_cli(*args, env={"RECBENCH_HOME": str(recbench_home)}, **kwargs)

    return _run


@pytest.fixture(scope="session")
def model_home(tmp_path_factory) -> Path:
    """A cache shared by the tests that need the embedded model (fetched once per session).

    CI sets RECBENCH_HOME to a directory inside the clone, so the model is fetched once per CI
    run; locally a session directory is used unless RECBENCH_HOME is set.
    """
    configured = os.environ.get("RECBENCH_HOME")
    home = Path(configured) if configured else tmp_path_factory.mktemp("model-home")
    home.mkdir(parents=True, exist_ok=True)
    return home
