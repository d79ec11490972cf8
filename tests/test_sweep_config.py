"""``recbench sweep --config FILE.toml``: an experiment as a file of grids.

A grid in a file must plan exactly the points the same options plan on the command line (both
build one :class:`recbench.sweep.SweepOptions`), a broken file must fail in one line before
anything runs, and the committed experiment files must keep planning.  Nothing here trains a
model: the sweep's runner is replaced by one that records the points it is handed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT, assert_user_error
from typer.testing import CliRunner

from recbench import losses, runner
from recbench import sweep as sweeps
from recbench.cli import app
from recbench.data import catalog

EXPERIMENTS = ROOT / "benchmarks" / "experiments"
#: The study's experiment files (they replaced shell scripts of the same names).
EXPERIMENT_NAMES = ("study_runs", "study_validation", "cpu_profile_study", "cpu_llm_baselines",
                    "cpu_rule_baselines", "cpu_baselines", "cpu_factor_study", "field_study")  # fmt: skip


@pytest.fixture()
def planned(monkeypatch, recbench_home) -> list[list[sweeps.SweepPoint]]:
    """Each sweep the CLI starts, as its expanded points; nothing runs and nothing is stored."""
    seen: list[list[sweeps.SweepPoint]] = []

    def fake_run_sweep(spec: sweeps.SweepSpec, dry_run=False, report=None, output=None, **_):
        seen.append(sweeps.expand(spec))
        return sweeps.SweepResult()

    monkeypatch.setattr(sweeps, "run_sweep", fake_run_sweep)
    return seen


def write(tmp_path: Path, text: str, name: str = "experiment.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def invoke(*args: str) -> None:
    """The command in this process (the fixtures' fakes apply); it must succeed."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)


def two_grids(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        f"""
        [defaults]
        profile = "smoke"
        results = "{tmp_path / "results.jsonl"}"
        set = {{ lora_r = 8 }}

        [[grid]]
        name = "napo-curve"
        loss = "napo"
        seed = [0, 1]
        n-neg = [1, 3]
        param = {{ rho = [0.1, 0.3] }}

        [[grid]]
        loss = ["dpo"]
        baseline = ["pop"]
        set = {{ sft_learning_rate = 1e-3 }}
        """.replace("\n        ", "\n"),
    )


def test_two_grids_plan_the_points_of_the_two_commands(tmp_path, planned):
    store = str(tmp_path / "results.jsonl")
    common = ("sweep", "--profile", "smoke", "--results", store, "--set", "lora_r=8")
    invoke(*common, "--loss", "napo", "--seed", "0,1", "--n-neg", "1,3", "--param", "rho=0.1,0.3")
    invoke(*common, "--set", "sft_learning_rate=1e-3", "--loss", "dpo", "--baseline", "pop")
    by_commands = list(planned)
    planned.clear()

    invoke("sweep", "--config", str(two_grids(tmp_path)))

    assert planned == by_commands  # every point's full config, swept values and hparams
    assert [len(points) for points in planned] == [8, 2]
    assert planned[1][0].config.overrides == {"lora_r": 8, "sft_learning_rate": 1e-3}


def test_a_dry_run_lists_the_same_points_grid_by_grid(tmp_path, recbench_home):
    store = str(tmp_path / "results.jsonl")
    common = ("sweep", "--profile", "smoke", "--results", store, "--set", "lora_r=8", "--dry-run")
    first = CliRunner().invoke(app, [*common, "--loss", "napo", "--seed", "0,1", "--n-neg", "1,3",
                                     "--param", "rho=0.1,0.3"])  # fmt: skip
    second = CliRunner().invoke(app, [*common, "--set", "sft_learning_rate=1e-3", "--loss", "dpo",
                                      "--baseline", "pop"])  # fmt: skip
    both = CliRunner().invoke(app, ["sweep", "--config", str(two_grids(tmp_path)), "--dry-run"])

    def point_lines(output: str) -> list[str]:
        return [line for line in output.splitlines() if re.match(r"\[\d+/\d+\] ", line)]

    assert both.exit_code == 0, both.output
    assert point_lines(both.output) == point_lines(first.output) + point_lines(second.output)
    assert "grid 1/2 'napo-curve': 8 points" in both.output
    assert "grid 2/2 '2': 2 points" in both.output
    assert "10 points: 0 done, 10 todo, 0 ran, 0 failed" in both.output
    assert not Path(store).exists()


def test_from_this_stage_in_a_file_plans_what_the_option_plans(tmp_path, planned):
    store = str(tmp_path / "results.jsonl")
    invoke("sweep", "--profile", "smoke", "--results", store, "--loss", "sdpo", "--seed", "0,2",
           "--from-this-stage")  # fmt: skip
    path = write(tmp_path, f'[[grid]]\nprofile = "smoke"\nresults = "{store}"\nloss = "sdpo"\n'
                 "seed = [0, 2]\nfrom_this_stage = true\n")  # fmt: skip
    invoke("sweep", "--config", str(path))
    assert planned[0] == planned[1]
    assert [p.config.from_this_stage for p in planned[1]] == [True, True]
    assert planned[1][0].describe() == "lastfm sdpo seed=0 from-this-stage"


def test_grid_seed_and_dataset_pick_a_share_of_the_file(tmp_path, planned):
    path = two_grids(tmp_path)
    invoke("sweep", "--config", str(path), "--grid", "napo-curve", "--seed", "1")
    assert [{p.config.seed for p in points} for points in planned] == [{1}]
    planned.clear()
    invoke("sweep", "--config", str(path), "--seed", "0", "--dataset", "lastfm")
    assert [len(points) for points in planned] == [4, 2]


def test_results_are_relative_to_the_file(tmp_path, planned):
    folder = tmp_path / "experiments"
    folder.mkdir()
    path = write(folder, '[[grid]]\nprofile = "smoke"\nresults = "../stores/r.jsonl"\n')
    invoke("sweep", "--config", str(path))
    assert planned[0][0].config.results == tmp_path / "stores" / "r.jsonl"


@pytest.mark.parametrize(
    ("text", "args", "needles"),
    [
        (None, (), ("missing.toml", "does not exist")),
        ("[[grid]\nloss = 1", (), ("is not valid TOML", "line 1")),
        ('[[grid]]\nlosss = "napo"', (), ("grid 1", "unknown key 'losss'", "did you mean 'loss'")),
        ('[[grid]]\nname = "g"\nseed = "0"', (), ("grid 1 ('g')", "'seed' must be an integer")),
        ("[[grid]]\nset = { lora_r = [8] }", (), ("'set.lora_r' must be",)),
        ("[[grid]]\nn_neg = []", (), ("'n_neg' has no values",)),
        ('[defaults]\nprofile = 3\n[[grid]]\nloss = "dpo"', (), ("[defaults]", "'profile'")),
        ('[[grid]]\nloss = "dpo"\n[[grid]]\nloss = "napoo"', (), ("grid 2", "did you mean 'napo'")),
        ('[[grid]]\nprofile = "smoke"\nseed = -1', (), ("grid 1", "--seed must be an integer")),
        ('title = "x"\n[[grid]]\nloss = "dpo"', (), ("unknown top-level key 'title'",)),
        ('[defaults]\nloss = "dpo"', (), ("no [[grid]] tables",)),
        ('[[grid]]\nname = "a"\n[[grid]]\nname = "a"', (), ("two grids are named 'a'",)),
        ('[[grid]]\nloss = "dpo"', ("--profile", "smoke"), ("--profile cannot be combined",)),
        ('[[grid]]\nloss = "dpo"', ("--set", "lora_r=8"), ("--set cannot be combined",)),
        ('[[grid]]\nloss = "dpo"', ("--grid", "nope"), ("--grid nope", "no such grid")),
        (
            '[[grid]]\nloss = "dpo"',
            ("--seed", "5"),
            ("no grid has the selected", "--seed 5: the grids have 0"),
        ),
        (
            "[[grid]]\nseed = [0, 1]",
            ("--dataset", "steam"),
            ("--dataset steam: the grids have lastfm",),
        ),
        (
            '[[grid]]\nloss = "dpo"\nfrom_this_stage = "yes"',
            (),
            ("'from_this_stage' must be true",),
        ),
        (
            '[[grid]]\nbaseline = "pop"\nprofile = "smoke"\nfrom_this_stage = true',
            (),
            ("grid 1", "pop is not trained from the SFT stage"),
        ),
        (
            '[[grid]]\nloss = "dpo"',
            ("--from-this-stage",),
            ("--from-this-stage cannot be combined",),
        ),
    ],
)
def test_a_broken_file_is_one_line_and_exit_2(cli, tmp_path, text, args, needles):
    path = tmp_path / "missing.toml" if text is None else write(tmp_path, text, "broken.toml")
    result = cli("sweep", "--config", str(path), *args, timeout=120)
    line = assert_user_error(result, *needles)
    assert str(path) in line or "--grid" in line or "cannot be combined" in line


def test_grid_without_config_is_refused(cli):
    assert_user_error(cli("sweep", "--grid", "a", "--dry-run", timeout=120), "--config FILE.toml")


def test_help_explains_the_option():
    result = CliRunner().invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--config" in result.output and "experiment file" in result.output
    assert "--grid" in result.output


# ------------------------------------------------------------------ the committed files
def test_every_experiment_file_is_documented_with_its_command():
    """benchmarks/README.md is where a user finds how each grid is run; the scripts are gone."""
    assert sorted(p.stem for p in EXPERIMENTS.glob("*.toml")) == sorted(EXPERIMENT_NAMES)
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    for name in EXPERIMENT_NAMES:
        assert f"recbench sweep --config benchmarks/experiments/{name}.toml" in readme, name
        assert not (ROOT / "benchmarks" / f"{name}.sh").exists(), name


@pytest.mark.parametrize("name", EXPERIMENT_NAMES)
def test_each_committed_file_plans(name, recbench_home):
    """Parsed and expanded without running: fully checked where its datasets are installed
    (movielens is built locally), its method names resolved everywhere."""
    path = EXPERIMENTS / f"{name}.toml"
    grids = sweeps.load_experiment(path)
    installed = set(catalog.known_names())  # movielens only where it was built
    for grid, spec, points in sweeps.plan(grids, check=False):
        assert points, grid.name
        assert spec.store.parent == ROOT / "reports" / "results", grid.name
        if set(grid.options.dataset) <= installed:
            sweeps.plan([grid])  # every name, range and path, as the sweep checks them
        for point in points:
            config = point.config
            if config.loss is not None:
                losses.get_spec(config.loss)
            else:
                assert config.baseline in runner.baseline_names(), config.baseline
