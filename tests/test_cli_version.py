"""``recbench --version``: the installed distribution's version, exit 0, nothing else required."""

from __future__ import annotations

from importlib import metadata


def test_version_prints_the_installed_version_and_exits_0(cli):
    result = cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"recbench {metadata.version('recbench')}"
    assert result.stderr == ""


def test_version_is_listed_in_the_top_level_help(cli):
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    assert "--version" in result.stdout
