"""Shared test fixtures: an isolated RECBENCH_HOME and a CLI runner that goes through main()."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2, exactly one ``error:`` line on stderr holding every needle, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


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


@pytest.fixture(scope="session")
def tiny_llm(model_home, tmp_path_factory) -> Path:
    """A tiny random Llama with the embedded tokenizer (``--model DIR``): the whole LLM pipeline
    in seconds, for tests of run directories, crash windows and concurrency."""
    sys.path.insert(0, str(ROOT / "tests" / "helpers"))
    from tiny_llm import make_tiny_llm

    from recbench import models

    previous = os.environ.get("RECBENCH_HOME")
    os.environ["RECBENCH_HOME"] = str(model_home)
    try:
        embedded = models.prepare_embedded("smollm2-135m")
    finally:
        if previous is None:
            os.environ.pop("RECBENCH_HOME")
        else:
            os.environ["RECBENCH_HOME"] = previous
    return make_tiny_llm(embedded, tmp_path_factory.mktemp("tiny-llm") / "model")


@pytest.fixture
def recbole_wheel(tmp_path, monkeypatch):
    """``make(inter, items, name=...)``: a stand-in recbole wheel holding the two MovieLens
    files, whose sha256 the builder is told to accept (``recbench.data.movielens``)."""
    from recbench.data import movielens

    def make(inter: str, items: str, name: str = "recbole-1.2.1-py3-none-any.whl") -> Path:
        inter_bytes, item_bytes = inter.encode(), items.encode()
        monkeypatch.setattr(movielens, "INTER_SHA256", hashlib.sha256(inter_bytes).hexdigest())
        monkeypatch.setattr(movielens, "ITEM_SHA256", hashlib.sha256(item_bytes).hexdigest())
        wheel = tmp_path / name
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(movielens.INTER_MEMBER, inter_bytes)
            archive.writestr(movielens.ITEM_MEMBER, item_bytes)
        return wheel

    return make
