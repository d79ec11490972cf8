"""The README's plugin method (issue 33): a rule baseline of about 30 lines, registered from
outside the package, runs, is skipped when repeated, and appears in ``recbench compare``."""

from __future__ import annotations

import json
import re

from conftest import ROOT, assert_user_error


def readme_method() -> str:
    """The ```python block of the README's "Adding a method" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Adding a method", 1)[1].split("\n## ")[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "README.md's 'Adding a method' section has no ```python block"
    return found.group(1)


def test_the_readme_method_is_small():
    assert len(readme_method().strip().splitlines()) <= 35


def test_the_readme_method_runs_is_skipped_when_repeated_and_appears_in_compare(cli, tmp_path):
    plugin = tmp_path / "recent_pop.py"
    plugin.write_text(readme_method())
    store, out = tmp_path / "results.jsonl", tmp_path / "reports"
    args = ("run", "--plugin", str(plugin), "--baseline", "recent_pop", "--dataset", "lastfm",
            "--profile", "smoke", "--set", "eval_examples=50", "--results", str(store))  # fmt: skip
    ran = cli(*args)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "final ranking    hr@1=" in ran.stdout and "(n=50)" in ran.stdout
    records = [json.loads(line) for line in store.read_text().splitlines()]
    assert {r["method"] for r in records} == {"recent_pop"}
    assert {r["family"] for r in records} == {"rule"} and {r["seed"] for r in records} == {None}
    (run_id,) = {r["run_id"] for r in records}
    assert records[0]["settings"]["plugin"]["name"] == "recent_pop.py"
    hr1 = next(r["value"] for r in records if r["metric"] == "hr@1")
    assert 0.0 <= hr1 <= 1.0

    again = cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.startswith(f"already recorded: {run_id}")
    assert len(store.read_text().splitlines()) == len(records)  # nothing appended

    other_seed = cli(*args, "--seed", "3")  # no seed changes a rule: the same run
    assert other_seed.stdout.startswith(f"already recorded: {run_id}")

    edited = tmp_path / "edited" / "recent_pop.py"  # an edited plugin file is another run
    edited.parent.mkdir()
    edited.write_text(readme_method().replace("// 4", "// 3"))
    changed = cli(*[str(edited) if a == str(plugin) else a for a in args])
    assert changed.returncode == 0 and "already recorded" not in changed.stdout

    compared = cli("compare", "--plugin", str(plugin), "--results", str(store), "--out", str(out),
                   "--no-plots")  # fmt: skip
    assert compared.returncode == 0, compared.stderr[-3000:]
    table = (out / "table2_main.md").read_text()
    assert "recent_pop" in table

    # without the plugin the method is unknown: one line naming what exists
    missing = cli("run", "--baseline", "recent_pop", "--profile", "smoke")
    assert_user_error(missing, "unknown baseline 'recent_pop'")
