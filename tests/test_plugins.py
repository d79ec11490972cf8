"""Plugins: the README's loss file runs as a plugin; RECBENCH_PLUGINS, entry points, errors."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, assert_user_error

from recbench import losses, plugins
from recbench.registry import registries

README_KEY = "my_loss"


def readme_plugin() -> str:
    """The ```python block of the README's "Adding a loss" section."""
    section = (ROOT / "README.md").read_text().split("### Adding a loss", 1)[1].split("\n## ")[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "README.md's 'Adding a loss' section has no ```python block"
    return found.group(1)


def write_plugin(path: Path, key: str, extra: str = "") -> Path:
    """The README's plugin, registering ``key`` (and running ``extra`` first)."""
    code = readme_plugin().replace(f'"{README_KEY}"', f'"{key}"')
    path.write_text(extra + code)
    return path


def listing(stdout: str) -> dict[str, str]:
    """``recbench losses`` output as key -> its summary line."""
    lines = [line for line in stdout.splitlines() if line and not line.startswith(" ")]
    return {line.split()[0]: line for line in lines}


@pytest.fixture()
def isolated_registries():
    """Undo, after the test, what plugins loaded in this process registered."""
    saved = [(r, dict(r._items), dict(r._origins)) for r in registries()]
    loaded = dict(plugins._LOADED)
    yield
    for registry, items, origins in saved:
        registry._items, registry._origins = items, origins
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)


# ------------------------------------------------------------------------------- the README
@pytest.mark.model
def test_readme_plugin_is_listed_and_runs_with_its_provenance(cli, tiny_llm, tmp_path):
    plugin = tmp_path / "my_loss.py"
    plugin.write_text(readme_plugin())
    sha256 = hashlib.sha256(plugin.read_bytes()).hexdigest()

    listed = cli("losses", "--plugin", str(plugin))
    assert listed.returncode == 0, listed.stderr
    lines = listing(listed.stdout)
    assert list(lines)[-1] == README_KEY  # after the built-in losses
    assert lines[README_KEY].endswith("[plugin: my_loss.py]")
    assert "plugin" not in lines["dpo"]  # the plugin imported losses; the built-ins stay built-in
    detail = cli("losses", README_KEY, "--plugin", str(plugin))
    assert detail.returncode == 0, detail.stderr
    assert f"plugin: my_loss.py (--plugin; {plugin.resolve()}, sha256 {sha256})" in detail.stdout

    store = tmp_path / "results.jsonl"
    ran = cli(
        "run", "--plugin", str(plugin), "--loss", README_KEY, "--profile", "smoke",
        "--model", str(tiny_llm), "--results", str(store),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    records = [json.loads(line) for line in store.read_text().splitlines()]
    own = [r for r in records if r["method"] == README_KEY]
    assert own and all(r["family"] == "loss" for r in own)
    expected = {"name": "my_loss.py", "path": str(plugin.resolve()), "sha256": sha256}
    assert all(r["settings"]["plugin"] == expected for r in own)
    assert own[0]["hparams"] == {"beta": 1.0, "margin": 1.0, "n_neg": own[0]["hparams"]["n_neg"],
                                 "negatives": "random"}  # fmt: skip
    # the shared SFT stage's records are recbench's own
    assert all("plugin" not in r["settings"] for r in records if r["method"] != README_KEY)


# ----------------------------------------------------------------------- ways to name them
def test_recbench_plugins_loads_files_and_modules(cli, tmp_path, monkeypatch):
    package = tmp_path / "site"
    package.mkdir()
    write_plugin(package / "mod_plugin.py", "module_loss")
    file_plugin = write_plugin(tmp_path / "file_plugin.py", "file_loss")
    monkeypatch.setenv("PYTHONPATH", str(package))
    monkeypatch.setenv("RECBENCH_PLUGINS", f"{file_plugin}:mod_plugin")
    result = cli("losses", "--plugin", "mod_plugin", "--plugin", str(file_plugin))  # again
    assert result.returncode == 0, result.stderr
    lines = listing(result.stdout)
    assert lines["file_loss"].endswith("[plugin: file_plugin.py]")
    assert lines["module_loss"].endswith("[plugin: mod_plugin]")
    assert list(lines)[-2:] == ["file_loss", "module_loss"]  # by order, then key
    detail = cli("losses", "module_loss")
    assert f"plugin: mod_plugin (RECBENCH_PLUGINS; {package / 'mod_plugin.py'}" in detail.stdout


def test_entry_point_plugin(cli, tmp_path, monkeypatch):
    """An installed package's ``recbench.plugins`` entry point (a dist-info on sys.path)."""
    site = tmp_path / "site"
    (site / "ep_plugin").mkdir(parents=True)
    write_plugin(site / "ep_plugin" / "__init__.py", "ep_loss")
    info = site / "ep_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[recbench.plugins]\nhinge = ep_plugin\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    result = cli("losses")
    assert result.returncode == 0, result.stderr
    assert listing(result.stdout)["ep_loss"].endswith("[plugin: hinge]")
    detail = cli("losses", "ep_loss")
    assert f"plugin: hinge (entry point; {site / 'ep_plugin' / '__init__.py'}" in detail.stdout


def test_loading_is_idempotent_and_records_origins(tmp_path, monkeypatch, isolated_registries):
    runs = tmp_path / "imports.txt"
    path = write_plugin(
        tmp_path / "counted.py", "counted_loss", f"open({str(runs)!r}, 'a').write('x')\n"
    )
    monkeypatch.setenv("RECBENCH_PLUGINS", str(path))
    first = plugins.load_plugins([str(path), str(path)])
    again = plugins.load_plugins([str(tmp_path / ".." / tmp_path.name / "counted.py")])
    assert runs.read_text() == "x"  # imported once
    assert first == again  # the installed entry points, then this file once
    (plugin,) = [p for p in first if p.origin != "entry point"]
    assert (plugin.name, plugin.origin) == ("counted.py", "RECBENCH_PLUGINS")
    assert plugin.path == str(path.resolve())
    assert plugin.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert losses.loss_origin("counted_loss") == plugin
    assert losses.loss_origin("dpo") is None
    assert plugins.provenance("loss", "counted_loss") == plugin.to_dict()
    assert plugins.run_provenance("counted_loss") == plugin.to_dict()
    assert plugins.run_provenance("dpo") is None and plugins.run_provenance("sasrec") is None
    assert losses.get_spec("counted_loss").family == "other"


def test_a_failed_plugin_registers_nothing(tmp_path, isolated_registries):
    path = write_plugin(tmp_path / "half.py", "half_loss")
    path.write_text(path.read_text() + "\nraise RuntimeError('boom')\n")
    with pytest.raises(plugins.PluginError, match=r"plugin half\.py: cannot import it \(Runtime"):
        plugins.load_plugins([str(path)])
    assert "half_loss" not in losses.loss_keys()


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("import recbench_no_such_module\n", "(ModuleNotFoundError: No module named"),
        ("def broken(:\n", "(SyntaxError: invalid syntax"),
        ("raise RuntimeError('plugin\\nfailed')\n", "(RuntimeError: plugin failed)"),
    ],
    ids=["import-error", "syntax-error", "exception"],
)
def test_plugin_that_fails_to_import(cli, tmp_path, code, needle):
    path = tmp_path / "broken.py"
    path.write_text(code)
    assert_user_error(
        cli("losses", "--plugin", str(path)), "plugin broken.py: cannot import it", needle
    )


