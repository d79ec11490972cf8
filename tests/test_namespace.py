"""One namespace (issue 33, item 4): recbench installs ``recbench``, ``recbench.losses`` and
``recbench.baselines`` and no top-level ``losses`` or ``baselines``, so a user's own ``losses.py``
beside a script or notebook stays the user's and never replaces recbench's losses."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from conftest import ROOT

SCRIPT = """
import recbench.api
from recbench import losses as theirs
import losses as mine
print(theirs.__file__)
print(mine.__file__)
print(theirs.get_loss("dpo").__class__.__name__)
"""


def test_a_users_losses_py_does_not_shadow_recbench(tmp_path):
    (tmp_path / "losses.py").write_text("MINE = True\n")
    (tmp_path / "script.py").write_text(SCRIPT)
    result = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    theirs, mine, name = result.stdout.split()
    assert theirs == str(ROOT / "losses" / "__init__.py")
    assert mine == str(tmp_path / "losses.py")
    assert name  # recbench's registry answered


def test_no_top_level_losses_or_baselines_is_installed(tmp_path):
    probe = "import importlib.util as u; print(u.find_spec('losses'), u.find_spec('baselines'))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.stdout.split() == ["None", "None"], result.stdout + result.stderr


def test_the_baselines_plugin_is_found_under_the_recbench_name():
    points = metadata.entry_points(group="recbench.plugins")
    assert {p.name: p.value for p in points}["baselines"] == "recbench.baselines.methods"


def test_napo_runs_with_the_baselines_plugin_disabled(tiny_llm, recbench_home, tmp_path):
    """The auxiliary SASRec is the core's own (issue 33, item 3): NAPO, whose sharing and
    margin read a SASRec, runs end to end although the baselines plugin is not loaded."""
    import os

    from conftest import run_cli

    store = tmp_path / "results.jsonl"
    env = {"RECBENCH_HOME": str(recbench_home), "RECBENCH_DISABLE_PLUGINS": "baselines",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    listed = run_cli("methods", env=env)
    assert listed.returncode == 0 and "sasrec" not in listed.stdout and "napo" in listed.stdout
    ran = run_cli("run", "--loss", "napo", "--profile", "smoke", "--model", str(tiny_llm),
                  "--results", str(store), env=env)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "final ranking" in ran.stdout
    assert os.environ.get("RECBENCH_DISABLE_PLUGINS") is None  # the test's own process loads it


def test_every_package_of_the_tree_is_installed():
    """setuptools installs the packages pyproject lists, no more: a subpackage left out works
    in an editable install (its finder maps the whole folder) and is missing from a wheel, as
    ``recbench.negatives`` once was.  Every folder with an ``__init__.py`` must be listed."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])  # fmt: skip
    mapped = {"recbench.losses": ROOT / "losses", "recbench.baselines": ROOT / "baselines"}
    found = set()
    for root, name in ((ROOT / "recbench", "recbench"), *((p, n) for n, p in mapped.items())):
        for init in root.rglob("__init__.py"):
            parts = init.parent.relative_to(root).parts
            found.add(".".join((name, *parts)))
    assert found - listed == set(), f"not installed: {sorted(found - listed)}"
