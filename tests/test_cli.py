"""The CLI: statistics output, and one-line errors with exit code 2 for user mistakes."""

from __future__ import annotations

import pytest


def test_data_info_lastfm(cli):
    result = cli("data", "info", "lastfm")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "4,606" in out and "1,220" in out
    assert "47,872" in out and "2,767" in out and "2,495" in out


def test_data_info_steam_says_the_train_split_is_a_sample(cli):
    result = cli("data", "info", "steam")
    assert result.returncode == 0, result.stderr
    assert "3,581" in result.stdout and "1,184" in result.stdout and "1,186" in result.stdout
    assert "sample" in result.stdout.lower()


def test_data_list(cli):
    result = cli("data", "list")
    assert result.returncode == 0
    assert "lastfm" in result.stdout and "steam" in result.stdout and "goodreads" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("data", "info", "lastfn"), "did you mean 'lastfm'"),
        (("run", "--dataset", "stem", "--profile", "smoke"), "did you mean 'steam'"),
        (("run", "--profile", "smok"), "did you mean 'smoke'"),
        (("run", "--n-neg", "20", "--profile", "smoke"), "n-neg 20 out of range"),
        (("run", "--model", "smollm2-13m", "--profile", "smoke"), "did you mean 'smollm2-135m'"),
        (("run", "--param", "beta", "--profile", "smoke"), "KEY=VALUE"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(cli, args, needle):
    result = cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_help_documents_every_run_option(cli):
    result = cli("run", "--help")
    assert result.returncode == 0
    for option in (
        "--loss",
        "--dataset",
        "--model",
        "--profile",
        "--seed",
        "--n-neg",
        "--param",
        "--rerun",
    ):
        assert option in result.stdout