def test_a_failing_plugin_from_the_environment_says_where_it_was_named(cli, monkeypatch, tmp_path):
    """A user who typed no --plugin must learn that $RECBENCH_PLUGINS named the plugin."""
    monkeypatch.setenv("RECBENCH_PLUGINS", str(tmp_path / "gone.py"))
    assert_user_error(cli("losses"), "plugin", "gone.py (named in $RECBENCH_PLUGINS): no such file")
    monkeypatch.setenv("RECBENCH_PLUGINS", "recbench_no_such_plugin")
    assert_user_error(
        cli("losses"), "plugin recbench_no_such_plugin (named in $RECBENCH_PLUGINS): cannot import"
    )


@pytest.mark.parametrize("command", ["run", "sweep", "compare", "losses"])
def test_every_command_takes_plugin(cli, recbench_home, tmp_path, command):
    assert_user_error(
        cli(command, "--plugin", str(tmp_path / "missing.py")), "plugin", "no such file"
    )
    assert_user_error(
        cli(command, "--plugin", "recbench_no_such_plugin"),
        "plugin recbench_no_such_plugin: cannot import it (ModuleNotFoundError",
    )
    assert not (recbench_home / "runs").exists()


def test_sweep_validates_a_plugin_loss(cli, tmp_path):
    plugin = write_plugin(tmp_path / "my_loss.py", README_KEY)
    result = cli(
        "sweep", "--plugin", str(plugin), "--loss", f"{README_KEY},dpo", "--profile", "smoke",
        "--results", str(tmp_path / "r.jsonl"), "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"lastfm {README_KEY} seed=0: to run" in result.stdout


def test_plugin_registering_an_existing_key(cli, tmp_path):
    builtin = write_plugin(tmp_path / "dup.py", "dpo")
    assert_user_error(
        cli("losses", "--plugin", str(builtin)),
        "plugin dup.py registers loss 'dpo', which already exists (built into recbench)",
    )
    first = write_plugin(tmp_path / "first.py", "twice")
    second = write_plugin(tmp_path / "second.py", "twice")
    assert_user_error(
        cli("run", "--plugin", str(first), "--plugin", str(second), "--loss", "twice"),
        "plugin second.py registers loss 'twice', which already exists (from plugin first.py)",
    )
