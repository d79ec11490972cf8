"""The documentation site (docs/, mkdocs.yml): it builds with ``mkdocs build --strict``, its CLI
reference covers every command the typer app has, and its plugin example runs.

``--strict`` turns every warning into a failure: a broken link between pages, a page missing
from the navigation, an anchor that does not exist.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from conftest import ROOT

from recbench.cli import app
from recbench.data import load_dataset

HOOK = ROOT / "docs" / "hooks" / "cli_reference.py"


def command_paths(command: click.Command, prefix: str = "recbench") -> list[str]:
    """``recbench``, ``recbench run``, ``recbench data info``, ...: every command of the app."""
    paths = [prefix]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            paths += command_paths(sub, f"{prefix} {name}")
    return paths


def load_hook():
    spec = importlib.util.spec_from_file_location("cli_reference", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_block(page: str) -> str:
    found = re.search(r"```python\n(.*?)```", (ROOT / "docs" / page).read_text(), re.DOTALL)
    assert found, f"docs/{page} has no ```python block"
    return found.group(1)


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[test]')")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    cli_page = (site / "cli" / "index.html").read_text()
    assert "<!-- cli-reference -->" not in cli_page  # the marker was replaced
    for path in command_paths(typer.main.get_command(app)):
        assert f"<code>{path}</code>" in cli_page, path
    assert not (site / "hooks").exists()  # the hook is code, not a page


def test_cli_reference_lists_every_option_of_every_command() -> None:
    reference = load_hook().render_reference()
    root = typer.main.get_command(app)
    for path in command_paths(root):
        command = root
        for name in path.split()[1:]:
            command = command.commands[name]
        assert f"`{path}`" in reference, path
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert any(f"`{opt}" in reference for opt in param.opts), (path, param.opts)


def test_the_negatives_example_registers_and_picks_the_least_popular(cli, tmp_path) -> None:
    plugin = tmp_path / "least_popular.py"
    plugin.write_text(python_block("adding-negatives.md"))
    listed = cli("methods", "--plugin", str(plugin))
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"--negatives\s+least_popular", listed.stdout), listed.stdout[-2000:]
    script = (
        "import json, sys\n"
        "from recbench import negatives, plugins\n"
        "from recbench.data import load_dataset\n"
        "plugins.load_plugins([sys.argv[1]])\n"
        "data = load_dataset('lastfm')\n"
        "examples = list(data.examples('train'))[:5]\n"
        "context = negatives.NegativeContext(data, seed=0)\n"
        "picks = negatives.get_strategy('least_popular')().pick(context, examples, 3)\n"
        "print(json.dumps(picks))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(plugin)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    picks = json.loads(result.stdout)
    data = load_dataset("lastfm")
    popularity = data.popularity()
    for example, pick in zip(list(data.examples("train"))[:5], picks, strict=True):
        others = sorted((c for c in example.candidates if c != example.target),
                        key=lambda c: (popularity[c], c))  # fmt: skip
        assert tuple(pick) == tuple(others[:3])


def test_every_registered_loss_key_is_documented() -> None:
    """docs/losses.md replaces the external specifications the code used to cite, so a loss
    registered without its entry there would have no formula or source a reader can find."""
    from recbench import losses

    page = (ROOT / "docs" / "losses.md").read_text(encoding="utf-8")
    missing = [key for key in losses.loss_keys() if f"`{key}`" not in page]
    assert missing == [], f"docs/losses.md does not name {missing}"


def test_no_code_cites_a_specification_outside_the_repository() -> None:
    """LOSSES.md, FIELD_LOSSES.md and PROTOCOL.md are not in the repository: citations point to
    docs/losses.md and docs/data.md instead."""
    cited = re.compile(r"\b(?:FIELD_)?LOSSES\.md|\bPROTOCOL\.md")
    folders = ("recbench", "losses", "baselines", "benchmarks", "tests")
    sources = [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    sources += [ROOT / "pyproject.toml", *(ROOT / "benchmarks" / "experiments").glob("*.toml")]
    sources.remove(Path(__file__).resolve())  # this test names them
    offending = [str(p.relative_to(ROOT)) for p in sources if cited.search(p.read_text())]
    assert offending == []
